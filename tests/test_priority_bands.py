"""Priority bands in the frontier: a host's raised URLs are claimed first, hosts stay fair.

Against a real Valkey, through the Lua scripts; no page is fetched (host
names such as ``a.test`` never leave Redis). End-to-end crawls with sitemap
priorities and a hook raising links are in test_priority_crawl.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest
from crawl_helpers import reclaim_expired
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier, Lease
from crawler.observe import overview, status
from crawler.observe.catalog import delete_crawl
from crawler.observe.control import drop_queue, stop
from crawler.pages.priority import HIGH, NORMAL, TOP, band_of, checked_priority, parse_priority
from crawler.store import keys

MakeFrontier = Callable[..., Frontier]


@pytest.fixture
def make_frontier(redis: Redis, settings: Settings) -> MakeFrontier:
    def make(**changes: Any) -> Frontier:
        return Frontier(redis, settings.replace(**changes))

    return make


def urls(host: str, names: str) -> list[tuple[str, int]]:
    return [(f"http://{host}/{name}", 0) for name in names.split()]


async def claim_one_by_one(frontier: Frontier, n: int) -> list[Lease]:
    """Claim and complete n URLs, one at a time: the order a one-slot host gives them."""
    got: list[Lease] = []
    for _ in range(n):
        [lease] = (await frontier.claim(1, "w")).leases
        assert await frontier.complete(lease, "{}")
        got.append(lease)
    return got


def paths(leases: list[Lease]) -> list[str]:
    return [lease.url.rsplit("/", 1)[1] for lease in leases]


# -- the mapping --------------------------------------------------------------------------


def test_priorities_map_to_bands_raising_only_over_the_default() -> None:
    assert [band_of(p) for p in (None, 0.0, 0.3, 0.5, 0.51, 0.7, 0.79, 0.8, 1.0)] == \
        [NORMAL, NORMAL, NORMAL, NORMAL, HIGH, HIGH, HIGH, TOP, TOP]
    assert [parse_priority(t) for t in ("0.9", " 1.0", "", None, "high", "1.5", "nan")] == \
        [0.9, 1.0, None, None, None, None, None]
    for wrong in (-0.1, 1.01, float("inf"), "0.9", True):
        with pytest.raises(ValueError):
            checked_priority(wrong)


def test_the_scripts_know_as_many_bands_as_the_key_schema() -> None:
    lib = (resources.files("crawler.frontier") / "lua" / "_lib.lua").read_text()
    match = re.search(r"^local RAISED_BANDS = (\d+)$", lib, re.M)
    assert match is not None and int(match[1]) == keys.BANDS - 1 == TOP
    shard = keys.ShardKeys("c", 0)
    assert shard.queues("a.test") == ["crawl:{c:0}:q2:a.test", "crawl:{c:0}:q1:a.test",
                                      "crawl:{c:0}:q:a.test"]
    assert {status.kind_of(q) for q in shard.queues("a.test")} == {"queued"}


# -- within a host ------------------------------------------------------------------------


async def test_a_raised_url_is_claimed_before_normal_urls_queued_earlier(
        make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=1)
    await frontier.add(urls("a.test", "n0 n1 n2 n3"))
    await frontier.add(urls("a.test", "late"), bands={"http://a.test/late": HIGH})
    leases = await claim_one_by_one(frontier, 5)
    assert paths(leases) == ["late", "n0", "n1", "n2", "n3"]
    assert [lease.band for lease in leases] == [HIGH, NORMAL, NORMAL, NORMAL, NORMAL]


async def test_without_a_raised_band_a_late_url_waits_its_turn(
        make_frontier: MakeFrontier) -> None:
    # Negative control for the test above: the same adds, the late URL not raised.
    frontier = make_frontier(max_per_host=1)
    await frontier.add(urls("a.test", "n0 n1 n2 n3"))
    await frontier.add(urls("a.test", "late"), bands={})
    assert paths(await claim_one_by_one(frontier, 5)) == ["n0", "n1", "n2", "n3", "late"]


async def test_top_goes_before_high_and_each_band_stays_first_in_first_out(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    frontier = make_frontier(max_per_host=1)
    pairs = urls("a.test", "n0 h0 t0 n1 h1 t1 n2")
    bands = {url: {"h": HIGH, "t": TOP}.get(url.rsplit("/", 1)[1][0], NORMAL)
             for url, _ in pairs}
    assert (await frontier.add(pairs, bands=bands)).added == 7
    host_state = frontier.shards[0].host("a.test")
    assert await redis.hmget(host_state, "b1", "b2") == ["1", "1"]
    assert paths(await claim_one_by_one(frontier, 7)) == ["t0", "t1", "h0", "h1", "n0", "n1",
                                                          "n2"]
    assert await redis.hmget(host_state, "b1", "b2") == [None, None]  # seen empty, cleared


async def test_a_url_seen_before_is_not_moved_by_a_later_priority(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    await make_frontier().add(urls("a.test", "x y"))
    other = make_frontier()  # another process: Redis's dedup decides, not a local cache
    counts = await other.add(urls("a.test", "y"), bands={"http://a.test/y": TOP})
    assert (counts.added, counts.seen) == (0, 1)
    assert not await redis.exists(other.shards[0].queue("a.test", TOP))
    assert paths(await claim_one_by_one(other, 2)) == ["x", "y"]


async def test_a_url_given_back_returns_to_its_band(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=1, lease_time=0.2)
    await frontier.add(urls("a.test", "n0 n1"))
    await frontier.add(urls("a.test", "up"), bands={"http://a.test/up": HIGH})

    async def next_lease() -> Lease:
        for _ in range(200):
            leases = (await frontier.claim(1, "w")).leases
            if leases:
                return leases[0]
            await asyncio.sleep(0.01)
        raise AssertionError("nothing claimable")

    lease = await next_lease()
    await frontier.retry(lease, 0.0)  # at once, to the front of its band
    lease = await next_lease()
    assert (paths([lease]), lease.attempts) == (["up"], 1)
    await frontier.retry(lease, 0.05)  # through the delayed set; the host goes on meanwhile
    [normal] = await claim_one_by_one(frontier, 1)
    assert paths([normal]) == ["n0"]
    await asyncio.sleep(0.06)
    lease = await next_lease()  # due again: back before n1
    assert (paths([lease]), lease.attempts) == (["up"], 2)
    await frontier.retry(lease, 0.05, host_backoff=True)  # the whole host held
    lease = await next_lease()
    assert (paths([lease]), lease.attempts) == (["up"], 3)
    assert await reclaim_expired(frontier, 1) == 1  # the lease expired
    lease = await next_lease()
    assert (paths([lease]), lease.band, lease.attempts) == (["up"], HIGH, 4)
    await frontier.complete(lease, "{}")
    assert paths(await claim_one_by_one(frontier, 1)) == ["n1"]


async def test_a_redirect_target_is_queued_in_its_sources_band(
        make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=1)
    await frontier.add(urls("a.test", "n0 n1"))
    await frontier.add(urls("a.test", "moved"), bands={"http://a.test/moved": TOP})
    [lease] = (await frontier.claim(1, "w")).leases
    await frontier.complete(lease, "{}", redirect_to="http://a.test/new")
    [target] = await claim_one_by_one(frontier, 1)
    assert (paths([target]), target.band, target.hops) == (["new"], TOP, 1)


# -- across hosts -------------------------------------------------------------------------


async def test_a_host_full_of_raised_urls_takes_no_turn_from_other_hosts(
        make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(max_per_host=10)
    big = urls("big.test", " ".join(f"p{i}" for i in range(200)))
    await frontier.add(big, bands={url: TOP for url, _ in big})
    for host in ("s1.test", "s2.test", "s3.test"):
        await frontier.add(urls(host, "a b"))
    first = (await frontier.claim(4, "w")).leases
    assert sorted(lease.host for lease in first) == ["big.test", "s1.test", "s2.test",
                                                     "s3.test"]
    second = (await frontier.claim(4, "w")).leases
    assert sorted(lease.host for lease in second) == ["big.test", "s1.test", "s2.test",
                                                      "s3.test"]
    assert {lease.band for lease in first + second if lease.host == "big.test"} == {TOP}


# -- everything that counts or empties a host's queue sees every band --------------------


async def test_counts_caps_drop_and_compaction_see_every_band(
        make_frontier: MakeFrontier, redis: Redis, settings: Settings) -> None:
    frontier = make_frontier(max_per_host=1, max_pages_per_host=4)
    counts = await frontier.add(urls("a.test", "n0 n1 h0 t0 t1"),
                                bands={"http://a.test/h0": HIGH, "http://a.test/t0": TOP,
                                       "http://a.test/t1": TOP})
    assert (counts.added, counts.capped) == (4, 1)  # raised URLs count toward the host cap
    await frontier.add(urls("b.test", "h0 h1"), bands={"http://b.test/h0": HIGH,
                                                       "http://b.test/h1": HIGH})
    assert (await frontier.stats())["queued"] == 6
    [lease] = [lease for lease in (await frontier.claim(2, "w")).leases if lease.host == "b.test"]
    await frontier.retry(lease, 0.3, count_attempt=False, host_backoff=True)
    [held] = await status.held_hosts(redis, frontier.settings)
    assert (held.host, held.queued) == ("b.test", 2)  # both still in the high band
    now = await status.server_ms(redis)
    tops = {r["host"]: r["queued"] for r in await overview.top_hosts(redis, frontier.settings,
                                                                      now)}
    assert tops == {"a.test": 3, "b.test": 2}
    shard = frontier.shards[0]
    queue_keys = [key for host in ("a.test", "b.test")
                  for key in (*shard.queues(host), shard.prefixes(host))]
    expected = sum([int(await redis.memory_usage(key) or 0) for key in queue_keys])
    memory = await status.memory_by_kind(redis, frontier.settings)
    assert memory["bytes"]["queued"] == expected  # the raised bands' lists included

    await stop(redis, frontier.settings)
    assert await drop_queue(redis, frontier.settings) == 5  # a.test's lease is still out
    assert (await frontier.stats())["queued"] == 0
    assert not [key async for key in redis.scan_iter(match="crawl:*:q*:*")]
    await asyncio.sleep(0.35)  # b.test's hold, and so its politeness window, is over
    await frontier.reclaim()  # which compacts idle hosts
    # Compacted: no band flag kept, only the page count the per-host cap needs.
    assert await redis.hgetall(shard.host("b.test")) == {"pages": "2"}
    assert not await redis.exists(*shard.queues("a.test"), *shard.queues("b.test"),
                                  shard.prefixes("b.test"))


async def test_deleting_a_crawl_deletes_its_raised_bands_too(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    frontier = make_frontier(crawl="gone", shards=2)
    pairs = [(f"http://h{i}.test/p", 0) for i in range(8)]
    await frontier.add(pairs, bands={url: 1 + i % 2 for i, (url, _) in enumerate(pairs)})
    raised = [key async for key in redis.scan_iter(match="crawl:{gone:*}:q[12]:*")]
    assert len(raised) == 8
    assert await delete_crawl(redis, "gone") >= 8
    assert not [key async for key in redis.scan_iter(match="crawl:{gone*")]
