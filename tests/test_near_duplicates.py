"""The per-host SimHash index (lua/_traps.lua, run by complete.lua) against a real Valkey."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier, Lease
from crawler.results import dumps, make_record
from crawler.store import keys

BASE = 0x0123456789ABCDEF


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with near_duplicates = true (the default; said here so that
    these tests keep testing it if the default changes)."""
    return settings.replace(near_duplicates=True)


def flip(value: int, *bits: int) -> str:
    for bit in bits:
        value ^= 1 << bit
    return f"{value:016x}"


async def complete_pages(frontier: Frontier, host: str, hashes: list[str | None],
                         weak: list[str] | None = None) -> list[dict[str, Any]]:
    """Queue one page of ``host`` a hash, complete each in order with it (and its weak
    bits, ``weak``, 16 hex each); their records."""
    urls = [f"http://{host}/p/{i}" for i in range(len(hashes))]
    await frontier.add([(u, 0) for u in urls])
    out = []
    for i, (url, simhash) in enumerate(zip(urls, hashes, strict=True)):
        lease = await claim_one(frontier)
        assert lease.url == url
        record = make_record(url=url, depth=0, attempts=1, worker="w", status=200,
                             simhash=simhash)
        assert await frontier.complete(lease, dumps(record), simhash=simhash,
                                       simhash_weak=weak[i] if weak else "")
        out.append(await last_record(frontier))
    return out


async def claim_one(frontier: Frontier) -> Lease:
    for _ in range(50):
        got = await frontier.claim(1, "w")
        if got.leases:
            return got.leases[0]
    raise AssertionError("nothing to claim")


async def last_record(frontier: Frontier) -> dict[str, Any]:
    for shard in frontier.shards:
        entries = await frontier.redis.xrevrange(shard.results, count=1)
        if entries:
            return json.loads(entries[0][1]["r"])  # type: ignore[no-any-return]
    raise AssertionError("no result")


