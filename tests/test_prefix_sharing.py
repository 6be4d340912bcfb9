"""A prefix is shared only when it is shared (issue 24): the first URL of a directory
is queued plainly, the second moves the directory to the host's prefix table."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable
from typing import Any

import pytest
from crawl_helpers import claim_all
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.store.server import LIST_NODE_ENTRIES


def mark(prefix: str) -> bytes:
    """A prefix's mark in its host's table: the first 2 bytes of its SHA-1."""
    return hashlib.sha1(prefix.encode()).digest()[:2]


def marks_of(table: dict[bytes, bytes]) -> list[bytes]:
    """A host table's marks, packed 2 bytes each in fields ~1 .. ~4."""
    packed = b"".join(table.get(f"~{j}".encode(), b"") for j in range(1, 5))
    return [packed[at:at + 2] for at in range(0, len(packed), 2)]


async def test_urls_each_in_a_directory_of_their_own_put_no_prefix_in_the_table(
        redis: Redis, settings: Settings, clean_redis: str) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    added = [(f"https://a.test/articles/2026/{i:04d}/article-{i:07d}.html", 0)
             for i in range(60)]
    for start in range(0, 60, 20):  # across calls, as a crawl finds them
        assert (await frontier.add(added[start:start + 20])).added == 20
    px = frontier.shards[0].prefixes("a.test")
    table = SyncRedis.from_url(clean_redis).hgetall(px)  # binary: marks and prefixes
    assert not [k for k in table if k.startswith(b"=")]  # no directory in the table
    assert sorted(table) == [b"~1", b"~2"]  # 60 marks, packed 30 a field
    assert sorted(marks_of(table)) == sorted(
        mark(url.rsplit("/", 1)[0] + "/") for url, _ in added)
    assert await redis.object("encoding", px) == "listpack"  # marks only: a small hash
    assert int(await redis.memory_usage(px, samples=0) or 0) < 60 * 4  # was ~14 B a mark
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
        redis: Redis, settings: Settings, clean_redis: str) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    shard = frontier.shards[0]
    raw = SyncRedis.from_url(clean_redis)
    others = [(f"http://b.test:8080/other-{i}/x", 0) for i in range(9)]  # past SMALL
    await frontier.add(others)
    await frontier.add([("http://b.test:8080/shop/item-1.html?a=1", 2)])
    shop = mark("http://b.test:8080/shop/")
    marked = raw.hgetall(shard.prefixes("b.test:8080"))
    assert shop in marks_of(marked) and not [k for k in marked if k.startswith(b"=")]
    await frontier.add([("http://b.test:8080/shop/item-2.html", 3)])
    table = raw.hgetall(shard.prefixes("b.test:8080"))
    # In the table without its origin (the key names the host): 254 is "http://<host>".
    assert [k for k in table if k.startswith(b"=")] == [b"=\xfe/shop/"]
    assert table[table[b"=\xfe/shop/"]] == b"\xfe/shop/"  # id -> prefix
    assert shop not in marks_of(table)  # its mark went; the other directories' stay
    # (item-1's query prefix, path and first name, used once, leaves none).
    assert sorted(marks_of(table)) == sorted(mark(url.rsplit("/", 1)[0] + "/")
                                             for url, _ in others)
    # Two URLs of a directory in one call share it at once; a lone one stays plain.
    await frontier.add([("https://c.test/x/1", 0), ("https://c.test/x/2", 0),
                        ("https://c.test/y/1", 1)] + [(f"https://c.test/z{i}/", 0)
                                                      for i in range(9)])
    table = raw.hgetall(shard.prefixes("c.test"))
    assert sorted(k for k in table if k.startswith(b"=")) == [b"=\xff/x/"]  # "https://c.test"
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
        redis: Redis, settings: Settings, clean_redis: str) -> None:
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
    assert SyncRedis.from_url(clean_redis).hget(shard.prefixes("few.test"), b"=\xff/b/") == b"1"
    got = await claim_all(frontier, 11)
    after = await frontier.claim(1, "w")  # no 12th entry: no delay would hold one
    assert not after.leases and after.queued == 0
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


