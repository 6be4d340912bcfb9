"""The embedded default: with no Redis configured, commands share one private Valkey.

Every command runs as a real child process in a fresh directory, with no
CRAWL_* variable and no --redis, exactly as a first-time user would.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis as sync_redis

from crawler.bench.sitegen import SiteServer, SiteSpec, expected
from crawler.store.server import home_dir, socket_path, stop_server


def crawl(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    result = subprocess.run([sys.executable, "-m", "crawler", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def server_pid(cwd: Path) -> int:
    return int((cwd / ".crawl" / "valkey.pid").read_text())


def running(pid: int) -> bool:
    """True while the process runs; an exited one waiting to be reaped (a zombie) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class EmbeddedCrawl:
    cwd: Path
    spec: SiteSpec
    pids: list[int]  # the server's pid after seed, worker and export
    exported: list[dict[str, object]]


@pytest.fixture
def fresh_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty working directory; its embedded server is stopped afterwards."""
    yield tmp_path
    stop_server(tmp_path / ".crawl")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCrawl]:
    """Seed, crawl and export a small site through the embedded server."""
    cwd = tmp_path_factory.mktemp("fresh")
    try:
        with SiteServer(SiteSpec(hosts=2, pages=10)) as site:
            (cwd / "seeds.txt").write_text("\n".join(site.spec.seeds()) + "\n")
            pids = []
            assert crawl(cwd, "seed", "seeds.txt").returncode == 0
            pids.append(server_pid(cwd))
            worker = crawl(cwd, "worker", "--allow-private", "--delay", "0", "--quiet")
            assert worker.returncode == 0, worker.stderr
            pids.append(server_pid(cwd))
            assert crawl(cwd, "export", "out.jsonl").returncode == 0
            pids.append(server_pid(cwd))
            lines = (cwd / "out.jsonl").read_text(encoding="utf-8").splitlines()
            yield EmbeddedCrawl(cwd, site.spec, pids, [json.loads(line) for line in lines])
    finally:
        stop_server(cwd / ".crawl")


def test_seed_worker_and_export_work_without_any_redis_configured(
        embedded: EmbeddedCrawl) -> None:
    want = expected(embedded.spec)
    got = {str(r["url"]): (r["title"], r["links"]) for r in embedded.exported}
    assert got == want
    assert len(embedded.exported) == len(want)


def test_the_server_lives_in_the_working_directorys_crawl_home(embedded: EmbeddedCrawl) -> None:
    assert socket_path(home_dir(embedded.cwd / ".crawl")).is_socket()
    assert running(embedded.pids[0])


def test_commands_reuse_the_running_server(embedded: EmbeddedCrawl) -> None:
    assert len(set(embedded.pids)) == 1


def test_the_socket_and_its_directory_are_private(embedded: EmbeddedCrawl) -> None:
    home = embedded.cwd / ".crawl"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "valkey.sock").stat().st_mode) == 0o700


def test_the_server_listens_on_no_tcp_port(embedded: EmbeddedCrawl) -> None:
    client = sync_redis.Redis(unix_socket_path=str(embedded.cwd / ".crawl" / "valkey.sock"),
                              decode_responses=True)
    assert client.config_get("port") == {"port": "0"}
    client.close()


def test_server_stop_stops_it(fresh_dir: Path) -> None:
    (fresh_dir / "seeds.txt").write_text("http://127.0.0.2/a\n")
    crawl(fresh_dir, "seed", "seeds.txt")
    pid = server_pid(fresh_dir)
    result = crawl(fresh_dir, "server", "stop")
    assert result.returncode == 0 and "stopped" in result.stdout
    assert not running(pid)
    assert "not running" in crawl(fresh_dir, "server", "stop").stdout


def test_the_crawl_survives_a_stop_and_restart(fresh_dir: Path) -> None:
    (fresh_dir / "seeds.txt").write_text("http://127.0.0.2/a\nhttp://127.0.0.3/b\n")
    crawl(fresh_dir, "seed", "seeds.txt")
    first = server_pid(fresh_dir)
    crawl(fresh_dir, "server", "stop")
    status = crawl(fresh_dir, "status")
    assert status.returncode == 0
    assert server_pid(fresh_dir) != first
    assert json.loads(status.stdout)["queued"] == 2
    # Dedup survived as well: the same seeds are already seen.
    assert "added 0, already seen 2" in crawl(fresh_dir, "seed", "seeds.txt").stdout


def wait_for(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_server_stop_refuses_under_live_workers_who_restart_it_when_forced(
        fresh_dir: Path) -> None:
    # 60 pages 0.25 s apart: the crawl outlasts the status polls and the refused
    # stop even on a loaded machine (it must still be crawling when refused).
    spec = SiteSpec(hosts=1, pages=60, links=3)
    with SiteServer(spec) as site:
        (fresh_dir / "seeds.txt").write_text("\n".join(site.spec.seeds()) + "\n")
        assert crawl(fresh_dir, "seed", "seeds.txt").returncode == 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
        with open(fresh_dir / "worker.log", "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "crawler", "worker", "--allow-private", "--delay", "0.25",
                 "--quiet"], cwd=fresh_dir, env=env, stderr=log)
        try:
            def crawling() -> bool:
                status = json.loads(crawl(fresh_dir, "status").stdout)
                return bool(status["workers"] and status["done"] >= 3)

            wait_for(crawling)
            pid = server_pid(fresh_dir)
            refused = crawl(fresh_dir, "server", "stop")
            assert refused.returncode == 2
            assert "workers are crawling on this server: default (1)" in refused.stderr
            assert running(pid)
            forced = crawl(fresh_dir, "server", "stop", "--force")
            assert forced.returncode == 0 and "stopped" in forced.stdout
            assert not running(pid)
            # Once the worker has started the server again, the rest of the crawl
            # needs no spacing: a delay of 0 (live, within a second) ends it in
            # a second instead of ~10 s of 0.25 s steps.
            log = fresh_dir / "worker.log"
            wait_for(lambda: worker.poll() is not None or "started it again" in log.read_text())
            assert worker.poll() is None, log.read_text()  # it died before the restart
            assert crawl(fresh_dir, "config", "set", "delay=0").returncode == 0
            assert worker.wait(90) == 0, (fresh_dir / "worker.log").read_text()
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        spec = site.spec  # with its port
    assert "started it again" in (fresh_dir / "worker.log").read_text()
    assert server_pid(fresh_dir) != pid
    assert crawl(fresh_dir, "export", "out.jsonl").returncode == 0
    urls = [json.loads(line)["url"] for line in (fresh_dir / "out.jsonl").read_text().splitlines()]
    assert sorted(urls) == sorted(expected(spec))  # every page once: nothing lost to the stop


async def test_a_worker_on_its_own_client_never_starts_an_embedded_server(
        redis_url: str, tmp_path: Path) -> None:
    # Settings with no redis_url mean "the embedded server" to the commands, but
    # a library caller hands the worker its own client: an outage of that one
    # (a cluster's slot migration in tests/test_cluster.py) started a Valkey in
    # ./.crawl and left it running.
    from crawler.config import Settings
    from crawler.store.connection import make_client
    from crawler.worker import Worker

    home = tmp_path / "home"
    client = make_client(redis_url)
    try:
        worker = Worker(client, Settings(home=str(home), dedup_bucket_bits=12))
        await worker.revive_server()
    finally:
        await client.aclose()
    assert not home.exists()
