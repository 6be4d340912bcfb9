"""Results leave Redis once a file holds them; nothing is lost or duplicated on the way.

``crawl export FILE --drain`` reads through a consumer group, writes and
fsyncs, then acknowledges and deletes. Plain ``crawl export`` changes nothing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from crawl_helpers import ROOT, start_worker
from fault_helpers import seed_sync, wait_exit
from redis.asyncio import Redis

from crawler.bench.sitegen import SiteServer, SiteSpec, expected, free_port
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.results import dumps, make_record
from crawler.results.drain import GROUP
from crawler.results.export import drain
from crawler.store.layout import crawl_layout


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return {**env, "CRAWL_HOME": str(tmp_path / "home")}


async def complete_n(redis: Redis, settings: Settings, n: int, start: int = 0) -> None:
    """n finished URLs, as workers would leave them."""
    frontier = Frontier(redis, settings.replace(max_per_host=1000))
    urls = [f"http://h{i % 100}.test/{i}" for i in range(start, start + n)]
    await frontier.add([(u, 0) for u in urls])
    leases: list[Any] = []
    while len(leases) < n:  # a claim spreads over the shards: ask until all are out
        leases += (await frontier.claim(n - len(leases), "w")).leases
    for lease in leases:
        record = make_record(url=lease.url, depth=0, attempts=1, worker="w", status=200)
        await frontier.complete(lease, dumps(record))


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def results_left(redis: Redis, settings: Settings) -> int:
    return sum([await redis.xlen(s.results) for s in Frontier(redis, settings).shards])


async def test_a_drain_moves_every_result_to_the_file_and_out_of_redis(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(shards=3)
    await complete_n(redis, settings, 50)
    out = tmp_path / "r.jsonl"
    assert await drain(redis, settings, out) == 50
    records = lines_of(out)
    want = sorted(f"http://h{i % 100}.test/{i}" for i in range(50))
    assert sorted(r["url"] for r in records) == want
    assert len({r["id"] for r in records}) == 50
    assert await results_left(redis, settings) == 0
    # Again: nothing new, nothing written twice.
    assert await drain(redis, settings, out) == 0 and len(lines_of(out)) == 50


async def test_plain_export_changes_nothing(redis: Redis, settings: Settings,
                                            tmp_path: Path) -> None:
    from crawler.results.export import export

    await complete_n(redis, settings, 10)
    with open(tmp_path / "r.jsonl", "w") as fh:  # noqa: ASYNC230 - a test's own file
        assert await export(redis, settings, fh, progress=False) == 10
    assert await results_left(redis, settings) == 10
    shard = Frontier(redis, settings).shards[0]
    assert await redis.xinfo_groups(shard.results) == []


async def test_a_drain_into_a_file_an_export_wrote_is_refused_and_moves_nothing(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    """crawl export FILE, then crawl export FILE --drain: the drain would append every
    result again (a trial found each twice). FILE's last result was never handed to
    the drain group: refused, even while another drain holds a batch. A drain's own
    file is drained into, with its record or without it."""
    from crawler.errors import CrawlError
    from crawler.results.drain_file import record_path
    from crawler.results.export import export

    await complete_n(redis, settings, 10)
    stream = Frontier(redis, settings).shards[0].results
    await redis.xgroup_create(stream, GROUP, id="0")
    await redis.xreadgroup(GROUP, "other-host:1", {stream: ">"}, count=1)  # in flight
    out = tmp_path / "r.jsonl"
    with open(out, "w") as fh:  # noqa: ASYNC230 - a test's own file
        await export(redis, settings, fh, progress=False)
    before = out.read_bytes()
    with pytest.raises(CrawlError, match=r"never handed.*twice; drain into a new file"):
        await drain(redis, settings, out)
    assert out.read_bytes() == before and await results_left(redis, settings) == 10
    drained = tmp_path / "d.jsonl"
    assert await drain(redis, settings, drained) == 9  # the other host's batch is its own
    await complete_n(redis, settings, 5, start=10)
    assert await drain(redis, settings, drained) == 5  # its record: appended to
    record_path(drained).unlink()  # and without it: its results were all handed out
    await complete_n(redis, settings, 5, start=15)
    assert await drain(redis, settings, drained) == 5
    assert len({r["id"] for r in lines_of(drained)}) == len(lines_of(drained)) == 19


async def test_follow_ends_on_a_stopped_crawl_and_not_on_a_running_one(
        redis: Redis, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A crawl stopped by a cap keeps URLs queued, so it was never "done": a trial's
    crawl export --follow waited forever. Stopped, with nothing leased and no live
    worker, it ends there, and says why."""
    import asyncio
    import io

    from crawler.discovery.seeds import seed
    from crawler.observe import control
    from crawler.results import export as export_module

    monkeypatch.setattr(export_module, "DONE_CHECK_EVERY", 0.1)
    await complete_n(redis, settings, 5)
    await seed(redis, settings, io.BytesIO(b"http://waiting.test/1\nhttp://waiting.test/2\n"))
    ends: list[str] = []
    with open(tmp_path / "r.jsonl", "w") as fh:  # noqa: ASYNC230 - a test's own file
        # Negative control: running, with URLs queued, following goes on.
        follow = asyncio.create_task(export_module.export(
            redis, settings, fh, follow=True, progress=False, on_end=ends.append))
        await asyncio.sleep(1.5)
        assert not follow.done() and ends == []
        await control.stop(redis, settings, "max_pages")
        async with asyncio.timeout(20):
            assert await follow == 5
    assert ends == ["stopped (max_pages)"]
    async with asyncio.timeout(20):  # a drain's --follow too
        assert await drain(redis, settings, tmp_path / "d.jsonl", follow=True,
                           on_end=ends.append) == 5
    assert ends[-1] == "stopped (max_pages)"
    assert (await Frontier(redis, settings).stats())["queued"] == 2  # still there


