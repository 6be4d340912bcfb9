"""A killed drain writes each result once: any record size, any consumer name, any file size.

``crawl export FILE --drain`` records each fsynced batch in ``FILE.drain``
before acknowledging it; a restart cuts what no record covers and
acknowledges what the record names (``crawler.results.drain_file``). These
tests kill it at every point of a batch (``CRAWL_TEST_DRAIN_KILL``: a real
SIGKILL of a real ``crawl export`` process), with records of 64 KB and more,
under another consumer name, and on a multi-GB file.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.results import dumps, make_record
from crawler.results.drain import GROUP
from crawler.results.drain_file import KILL_AT, record_path
from crawler.results.export import drain
from crawler.results.stream import Entry
from crawler.store.layout import crawl_layout

BIG_TITLE = "漢" * 12_000
"""12,000 CJK characters, escaped as ASCII: a 72 KB record."""
POINTS = ("mid-line", "written", "synced", "recorded", "acked")
GIB = 1 << 30


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return {**env, "CRAWL_HOME": str(tmp_path / "home"), **extra}


async def complete_n(redis: Redis, settings: Settings, n: int, *, big_every: int = 1,
                     start: int = 0) -> None:
    """n finished URLs; every ``big_every``-th record carries a 72 KB title."""
    frontier = Frontier(redis, settings.replace(max_per_host=1000))
    urls = [f"http://h{i % 100}.test/{i}" for i in range(start, start + n)]
    await frontier.add([(u, 0) for u in urls])
    leases: list[Any] = []
    while len(leases) < n:
        leases += (await frontier.claim(n - len(leases), "w")).leases
    for number, lease in enumerate(leases):
        title = BIG_TITLE if number % big_every == 0 else "small"
        record = make_record(url=lease.url, depth=0, attempts=1, worker="w", status=200,
                             title=title)
        await frontier.complete(lease, dumps(record))


def urls_in(path: Path, offset: int = 0) -> Counter[str]:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as zipped:
            return Counter(json.loads(line)["url"] for line in zipped)
    with open(path, "rb") as fh:
        fh.seek(offset)
        return Counter(json.loads(line)["url"] for line in fh if line.strip())


async def results_left(redis: Redis, settings: Settings) -> int:
    return sum([await redis.xlen(s.results) for s in Frontier(redis, settings).shards])


# A fork of this test process (hundreds of MB after a few tests) would count its
# parent's pages in ru_maxrss, which exec does not reset: the drain is started
# from a small launcher, whose child's peak is the drain's own.
LAUNCHER = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:])\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(usage.ru_maxrss, flush=True)\n"
            "code = os.waitstatus_to_exitcode(status)\n"
            "if code < 0:\n"  # killed: end the same way, so the caller sees the signal
            "    os.kill(os.getpid(), -code)\n"
            "sys.exit(code)\n")


def run_drain(redis_url: str, out: Path, tmp_path: Path, **env: str) -> tuple[int, int]:
    """``crawl export OUT --drain`` as a process: (exit status, its peak RSS in KiB)."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, sys.executable, "-m", "crawler", "export", str(out),
         "--drain", "--redis", redis_url, "--crawl", "default"], cwd=ROOT,
        env=env_for(tmp_path, **env), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, timeout=120)
    return done.returncode, int(done.stdout.split()[-1])


