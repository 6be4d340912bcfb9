"""Helpers shared by the fault and hostile-server tests: seed, crawl, read results."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier, Lease
from crawler.results import iter_results
from crawler.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
STALL_LIMIT = 60.0
"""A crawl in these tests that takes longer than this has stalled."""



async def claim_all(frontier: Frontier, n: int) -> list[Lease]:
    """Claim until n leases are had, or 10 s have passed (a host's delay may hold some)."""
    got: list[Lease] = []
    deadline = time.monotonic() + 10.0
    while len(got) < n and time.monotonic() < deadline:
        leases = (await frontier.claim(n - len(got), "w")).leases
        if not leases:
            await asyncio.sleep(0.01)  # a delay holds the rest: no busy loop on the server
        got += leases
    return got

async def seed_urls(redis: Redis, settings: Settings, urls: list[str]) -> None:
    report = await seed(redis, settings, io.BytesIO("\n".join(urls).encode()))
    assert report.invalid == 0, report.problems


async def results(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(text) async for text in iter_results(redis, settings)]


def by_url(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(r["url"] for r in records)
    duplicated = [u for u, n in counts.items() if n > 1]
    assert not duplicated, f"more than one result for {duplicated[:5]}"
    return {r["url"]: r for r in records}


async def crawl(redis: Redis, settings: Settings, urls: list[str]) -> dict[str, dict[str, Any]]:
    """Seed ``urls``, run one worker until the crawl is done, return results by URL.

    Fails (TimeoutError) if the worker stalls instead of finishing.
    """
    await seed_urls(redis, settings, urls)
    async with asyncio.timeout(STALL_LIMIT):
        await Worker(redis, settings).run()
    return by_url(await results(redis, settings))


def worker_cmd(redis_url: str, crawl_name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "crawler", "worker", "--redis", redis_url, "--crawl",
            crawl_name, "--allow-private", "--delay", "0", "--quiet", *extra]


def start_worker(redis_url: str, crawl_name: str, *extra: str, log: Path,
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A ``crawl worker`` process, its stderr appended to ``log``."""
    full_env = {**os.environ, "CRAWL_HOME": str(log.parent / "home"), **(env or {})}
    with open(log, "ab") as err:
        return subprocess.Popen(worker_cmd(redis_url, crawl_name, *extra), cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, env=full_env)


async def reclaim_expired(frontier: Frontier, count: int, within: float = 20.0) -> int:
    """Reclaim until ``count`` leases came back (they expire on the server's clock)."""
    total = 0
    async with asyncio.timeout(within):
        while total < count:
            total += await frontier.reclaim()
            if total < count:
                await asyncio.sleep(0.02)
    return total
