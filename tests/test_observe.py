"""Seeing a crawl whole: status fields, the live view, and Prometheus metrics.

The numbers must agree wherever they are shown: ``crawl status --json``,
``crawl status --watch``, ``crawl metrics`` and a worker's ``/metrics`` are
compared on a paused crawl, when nothing is in flight and nothing moves.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT
from fault_helpers import seed_sync, stats, wait_exit, wait_for
from rich.console import Console

from crawler.bench.sitegen import SiteServer, SiteSpec, free_port
from crawler.cli.watch import render

CRAWL = "observed"


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=60)


def status(redis_url: str) -> dict[str, Any]:
    done = cli("status", "--json", "--redis", redis_url, "--crawl", CRAWL)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text: str = resp.read().decode()
    return text


def sample(text: str, name: str, labels: str = "") -> float:
    """One sample's value from a Prometheus exposition (labels as printed, e.g. 'a="b"')."""
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in the metrics"
    return float(found.group(1))


@pytest.fixture(scope="module")
def paused_crawl(redis_url: str, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[dict[str, Any]]:
    """A crawl of a site with a host that refuses connections, paused mid-way with a
    worker serving /metrics; nothing in flight. Shared by the tests that only read."""
    import redis as sync_redis

    sync_redis.Redis.from_url(redis_url).flushdb()
    clean_redis, tmp_path = redis_url, tmp_path_factory.mktemp("observed")
    # 3 hosts, 2 requests in flight each, 0.2 s a response: 900 pages last 30 s.
    spec = SiteSpec(hosts=3, pages=300, links=6, page_bytes=600, port=free_port())
    closed = free_port("127.0.0.9")
    metrics_port, crawl_port = free_port(), free_port()
    log = tmp_path / "w.log"
    with SiteServer(spec, slow={ip: 0.2 for ip in spec.host_ips()}) as site:
        seed_sync(clean_redis, CRAWL, [*spec.seeds(),
                                       *(f"http://127.0.0.9:{closed}/{i}" for i in range(3))])
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "crawler", "worker", "--redis", clean_redis, "--crawl",
                 CRAWL, "--quiet", "--allow-private", "--delay", "0", "--max-per-host", "2",
                 "--metrics-port", str(metrics_port)],
                cwd=ROOT, env={**env(), "CRAWL_MAX_ATTEMPTS": "1"}, stderr=err,
                stdout=subprocess.DEVNULL)
        served = subprocess.Popen(
            [sys.executable, "-m", "crawler", "metrics", "--redis", clean_redis, "--crawl",
             CRAWL, "--port", str(crawl_port)], cwd=ROOT, env=env(),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: stats(clean_redis, CRAWL).get("done", 0) >= 60, 60, "60 results")
            # The rate: samples every 5 s; a few seconds in, the 10 s rate is known.
            wait_for(lambda: (status(clean_redis)["rate"]["last_10s"] or 0) > 0, 30,
                     "a pages/s figure")
            assert cli("pause", "--redis", clean_redis, "--crawl", CRAWL).returncode == 0
            wait_for(lambda: stats(clean_redis, CRAWL).get("leased", 0) == 0, 30,
                     "the fetches in flight to finish")
            wait_for(lambda: _answers(crawl_port), 30, "crawl metrics to answer")
            wait_for(lambda: _reported_all(clean_redis), 30, "a heartbeat after the pause")
            yield {"redis": clean_redis, "site": site, "worker": metrics_port,
                   "crawl": crawl_port, "status": status(clean_redis)}
        finally:
            served.terminate()
            cli("stop", "--redis", clean_redis, "--crawl", CRAWL)
            wait_exit([proc], 30)
            # SIGTERM handled, a clean exit: as a container's PID 1 (docker stop)
            # an unhandled SIGTERM is ignored until the grace period's SIGKILL.
            assert served.wait(10) == 0


