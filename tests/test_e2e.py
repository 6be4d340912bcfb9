"""End to end: seed a generated site, crawl it with two worker processes, check every page.

The site (crawler.bench.sitegen) knows each page's title and link count in advance,
and links every page to a host that is never seeded (127.0.0.250).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis as sync_redis
from aiohttp import web

from crawler.bench.sitegen import (
    OUT_OF_SCOPE_HOST,
    RequestLog,
    SiteServer,
    SiteSpec,
    expected,
    free_port,
    make_app,
)
from crawler.store import keys

CRAWL = "e2e"
WORKER_TIMEOUT = 60


def crawl_env() -> dict[str, str]:
    """The environment without any CRAWL_* setting of the person running the tests."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}


def crawl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "crawler", *args]


class GatedSite:
    """The generated site, holding every request until ``opened`` is set.

    The test opens it once both workers are up, so neither can finish the
    whole crawl before the other has started.
    """

    def __init__(self, hosts: int = 5, pages: int = 100, slow: float = 0.005) -> None:
        self.spec = SiteSpec(hosts=hosts, pages=pages, port=free_port())
        self.log = RequestLog()
        self.opened = threading.Event()
        # 5 ms a response: long enough a crawl that a worker polling for work
        # (every 0.1 s at most) finds some before the other worker is done.
        self.app = make_app(self.spec, self.log, {ip: slow for ip in self.spec.host_ips()})
        self.app.middlewares.append(self._gate)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        while not self.opened.is_set():  # noqa: ASYNC110 - set from the test's thread
            await asyncio.sleep(0.01)
        response: web.StreamResponse = await handler(request)
        return response


@pytest.fixture(scope="module")
def site() -> Iterator[GatedSite]:
    gated = GatedSite()
    with SiteServer(gated.spec, app=gated.app):
        yield gated


