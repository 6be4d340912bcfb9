"""The frontier's transitions (add, claim, complete, retry, reclaim) against a real Valkey.

No page is fetched here except in the retry-exhaustion test, which runs a real
Worker against a local server. Host names such as ``a.test`` never leave Redis.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from crawl_helpers import reclaim_expired
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from crawler.config import HostPolicy, Settings
from crawler.frontier import Frontier, Lease
from crawler.store import keys
from crawler.urls import canonicalize
from crawler.worker import Worker

MakeFrontier = Callable[..., Frontier]


@pytest.fixture
def make_frontier(redis: Redis, settings: Settings) -> MakeFrontier:
    """Frontier clients of the test crawl; keyword arguments change its settings."""

    def make(local_dedup: bool = True, **changes: Any) -> Frontier:
        return Frontier(redis, settings.replace(**changes), local_dedup=local_dedup)

    return make


def urls(host: str, n: int, start: int = 0) -> list[tuple[str, int]]:
    return [(f"http://{host}/p/{i}", 0) for i in range(start, start + n)]


def record(lease: Lease) -> str:
    return json.dumps({"url": lease.url})


async def results(redis: Redis, settings: Settings) -> list[dict[str, object]]:
    out = []
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        entries: Any = await redis.xrange(shard.results)
        for _, fields in entries:
            out.append(json.loads(fields["r"]))
    return out


async def claim_until(frontier: Frontier, n: int, worker: str = "w") -> list[Lease]:
    """Claim repeatedly (sleeping the wait hint) until n leases came back, for up to 5 s."""
    got: list[Lease] = []
    deadline = time.monotonic() + 5.0
    while len(got) < n:
        assert time.monotonic() < deadline, f"only {len(got)} of {n} leases before timeout"
        result = await frontier.claim(n - len(got), worker)
        got += result.leases
        if not result.leases:
            await asyncio.sleep(min(max(0.01, result.wait), 0.1))
    return got


# -- add -----------------------------------------------------------------------


async def test_add_queues_new_urls(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    counts = await frontier.add(urls("a.test", 3))
    assert (counts.added, counts.seen) == (3, 0)
    assert (await frontier.stats())["queued"] == 3


async def test_add_counts_one_url_spelled_differently_once(make_frontier: MakeFrontier) -> None:
    spellings = ["HTTP://A.Test:80/x/../p?q=1#top", "http://a.test/p?q=1", "http://a.test/./p?q=1"]
    # Separate clients without local memory: the dedup seen here is Redis's.
    counts = [await make_frontier(local_dedup=False).add([(canonicalize(u), 0)])
              for u in spellings]
    assert [c.added for c in counts] == [1, 0, 0]
    assert [c.seen for c in counts] == [0, 1, 1]
    assert (await make_frontier().stats())["queued"] == 1


async def test_add_drops_repeats_within_one_call(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(local_dedup=False)
    counts = await frontier.add([("http://a.test/", 0)] * 5)
    assert (counts.added, counts.seen) == (1, 4)


async def test_add_takes_many_urls_in_one_round_trip(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    many = [u for h in range(10) for u in urls(f"h{h}.test", 500)]
    counts = await frontier.add(many)
    assert counts.added == 5000
    assert frontier.round_trips == 1
    assert (await frontier.stats())["queued"] == 5000


async def test_seen_fingerprints_are_stored_as_intsets(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    # Two buckets of ~1000 each: far past a default server's 512-entry intset
    # limit, within the crawler's configured one.
    frontier = make_frontier(dedup_bucket_bits=1)
    await frontier.add(urls("a.test", 2000))
    seen_keys = [k async for k in redis.scan_iter(match="crawl:*seen:*")]
    assert len(seen_keys) == 2
    assert sum([await redis.scard(k) for k in seen_keys]) == 2000
    for key in seen_keys:
        assert await redis.object("encoding", key) == "intset"


async def test_urls_come_back_whole_past_the_hosts_prefix_table(
        make_frontier: MakeFrontier, clean_redis: str) -> None:
    # A host's queue entries name their directory by a one-byte id from its
    # prefix table (250 ids); past that, an entry holds its whole URL. Ids are
    # handed out in bulk, one lookup per host and call: this crosses the limit
    # inside one call, repeats directories across calls and depths, and mixes
    # URLs seen before into a call. (A directory goes to the table once two URLs
    # use it: here two URLs a directory in the first call.)
    frontier = make_frontier(local_dedup=False, max_per_host=1000)
    first = [(f"http://a.test/d{i}/{p}?x={i}", 1) for i in range(300) for p in "pP"]
    second = [(f"http://a.test/d{i}/q", 2) for i in range(0, 400, 2)] + first[:20]
    third = [(f"http://a.test/d{i}/r", 0) for i in range(250, 260)] + [("http://a.test/", 0)]
    assert (await frontier.add(first)).added == 600
    counts = await frontier.add(second)
    assert (counts.added, counts.seen) == (200, 20)
    assert (await frontier.add(third)).added == 11
    raw = SyncRedis.from_url(clean_redis)  # prefixes are stored without "http://a.test"
    prefixes = raw.hgetall(frontier.shards[0].prefixes("a.test"))
    ids = {k: v for k, v in prefixes.items() if k.startswith(b"=")}
    assert sorted(int(v) for v in ids.values()) == list(range(1, 251))
    assert all(prefixes[v] == k[1:] for k, v in ids.items())  # both directions agree
    assert all(k.startswith(b"=\xfe/d") for k in ids)
    leases = await claim_until(frontier, 811)
    got = sorted((lease.url, lease.depth) for lease in leases)
    assert got == sorted({*first, *second, *third})

# -- claim -----------------------------------------------------------------------


async def test_claim_leases_a_queued_url(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add([("http://a.test/x", 2)])
    result = await frontier.claim(10, "w1")
    [lease] = result.leases
    assert (lease.url, lease.host, lease.depth) == ("http://a.test/x", "a.test", 2)
    assert lease.attempts == 0
    stats = await frontier.stats()
    assert (stats["queued"], stats["leased"]) == (0, 1)


async def test_claim_takes_many_hosts_in_one_round_trip(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add([u for h in range(20) for u in urls(f"h{h}.test", 1)])
    before = frontier.round_trips
    result = await frontier.claim(20, "w")
    assert len(result.leases) == 20
    assert len({lease.host for lease in result.leases}) == 20
    assert frontier.round_trips == before + 1


async def test_claim_never_returns_more_than_asked(make_frontier: MakeFrontier) -> None:
    for shards in (1, 3):
        frontier = make_frontier(crawl=f"n{shards}", shards=shards)
        await frontier.add([u for h in range(12) for u in urls(f"h{h}.test", 3)])
        for n in (1, 2, 5):
            assert len((await frontier.claim(n, "w")).leases) <= n


async def test_claim_respects_max_per_host_within_one_call(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=3)
    await frontier.add(urls("a.test", 10))
    result = await frontier.claim(10, "w")
    assert len(result.leases) == 3


async def test_claim_respects_max_per_host_across_calls_until_completion(
        make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=3)
    await frontier.add(urls("a.test", 10))
    first = (await frontier.claim(10, "w1")).leases
    assert len(first) == 3
    assert (await frontier.claim(10, "w2")).leases == []
    assert (await frontier.claim(10, "w3")).leases == []
    assert await frontier.complete(first[0], record(first[0]))
    again = (await frontier.claim(10, "w2")).leases
    assert len(again) == 1


async def test_claim_spaces_a_hosts_requests_by_its_delay(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=4, host_overrides={"slow.test": HostPolicy(4, 0.4)})
    await frontier.add(urls("slow.test", 3) + urls("fast.test", 3))
    started = time.monotonic()
    first = (await frontier.claim(10, "w")).leases
    assert sorted(lease.host for lease in first) == ["fast.test"] * 3 + ["slow.test"]
    # Free slots remain, but the delay has not passed: nothing from slow.test.
    result = await frontier.claim(10, "w")
    assert result.leases == []
    assert 0 < result.wait <= 0.4
    [second] = await claim_until(frontier, 1)
    assert second.host == "slow.test"
    assert time.monotonic() - started >= 0.4


async def test_claim_is_fair_across_hosts(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=10)
    await frontier.add(urls("big.test", 50) + urls("small.test", 2))
    result = await frontier.claim(4, "w")
    assert {lease.host for lease in result.leases} == {"big.test", "small.test"}


# -- complete --------------------------------------------------------------------


async def test_complete_records_one_result_and_frees_the_slot(
        make_frontier: MakeFrontier, redis: Redis, settings: Settings) -> None:
    frontier = make_frontier(max_per_host=1)
    await frontier.add(urls("a.test", 2))
    [lease] = (await frontier.claim(5, "w")).leases
    assert await frontier.complete(lease, record(lease))
    assert await results(redis, settings) == [{"url": lease.url}]
    stats = await frontier.stats()
    assert (stats["queued"], stats["leased"], stats["done"]) == (1, 0, 1)
    assert len((await frontier.claim(5, "w")).leases) == 1


async def test_complete_adds_the_pages_links(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(1, "w")).leases
    await frontier.complete(lease, record(lease), links=urls("a.test", 3, start=1))
    assert (await frontier.stats())["queued"] == 3


async def test_error_completion_counts_an_error(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(1, "w")).leases
    assert await frontier.complete(lease, record(lease), is_error=True)
    stats = await frontier.stats()
    assert (stats["done"], stats["errors"]) == (1, 1)


async def test_duplicate_completion_changes_nothing(
        make_frontier: MakeFrontier, redis: Redis, settings: Settings) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(1, "w")).leases
    assert await frontier.complete(lease, record(lease))
    stats = await frontier.stats()
    assert not await frontier.complete(lease, record(lease))
    assert not await frontier.complete(lease, record(lease), links=urls("a.test", 1, start=9))
    assert len(await results(redis, settings)) == 1
    after = await frontier.stats()
    assert {k: after[k] for k in ("done", "leased")} == {k: stats[k] for k in ("done", "leased")}


async def test_late_completion_after_reclaim_changes_nothing(
        make_frontier: MakeFrontier, redis: Redis, settings: Settings) -> None:
    frontier = make_frontier(lease_time=0.05)
    await frontier.add(urls("a.test", 1))
    [stale] = (await frontier.claim(1, "slow-worker")).leases
    assert await reclaim_expired(frontier, 1) == 1
    [fresh] = (await make_frontier(lease_time=30).claim(1, "other")).leases
    assert not await frontier.complete(stale, json.dumps({"by": "stale"}))
    assert not await frontier.retry(stale, 0)
    assert await frontier.complete(fresh, json.dumps({"by": "fresh"}))
    assert await results(redis, settings) == [{"by": "fresh"}]
    stats = await frontier.stats()
    assert (stats["queued"], stats["leased"], stats["done"]) == (0, 0, 1)


# -- retry -----------------------------------------------------------------------


async def test_retry_counts_the_attempt(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(1, "w")).leases
    assert await frontier.retry(lease, 0)
    [again] = (await frontier.claim(1, "w")).leases
    assert (again.url, again.attempts) == (lease.url, 1)


async def test_retry_without_counting_keeps_attempts(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(1, "w")).leases
    assert await frontier.retry(lease, 0, count_attempt=False)
    [again] = (await frontier.claim(1, "w")).leases
    assert again.attempts == 0


async def test_retry_with_delay_waits_in_the_delayed_set(
        make_frontier: MakeFrontier, redis: Redis, settings: Settings) -> None:
    frontier = make_frontier(max_per_host=1)
    await frontier.add(urls("a.test", 2))
    [lease] = (await frontier.claim(1, "w")).leases
    started = time.monotonic()
    assert await frontier.retry(lease, 0.4)
    assert await redis.zcard(keys.ShardKeys(settings.crawl, 0).delayed) == 1
    # Only this URL waits: the host's other URL is claimable at once.
    [other] = (await frontier.claim(5, "w")).leases
    assert other.url != lease.url
    await frontier.complete(other, record(other))
    result = await frontier.claim(5, "w")
    assert result.leases == [] and not result.finished
    [again] = await claim_until(frontier, 1)
    assert (again.url, again.attempts) == (lease.url, 1)
    assert time.monotonic() - started >= 0.4


async def test_retry_with_host_backoff_holds_the_whole_host(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=2)
    await frontier.add(urls("busy.test", 5) + urls("calm.test", 2))
    leases = (await frontier.claim(10, "w")).leases
    busy = [lease for lease in leases if lease.host == "busy.test"]
    started = time.monotonic()
    assert await frontier.retry(busy[0], 0.4, host_backoff=True)
    await frontier.complete(busy[1], record(busy[1]))
    # busy.test has free slots and queued URLs, but it is backing off.
    result = await frontier.claim(10, "w")
    assert result.leases == []
    assert 0 < result.wait <= 0.4
    back = await claim_until(frontier, 2)
    assert {lease.host for lease in back} == {"busy.test"}
    # The retried URL goes first once the host may be asked again.
    assert busy[0].url in {lease.url for lease in back}
    assert time.monotonic() - started >= 0.4


async def test_retry_exhaustion_completes_with_one_error_result(
        redis: Redis, settings: Settings, make_frontier: MakeFrontier) -> None:
    hits = 0

    async def always_500(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=500, text="broken")

    app = web.Application()
    app.router.add_get("/{tail:.*}", always_500)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        s = settings.replace(max_attempts=3, obey_robots=False, backoff_base=0.01,
                             backoff_max=0.05)
        await make_frontier().add([(f"http://127.0.0.1:{port}/x", 0)])
        await asyncio.wait_for(Worker(redis, s).run(), 20)
    finally:
        await runner.cleanup()
    [result] = await results(redis, settings)
    assert result["status"] == 500
    assert result["attempts"] == 3
    assert result["error"]["type"] == "http_status"  # type: ignore[index]
    assert hits == 3
