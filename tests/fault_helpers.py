"""Synchronous helpers for fault tests that drive ``crawl worker`` processes.

These tests orchestrate processes (kill, signal, restart servers) from plain
synchronous code; the generated site runs in a thread (``SiteServer``).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis as sync_redis
from crawl_helpers import by_url, seed_urls, start_worker
from redis.cluster import RedisCluster

from crawler.bench.sitegen import SiteSpec, expected
from crawler.config import Settings
from crawler.store import keys
from crawler.store.connection import connect
from crawler.store.layout import crawl_layout
from crawler.store.server import server_args

_WORKER_PID = re.compile(r":(\d+):[0-9a-f]{6}\|")


def seed_sync(redis_url: str, crawl_name: str, urls: list[str]) -> None:
    async def run() -> None:
        settings = Settings(redis_url=redis_url, crawl=crawl_name)
        client = await connect(settings)
        try:
            settings = await crawl_layout(client, settings)
            await seed_urls(client, settings, urls)
        finally:
            await client.aclose()

    asyncio.run(run())


def client(redis_url: str) -> Any:
    """A synchronous client; on a cluster, one that sends each key to its node."""
    single = sync_redis.Redis.from_url(redis_url, decode_responses=True)
    if single.info("cluster").get("cluster_enabled"):
        single.close()
        return RedisCluster.from_url(redis_url, decode_responses=True)
    return single


def shards(redis_url: str, crawl_name: str) -> list[keys.ShardKeys]:
    """The crawl's shards, as its recorded layout says (one, unless on a cluster)."""
    raw = client(redis_url).hget(keys.meta_key(crawl_name), "layout")
    layout = json.loads(raw) if raw else {"shards": 1}
    return keys.all_shards(crawl_name, int(layout["shards"]),
                           tuple(layout.get("shard_tags") or ()))


def shard(crawl_name: str) -> keys.ShardKeys:
    return keys.all_shards(crawl_name, 1)[0]


def read_results(redis_url: str, crawl_name: str) -> list[dict[str, Any]]:
    redis = client(redis_url)
    return [json.loads(fields["r"]) for s in shards(redis_url, crawl_name)
            for _, fields in redis.xrange(s.results)]


def stats(redis_url: str, crawl_name: str) -> dict[str, int]:
    redis, total = client(redis_url), Counter[str]()
    for s in shards(redis_url, crawl_name):
        total.update({k: int(v) for k, v in redis.hgetall(s.stats).items()})
    return dict(total)


def _lease_data(redis_url: str, crawl_name: str) -> list[str]:
    redis = client(redis_url)
    return [value for s in shards(redis_url, crawl_name) for value in redis.hvals(s.lease_data)]


def lease_holders(redis_url: str, crawl_name: str) -> set[int]:
    """Process ids of the workers holding a lease right now."""
    return {int(m.group(1)) for value in _lease_data(redis_url, crawl_name)
            if (m := _WORKER_PID.search(value))}


def leased_urls_of(redis_url: str, crawl_name: str, pid: int) -> set[str]:
    """URLs leased right now by the worker process ``pid``."""
    return {value.split("|", 8)[8] for value in _lease_data(redis_url, crawl_name)
            if (m := _WORKER_PID.search(value)) and int(m.group(1)) == pid}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_exit(procs: list[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    """Exit codes of all processes; kills the rest and fails if one overstays."""
    deadline = time.monotonic() + timeout
    codes = []
    try:
        for proc in procs:
            codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return codes


class ValkeyProcess:
    """A Valkey server on a fixed TCP port with an append-only file in ``home``."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(server_args(self.home, port=self.port, unix=False),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

        def ready() -> bool:
            try:
                return bool(client(self.url).ping())
            except sync_redis.RedisError:
                return False

        wait_for(ready, 15, "valkey to answer")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF rewrite; what is on disk is what survives."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def assert_exactly_one_ok_result_per_page(records: list[dict[str, object]],
                                          spec: SiteSpec) -> None:
    found = by_url(records)  # fails on any duplicate
    missing = set(expected(spec)) - set(found)
    assert not missing, f"{len(missing)} pages without a result, e.g. {sorted(missing)[:3]}"
    assert set(found) == set(expected(spec))
    failed = [(r["url"], r["error"]) for r in records if r["error"] is not None]
    assert not failed, failed[:3]


def kill_workers_mid_crawl(redis_url: str, spec: SiteSpec, log: Path, kills: int = 5) -> None:
    """3 workers crawl ``spec`` while ``kills`` of them, each holding a lease, get
    kill -9 and a replacement; then every page has exactly one good result, and
    every URL a dead worker held came back through reclaim with its attempt counted."""
    crawl = "chaos"
    seed_sync(redis_url, crawl, spec.seeds())
    # Attempts are not the point here: no URL may end as lease_expired. A short
    # total timeout keeps short the robots.txt lock a killed worker may hold.
    env = {"CRAWL_MAX_ATTEMPTS": "20", "CRAWL_TOTAL_TIMEOUT": "3"}

    # A 1 s lease: each kill strands its leases (and their hosts, one fetch a host)
    # until they expire and a heartbeat (every 1 s) reclaims them; a longer lease
    # only stalls the crawl longer after each of the kills.
    def spawn() -> subprocess.Popen[bytes]:
        return start_worker(redis_url, crawl, "--lease-time", "1", log=log, env=env)

    workers = [spawn() for _ in range(3)]
    # Kill during the page crawl, not only while robots.txt is being fetched.
    wait_for(lambda: stats(redis_url, crawl).get("done", 0) >= 10, 30, "10 results")
    rnd = random.Random(5)
    killed = 0
    stranded: set[str] = set()  # URLs whose lease a dead worker held
    while killed < kills:
        time.sleep(rnd.uniform(0.5, 1.0))
        alive = {w.pid: w for w in workers if w.poll() is None}
        # Kill a worker that holds a lease, so the kill costs something.
        victims = sorted(lease_holders(redis_url, crawl) & set(alive))
        if not victims:
            assert alive, "every worker exited before the kills were done: crawl too short"
            continue
        victim = alive[rnd.choice(victims)]
        victim.kill()
        victim.wait()
        # Read after its death: these leases can only come back through reclaim.
        stranded |= leased_urls_of(redis_url, crawl, victim.pid)
        workers[workers.index(victim)] = spawn()
        killed += 1
    codes = wait_exit(workers, timeout=90)
    records = read_results(redis_url, crawl)
    assert codes == [0, 0, 0], log.read_text()[-2000:]
    assert_exactly_one_ok_result_per_page(records, spec)
    # The URLs those kills interrupted came back through reclaim, their attempt counted.
    assert stranded, "no kill interrupted a lease: the test proved nothing"
    attempts = {r["url"]: r["attempts"] for r in records}
    assert all(attempts[url] > 1 for url in stranded)