async def test_records_of_72_kb_written_before_a_kill_are_not_written_again(
        redis: Redis, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.results.drain import Drain

    await complete_n(redis, settings, 30)
    out = tmp_path / "r.jsonl"

    async def die(self: Drain, entries: Any) -> int:
        raise RuntimeError("killed between the fsync and the XACK")

    monkeypatch.setattr(Drain, "acknowledge", die)
    with pytest.raises(RuntimeError):
        await drain(redis, settings, out)
    assert sum(urls_in(out).values()) == 30 and out.stat().st_size > 30 * 64_000
    monkeypatch.undo()
    assert await drain(redis, settings, out) == 0
    counts = urls_in(out)
    assert len(counts) == 30 and max(counts.values()) == 1
    assert await results_left(redis, settings) == 0


async def test_a_batch_written_under_one_host_name_is_not_written_again_under_another(
        redis: Redis, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import crawler.results.drain as drain_module
    from crawler.results.drain import Drain

    await complete_n(redis, settings, 30, big_every=1000)  # small records
    out = tmp_path / "r.jsonl"

    async def die(self: Drain, entries: Any) -> int:
        raise RuntimeError("killed between the fsync and the XACK")

    monkeypatch.setattr(drain_module.socket, "gethostname", lambda: "host-a")
    with monkeypatch.context() as patched:
        patched.setattr(Drain, "acknowledge", die)
        with pytest.raises(RuntimeError):
            await drain(redis, settings, out)
    monkeypatch.setattr(drain_module.socket, "gethostname", lambda: "host-b")
    monkeypatch.setattr(drain_module, "STALE_AFTER_MS", 0)  # host-a's batch: stale at once
    await drain(redis, settings, out)
    counts = urls_in(out)
    assert len(counts) == 30 and max(counts.values()) == 1
    assert await results_left(redis, settings) == 0


@pytest.mark.parametrize("point", POINTS)
async def test_a_rerun_under_another_host_name_writes_each_result_once(
        redis: Redis, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        point: str) -> None:
    """A drain on host-a dies at ``point`` of its second batch; the same command on
    host-b (a new ``docker compose run``) takes over host-a's pending batch."""
    import crawler.results.drain as drain_module
    import crawler.results.drain_file as drain_file
    import crawler.results.export as export_module

    await complete_n(redis, settings, 2500, big_every=100)
    out = tmp_path / "r.jsonl"

    def die(at: str, batch: int) -> None:
        if drain_file.kill_asked(at, batch):
            raise RuntimeError(f"killed at {at}")

    monkeypatch.setenv(KILL_AT, f"{point}:2")
    monkeypatch.setattr(drain_file, "kill_point", die)
    monkeypatch.setattr(export_module, "kill_point", die, raising=False)
    monkeypatch.setattr(drain_module.socket, "gethostname", lambda: "host-a")
    with pytest.raises(RuntimeError):
        await drain(redis, settings, out)
    monkeypatch.delenv(KILL_AT)
    monkeypatch.setattr(drain_module.socket, "gethostname", lambda: "host-b")
    monkeypatch.setattr(drain_module, "STALE_AFTER_MS", 0)  # host-a's batch: stale at once
    await drain(redis, settings, out)
    counts = urls_in(out)
    assert len(counts) == 2500, 2500 - len(counts)
    assert max(counts.values()) == 1, sum(n > 1 for n in counts.values())
    assert await results_left(redis, settings) == 0
    shard = Frontier(redis, settings).shards[0]
    assert (await redis.xpending(shard.results, GROUP))["pending"] == 0


@pytest.mark.parametrize(("name", "point"), [
    *(("r.jsonl", point) for point in POINTS),
    *(("r.jsonl.gz", point) for point in ("mid-line", "synced", "recorded"))])
async def test_a_drain_process_killed_at_each_point_writes_each_result_once(
        redis: Redis, settings: Settings, tmp_path: Path, clean_redis: str,
        name: str, point: str) -> None:
    await crawl_layout(redis, settings)
    await complete_n(redis, settings, 2500, big_every=50)
    out = tmp_path / name
    killed, _ = run_drain(clean_redis, out, tmp_path, **{KILL_AT: f"{point}:2"})
    assert killed == -9
    if point == "mid-line" and name.endswith(".gz"):
        with pytest.raises(EOFError):  # the kill left half a gzip member
            urls_in(out)
    elif point == "mid-line":
        assert not out.read_bytes().endswith(b"\n")  # the kill left half a line
    else:
        assert 1000 < sum(urls_in(out).values()) <= 2000  # batch 1, and batch 2 written
    assert run_drain(clean_redis, out, tmp_path)[0] == 0
    counts = urls_in(out)
    assert len(counts) == 2500 and max(counts.values()) == 1
    assert await results_left(redis, settings) == 0
    assert record_path(out).exists()


async def test_a_drain_refuses_a_file_another_drain_is_writing(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    from crawler.errors import CrawlError
    from crawler.results.drain_file import DrainFile

    out = tmp_path / "r.jsonl"
    holder = DrainFile(out, settings.crawl)
    try:
        with pytest.raises(CrawlError, match="another drain"):
            await drain(redis, settings, out)
    finally:
        holder.close()


def sparse_file(path: Path, size: int) -> None:
    """``size`` bytes, nearly all a hole (no disk, no time), ending with a newline."""
    with open(path, "wb") as fh:
        fh.truncate(size - 1)
        fh.seek(size - 1)
        fh.write(b"\n")


async def test_resuming_a_4_gib_file_reads_none_of_it(
        redis: Redis, settings: Settings, tmp_path: Path, clean_redis: str) -> None:
    """A drain killed mid-line at the end of a 4 GiB file resumes in bounded memory.

    The 4 GiB are a sparse hole (writing them would take the shared disk minutes):
    not JSON lines, so a drain that read them would also choke on them. The
    previous drain read the whole file into memory to cut a half-written line.
    """
    await crawl_layout(redis, settings)
    await complete_n(redis, settings, 1500, big_every=100)
    out = tmp_path / "big.jsonl"
    size = int(os.environ.get("CRAWL_TEST_DRAIN_BIG_BYTES", 4 * GIB))
    sparse_file(out, size)
    try:
        killed, first_rss = run_drain(clean_redis, out, tmp_path, **{KILL_AT: "mid-line:2"})
        assert killed == -9
        assert out.stat().st_size > size
        done, rss = run_drain(clean_redis, out, tmp_path)
        assert done == 0
        counts = urls_in(out, offset=size)
        assert len(counts) == 1500 and max(counts.values()) == 1
        assert await results_left(redis, settings) == 0
        # A Python process with the crawler imported and a batch in hand: ~60-100 MB.
        assert max(first_rss, rss) < 200_000, (first_rss, rss)
    finally:
        out.unlink()


async def test_a_file_without_its_record_is_read_back_a_block_at_a_time(
        redis: Redis, settings: Settings, tmp_path: Path, clean_redis: str) -> None:
    """No ``FILE.drain`` (a file an older drain wrote): the half-written last line is cut
    and the ids of as many last lines as the group has pending are acknowledged,
    reading backwards: not the whole 4 GiB, and whatever the consumer's name."""
    await crawl_layout(redis, settings)
    await complete_n(redis, settings, 300, big_every=10)
    stream = Frontier(redis, settings).shards[0].results
    # An old drain on another host read 4, wrote 3 and half of the 4th, and died.
    await redis.xgroup_create(stream, GROUP, id="0")
    reply: Any = await redis.xreadgroup(GROUP, "old-host:1", {stream: ">"}, count=4)
    entries = [Entry(0, entry_id, fields["r"]) for entry_id, fields in reply[0][1]]
    out = tmp_path / "old.jsonl"
    size = int(os.environ.get("CRAWL_TEST_DRAIN_BIG_BYTES", 4 * GIB))
    sparse_file(out, size)
    try:
        with open(out, "a") as fh:  # noqa: ASYNC230 - a test's own file
            fh.write("".join(f'{{"id":"0-1-{i}","url":"http://earlier/{i}"}}\n'
                             for i in range(10)))
            fh.write("".join(e.line() + "\n" for e in entries[:3]) + entries[3].line()[:40])
        done, rss = run_drain(clean_redis, out, tmp_path)
        assert done == 0
        # The 4th is still the old drain's; a minute on, it is stale and taken over.
        await redis.xclaim(stream, GROUP, "old-host:1", 0, [entries[3].entry_id],
                           idle=120_000)
        assert run_drain(clean_redis, out, tmp_path)[0] == 0
        counts = urls_in(out, offset=size)
        assert rss < 200_000, rss
        crawled = Counter({url: n for url, n in counts.items() if url.startswith("http://h")})
        assert len(crawled) == 300 and max(crawled.values()) == 1
        assert len(counts) == 310 and await results_left(redis, settings) == 0
    finally:
        out.unlink()


async def test_a_file_replaced_after_a_drain_is_not_cut_to_the_old_record(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    """``crawl export FILE --force`` after a drain: FILE.drain describes the old FILE,
    so the new one's bytes past its offset are not cut."""
    await complete_n(redis, settings, 10, big_every=1000)
    out = tmp_path / "r.jsonl"
    assert await drain(redis, settings, out) == 10
    other = "".join(f'{{"id":"0-1-{i}","url":"http://other/{i}"}}\n' for i in range(200))
    out.write_text(other)
    await complete_n(redis, settings, 5, start=10, big_every=1000)
    assert await drain(redis, settings, out) == 5
    assert out.read_text().startswith(other)
    assert len(urls_in(out)) == 205


async def test_a_gzip_file_without_its_record_is_refused(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    """Nothing can be read back from the end of a gzip file: without the record of its
    last whole batch a drain cannot know what it holds, so it says so."""
    from crawler.errors import CrawlError

    await complete_n(redis, settings, 10, big_every=1000)
    out = tmp_path / "r.jsonl.gz"
    out.write_bytes(gzip.compress(b'{"id":"0-1-0","url":"http://earlier/0"}\n'))
    with pytest.raises(CrawlError, match="drain into a new file"):
        await drain(redis, settings, out)
    assert await results_left(redis, settings) == 10
    fresh = tmp_path / "new.jsonl.gz"
    assert await drain(redis, settings, fresh) == 10
    assert await drain(redis, settings, fresh) == 0  # its record is there now
    assert len(urls_in(fresh)) == 10 and record_path(fresh).exists()
