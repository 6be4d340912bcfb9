"""Bad input: seed files full of junk, huge seed files, bad config values."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT
from redis.asyncio import Redis

import crawler.frontier
from crawler.config import Settings
from crawler.discovery import seeds
from crawler.discovery.seeds import MAX_LINE_BYTES, read_seed_lines, seed
from crawler.frontier import Frontier
from crawler.frontier.transitions import ADD_CHUNK

JUNK_FILE = b"\n".join([
    b"http://good.example/a",                       # 1 good
    b"\x00\x01\x02\xff\xfe\x89PNG\r\n\x1a",          # 2 not UTF-8; 3 a control character
    b"http://long.example/" + b"x" * (3 * MAX_LINE_BYTES),  # 4 far too long
    b"http://caf\xe9.example/",                     # 5 latin-1, not UTF-8
    b"www.example.com/no-scheme",                   # 6 no scheme
    b"ftp://example.com/file.txt",                  # 7 unsupported schemes
    b"file:///etc/passwd",                          # 8
    b"javascript:alert(1)",                         # 9
    "http://bücher.example/straße".encode(),        # 10 IDN host: good
    b"# a comment",                                 # 11 skipped
    b"",                                            # 12 blank, skipped
    b"  https://GOOD.example:443/b  ",              # 13 good
    b"\x1b[31mhttp://red.example/",                 # 14 terminal escape
    b"http://[::1/",                                # 15 broken IPv6 literal
    b"http://good.example/a",                       # 16 good, a repeat of line 1
])
BAD_LINES = {2, 3, 4, 5, 6, 7, 8, 9, 14, 15}


async def test_every_bad_seed_line_is_reported_with_its_line_number(
        redis: Redis, settings: Settings) -> None:
    report = await seed(redis, settings, io.BytesIO(JUNK_FILE))
    assert {number for number, _ in report.problems} == BAD_LINES
    assert report.invalid == len(BAD_LINES)
    problems = dict(report.problems)
    assert "UTF-8" in problems[2] and "UTF-8" in problems[5] and "control" in problems[3]
    assert "longer than" in problems[4]
    assert "scheme" in problems[6] and "ftp" in problems[7] and "javascript" in problems[9]


async def test_every_good_seed_line_is_seeded_once_in_canonical_form(
        redis: Redis, settings: Settings) -> None:
    report = await seed(redis, settings, io.BytesIO(JUNK_FILE))
    assert (report.added, report.seen) == (3, 1)
    claimed = await Frontier(redis, settings).claim(10, "test")
    assert sorted(lease.url for lease in claimed.leases) == [
        "http://good.example/a", "http://xn--bcher-kva.example/stra%C3%9Fe",
        "https://good.example/b"]


def test_crawl_seed_prints_each_bad_line_and_seeds_the_rest(clean_redis: str,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_bytes(JUNK_FILE)
    proc = subprocess.run([sys.executable, "-m", "crawler", "seed", str(path), "--redis",
                           clean_redis, "--crawl", "junk"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "CRAWL_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    reported = {int(line.split(":", 1)[0].removeprefix("line "))
                for line in proc.stderr.splitlines() if line.startswith("line ")}
    # The command reads line 6 (www.example.com/no-scheme) as an https URL, and says so.
    assert reported == BAD_LINES - {6}
    assert "assuming https:// for lines without a scheme: line 6" in proc.stderr
    assert "added 4" in proc.stdout and "invalid 9" in proc.stdout
    assert "Traceback" not in proc.stderr


class CountingReader(io.RawIOBase):
    """A file that records how many bytes were read from it."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self.raw.readinto(buffer)
        self.consumed += n
        return n


def _million_line_file(path: Path) -> None:
    with open(path, "w") as out:
        for i in range(1_000_000):
            out.write("not a url\n" if i % 250_000 == 7 else f"http://h{i % 997}.example/{i}\n")


def test_a_million_line_seed_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "million.txt"
    _million_line_file(path)
    with open(path, "rb") as fh:
        counting = CountingReader(fh)
        lines = read_seed_lines(io.BufferedReader(counting))
        first = list(itertools.islice(lines, 1000))
        # 1000 lines in, only a buffer's worth of a 29 MB file has been read.
        assert len(first) == 1000 and counting.consumed < 256 * 1024
        rest = sum(1 for _ in lines)
    assert len(first) + rest == 1_000_000


def test_a_million_line_seed_file_reports_bad_lines_by_their_number(tmp_path: Path) -> None:
    path = tmp_path / "million.txt"
    _million_line_file(path)
    with open(path, "rb") as fh:
        bad = [number for number, url, _ in read_seed_lines(fh) if url is None]
    assert bad == [8, 250_008, 500_008, 750_008]


async def test_a_hundred_thousand_seeds_are_all_added(redis: Redis, settings: Settings) -> None:
    data = "".join(f"http://h{i % 997}.example/p/{i}\n" for i in range(100_000)).encode()
    report = await seed(redis, settings, io.BytesIO(data))
    assert (report.added, report.invalid) == (100_000, 0)
    assert (await Frontier(redis, settings).stats())["queued"] == 100_000