def wait_for_workers(client: sync_redis.Redis, n: int, procs: list[subprocess.Popen[str]],
                     crawl: str = CRAWL) -> None:
    deadline = time.monotonic() + WORKER_TIMEOUT
    while client.zcard(keys.workers_key(crawl)) < n:
        assert time.monotonic() < deadline, "workers did not register"
        assert all(p.poll() is None for p in procs), "a worker exited before the site opened"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def crawl(site: GatedSite, redis_url: str, tmp_path_factory: pytest.TempPathFactory
          ) -> dict[str, Any]:
    """Seed the site and run two worker processes to the end; what they left behind."""
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    work = tmp_path_factory.mktemp("e2e")
    (work / "seeds.txt").write_text("\n".join(site.spec.seeds()) + "\n")
    env = crawl_env()
    seeded = subprocess.run(crawl_cmd("seed", "--redis", redis_url, "--crawl", CRAWL, "seeds.txt"),
                            cwd=work, env=env, capture_output=True, text=True, timeout=30)
    assert seeded.returncode == 0, seeded.stderr
    # --concurrency 4: neither worker can hold all 20 host slots (5 hosts x 4),
    # so the crawl is shared even though one worker could do it alone.
    worker = crawl_cmd("worker", "--redis", redis_url, "--crawl", CRAWL, "--allow-private",
                       "--delay", "0", "--max-per-host", "4", "--concurrency", "4", "--quiet")
    procs = [subprocess.Popen(worker, cwd=work, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = []
    try:
        wait_for_workers(client, 2, procs)
        site.opened.set()
        for proc in procs:
            _, err = proc.communicate(timeout=WORKER_TIMEOUT)
            outcomes.append((proc.pid, proc.returncode, err))
    finally:
        site.opened.set()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    entries: Any = client.xrange(keys.ShardKeys(CRAWL, 0).results)
    return {"outcomes": outcomes, "records": [json.loads(f["r"]) for _, f in entries],
            "requests": list(site.log.entries)}


def test_both_workers_exit_by_themselves_with_status_0(crawl: dict[str, Any]) -> None:
    for pid, code, err in crawl["outcomes"]:
        assert code == 0, f"worker {pid} exited {code}: {err}"
        assert "Traceback" not in err


def test_every_page_has_exactly_one_result(crawl: dict[str, Any], site: GatedSite) -> None:
    counts = Counter(record["url"] for record in crawl["records"])
    assert set(counts) == set(expected(site.spec))
    assert [url for url, n in counts.items() if n > 1] == []


def test_every_result_has_the_title_and_link_count_the_site_wrote(
        crawl: dict[str, Any], site: GatedSite) -> None:
    want = expected(site.spec)
    wrong = [(r["url"], r["status"], r["title"], r["links"], r["error"])
             for r in crawl["records"] if (r["title"], r["links"]) != want.get(r["url"])]
    assert wrong == []
    assert all(r["status"] == 200 and r["error"] is None for r in crawl["records"])


def test_nothing_out_of_scope_was_requested(crawl: dict[str, Any], site: GatedSite) -> None:
    hosts = {host for host, _, _, _ in crawl["requests"]}
    assert OUT_OF_SCOPE_HOST not in hosts
    assert hosts == set(site.spec.host_ips())


def test_every_page_was_fetched_once(crawl: dict[str, Any], site: GatedSite) -> None:
    pages = Counter((host, path) for host, path, _, _ in crawl["requests"]
                    if path != "/robots.txt")
    assert len(pages) == len(expected(site.spec))
    assert max(pages.values()) == 1


def test_both_workers_produced_results(crawl: dict[str, Any]) -> None:
    pids = {str(pid) for pid, _, _ in crawl["outcomes"]}
    by_pid = Counter(record["worker"].split(":")[-2] for record in crawl["records"])
    assert set(by_pid) == pids


def test_processes_2_runs_two_workers_that_share_the_crawl(
        redis_url: str, tmp_path: pytest.TempPathFactory) -> None:
    site = GatedSite(hosts=2, pages=50)
    name = "processes"
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    env = crawl_env()
    with SiteServer(site.spec, app=site.app):
        seed = subprocess.run(crawl_cmd("--redis", redis_url, "--crawl", name, "seed", "-"),
                              input="\n".join(site.spec.seeds()), env=env, text=True,
                              capture_output=True, timeout=30)
        assert seed.returncode == 0, seed.stderr
        parent = subprocess.Popen(
            crawl_cmd("--redis", redis_url, "--crawl", name, "worker", "--processes", "2",
                      "--allow-private", "--delay", "0", "--max-per-host", "4",
                      "--concurrency", "2", "--quiet"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_workers(client, 2, [parent], crawl=name)
            site.opened.set()
            _, err = parent.communicate(timeout=WORKER_TIMEOUT)
        finally:
            site.opened.set()
            if parent.poll() is None:
                kill_workers(client, name)
                parent.kill()
                parent.wait()
    assert parent.returncode == 0, err
    entries: Any = client.xrange(keys.ShardKeys(name, 0).results)
    records = [json.loads(f["r"]) for _, f in entries]
    assert sorted(r["url"] for r in records) == sorted(expected(site.spec))
    assert len({r["worker"] for r in records}) == 2


def kill_workers(client: sync_redis.Redis, crawl: str) -> None:
    """Kill the worker processes a failed test left running (ids are host:pid:random)."""
    for worker in client.zrange(keys.workers_key(crawl), 0, -1):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(worker.split(":")[-2]), signal.SIGKILL)


def test_ctrl_c_lets_every_worker_of_processes_2_finish_its_fetches(
        redis_url: str, tmp_path: pytest.TempPathFactory) -> None:
    # Ctrl-C reaches the whole process group, and the parent forwards it too:
    # a worker must still see one signal (drain), not two (stop at once).
    site = GatedSite(hosts=2, pages=50, slow=0.5)
    name = "interrupted"
    client = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    env = crawl_env()
    with SiteServer(site.spec, app=site.app):
        subprocess.run(crawl_cmd("--redis", redis_url, "--crawl", name, "seed", "-"),
                       input="\n".join(site.spec.seeds()), env=env, text=True, timeout=30,
                       capture_output=True, check=True)
        parent = subprocess.Popen(
            crawl_cmd("--redis", redis_url, "--crawl", name, "worker", "--processes", "2",
                      "--allow-private", "--delay", "0", "--max-per-host", "4", "--quiet",
                      "--ignore-robots"),
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        try:
            wait_for_workers(client, 2, [parent], crawl=name)
            site.opened.set()
            deadline = time.monotonic() + WORKER_TIMEOUT
            while int(client.hget(keys.ShardKeys(name, 0).stats, "leased") or 0) < 4:
                assert time.monotonic() < deadline, "the workers never had fetches in flight"
                time.sleep(0.02)
            os.killpg(parent.pid, signal.SIGINT)
            _, err = parent.communicate(timeout=WORKER_TIMEOUT)
        finally:
            if parent.poll() is None:
                kill_workers(client, name)
                os.killpg(parent.pid, signal.SIGKILL)
                parent.wait()
    assert parent.returncode == 0, err
    assert "second signal" not in err
    stats = client.hgetall(keys.ShardKeys(name, 0).stats)
    # Every fetch in flight was finished and recorded; nothing waits for its lease to expire.
    assert int(stats["leased"]) == 0
    assert int(stats["done"]) >= 4