def _reported_all(redis_url: str) -> bool:
    now = status(redis_url)
    return [w["pages"] for w in now["worker_list"]] == [now["done"]]


def _answers(port: int) -> bool:
    try:
        scrape(port)
        return True
    except OSError:
        return False


def test_status_counts_results_by_class_and_errors_by_type(
        paused_crawl: dict[str, Any]) -> None:
    s = paused_crawl["status"]
    assert s["crawl"]["state"] == "paused"
    assert s["status_classes"].get("2xx", 0) >= 60
    assert s["errors_by_type"] == {"connect_error": 3}
    assert sum(s["status_classes"].values()) + 3 == s["done"]
    assert s["eta_s"] is None or s["eta_s"] > 0
    [row] = s["worker_list"]
    assert row["alive"] and row["pages"] == s["done"]
    hosts = s["top_hosts"]
    assert hosts and hosts == sorted(hosts, key=lambda h: -h["queued"])
    assert sum(h["queued"] for h in hosts) <= s["queued"]


def test_metrics_and_the_live_view_show_the_numbers_status_shows(
        paused_crawl: dict[str, Any]) -> None:
    s = paused_crawl["status"]
    crawl_metrics = scrape(paused_crawl["crawl"])
    for name in ("queued", "leased", "done", "errors"):
        assert sample(crawl_metrics, f"crawl_{name}") == s[name], name
    assert sample(crawl_metrics, "crawl_state", 'state="paused"') == 1.0
    assert sample(crawl_metrics, "crawl_workers", 'alive="true"') == 1.0
    console = Console(record=True, width=160)
    console.print(render(s, {"this server": 1_000_000}, CRAWL))
    text = console.export_text()
    row = next(line for line in text.splitlines()
               if f" {s['queued']} " in line and f" {s['done']} " in line)
    assert str(s["errors"]) in row and "paused" in text
    worker_metrics = scrape(paused_crawl["worker"])
    assert sample(worker_metrics, "crawler_pages_total") == s["done"]
    assert sample(worker_metrics, "crawler_fetches_total", 'status_class="2xx"') == \
        s["status_classes"]["2xx"]
    assert sample(worker_metrics, "crawler_fetch_errors_total", 'type="connect_error"') == 3
    assert sample(worker_metrics, "crawler_fetch_duration_seconds_count") >= s["done"] - 3
    assert sample(worker_metrics, "crawler_fetches_in_flight") == 0
    assert sample(worker_metrics, "crawler_frontier_round_trips_total") > 0
    assert sample(worker_metrics, "crawler_robots_fetches_total") >= 3
    assert sample(worker_metrics, "crawler_claim_batch_size_count") > 0
    assert sample(worker_metrics, "crawler_response_bytes_total") > 60 * 600


def test_status_watch_draws_the_view_and_stops_on_ctrl_c(redis_url: str) -> None:
    seed_sync(redis_url, "watched", ["http://127.0.0.2:9/"])  # beside the paused crawl
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "status", "--watch", "--redis",
                             redis_url, "--crawl", "watched"], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=4)
    except subprocess.TimeoutExpired:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "queued" in out and "busiest hosts" in out and "127.0.0.2:9" in out


def test_status_watch_into_a_file_writes_each_frame_as_it_comes(redis_url: str,
                                                                 tmp_path: Path) -> None:
    """Not a terminal: frames one after another, each written at once (rich's Live
    drew nothing into a file until Ctrl-C)."""
    seed_sync(redis_url, "watched", ["http://127.0.0.2:9/"])
    log = tmp_path / "watch.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "crawler", "status", "--watch",
                                 "--redis", redis_url, "--crawl", "watched"], cwd=ROOT,
                                env=env(), stdout=out, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while log.read_text().count("busiest hosts") < 2 and time.monotonic() < deadline:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.2)
            written = log.read_text()  # while it still runs
        finally:
            proc.send_signal(2)
            _, err = proc.communicate(timeout=20)
    assert written.count("busiest hosts") >= 2 and "127.0.0.2:9" in written, written
    assert proc.returncode == 0, err