async def test_a_url_with_a_query_shares_its_path_and_first_name_and_others_their_directory(
        redis: Redis, settings: Settings, clean_redis: str) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    items = [(f"https://q.test/item?id={1000 + i}&ref=t-{i * 7919 % 10**6:06d}", 0)
             for i in range(20)]
    pages = [(f"https://q.test/p/page-{i}.html?page=2", 1) for i in range(20)]
    lone = [("https://q.test/lone?x=1", 0)]
    for start in range(0, 20, 5):  # across calls, as a crawl finds them
        await frontier.add(items[start:start + 5] + pages[start:start + 5])
    await frontier.add(lone)
    raw = SyncRedis.from_url(clean_redis)
    table = raw.hgetall(frontier.shards[0].prefixes("q.test"))
    # "/item?id=" from the table; a file of its own with a query keeps its directory's id.
    assert sorted(k for k in table if k.startswith(b"=")) == [b"=\xff/item?id=", b"=\xff/p/"]
    assert mark("https://q.test/lone?x=") not in marks_of(table)  # a query prefix: no mark
    entries = raw.lrange(frontier.shards[0].queue("q.test"), 0, -1)
    short = [e for e in entries if e[1:2] == bytes([int(table[b"=\xff/item?id="])])]
    assert len(short) == 15  # the first five came while the host was small: plain
    assert max(map(len, short)) == 2 + len("1019&ref=t-000000")
    got = await claim_all(frontier, 41)
    assert sorted((lease.url, lease.depth) for lease in got) == sorted(items + pages + lone)


async def test_a_prefix_table_written_whole_still_gives_urls_back_whole(
        redis: Redis, settings: Settings, clean_redis: str) -> None:
    # Tables written before prefixes were stored without their origin hold them whole.
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    added = [(f"http://old.test:81/dir/{i}.html", 0) for i in range(12)]
    await frontier.add(added)
    px = frontier.shards[0].prefixes("old.test:81")
    raw = SyncRedis.from_url(clean_redis)
    assert raw.hget(px, "1") == b"\xfe/dir/"
    raw.hset(px, "1", "http://old.test:81/dir/")
    got = await claim_all(frontier, 12)
    assert sorted(lease.url for lease in got) == sorted(url for url, _ in added)


async def test_a_host_of_100_urls_has_its_queue_compressed_inside(
        redis: Redis, settings: Settings) -> None:
    if os.environ.get("CRAWL_TEST_REDIS_URL"):
        pytest.skip("an external server keeps its own list settings")
    # The test server runs with the embedded server's settings (server_args).
    assert await redis.config_get("list-max-listpack-size") == {
        "list-max-listpack-size": str(LIST_NODE_ENTRIES)}
    assert LIST_NODE_ENTRIES <= 33  # a queue of 100 has inner nodes
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    added = [(f"https://n.test/2024/03/{i // 25:02d}/story-about-the-{i % 7}-river-{i}.html", 0)
             for i in range(100)]
    for start in range(0, 100, 20):
        await frontier.add(added[start:start + 20])
    queue = frontier.shards[0].queue("n.test")
    entries: list[int] = await redis.eval(  # type: ignore[misc]  # entries are binary
        "local n = 0 for _, e in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do"
        " n = n + #e + 2 end return n", 1, queue)
    assert await redis.object("encoding", queue) == "quicklist"
    # LZF on the inner nodes: a third less than the entries themselves.
    assert int(await redis.memory_usage(queue, samples=0) or 0) < entries * 2 // 3
    got = await claim_all(frontier, 100)
    assert sorted(lease.url for lease in got) == sorted(url for url, _ in added)


