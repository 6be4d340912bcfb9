"""A small host's queued URLs wait in its host state, with no queue list (issue 24).

The normal band of a host is its inline entries (host state fields ``u``,
``u2``, ``u3``) or, from its fourth URL on, the list ``q:<host>``; every
transition keeps the order a list would have.
"""

from __future__ import annotations

import time

from crawl_helpers import claim_all
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.observe.control import drop_queue
from crawler.store import keys


async def test_a_one_url_host_has_no_queue_key_and_its_url_is_claimed(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings, local_dedup=False)
    shard = frontier.shards[0]
    assert (await frontier.add([("https://one.test/a/page.html?x=1", 2)])).added == 1
    assert not await redis.exists(shard.queue("one.test"))
    assert await redis.hexists(shard.host("one.test"), keys.INLINE_ENTRIES[0])
    assert (await frontier.stats(ready_hosts=True))["queued"] == 1
    [lease] = await claim_all(frontier, 1)
    assert (lease.url, lease.depth) == ("https://one.test/a/page.html?x=1", 2)
    assert not await redis.hexists(shard.host("one.test"), keys.INLINE_ENTRIES[0])
    assert (await frontier.claim(5, "w")).leases == []


async def test_a_fourth_url_moves_all_to_the_list_first_come_first_claimed(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1), local_dedup=False)
    shard = frontier.shards[0]
    urls = [f"http://four.test/p{i}" for i in range(6)]
    for url in urls[:3]:
        await frontier.add([(url, 0)])
    assert not await redis.exists(shard.queue("four.test"))
    assert all([await redis.hexists(shard.host("four.test"), f) for f in keys.INLINE_ENTRIES])
    await frontier.add([(urls[3], 0)])
    assert not any([await redis.hexists(shard.host("four.test"), f)
                    for f in keys.INLINE_ENTRIES])
    assert await redis.llen(shard.queue("four.test")) == 4
    await frontier.add([(u, 0) for u in urls[4:]])
    claimed = []
    for _ in urls:
        [lease] = await claim_all(frontier, 1)
        claimed.append(lease.url)
        assert await frontier.complete(lease, "{}")
    assert claimed == urls


async def test_inline_urls_are_claimed_in_order(redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1), local_dedup=False)
    shard = frontier.shards[0]
    await frontier.add([("http://three.test/a", 0), ("http://three.test/b", 0)])
    await frontier.add([("http://three.test/c", 0)])
    assert not await redis.exists(shard.queue("three.test"))
    claimed = []
    for left in (2, 1, 0):
        [lease] = await claim_all(frontier, 1)
        claimed.append(lease.url)
        inline = [await redis.hexists(shard.host("three.test"), f) for f in keys.INLINE_ENTRIES]
        assert inline == [True] * left + [False] * (3 - left)  # from u on, no gap
        assert await frontier.complete(lease, "{}")
    assert claimed == ["http://three.test/a", "http://three.test/b", "http://three.test/c"]


async def test_a_url_given_back_goes_before_the_inline_ones(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=2), local_dedup=False)
    shard = frontier.shards[0]
    await frontier.add([("http://back.test/first", 0)])
    [first] = await claim_all(frontier, 1)
    await frontier.add([("http://back.test/second", 0), ("http://back.test/third", 0)])
    assert await frontier.retry(first, 0.0)  # back to the front of the band, still inline
    assert not await redis.exists(shard.queue("back.test"))
    got = [(await claim_all(frontier, 1))[0] for _ in range(2)]
    assert [lease.url for lease in got] == ["http://back.test/first", "http://back.test/second"]
    for lease in got:
        assert await frontier.complete(lease, "{}")
    # A fourth given back to three inline: all to the list, it first.
    await frontier.add([(f"http://back.test/{n}", 0) for n in ("x", "y")])
    [third] = await claim_all(frontier, 1)
    await frontier.add([("http://back.test/z", 0)])
    assert third.url == "http://back.test/third"
    assert await frontier.retry(third, 0.0)
    assert await redis.llen(shard.queue("back.test")) == 4
    got = [(await claim_all(frontier, 1))[0] for _ in range(1)]
    order = [got[0].url]
    assert await frontier.complete(got[0], "{}")
    while len(order) < 4:
        [lease] = await claim_all(frontier, 1)
        order.append(lease.url)
        assert await frontier.complete(lease, "{}")
    assert order == [f"http://back.test/{n}" for n in ("third", "x", "y", "z")]
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
                       + [(f"http://three.test/{n}", 0) for n in range(3)]
                       + [(f"http://big.test/{n}", 0) for n in range(5)])
    assert await drop_queue(redis, settings) == 13
    stats = await frontier.stats(ready_hosts=True)
    assert stats["queued"] == 0 and stats["dropped"] == 13
    assert (await frontier.claim(10, "w")).leases == []
