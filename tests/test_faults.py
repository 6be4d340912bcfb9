"""Nothing lost, nothing crashes: workers killed, Redis restarted, signals, Redis down.

The crawls here run real ``crawl worker`` processes against the real test
Valkey (or one the test starts) and a generated site on 127.0.0.2-4, and end
with the same check: every page has exactly one result.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT, crawl, reclaim_expired, start_worker
from fault_helpers import (
    ValkeyProcess,
    assert_exactly_one_ok_result_per_page,
    kill_workers_mid_crawl,
    read_results,
    seed_sync,
    stats,
    wait_exit,
    wait_for,
)
from hostile_server import HostileServer
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from crawler.bench.sitegen import SiteServer, SiteSpec, free_port
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.net.robots import RobotsCache
from crawler.observe.status import crawl_status
from crawler.store.layout import crawl_layout
from crawler.store.server import ensure_server, stop_server

SPEC = SiteSpec(hosts=3, pages=60, links=6, page_bytes=600)
LEASE = "2"
"""--lease-time for the worker processes here: reclaim after a kill is quick."""


@pytest.fixture
def site() -> Iterator[SiteServer]:
    ips = SPEC.host_ips()
    with SiteServer(SPEC, slow={ip: 0.08 for ip in ips}) as server:
        yield server


# -- leases -----------------------------------------------------------------------


async def test_lease_time_setting_sets_the_lease_expiry(redis: Redis,
                                                        settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(lease_time=7.5))
    await frontier.add([("http://127.0.0.2/a", 0)])
    [lease] = (await frontier.claim(1, "w")).leases
    now_s, now_us = await redis.time()
    expiry = await redis.zscore(frontier.shards[0].leases, lease.id)
    assert expiry is not None
    assert abs(expiry - (now_s * 1000 + now_us // 1000) - 7500) < 500


async def test_reclaimed_lease_counts_an_attempt(redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(lease_time=0.1))
    await frontier.add([("http://127.0.0.2/a", 0)])
    [first] = (await frontier.claim(1, "dead-worker")).leases
    assert await reclaim_expired(frontier, 1) == 1
    [second] = (await frontier.claim(1, "live-worker")).leases
    assert second.url == first.url
    assert (first.attempts, second.attempts) == (0, 1)
    # The dead worker's late completion is refused; only the live one counts.
    assert not await frontier.complete(first, '{"late": true}')
    assert await frontier.complete(second, '{"ok": true}')
    assert await redis.xlen(frontier.shards[0].results) == 1


async def test_redis_error_during_robots_check_gives_the_url_back_uncounted(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    original = RobotsCache.check
    failures = [RedisConnectionError("Connection closed by server.")]

    async def flaky_check(self: RobotsCache, *args: Any, **kwargs: Any) -> None:
        if failures:
            raise failures.pop()
        await original(self, *args, **kwargs)

    monkeypatch.setattr(RobotsCache, "check", flaky_check)
    async with HostileServer("127.0.0.2") as server:
        url = server.url("/ok")
        record = (await crawl(redis, settings.replace(lease_time=1.0), [url]))[url]
    assert record["error"] is None and record["attempts"] == 1
    assert "fetch task failed" not in caplog.text


# -- kill -9 ------------------------------------------------------------------------


def test_kill_9_of_random_workers_loses_and_duplicates_nothing(
        clean_redis: str, site: SiteServer, tmp_path: Path) -> None:
    kill_workers_mid_crawl(clean_redis, site.spec, tmp_path / "workers.log")


# -- Redis restarts -------------------------------------------------------------------


def _crawl_through_redis_restart(redis_url: str, site: SiteServer, log: Path,
                                 restart: object) -> list[int]:
    crawl = "restart"
    seed_sync(redis_url, crawl, site.spec.seeds())
    workers = [start_worker(redis_url, crawl, "--lease-time", "3", log=log) for _ in range(2)]
    wait_for(lambda: stats(redis_url, crawl).get("done", 0) >= 20, 30, "20 results")
    assert callable(restart)
    restart()
    codes = wait_exit(workers, timeout=90)
    assert_exactly_one_ok_result_per_page(read_results(redis_url, crawl), site.spec)
    return codes


def test_crawl_survives_external_redis_killed_and_restarted(site: SiteServer,
                                                            tmp_path: Path) -> None:
    server = ValkeyProcess(tmp_path / "valkey", free_port())
    server.start()
    log = tmp_path / "workers.log"

    def restart() -> None:
        server.kill()
        time.sleep(1.0)
        server.start()

    try:
        codes = _crawl_through_redis_restart(server.url, site, log, restart)
    finally:
        server.stop()
    assert codes == [0, 0]
    assert "redis unavailable" in log.read_text() or "redis write failed" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_crawl_survives_embedded_redis_restart(site: SiteServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    url = ensure_server(home)
    log = tmp_path / "workers.log"

    def restart() -> None:
        assert stop_server(home)
        time.sleep(1.0)
        assert ensure_server(home) == url

    try:
        codes = _crawl_through_redis_restart(url, site, log, restart)
    finally:
        stop_server(home)
    assert codes == [0, 0]
    assert (home / "appendonlydir").is_dir()  # the crawl came back from the AOF
    assert "redis unavailable" in log.read_text() or "redis write failed" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_worker_with_redis_down_prints_one_line_naming_the_url_and_exits_non_zero(
        tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    proc = subprocess.run([sys.executable, "-m", "crawler", "worker", "--redis", url],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CRAWL_HOME": str(tmp_path)})
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert url in lines[0] and "Traceback" not in proc.stderr


# -- signals ----------------------------------------------------------------------------


@pytest.fixture
def slow_site() -> Iterator[tuple[SiteServer, dict[str, float]]]:
    """Two hosts: 127.0.0.2 answers in 0.1 s, 127.0.0.3 in 20 s; clear the dict to speed up."""
    spec = SiteSpec(hosts=2, pages=15, links=4, page_bytes=500)
    slow = {spec.host_ips()[0]: 0.1, spec.host_ips()[1]: 20.0}
    with SiteServer(spec, slow=slow) as server:
        yield server, slow


def _results_of(redis_url: str, crawl: str, pid: int) -> list[dict[str, object]]:
    return [r for r in read_results(redis_url, crawl) if f":{pid}:" in str(r["worker"])]


def test_sigterm_finishes_fetches_in_flight_gives_the_rest_back_and_exits_0(
        clean_redis: str, slow_site: tuple[SiteServer, dict[str, float]],
        tmp_path: Path) -> None:
    site, slow = slow_site
    crawl, log = "sigterm", tmp_path / "worker.log"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    fast_host = site.spec.host_ips()[0]
    first = start_worker(clean_redis, crawl, "--ignore-robots", log=log,
                         env={"CRAWL_SHUTDOWN_GRACE": "3"})
    wait_for(lambda: stats(clean_redis, crawl).get("done", 0) >= 4, 30, "4 results")
    stopped_at = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert wait_exit([first], timeout=10) == [0], log.read_text()
    # Every fast-host request started before the signal got its result from this worker.
    started = {path for start, _, path in site.log.by_host()[fast_host] if start < stopped_at}
    finished = {str(r["url"]).split(str(site.spec.port), 1)[1]
                for r in _results_of(clean_redis, crawl, first.pid)
                if fast_host in str(r["url"])}
    assert started <= finished
    # The slow fetch did not fit in the grace period: it was given back, not left leased.
    assert stats(clean_redis, crawl)["leased"] == 0
    slow.clear()
    later = start_worker(clean_redis, crawl, "--ignore-robots", log=log)
    assert wait_exit([later], timeout=60) == [0]
    records = read_results(clean_redis, crawl)
    assert_exactly_one_ok_result_per_page(records, site.spec)
    # Given back without counting: the abandoned page was fetched twice, attempts is 1.
    requested = [path for spans in site.log.by_host().values() for _, _, path in spans]
    assert any(requested.count(p) > 1 for p in requested)
    assert {r["attempts"] for r in records} == {1}


def test_second_sigint_stops_at_once_and_reclaim_recovers_the_leases(
        clean_redis: str, slow_site: tuple[SiteServer, dict[str, float]],
        tmp_path: Path) -> None:
    site, slow = slow_site
    crawl, log = "sigint", tmp_path / "worker.log"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    # A long grace period: only the second signal can make it exit soon.
    first = start_worker(clean_redis, crawl, "--ignore-robots", "--lease-time", LEASE,
                         log=log, env={"CRAWL_SHUTDOWN_GRACE": "60"})
    wait_for(lambda: stats(clean_redis, crawl).get("done", 0) >= 4, 30, "4 results")
    first.send_signal(signal.SIGINT)
    time.sleep(0.3)
    first.send_signal(signal.SIGINT)
    # The slow host's fetch has over 15 s to go and the grace is 60 s.
    [code] = wait_exit([first], timeout=8)
    assert code != 0
    assert stats(clean_redis, crawl)["leased"] >= 1  # left for reclaim
    slow.clear()
    later = start_worker(clean_redis, crawl, "--ignore-robots", "--lease-time", LEASE, log=log)
    assert wait_exit([later], timeout=60) == [0]
    records = read_results(clean_redis, crawl)
    assert_exactly_one_ok_result_per_page(records, site.spec)
    assert any(r["attempts"] == 2 for r in records)  # the reclaimed lease counted its attempt


def test_a_killed_worker_turns_dead_in_status_and_a_clean_exit_leaves_none(
        site: SiteServer, clean_redis: str, tmp_path: Path) -> None:
    crawl = "deadworker"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    log = tmp_path / "workers.log"
    # A short total timeout shortens the robots fetch lock the killed worker may die
    # holding (total timeout + 5 s), which the clean worker would otherwise wait out.
    quick = ("--lease-time", "4", "--total-timeout", "3")
    killed = start_worker(clean_redis, crawl, *quick, "--concurrency", "1", log=log)
    clean = start_worker(clean_redis, crawl, *quick, log=log)

    def status() -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            client = Redis.from_url(clean_redis, decode_responses=True)
            try:
                settings = await crawl_layout(client, Settings(redis_url=clean_redis, crawl=crawl))
                return await crawl_status(client, settings)
            finally:
                await client.aclose()
        return asyncio.run(read())

    try:
        wait_for(lambda: status()["workers"] == 2, 30, "two live workers")
        killed.kill()
        killed.wait()
        wait_for(lambda: (status()["workers"], status()["workers_dead"]) == (1, 1), 30,
                 "the killed worker to count as dead")
        assert wait_exit([clean], 90) == [0]
    finally:
        for proc in (killed, clean):
            if proc.poll() is None:
                proc.kill()
    assert (status()["workers"], status()["workers_dead"]) == (0, 1)
