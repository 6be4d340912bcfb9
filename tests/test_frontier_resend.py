"""Every frontier script is safe to send twice: a second run leaves the state of one.

A pipeline can reach Valkey twice: redis-py sends it again after a dropped
connection (the first run's reply lost), the script runners after NOSCRIPT
or during a cluster failover. Each test here runs one script call, reads
every key of the crawl, runs the very same call again, and reads again.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fault_proxy import LosingProxy
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.lastmod import lastmod_calls
from crawler.frontier import Call, Frontier, Lease
from crawler.net.fetch import Fetcher
from crawler.net.robots import RobotsCache, RobotsFetched
from crawler.store.connection import make_client
from crawler.urls import fingerprint, fingerprint_bucket

Setup = Callable[[Frontier, Redis], Awaitable[Call]]


async def snapshot(url: str) -> dict[bytes, Any]:
    """Every key and its value, as bytes (queue entries are binary).

    The idle set's scores are left out: a host emptied again is listed idle
    from now (refresh_ready), a later time for reclaim to compact it, which
    reclaim checks again anyway."""
    redis = Redis.from_url(url)
    try:
        return await _read_all(redis)
    finally:
        await redis.aclose()


async def _read_all(redis: Redis) -> dict[bytes, Any]:
    state: dict[bytes, Any] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            state[key] = await redis.get(key)
        elif kind == "hash":
            state[key] = await redis.hgetall(key)
        elif kind == "list":
            state[key] = await redis.lrange(key, 0, -1)
        elif kind == "set":
            state[key] = sorted(await redis.smembers(key))
        elif kind == "zset":
            pairs = await redis.zrange(key, 0, -1, withscores=True)
            state[key] = [m for m, _ in pairs] if key.endswith(b":idle") else pairs
        elif kind == "stream":
            state[key] = await redis.xrange(key)
        else:
            raise AssertionError(f"{key}: type {kind} not read")
    return state


async def one_lease(frontier: Frontier, url: str = "http://a.test/p") -> Lease:
    await frontier.add([(url, 0), (url + "2", 0)])
    [lease] = (await frontier.claim(1, "w")).leases
    return lease


def robots_call(frontier: Frontier, lease: Lease, verdict: str, *, fail: bool = False,
                crawl_delay: str = "", capped: bool = False, budget: int = 3) -> Call:
    """robots.lua as RobotsCache sends it, for ``lease``'s origin."""
    shard = frontier.shards[lease.shard]
    return ("robots", shard.script_keys, [
        shard.base, lease.id, lease.host, "http://a.test", verdict, 86_400_000, crawl_delay,
        # A backoff of minutes: a D verdict must not expire between the two snapshots
        # on a loaded machine (its TTL is the backoff).
        int(capped), secrets.token_hex(8), int(fail), budget, 60_000, 600_000, 0.5])


async def robots_rules(frontier: Frontier, _: Redis) -> Call:
    return robots_call(frontier, await one_lease(frontier), "RUser-agent: *\nCrawl-delay: 9\n",
                       crawl_delay="2000", capped=True)


async def robots_failed(frontier: Frontier, _: Redis) -> Call:
    return robots_call(frontier, await one_lease(frontier), "Drobots_unavailable|HTTP 500",
                       fail=True)


async def robots_failed_at_the_budget(frontier: Frontier, redis: Redis) -> Call:
    await redis.set(frontier.shards[0].robots_fails("http://a.test"), 1)
    return robots_call(frontier, await one_lease(frontier), "Drobots_unavailable|HTTP 500",
                       fail=True, budget=2)  # this failure is the last: U, and the URL ends


async def add(frontier: Frontier, _: Redis) -> Call:
    calls, _hosts = frontier.add_calls([("http://a.test/x", 0), ("http://b.test/y", 1)])
    [call] = calls
    return call


async def claim(frontier: Frontier, _: Redis) -> Call:
    await frontier.add([("http://a.test/x", 0), ("http://b.test/y", 0)])
    shard = frontier.shards[0]
    return ("claim", shard.script_keys, [shard.base, 2, 60_000, "w", 20, "req-1"])


