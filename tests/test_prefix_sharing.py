"""A prefix is shared only when it is shared (issue 24): the first URL of a directory
is queued plainly, the second moves the directory to the host's prefix table."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier, Lease


async def claim_all(frontier: Frontier, n: int) -> list[Lease]:
    got: list[Lease] = []
    deadline = time.monotonic() + 10.0
    while len(got) < n and time.monotonic() < deadline:
        got += (await frontier.claim(n - len(got), "w")).leases
    return got


async def test_urls_each_in_a_directory_of_their_own_put_no_prefix_in_the_table(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    added = [(f"https://a.test/articles/2026/{i:04d}/article-{i:07d}.html", 0)
             for i in range(60)]
    for start in range(0, 60, 20):  # across calls, as a crawl finds them
        assert (await frontier.add(added[start:start + 20])).added == 20
    px = frontier.shards[0].prefixes("a.test")
    table = await redis.hgetall(px)
    assert not [k for k in table if k.startswith("=")]  # no directory in the table
    assert await redis.object("encoding", px) == "listpack"  # marks only: a small hash
    # Plain entries leave out "https://a.test": each costs little more than its path.
    queue = frontier.shards[0].queue("a.test")
    lengths: list[int] = await redis.eval(  # type: ignore[misc]  # entries are binary
        "local t = {} for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do"
        " t[#t + 1] = #e end return t", 1, queue)
    longest = max(lengths)
    assert longest <= 2 + len("/articles/2026/0000/article-0000000.html")
    got = await claim_all(frontier, 60)
    assert sorted(lease.url for lease in got) == sorted(url for url, _ in added)


async def test_the_second_url_of_a_directory_moves_it_to_the_table(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    shard = frontier.shards[0]
    others = [(f"http://b.test:8080/other-{i}/x", 0) for i in range(9)]  # past SMALL
    await frontier.add(others)
    await frontier.add([("http://b.test:8080/shop/item-1.html?a=1", 2)])
    shop = hashlib.sha1(b"http://b.test:8080/shop/").hexdigest()[:8]
    marked = await redis.hgetall(shard.prefixes("b.test:8080"))
    assert f"~{shop}" in marked and not [k for k in marked if k.startswith("=")]
    await frontier.add([("http://b.test:8080/shop/item-2.html", 3)])
    table = await redis.hgetall(shard.prefixes("b.test:8080"))
    assert [k for k in table if k.startswith("=")] == ["=http://b.test:8080/shop/"]
    assert f"~{shop}" not in table and len([k for k in table if k[0] == "~"]) == 9
    assert table["m"] == "9"  # the other directories' marks, and its mark went
    # Two URLs of a directory in one call share it at once; a lone one stays plain.
    await frontier.add([("https://c.test/x/1", 0), ("https://c.test/x/2", 0),
                        ("https://c.test/y/1", 1)] + [(f"https://c.test/z{i}/", 0)
                                                      for i in range(9)])
    table = await redis.hgetall(shard.prefixes("c.test"))
    assert sorted(k for k in table if k.startswith("=")) == ["=https://c.test/x/"]
    got = await claim_all(frontier, 23)
    assert sorted((lease.url, lease.depth) for lease in got if "/z" not in lease.url
                  and "/other" not in lease.url) == [
        ("http://b.test:8080/shop/item-1.html?a=1", 2), ("http://b.test:8080/shop/item-2.html", 3),
        ("https://c.test/x/1", 0), ("https://c.test/x/2", 0), ("https://c.test/y/1", 1)]
    assert len({lease.url for lease in got}) == 23


async def test_a_url_given_back_comes_back_whole_after_its_table_went(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings, local_dedup=False)
    await frontier.add([("https://d.test/only/one.html", 0)])
    [lease] = await claim_all(frontier, 1)
    await frontier.retry(lease, 0.0, count_attempt=False)
    [again] = await claim_all(frontier, 1)
    assert again.url == "https://d.test/only/one.html"


async def test_a_small_host_gets_no_prefix_hash_even_when_its_urls_share_a_directory(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=100), local_dedup=False)
    shard = frontier.shards[0]
    await frontier.add([("https://solo.test/index.html", 0)])
    for url in ("https://few.test/a/1", "https://few.test/b/1", "http://few.test/c/1",
                "https://few.test/b/2"):
        await frontier.add([(url, 1)])  # one call each, as links found on four pages
    await frontier.add([("https://few.test/b/3", 1), ("https://few.test/b/4", 1)])
    assert not await redis.exists(shard.prefixes("solo.test"), shard.prefixes("few.test"))
    # Past 8 URLs queued, a directory used twice goes to the table.
    await frontier.add([(f"https://few.test/b/{i}", 2) for i in range(5, 9)])
    assert await redis.hget(shard.prefixes("few.test"), "=https://few.test/b/") == "1"
    got = await claim_all(frontier, 12)
    assert sorted(lease.url for lease in got) == sorted(
        ["http://few.test/c/1", "https://few.test/a/1", "https://solo.test/index.html"]
        + [f"https://few.test/b/{i}" for i in range(1, 9)])


async def test_a_big_hosts_queue_is_compressed_inside_and_comes_back_whole(
        redis: Redis, settings: Settings) -> None:
    if os.environ.get("CRAWL_TEST_REDIS_URL"):
        pytest.skip("an external server keeps its own list-compress-depth")
    assert await redis.config_get("list-compress-depth") == {"list-compress-depth": "1"}
    frontier = Frontier(redis, settings.replace(max_per_host=5000), local_dedup=False)
    added = [(f"https://big.test/2021/{i // 20:03d}/story-about-{i % 7}-{i}.html?ref={i}", 0)
             for i in range(3000)]
    for start in range(0, 3000, 500):
        await frontier.add(added[start:start + 500])
    queue = frontier.shards[0].queue("big.test")
    # ~40 B an entry uncompressed (file name and query); LZF keeps inner nodes well under.
    assert int(await redis.memory_usage(queue, samples=0) or 0) < 3000 * 25
    got = await claim_all(frontier, 3000)
    assert sorted(lease.url for lease in got) == sorted(url for url, _ in added)


async def test_a_path_counted_for_the_query_budget_costs_8_bytes_until_a_second_url(
        redis: Redis, settings: Settings) -> None:
    """trap_query_budget counts each path's URLs with a query. A URL with a path of its
    own and a query cost the URL up to its '?' again in tq:<host>, ~103 B, more than
    its queue entry; a path with one such URL now costs 8 B in a shard-wide intset."""
    frontier = Frontier(redis, settings.replace(max_per_host=1000, trap_query_budget=3),
                        local_dedup=False)
    shard = frontier.shards[0]
    urls = [(f"https://c.test/catalog/section-{i % 10:02d}/item-{i:07d}.html?r={i % 7}", 0)
            for i in range(2000)]
    for start in range(0, len(urls), 500):
        assert (await frontier.add(urls[start:start + 500])).added == 500
    tq = shard.trap_paths("c.test")
    assert await redis.exists(tq) == 0  # no path has two
    buckets = [k async for k in redis.scan_iter(match=shard.trap_first_paths("*"))]
    members = sum([await redis.scard(b) for b in buckets])
    used = sum([await redis.memory_usage(b, samples=0) or 0 for b in buckets])
    assert members == 2000
    assert {await redis.object("encoding", b) for b in buckets} == {"intset"}
    # The budget still counts each path: the 4th URL of one path is the trap's.
    same = [(f"https://c.test/calendar?month={m}", 0) for m in range(6)]
    assert (await frontier.add(same[:1])).added == 1
    assert await redis.exists(tq) == 0  # one URL: still in a set
    assert (await frontier.add(same[1:])).added == 2
    calendar = hashlib.sha1(b"https://c.test/calendar").hexdigest()
    assert await redis.hget(tq, calendar[:12]) == "4"
    assert await redis.sismember(shard.trap_first_paths(calendar[13:16]),
                                 str(int(calendar[:13], 16)))
    # Per path: 8 B in an intset, beside each bucket's key (~75 B; 4096 buckets a
    # shard at most, so ~0.3 B a path at a million paths).
    assert used <= 90 * len(buckets) + 8 * 2000, used / 2000