def urls_in(args: list[Any]) -> int:
    """URLs in one add.lua call's ARGV (its layout: add.lua's header)."""
    at, urls = 6 + 4 * int(args[5]), 0
    while at < len(args):
        count = int(args[at + 1])
        urls, at = urls + count, at + 5 + 4 * count
    return urls


async def test_seeding_keeps_two_windows_in_flight_in_add_calls_of_bounded_size(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small windows: 12 of them, so the pipeline runs at its full depth many times.
    monkeypatch.setattr(seeds, "WINDOW", 1000)
    monkeypatch.setattr(seeds, "PREPARE_SLICE", 300)
    sizes: list[int] = []
    in_flight, deepest = 0, 0
    run = Frontier.run

    async def watched(self: Frontier, calls: list[Any]) -> list[Any]:
        nonlocal in_flight, deepest
        sizes.extend(urls_in(args) for name, _, args in calls if name == "add")
        in_flight += 1
        deepest = max(deepest, in_flight)
        try:
            await asyncio.sleep(0.05)  # a slow server: the next window goes out meanwhile
            return await run(self, calls)
        finally:
            in_flight -= 1

    monkeypatch.setattr(Frontier, "run", watched)
    data = "".join(f"http://h{i % 7}.example/d{i % 13}/{i}\n" for i in range(12_000)).encode()
    report = await seed(redis, settings, io.BytesIO(data))
    assert (report.added, report.invalid) == (12_000, 0)
    assert (await Frontier(redis, settings).stats())["queued"] == 12_000
    assert deepest == seeds.IN_FLIGHT == 2
    assert sum(sizes) == 12_000 and max(sizes) == ADD_CHUNK


async def test_windows_start_small_and_grow_by_a_quarter_to_the_full_size(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Valkey starts on a small first window at once, and each next window is ready
    before Valkey is done with the one before."""
    monkeypatch.setattr(seeds, "WINDOW", 200)
    monkeypatch.setattr(seeds, "FIRST_WINDOW", 100)
    windows: list[int] = []
    run = Frontier.run

    async def watched(self: Frontier, calls: list[Any]) -> list[Any]:
        windows.append(sum(urls_in(args) for name, _, args in calls if name == "add"))
        return await run(self, calls)

    monkeypatch.setattr(Frontier, "run", watched)
    data = "".join(f"http://h{i % 7}.example/{i}\n" for i in range(1_430)).encode()
    report = await seed(redis, settings, io.BytesIO(data))
    assert report.added == 1_430
    assert windows == [100, 125, 156, 195, 200, 200, 200, 200, 54]


def test_add_lua_steps_its_gc_after_a_full_call_and_only_then() -> None:
    """Seeding's calls are ADD_CHUNK URLs; add.lua steps its GC after a call that big. If
    the two drift apart, seeding's garbage comes back as GC pauses inside unlucky
    calls (ADD_CHUNK 50 with the collect at 100: 236-405 of 22,000 calls over 2 ms
    instead of 51-57), or every page's links pay a GC step. A step, not a full
    collect: a collect marks the whole Lua heap (every loaded script) each call."""
    lua = (Path(crawler.frontier.__file__).parent / "lua" / "add.lua").read_text()
    [(threshold, how)] = re.findall(
        r"if added \+ seen \+ capped >= (\d+) then collectgarbage\('(\w+)'", lua)
    assert (int(threshold), how) == (ADD_CHUNK, "step")


async def test_a_failed_window_fails_the_seed_with_its_error(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seeds, "WINDOW", 1000)
    run, windows = Frontier.run, 0

    async def failing(self: Frontier, calls: list[Any]) -> list[Any]:
        nonlocal windows
        windows += 1
        if windows == 3:
            raise ConnectionError("the third window's pipeline broke")
        return await run(self, calls)

    monkeypatch.setattr(Frontier, "run", failing)
    data = "".join(f"http://h{i % 7}.example/{i}\n" for i in range(6000)).encode()
    with pytest.raises(ConnectionError, match="third window"):
        await seed(redis, settings, io.BytesIO(data))
    # Everything before the broken window is in; nothing was left running.
    assert (await Frontier(redis, settings).stats())["queued"] >= 2000
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()
                and "failing" in repr(t.get_coro())]


async def test_problem_list_is_bounded_but_every_bad_line_is_counted_and_reported(
        redis: Redis, settings: Settings) -> None:
    reported: list[int] = []
    data = b"junk\n" * 5000 + b"http://ok.example/\n"
    report = await seed(redis, settings, io.BytesIO(data),
                        on_problem=lambda number, _: reported.append(number))
    assert report.invalid == 5000 and report.added == 1
    assert reported == list(range(1, 5001))
    assert len(report.problems) <= 1000


def test_bad_config_value_is_one_line_naming_the_key_and_the_expected_value(
        tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "crawler", "worker", "--redis",
                           "redis://127.0.0.1:1/0"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "CRAWL_CONCURRENCY": "lots",
                                           "CRAWL_HOME": str(tmp_path)})
    assert proc.returncode != 0
    [line] = proc.stderr.strip().splitlines()
    assert "concurrency" in line and "whole number" in line and "'lots'" in line