@pytest.mark.parametrize("budget", [1, 2, 3])
async def test_the_query_budget_lets_exactly_its_number_of_urls_through_a_path(
        redis: Redis, settings: Settings, budget: int) -> None:
    """Its first URL is counted in a set, the others in tq:<host>: at each budget,
    one call or a URL a call, a path takes `budget` URLs, then one trap result."""
    frontier = Frontier(redis, settings.replace(max_per_host=1000, trap_query_budget=budget),
                        local_dedup=False)
    month = [(f"https://d.test/calendar?month={m}", 0) for m in range(6)]
    day = [(f"https://d.test/day?d={m}", 0) for m in range(6)]
    assert (await frontier.add(month)).added == budget
    assert sum([(await frontier.add([url])).added for url in day]) == budget


async def test_seeded_urls_are_not_counted_or_dropped_by_the_query_budget(
        redis: Redis, settings: Settings) -> None:
    """The budget stops what links find (a calendar); what the user seeds is meant."""
    import io

    from crawler.discovery.seeds import seed

    settings = settings.replace(max_per_host=1000, trap_query_budget=3)
    items = [f"https://e.test/item?id={i}" for i in range(50)]
    report = await seed(redis, settings, io.BytesIO("\n".join(items).encode()))
    assert report.added == 50
    frontier = Frontier(redis, settings, local_dedup=False)
    found = [(f"https://e.test/item?id={i}", 1) for i in range(50, 56)]
    assert (await frontier.add(found)).added == 3  # links count from the first found


async def test_a_host_looks_query_prefixes_up_only_once_it_stored_one(
        redis: Redis, settings: Settings, clean_redis: str) -> None:
    """add.lua skips the lookup of query prefixes on a host that never stored one
    (its state has no 'pq'); the first stored sets it, and later calls find it."""
    frontier = Frontier(redis, settings.replace(max_per_host=1000), local_dedup=False)
    shard, raw = frontier.shards[0], SyncRedis.from_url(clean_redis)
    own = [(f"https://o.test/a/{i}.html?page=2", 0) for i in range(12)]  # a prefix each
    await frontier.add(own)
    assert raw.hget(shard.host("o.test"), "pq") is None
    sent = await commands_of(redis, clean_redis,
                             frontier.add([("https://o.test/a/lone.html?page=2", 0)]))
    assert any("/a/lone.html" in c for c in sent)  # the monitor saw the call
    assert not any(c.startswith("HMGET") and "?page=" in c for c in sent), sent
    shared = [(f"https://o.test/list?id={i}", 0) for i in range(4)]
    await frontier.add(shared[:2])  # two of one call: "/list?id=" goes to the table
    assert raw.hget(shard.host("o.test"), "pq") == b"1"
    await frontier.add(shared[2:])  # found in the table, not stored again
    table = raw.hgetall(shard.prefixes("o.test"))
    assert b"=\xff/list?id=" in table and b"=\xff/a/" in table
    entries = raw.lrange(shard.queue("o.test"), 0, -1)
    assert sum(e[1:2] == bytes([int(table[b"=\xff/list?id="])]) for e in entries) == 4
    # A table written before the flag existed: its query prefixes are stored again
    # under a new id, and every URL still comes back whole.
    raw.hdel(shard.host("o.test"), "pq")
    await frontier.add([(f"https://o.test/list?id={i}", 0) for i in range(4, 6)])
    got = await claim_all(frontier, 19)
    assert sorted(lease.url for lease in got) == sorted(
        [u for u, _ in own + shared] + ["https://o.test/a/lone.html?page=2"]
        + [f"https://o.test/list?id={i}" for i in (4, 5)])


async def commands_of(redis: Redis, url: str, work: Awaitable[Any]) -> list[str]:
    """The commands the server ran (scripts' too, as MONITOR shows them) while ``work`` ran."""
    client = Redis.from_url(url)
    try:
        async with client.monitor() as monitor:
            await work
            await redis.echo("end of work")  # a marker after the work, in order
            seen: list[str] = []
            while True:
                command = str((await asyncio.wait_for(monitor.next_command(), 10))["command"])
                if command == "ECHO end of work":
                    return seen
                seen.append(command)
    finally:
        await client.aclose()
