"""A host's only queued URL waits in its host state, with no queue list (issue 24).

The normal band of a host is its inline entry (host state field ``u``) or,
from its second URL on, the list ``q:<host>``; every transition keeps the
order a list would have.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier, Lease
from crawler.observe.control import drop_queue
from crawler.store import keys


async def claim_all(frontier: Frontier, n: int) -> list[Lease]:
    got: list[Lease] = []
    deadline = time.monotonic() + 10.0
    while len(got) < n and time.monotonic() < deadline:
        got += (await frontier.claim(n - len(got), "w")).leases
    return got


async def test_a_one_url_host_has_no_queue_key_and_its_url_is_claimed(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings, local_dedup=False)
    shard = frontier.shards[0]
    assert (await frontier.add([("https://one.test/a/page.html?x=1", 2)])).added == 1
    assert not await redis.exists(shard.queue("one.test"))
    assert await redis.hexists(shard.host("one.test"), keys.INLINE_ENTRY)
    assert (await frontier.stats(ready_hosts=True))["queued"] == 1
    [lease] = await claim_all(frontier, 1)
    assert (lease.url, lease.depth) == ("https://one.test/a/page.html?x=1", 2)
    assert not await redis.hexists(shard.host("one.test"), keys.INLINE_ENTRY)
    assert (await frontier.claim(5, "w")).leases == []


async def test_a_second_url_moves_both_to_the_list_first_come_first_claimed(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1), local_dedup=False)
    shard = frontier.shards[0]
    urls = [f"http://two.test/p{i}" for i in range(4)]
    await frontier.add([(urls[0], 0)])
    await frontier.add([(urls[1], 0)])
    assert not await redis.hexists(shard.host("two.test"), keys.INLINE_ENTRY)
    assert await redis.llen(shard.queue("two.test")) == 2
    await frontier.add([(u, 0) for u in urls[2:]])
    claimed = []
    for _ in urls:
        [lease] = await claim_all(frontier, 1)
        claimed.append(lease.url)
        assert await frontier.complete(lease, "{}")
    assert claimed == urls


async def test_a_url_given_back_goes_before_the_inline_one(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=2), local_dedup=False)
    shard = frontier.shards[0]
    await frontier.add([("http://back.test/first", 0)])
    [first] = await claim_all(frontier, 1)
    await frontier.add([("http://back.test/second", 0)])  # inline while the first is leased
    assert await redis.hexists(shard.host("back.test"), keys.INLINE_ENTRY)
    assert await frontier.retry(first, 0.0)  # back to the front of the band
    assert not await redis.hexists(shard.host("back.test"), keys.INLINE_ENTRY)
    got = [lease.url for lease in await claim_all(frontier, 2)]
    assert got == ["http://back.test/first", "http://back.test/second"]
    assert (await frontier.stats())["queued"] == 0


async def test_an_expired_lease_comes_back_to_a_host_whose_url_is_inline(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=2, lease_time=0.2),
                        local_dedup=False)
    await frontier.add([("http://lost.test/a", 0)])
    [lost] = await claim_all(frontier, 1)
    await frontier.add([("http://lost.test/b", 0)])
    deadline = time.monotonic() + 10.0
    while await frontier.reclaim() == 0:
        assert time.monotonic() < deadline, "the lease never expired"
    again = await claim_all(frontier, 2)
    assert [(lease.url, lease.attempts) for lease in again] == [
        ("http://lost.test/a", lost.attempts + 1), ("http://lost.test/b", 0)]


async def test_a_long_entry_stays_in_a_list_and_the_host_state_small(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings, local_dedup=False)
    shard = frontier.shards[0]
    await frontier.add([("https://long.test/" + "x" * 100, 0)])
    assert await redis.llen(shard.queue("long.test")) == 1
    assert await redis.object("encoding", shard.host("long.test")) == "listpack"
    [lease] = await claim_all(frontier, 1)
    assert lease.url == "https://long.test/" + "x" * 100


async def test_drop_discards_a_one_url_host(redis: Redis, settings: Settings) -> None:
    from crawler.store.layout import crawl_layout

    settings = await crawl_layout(redis, settings)
    frontier = Frontier(redis, settings, local_dedup=False)
    await frontier.add([(f"http://h{i}.test/only", 0) for i in range(5)]
                       + [("http://big.test/1", 0), ("http://big.test/2", 0)])
    assert await drop_queue(redis, settings) == 7
    stats = await frontier.stats(ready_hosts=True)
    assert stats["queued"] == 0 and stats["dropped"] == 7
    assert (await frontier.claim(10, "w")).leases == []
