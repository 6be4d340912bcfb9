"""Synchronous helpers for fault tests that drive ``crawl worker`` processes.

These tests orchestrate processes (kill, signal, restart servers) from plain
synchronous code; the generated site runs in a thread (``SiteServer``).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis as sync_redis
from crawl_helpers import seed_urls
from redis.asyncio import Redis

from crawler import keys
from crawler.config import Settings
from crawler.crawls import crawl_layout
from crawler.server import server_args

_WORKER_PID = re.compile(r":(\d+):[0-9a-f]{6}\|")


def seed_sync(redis_url: str, crawl_name: str, urls: list[str]) -> None:
    async def run() -> None:
        client = Redis.from_url(redis_url, decode_responses=True)
        try:
            settings = await crawl_layout(client, Settings(redis_url=redis_url, crawl=crawl_name))
            await seed_urls(client, settings, urls)
        finally:
            await client.aclose()

    asyncio.run(run())


def client(redis_url: str) -> sync_redis.Redis:
    return sync_redis.Redis.from_url(redis_url, decode_responses=True)


def shard(crawl_name: str) -> keys.ShardKeys:
    return keys.all_shards(crawl_name, 1)[0]


def read_results(redis_url: str, crawl_name: str) -> list[dict[str, Any]]:
    entries = client(redis_url).xrange(shard(crawl_name).results)
    return [json.loads(fields["r"]) for _, fields in entries]


def stats(redis_url: str, crawl_name: str) -> dict[str, int]:
    raw = client(redis_url).hgetall(shard(crawl_name).stats)
    return {k: int(v) for k, v in raw.items()}


def lease_holders(redis_url: str, crawl_name: str) -> set[int]:
    """Process ids of the workers holding a lease right now."""
    data = client(redis_url).hvals(shard(crawl_name).lease_data)
    return {int(m.group(1)) for value in data if (m := _WORKER_PID.search(value))}


def leased_urls_of(redis_url: str, crawl_name: str, pid: int) -> set[str]:
    """URLs leased right now by the worker process ``pid``."""
    data = client(redis_url).hvals(shard(crawl_name).lease_data)
    return {value.split("|", 8)[8] for value in data
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