async def complete(frontier: Frontier, _: Redis) -> Call:
    return frontier.complete_call(await one_lease(frontier), '{"url": "x"}', is_error=False,
                                  tally="s:2xx")


async def retry(frontier: Frontier, _: Redis) -> Call:
    lease = await one_lease(frontier)
    shard = frontier.shards[0]
    return ("retry", shard.script_keys, [shard.base, lease.id, 500, 1, 0, "backoff"])


async def retry_host(frontier: Frontier, _: Redis) -> Call:
    lease = await one_lease(frontier)
    shard = frontier.shards[0]
    return ("retry", shard.script_keys, [shard.base, lease.id, 500, 1, 1, "backoff"])


async def reclaim(frontier: Frontier, redis: Redis) -> Call:
    lease = await one_lease(frontier)
    shard = frontier.shards[0]
    await redis.zadd(shard.leases, {lease.id: 1})  # expired long ago
    return ("reclaim", shard.script_keys, [shard.base, 100, 100])


async def unlock(frontier: Frontier, redis: Redis) -> Call:
    shard = frontier.shards[0]
    await redis.set(shard.robots_lock("http://a.test"), "tok")
    return ("unlock", shard.script_keys, [shard.base, shard.robots_lock("http://a.test"), "tok"])


async def robots_peek(frontier: Frontier, _: Redis) -> Call:
    shard, origin = frontier.shards[0], "http://a.test"
    return ("robots_peek", shard.script_keys, [shard.base, shard.robots(origin),
                                               shard.robots_lock(origin), "tok", 10_000])


async def drop(frontier: Frontier, _: Redis) -> Call:
    await frontier.add([("http://a.test/x", 0), ("http://a.test/y", 0)])
    await frontier.retry(await one_lease(frontier, "http://b.test/p"), 60.0)  # one delayed
    shard = frontier.shards[0]
    return ("drop", shard.script_keys, [shard.base, 1, "a.test", "b.test"])


async def recap(frontier: Frontier, _: Redis) -> Call:
    await one_lease(frontier)
    shard = frontier.shards[0]
    return ("recap", shard.script_keys, [shard.base, "cap", 5, 0])


async def lastmod(frontier: Frontier, _: Redis) -> Call:
    await frontier.add([("http://a.test/x", 0)])
    [call] = lastmod_calls(frontier, {"http://a.test/x": 1_700_000_000})
    return call


async def reread(frontier: Frontier, _: Redis) -> Call:
    from crawler.frontier.leases import SITEMAP_DEDUP, SITEMAP_HOPS

    shard, url = frontier.shards[0], "http://a.test/sitemap.xml"
    fp = fingerprint(SITEMAP_DEDUP + url)
    return ("reread", shard.script_keys, [
        shard.base, secrets.token_hex(8), "a.test", 1, 0,
        f"{fingerprint_bucket(fp, frontier.settings.dedup_bucket_bits):x}", fp, url,
        SITEMAP_HOPS])


async def drain(frontier: Frontier, redis: Redis) -> Call:
    await frontier.complete(await one_lease(frontier), '{"url": "x"}')
    shard = frontier.shards[0]
    await redis.xgroup_create(shard.results, "g", id="0")
    [[_, entries]] = await redis.xreadgroup("g", "c", {shard.results: ">"})
    return ("drain", shard.script_keys, [shard.base, "g", *(i for i, _ in entries)])


async def hop(frontier: Frontier, _: Redis) -> Call:
    await frontier.add([("http://a.test/x", 0)])
    shard = frontier.shards[0]
    return ("hop", shard.script_keys, [shard.base, "a.test", 1, 500, 20, secrets.token_hex(8)])


SETUPS: list[Setup] = [robots_rules, robots_failed, robots_failed_at_the_budget, add, claim,
                       complete, retry, retry_host, reclaim, unlock, robots_peek, drop, recap,
                       lastmod, reread, drain, hop]