# -- who may scrape: loopback by default, a bearer token anywhere else -----------------------


def test_metrics_beyond_loopback_need_a_token_by_the_address() -> None:
    from crawler.errors import CrawlError
    from crawler.observe.metrics import required_token

    for host in ("127.0.0.1", "127.0.0.5", "::1", "[::1]", "localhost"):
        assert required_token(host, None, "x") is None, host
        assert required_token(host, "t0k", "x") == "t0k", host  # given: required there too
    for host in ("0.0.0.0", "::", "10.1.2.3", "192.168.1.7", "metrics.example"):
        with pytest.raises(CrawlError, match="needs a token"):
            required_token(host, None, "crawl metrics")
        with pytest.raises(CrawlError):
            required_token(host, "", "crawl metrics")  # an empty CRAWL_METRICS_TOKEN is none
        assert required_token(host, "t0k", "x") == "t0k"


def test_serving_metrics_beyond_loopback_without_a_token_is_refused_before_binding(
        redis_url: str) -> None:
    port = free_port()
    served = cli("metrics", "--redis", redis_url, "--crawl", "metricsauth", "--host", "0.0.0.0",
                 "--port", str(port))
    assert served.returncode == 2, served.stderr
    [line] = served.stderr.strip().splitlines()
    assert "crawl metrics on 0.0.0.0" in line and "needs a token" in line, line
    worker = subprocess.run(
        [sys.executable, "-m", "crawler", "worker", "--redis", redis_url, "--crawl",
         "metricsauth", "--metrics-port", str(port)], cwd=ROOT,
        env={**env(), "CRAWL_METRICS_HOST": "0.0.0.0"}, capture_output=True, text=True,
        timeout=60)
    assert worker.returncode == 2, worker.stderr
    assert "--metrics-port on 0.0.0.0" in worker.stderr and "needs a token" in worker.stderr


def _get(port: int, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except urllib.error.URLError:
        return 0, ""  # not listening yet


def test_with_a_token_every_scrape_must_send_it(redis_url: str) -> None:
    port = free_port()
    subprocess.run([sys.executable, "-m", "crawler", "seed", "--redis", redis_url, "--crawl",
                    "metricsauth", "-"], input="http://127.0.0.2/\n", text=True, cwd=ROOT,
                   env=env(), capture_output=True, check=True)  # only seed makes a crawl
    served = subprocess.Popen(
        [sys.executable, "-m", "crawler", "metrics", "--redis", redis_url, "--crawl",
         "metricsauth", "--port", str(port)], cwd=ROOT,
        env={**env(), "CRAWL_METRICS_TOKEN": "s3cret-scrape"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _get(port, {})[0] == 401, 30, "crawl metrics to answer")
        assert _get(port, {"Authorization": "Bearer wrong"})[0] == 401
        assert _get(port, {"Authorization": "Basic s3cret-scrape"})[0] == 401
        code, body = _get(port, {"Authorization": "Bearer s3cret-scrape"})
        assert code == 200 and "crawl_queued" in body
    finally:
        served.terminate()
        served.wait(10)


async def test_without_a_token_only_a_loopback_host_name_is_answered() -> None:
    from crawler.observe.metrics import serve

    async def render() -> bytes:
        return b"crawler_up 1\n"

    port = free_port()
    runner = await serve(render, "127.0.0.1", port, None)
    try:
        import asyncio

        ok = await asyncio.to_thread(_get, port, {})
        rebound = await asyncio.to_thread(_get, port, {"Host": f"evil.example:{port}"})
    finally:
        await runner.cleanup()
    assert ok == (200, "crawler_up 1\n")
    assert rebound[0] == 403  # a page on another name reaching 127.0.0.1 (DNS rebinding)