async def test_a_page_within_three_bits_is_a_near_duplicate_and_four_bits_is_not(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    # One bit in each of three blocks: only the fourth block still matches exactly.
    records = await complete_pages(frontier, "a.test", [
        flip(BASE), flip(BASE, 1, 20, 40), flip(BASE, 5, 25, 45, 60),
        f"{~BASE & (2**64 - 1):016x}"])
    assert records[0]["near_duplicate_of"] is None
    assert records[0]["simhash"] == flip(BASE)
    assert records[1]["near_duplicate_of"] == "http://a.test/p/0"
    assert records[2]["near_duplicate_of"] is None  # 4 bits from p/0, 7 from p/1
    assert records[3]["near_duplicate_of"] is None
    stats = await frontier.stats()
    assert stats["near_duplicates"] == 1


def bits(*positions: int) -> str:
    return f"{sum(1 << b for b in positions):016x}"


@pytest.mark.parametrize(("weak", "found"), [
    # 5 bits apart, in all four blocks: no block of p/0 matches exactly, so only a
    # value made by flipping the weak bits of one block finds it.
    (bits(1, 17, 33, 34, 49), True),
    (bits(1, 2, 17, 33, 34, 49, 63), True),  # weak bits that do not differ cost nothing
    (bits(1, 17, 33, 34), False),  # bit 49 differs and is not weak: 5 > 3 bits
    (bits(), False),  # no weak bits: every one counts
    # The block with the fewest weak bits is probed: here block 3 (bit 49), not 0.
    (bits(1, 2, 3, 17, 18, 33, 34, 49), True),
])
async def test_a_page_that_differs_only_in_its_weak_bits_is_a_near_duplicate(
        redis: Redis, settings: Settings, weak: str, found: bool) -> None:
    frontier = Frontier(redis, settings)
    copy = flip(BASE, 1, 17, 33, 34, 49)
    records = await complete_pages(frontier, "a.test", [flip(BASE), copy], ["", weak])
    assert records[1]["near_duplicate_of"] == ("http://a.test/p/0" if found else None)
    assert records[1]["simhash"] == copy  # the record keeps the hash as computed


async def test_weak_bits_excuse_a_page_only_when_no_other_bit_differs(
        redis: Redis, settings: Settings) -> None:
    """4 bits apart, 2 of them weak: not a near-duplicate. Weak bits widen the
    rule only for a page that differs in nothing else (counting the others up to
    3 would flag templated pages of one site many times as often)."""
    frontier = Frontier(redis, settings)
    records = await complete_pages(frontier, "a.test", [flip(BASE), flip(BASE, 1, 2, 17, 33)],
                                   ["", bits(1, 2)])
    assert records[1]["near_duplicate_of"] is None


async def test_weak_bits_are_the_new_pages_and_distance_0_ignores_them(
        redis: Redis, settings: Settings) -> None:
    far = flip(BASE, 1, 17, 33, 34, 49)
    # p/0 with weak bits, then p/1 without: p/0's weak bits were not filed, so
    # p/1 is 5 bits from it, too far.
    records = await complete_pages(Frontier(redis, settings), "a.test", [flip(BASE), far],
                                   [bits(1, 17, 33, 34, 49), ""])
    assert records[1]["near_duplicate_of"] is None
    # simhash_distance = 0: identical hashes only, weak bits or not.
    exact = Frontier(redis, settings.replace(simhash_distance=0))
    records = await complete_pages(exact, "b.test", [flip(BASE), flip(BASE, 1), flip(BASE)],
                                   ["", bits(1), ""])
    assert [r["near_duplicate_of"] for r in records] == [None, None, "http://b.test/p/0"]


async def probe_fields(redis: Redis, simhash: str, weak: str) -> list[str]:
    """lua/_traps.lua's probe_fields, run in the real Valkey on its own."""
    lua = resources.files("crawler.frontier") / "lua"
    source = "\n".join((lua / f"{part}.lua").read_text() for part in ("_lib", "_traps"))
    # One key: _lib.lua's slot-migration probe reads KEYS[1] (it never exists).
    reply = await redis.eval(source + "\nreturn probe_fields(ARGV[1], ARGV[2] ~= '' and "
                             "ARGV[2] or nil)", 1, "test:probe_fields", simhash,
                             weak)  # type: ignore[misc]
    return [str(f) for f in reply]


async def test_the_lookup_reads_the_values_of_the_block_with_fewest_weak_bits(
        redis: Redis) -> None:
    simhash = "0123456789abcdef"
    assert await probe_fields(redis, simhash, "") == ["00123", "14567", "289ab", "3cdef"]
    # Weak bits 0 and 1 of block 3 (its last hex digit), 3 in every other block.
    assert sorted((await probe_fields(redis, simhash, "0007000700070003"))[4:]) == \
        ["3cdec", "3cded", "3cdee"]
    # None weak in block 1: its exact value is read already, nothing more.
    assert await probe_fields(redis, simhash, "ffff0000ffffffff") == \
        ["00123", "14567", "289ab", "3cdef"]
    # More than 3 in every block (more than any worker sends): nothing more either,
    # not 2^16 fields.
    assert len(await probe_fields(redis, simhash, "f" * 16)) == 4


async def test_a_page_differing_in_all_blocks_but_only_in_weak_bits_is_found_through_a_probe(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    # 4 weak bits, one a block, all differing: no block matches exactly.
    records = await complete_pages(frontier, "a.test", [flip(BASE), flip(BASE, 1, 17, 33, 49)],
                                   ["", bits(1, 17, 33, 49)])
    assert records[1]["near_duplicate_of"] == "http://a.test/p/0"


async def test_the_index_is_per_host(redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    await complete_pages(frontier, "a.test", [flip(BASE)])
    [other] = await complete_pages(frontier, "b.test", [flip(BASE)])
    assert other["near_duplicate_of"] is None


async def test_near_duplicates_off_records_the_hash_and_files_nothing(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(near_duplicates=False))
    records = await complete_pages(frontier, "a.test", [flip(BASE), flip(BASE)])
    assert records[1]["near_duplicate_of"] is None
    shard = frontier.shards[keys.shard_of("a.test", settings.shards)]
    assert not await redis.exists(shard.near_dups("a.test"))


async def test_the_index_keeps_the_last_window_of_pages_in_bounded_memory(
        redis: Redis, settings: Settings) -> None:
    window = 20
    frontier = Frontier(redis, settings.replace(near_duplicate_window=window))
    distinct = [f"{(BASE * (i + 3) * 0x9E3779B97F4A7C15) % 2**64:016x}" for i in range(60)]
    records = await complete_pages(frontier, "a.test", [*distinct, distinct[0], distinct[-1]])
    assert records[-2]["near_duplicate_of"] is None  # the first page left the window
    assert records[-1]["near_duplicate_of"] == "http://a.test/p/59"
    shard = frontier.shards[keys.shard_of("a.test", settings.shards)]
    assert await redis.llen(shard.near_dup_order("a.test")) == window
    fields = await redis.hgetall(shard.near_dups("a.test"))
    assert sum(f.startswith("u") for f in fields) == window
    assert sum(len(v) // 16 for f, v in fields.items() if not f.startswith("u")) == 4 * window
    size = await redis.memory_usage(shard.near_dups("a.test"))
    assert size < 200 * window  # bytes a page, URLs of 17 characters included


async def test_a_completion_sent_twice_files_the_page_once(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    await complete_pages(frontier, "a.test", [flip(BASE)])
    await frontier.add([("http://a.test/q", 0)])
    lease = await claim_one(frontier)
    record = dumps(make_record(url=lease.url, depth=0, attempts=1, worker="w",
                               simhash=flip(BASE, 9)))
    call = frontier.complete_call(lease, record, is_error=False, simhash=flip(BASE, 9))
    first, second = await frontier.run([call, call])
    assert (first, second) == (1, 0)
    shard = frontier.shards[keys.shard_of("a.test", settings.shards)]
    assert await redis.llen(shard.near_dup_order("a.test")) == 2
    assert (await last_record(frontier))["near_duplicate_of"] == "http://a.test/p/0"


async def test_hashes_sharing_a_block_value_are_kept_newest_first_up_to_16(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    # The same top block, the rest far apart: one field of the index gets them all.
    shared = [f"abcd{(i * 0x9E3779B97F4A7C15) % 2**48:012x}" for i in range(40)]
    records = await complete_pages(frontier, "a.test", [*shared, shared[-1]])
    shard = frontier.shards[keys.shard_of("a.test", settings.shards)]
    filed = await redis.hget(shard.near_dups("a.test"), "0abcd")
    assert filed == "".join(shared[-16:])
    assert records[-1]["near_duplicate_of"] == "http://a.test/p/39"


async def _commands(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {name: int(v["calls"]) for name, v in stats.items() if name != "cmdstat_info"}


async def test_the_index_costs_at_most_four_server_commands_a_page(
        redis: Redis, settings: Settings) -> None:
    # Server commands are most of a script's cost in Valkey: the index once
    # took 15 a page (an HGET and an HSET a block). Measured against the same
    # completions with near_duplicates off, in the same run.
    hashes = [f"{(BASE * (i + 3) * 0x9E3779B97F4A7C15) % 2**64:016x}" for i in range(40)]

    async def commands_for(near_duplicates: bool, host: str) -> int:
        frontier = Frontier(redis, settings.replace(near_duplicates=near_duplicates))
        urls = [f"http://{host}/p/{i}" for i in range(len(hashes))]
        await frontier.add([(u, 0) for u in urls])
        spent = 0
        for simhash in hashes:
            lease = await claim_one(frontier)
            record = make_record(url=lease.url, depth=0, attempts=1, worker="w", simhash=simhash)
            before = await _commands(redis)
            assert await frontier.complete(lease, dumps(record), simhash=simhash)
            after = await _commands(redis)
            spent += sum(after.values()) - sum(before.values())
        return spent

    without = await commands_for(False, "off.test")
    with_index = await commands_for(True, "on.test")
    per_page = (with_index - without) / len(hashes)
    assert 0 < per_page <= 4, per_page