@pytest.mark.parametrize("setup", SETUPS, ids=[s.__name__ for s in SETUPS])
async def test_a_script_call_sent_twice_leaves_the_state_of_one(
        redis: Redis, clean_redis: str, settings: Settings, setup: Setup) -> None:
    frontier = Frontier(redis, settings.replace(recrawl=True), local_dedup=False)
    call = await setup(frontier, redis)
    [first] = await frontier.run([call])
    once = await snapshot(clean_redis)
    [again] = await frontier.run([call])
    assert await snapshot(clean_redis) == once
    if call[0] in ("reread", "recap", "hop", "robots_peek"):
        assert again == first  # what the caller counts must not change either


async def test_after_noscript_only_the_calls_that_did_not_run_go_again(
        redis: Redis, settings: Settings) -> None:
    """One pipeline, some calls run and some answered NOSCRIPT: another connection
    loaded the scripts between them. The runner sends only the latter again, so
    the former keep the reply of their one run (add: 'added', not 'seen')."""
    frontier = Frontier(redis, settings, local_dedup=False)
    [add_call], _ = frontier.add_calls([("https://fresh.test/a", 0)])
    shard = frontier.shards[0]
    reclaim_call: Call = ("reclaim", shard.script_keys, [shard.base, 10, 10])
    await redis.script_flush()
    await redis.script_load(frontier.scripts.sources["add"])  # add runs, reclaim cannot
    round_trips = frontier.round_trips
    (added, seen, _), (reclaimed, _) = await frontier.run([add_call, reclaim_call])
    assert (added, seen, reclaimed) == (1, 0, 0)
    assert frontier.round_trips - round_trips == 2  # the pipeline, then reclaim alone
    assert await frontier.stats() == {**await frontier.stats(), "queued": 1, "seen": 1}


async def test_robots_reply_sent_twice_returns_the_verdict_of_the_first_run(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    call = await robots_failed_at_the_budget(frontier, redis)
    [(status, verdict, _)] = await frontier.run([call])
    [(status_again, verdict_again, _)] = await frontier.run([call])
    assert (status, verdict[:1]) == (2, "U")  # the budget is spent: the URL ends
    assert (status_again, verdict_again) == (status, verdict)


@pytest.mark.skipif(bool(os.environ.get("CRAWL_TEST_REDIS_URL", "").startswith("unix")),
                    reason="the proxy speaks TCP")
async def test_a_lost_robots_reply_resent_by_the_client_counts_one_failure(
        redis: Redis, settings: Settings, clean_redis: str) -> None:
    """The real resend: robots.txt answered 500, the server ran robots.lua, the
    connection dropped before its reply; redis-py reconnected and sent it again."""
    from aiohttp import web
    from politeness_site import Site

    async def down(_: web.Request) -> web.Response:
        return web.Response(status=500)

    with Site(down) as site:
        frontier = Frontier(redis, settings)
        await frontier.add([(site.url("127.0.0.2", "/x"), 0)])
        [lease] = (await frontier.claim(1, "w")).leases
        host, port = clean_redis.removeprefix("redis://").split("/")[0].rsplit(":", 1)
        async with LosingProxy(host, int(port), frontier.scripts.shas["robots"].encode()) as proxy:
            client = make_client(f"redis://127.0.0.1:{proxy.port}/{clean_redis.rsplit('/', 1)[1]}")
            fetcher = Fetcher(settings)
            try:
                cache = RobotsCache(Frontier(client, settings), fetcher, settings)
                with pytest.raises(RobotsFetched):
                    await cache.check(lease)
            finally:
                await fetcher.close()
                await client.aclose()
        assert proxy.lost_replies == 1
    origin = site.url("127.0.0.2", "/")[:-1]
    assert await redis.get(frontier.shards[0].robots_fails(origin)) == "1"
    assert (await frontier.stats())["queued"] == 1  # the lease given back once