async def test_a_stopped_crawl_ends_a_follow_once_a_dead_workers_lease_expires(
        redis: Redis, settings: Settings) -> None:
    """Only a worker gives an expired lease back, and none runs a stopped crawl: a
    lease a killed worker left held a follow forever. It counts until it expires."""
    import asyncio
    import io

    from crawler.discovery.seeds import seed
    from crawler.frontier.workers import crawl_end
    from crawler.observe import control

    s = settings.replace(lease_time=1.0)
    await seed(redis, s, io.BytesIO(b"http://dead.test/1\nhttp://dead.test/2\n"))
    assert (await Frontier(redis, s).claim(1, "killed-worker")).leases
    await control.stop(redis, s)
    assert await crawl_end(redis, s) == ""  # the lease could still complete
    await asyncio.sleep(1.5)
    assert await crawl_end(redis, s) == "stopped (operator)"


async def test_a_result_another_group_has_not_read_is_never_deleted(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    shard = Frontier(redis, settings).shards[0]
    await complete_n(redis, settings, 10)
    await redis.xgroup_create(shard.results, "downstream", id="0")
    await redis.xreadgroup("downstream", "me", {shard.results: ">"}, count=4)  # reads 4
    assert await drain(redis, settings, tmp_path / "r.jsonl") == 10
    # The downstream reader has 4 pending (unacknowledged) and 6 unread: all stay.
    assert await results_left(redis, settings) == 10
    pending = await redis.xpending(shard.results, "downstream")
    await redis.xack(shard.results, "downstream",
                     *[e["message_id"] for e in await redis.xpending_range(
                         shard.results, "downstream", "-", "+", 10)])
    assert pending["pending"] == 4
    await redis.xreadgroup("downstream", "me", {shard.results: ">"}, count=100)
    await redis.xack(shard.results, "downstream",
                     *[e["message_id"] for e in await redis.xpending_range(
                         shard.results, "downstream", "-", "+", 10)])
    assert await drain(redis, settings, tmp_path / "r.jsonl") == 0
    assert await results_left(redis, settings) == 0  # now every group has them


async def test_results_maxlen_never_deletes_an_unacknowledged_result(
        redis: Redis, settings: Settings, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from crawler.observe.status import crawl_status, warnings_for

    settings = settings.replace(results_maxlen=5)
    await complete_n(redis, settings, 20)
    assert await results_left(redis, settings) == 20  # no consumer: nothing acknowledged
    stats = await Frontier(redis, settings).stats()
    assert stats["results_over_maxlen"] == 15
    # Loudly: the worker that kept them says so (once a minute), and crawl status does.
    kept = [r.getMessage() for r in caplog.records if "past results_maxlen" in r.getMessage()]
    assert len(kept) == 1 and "kept, not deleted" in kept[0], kept
    status_warnings = warnings_for(await crawl_status(redis, settings))
    assert any("results are past results_maxlen" in w for w in status_warnings)
    # A drain that took 20 out; then the bound holds on acknowledged results.
    assert await drain(redis, settings, tmp_path / "r.jsonl") == 20
    await complete_n(redis, settings, 3, start=100)
    assert await results_left(redis, settings) == 3


async def test_two_drains_share_the_work_without_overlap(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    from crawler.results.drain import Drain, consumer_name

    settings = settings.replace(shards=2)
    await complete_n(redis, settings, 3000)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    # Drain a has read a batch and not written it yet when drain b runs.
    first = Drain(redis, settings, consumer_name(str(a)))
    await first.start()
    held = await first.read(block=False)
    assert 0 < len(held) < 3000
    assert await drain(redis, settings, b) == 3000 - len(held)  # all but a's batch
    assert {r["id"] for r in lines_of(b)}.isdisjoint({e.id for e in held})
    assert await drain(redis, settings, a) == len(held)  # a's own, resumed
    ids = [r["id"] for r in lines_of(a) + lines_of(b)]
    assert len(ids) == len(set(ids)) == 3000
    assert await results_left(redis, settings) == 0


def test_a_drain_killed_at_any_moment_loses_and_duplicates_nothing(
        clean_redis: str, tmp_path: Path) -> None:
    spec = SiteSpec(hosts=4, pages=150, port=free_port())
    crawl = "drainkill"
    out = tmp_path / "results.jsonl"
    env = env_for(tmp_path)
    cmd = [sys.executable, "-m", "crawler", "export", str(out), "--drain", "--follow",
           "--redis", clean_redis, "--crawl", crawl]
    rnd = random.Random(3)
    with SiteServer(spec, slow={ip: 0.01 for ip in spec.host_ips()}):
        seed_sync(clean_redis, crawl, spec.seeds())
        workers = [start_worker(clean_redis, crawl, log=tmp_path / "w.log") for _ in range(2)]
        try:
            for _ in range(3):  # kill -9 the drain mid-stream, then start it again
                drainer = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
                time.sleep(rnd.uniform(0.3, 1.5))
                drainer.send_signal(signal.SIGKILL)
                drainer.wait()
            assert wait_exit(workers, 120) == [0, 0]
            final = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=60)
            assert final.returncode == 0, final.stderr
        finally:
            for w in workers:
                if w.poll() is None:
                    w.kill()
    counts = Counter(r["url"] for r in lines_of(out))
    assert set(counts) == set(expected(spec))
    assert max(counts.values()) == 1, [u for u, n in counts.items() if n > 1][:5]
    client = sync_redis.Redis.from_url(clean_redis)
    assert sum(client.xlen(k) for k in client.scan_iter(f"crawl:{{{crawl}:*}}:results")) == 0


def test_export_refuses_to_overwrite_a_file_unless_told(clean_redis: str,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.write_text("precious\n")
    seed_sync(clean_redis, "default", ["http://127.0.0.2/"])  # a crawl with no results yet
    base = [sys.executable, "-m", "crawler", "export", str(out), "--redis", clean_redis]
    refused = subprocess.run(base, cwd=ROOT, env=env_for(tmp_path), capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert out.read_text() == "precious\n"
    assert subprocess.run([*base, "--append"], cwd=ROOT, env=env_for(tmp_path)).returncode == 0
    assert out.read_text() == "precious\n"  # nothing to add, nothing lost
    assert subprocess.run([*base, "--force"], cwd=ROOT, env=env_for(tmp_path)).returncode == 0
    assert out.read_text() == ""


@pytest.mark.parametrize("group", [GROUP])
async def test_the_drain_group_is_created_on_every_shard(
        redis: Redis, settings: Settings, tmp_path: Path, group: str) -> None:
    settings = await crawl_layout(redis, settings.replace(shards=4, dedup_bucket_bits=0))
    await drain(redis, settings, tmp_path / "r.jsonl")
    for shard in Frontier(redis, settings).shards:
        assert [g["name"] for g in await redis.xinfo_groups(shard.results)] == [group]


async def test_a_drain_killed_after_writing_but_before_acknowledging_writes_nothing_twice(
        redis: Redis, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.results.drain import Drain

    await complete_n(redis, settings, 30)
    out = tmp_path / "r.jsonl"
    acknowledge = Drain.acknowledge

    async def die(self: Drain, entries: Any) -> int:
        raise RuntimeError("killed between the fsync and the XACK")

    monkeypatch.setattr(Drain, "acknowledge", die)
    with pytest.raises(RuntimeError):
        await drain(redis, settings, out)
    assert len(lines_of(out)) == 30 and await results_left(redis, settings) == 30
    monkeypatch.setattr(Drain, "acknowledge", acknowledge)
    assert await drain(redis, settings, out) == 0  # redelivered, found in the file, skipped
    assert len(lines_of(out)) == 30 and await results_left(redis, settings) == 0


async def test_a_line_cut_short_by_a_kill_is_removed_and_written_again(
        redis: Redis, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.results.drain import Drain

    await complete_n(redis, settings, 5)
    out = tmp_path / "r.jsonl"

    async def die(self: Drain, entries: Any) -> int:
        raise RuntimeError("killed")

    monkeypatch.setattr(Drain, "acknowledge", die)
    with pytest.raises(RuntimeError):
        await drain(redis, settings, out)
    text = out.read_text()
    # The last line lost its end inside the recorded batch (a disk that lost the
    # tail): FILE no longer matches FILE.drain, so its last lines are read back.
    out.write_text(text[:-25])
    monkeypatch.undo()
    assert await drain(redis, settings, out) == 1
    assert len({r["id"] for r in lines_of(out)}) == 5 == len(lines_of(out))
