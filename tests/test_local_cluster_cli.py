"""``crawl server start --cluster 3 --replicas 1``: a local cluster from the bundled binary,
used by seed and status through the URL it prints, then ``crawl server stop --cluster``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis as sync_redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def run_crawl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=100, check=False)


def answers(port: int) -> bool:
    client = sync_redis.Redis(host="127.0.0.1", port=port, socket_timeout=2,
                              retry=Retry(NoBackoff(), 0))  # a stopped node: no retries
    try:
        return bool(client.ping())
    except sync_redis.RedisError:
        return False


def test_a_local_cluster_starts_serves_a_crawl_and_stops(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    started = run_crawl("server", "start", "--home", home, "--cluster", "3", "--replicas", "1",
                        cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("redis+cluster://127.0.0.1:") and url.count(",") == 2
        assert "crawl server stop --cluster" in started.stderr
        ports = json.loads((tmp_path / "home" / "cluster" / "cluster.json").read_text())["nodes"]
        assert len(ports) == 6 and all(answers(p) for p in ports)
        roles = [sync_redis.Redis(host="127.0.0.1", port=p).info("replication")["role"]
                 for p in ports]
        assert sorted(roles) == ["master"] * 3 + ["slave"] * 3

        (tmp_path / "seeds.txt").write_text("http://127.0.0.2/a\nhttp://127.0.0.3/b\n")
        seeded = run_crawl("seed", "--redis", url, "seeds.txt", cwd=tmp_path)
        assert seeded.returncode == 0, seeded.stderr
        assert "added 2, already seen 0, invalid 0" in seeded.stdout
        status = run_crawl("status", "--redis", url, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert sum(s["queued"] for s in report["by_shard"]) == 2
        assert len({s["node"] for s in report["by_shard"]}) == 3  # shards on every master

        again = run_crawl("server", "start", "--home", home, "--cluster", "3", "--replicas",
                          "1", cwd=tmp_path)
        assert again.returncode == 0 and again.stdout.strip() == url  # reused, not a second
        assert "already running" in again.stderr
        plain = run_crawl("server", "stop", "--home", home, cwd=tmp_path)  # no --cluster
        assert plain.returncode == 0 and "crawl server stop --cluster" in plain.stdout
        assert all(answers(p) for p in ports)  # a hint, nothing stopped
    finally:
        stopped = run_crawl("server", "stop", "--home", home, "--cluster", cwd=tmp_path)
    assert stopped.returncode == 0 and stopped.stdout.strip() == "stopped", stopped.stderr
    assert not any(answers(p) for p in ports)
    assert not (tmp_path / "home" / "cluster").exists()
    gone = run_crawl("server", "stop", "--home", home, "--cluster", cwd=tmp_path)
    assert gone.stdout.strip() == "no local cluster"
