"""``crawl retry``: queue again the done URLs whose last result was an error of chosen types.

A URL that failed is done: dedup has seen it, so seeding it again does
nothing, and before this a blocked seed (a loopback site without
``--allow-private``) could only be undone by deleting the crawl. Now
``complete.lua`` files each error result's URL under its type in its shard
(``failed:<type>``: URL -> ``host|depth|hops|retries``, at most
``keys.FAILED_KEPT`` a type a shard), and ``retry_errors.lua`` moves them back
to their hosts' queues, in bounded calls, one state transition each. The
next result of such a URL is another record in the stream (the old one
stays), carrying ``"retry": n`` (its n-th retry); with ``recrawl = true`` its
``visit`` counts on as well. It does not need ``recrawl = true``.

Memory: one hash field a failed URL, its URL and ``host|depth|hops|retries``:
101 bytes a URL for 1,000 URLs of 40 bytes (about 60 bytes on top of the
URL; tests/test_cli_second_hour.py measures it), and only for URLs whose
last result is an error.
"""

from __future__ import annotations

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.store import keys

RETRY_BATCH = 5_000
"""URLs one retry_errors.lua call queues at most (a call holds the server ~10 µs a URL)."""
MAX_CALLS = 10_000
"""Calls a shard gets at most: FAILED_KEPT times the types, over RETRY_BATCH, with room."""


async def failed_by_type(redis: Redis, settings: Settings) -> dict[str, int]:
    """URLs filed as failed, by error type, over every shard (the types ``stats`` tallied)."""
    frontier = Frontier(redis, settings, local_dedup=False)
    types = sorted(name[2:] for name in await frontier.stats() if name.startswith("e:"))
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        for kind in types:
            pipe.hlen(shard.failed(kind))
    counts = dict.fromkeys(types, 0)
    replies = iter(await pipe.execute())
    for _ in shards:
        for kind in types:
            counts[kind] += int(next(replies))
    return {kind: n for kind, n in counts.items() if n}


async def requeue_errors(redis: Redis, settings: Settings, types: list[str]) -> int:
    """Queue again every URL filed under these error types; returns how many."""
    frontier = Frontier(redis, settings, local_dedup=False)
    policy = settings.policy_for("")
    total = 0
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        for _ in range(MAX_CALLS):
            [reply] = await frontier.run([("retry_errors", shard.script_keys, [
                shard.base, policy.max_per_host, int(policy.delay * 1000), RETRY_BATCH,
                *types])])
            total += int(reply[0])
            if int(reply[1]) == 0 or int(reply[0]) == 0:
                break
    return total
