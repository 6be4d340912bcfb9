"""``crawl retry``: queue again the done URLs whose last result was an error of chosen types.

A URL that failed is done: dedup has seen it, so seeding it again does
nothing, and before this a blocked seed (a loopback site without
``--allow-private``) could only be undone by deleting the crawl. Now
``complete.lua`` files each error result's URL in its shard's ``failed`` hash
(URL -> ``type|host|depth|hops|retries``, at most ``keys.FAILED_KEPT`` URLs a
shard) and takes it out at its next result that is not an error (a revisit
that worked), and ``retry_errors.lua`` queues those of the chosen types again
and marks them, one HSCAN page a call, one state transition each. The
next result of such a URL is another record in the stream (the old one
stays), carrying ``"retry": n`` (its n-th retry); with ``recrawl = true`` its
``visit`` counts on as well. It does not need ``recrawl = true``.

Memory: one hash field a failed URL, its URL and ``type|host|depth|hops|retries``:
93 bytes a URL for 1,000 URLs of 40 bytes (about 53 bytes on top of the URL;
tests/test_cli_second_hour.py measures it), and only for URLs whose last
result is an error.
"""

from __future__ import annotations

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.store import keys

RETRY_COUNT = 2_000
"""The HSCAN hint of one retry_errors.lua call: about how many failed URLs it reads (a
call holds the server ~10 µs a URL it queues)."""
MAX_CALLS = 100_000
"""Calls a shard gets at most (its cursor comes back to 0 long before)."""


async def failed_by_type(redis: Redis, settings: Settings) -> dict[str, int]:
    """URLs whose last result is an error, by type, over every shard (a read of ``failed``)."""
    counts: dict[str, int] = {}
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        async for _, value in redis.hscan_iter(shard.failed, count=1000):
            kind = (value.decode() if isinstance(value, bytes) else str(value)).split("|")[0]
            if kind != "*":  # queued again, not failed (yet)
                counts[kind] = counts.get(kind, 0) + 1
    return counts


async def requeue_errors(redis: Redis, settings: Settings, types: list[str]) -> int:
    """Queue again every URL whose last result is an error of these types; returns how many."""
    frontier = Frontier(redis, settings, local_dedup=False)
    policy = settings.policy_for("")
    total = 0
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        cursor = "0"
        for _ in range(MAX_CALLS):
            [reply] = await frontier.run([("retry_errors", shard.script_keys, [
                shard.base, policy.max_per_host, int(policy.delay * 1000), RETRY_COUNT,
                cursor, *types])])
            total += int(reply[0])
            cursor = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
            if cursor == "0":
                break
    return total
