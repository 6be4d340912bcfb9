"""No stall: a URL whose host can never be fetched ends with a record, and a held host is visible.

From the defaults: the SSRF guard on and robots.txt obeyed. A blocked
address ends its URLs at once without a robots.txt request; a host that
stays unreachable ends its URLs after robots.txt's retry budget instead of
holding them for robots_error_ttl per round.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web
from crawl_helpers import ROOT, seed_urls
from fault_helpers import read_results, seed_sync, wait_for
from politeness_site import Site, html

from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.store.connection import connect
from crawler.store.layout import crawl_layout
from crawler.worker import Worker


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return {**env, "CRAWL_HOME": str(tmp_path / "home")}


def _crawl_cli(redis_url: str, crawl: str, *flags: str, tmp_path: Path,
               timeout: float = 60) -> tuple[int, float, str]:
    """Run ``crawl worker`` with the defaults plus ``flags``; (exit code, seconds, stderr)."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "crawler", "worker", "--redis", redis_url,
                           "--crawl", crawl, "--quiet", *flags], cwd=ROOT, env=_env(tmp_path),
                          capture_output=True, timeout=timeout)
    return proc.returncode, time.monotonic() - started, proc.stderr.decode()


def _types(records: list[dict[str, object]]) -> dict[str, str | None]:
    return {str(r["url"]): (r["error"] or {}).get("type") for r in records  # type: ignore[attr-defined]
            }


def test_blocked_addresses_end_at_once_with_robots_obeyed(clean_redis: str,
                                                         tmp_path: Path) -> None:
    # Loopback literals stand for 169.254.169.254: the guard refuses both kinds
    # the same way, before connecting (test_fetch checks the metadata address).
    urls = [f"http://127.0.0.50:{free_port('127.0.0.50')}/ok", "http://127.0.0.51/latest/"]
    seed_sync(clean_redis, "blocked", urls)
    code, seconds, err = _crawl_cli(clean_redis, "blocked", tmp_path=tmp_path)
    assert code == 0, err
    records = read_results(clean_redis, "blocked")
    assert _types(records) == {u: "blocked_address" for u in urls}
    assert all("robots" not in str(r["error"]) for r in records)
    assert seconds < 15, f"took {seconds:.1f}s"


async def test_blocked_urls_end_within_5_seconds_from_the_defaults(clean_redis: str) -> None:
    client = await connect(Settings(redis_url=clean_redis))
    settings = await crawl_layout(client, Settings(redis_url=clean_redis, crawl="blocked5"))
    try:
        await seed_urls(client, settings, ["http://127.0.0.50:18100/ok",
                                           "http://127.0.0.51/latest/meta-data/"])
        started = time.monotonic()
        async with asyncio.timeout(30):
            await Worker(client, settings).run()
        took = time.monotonic() - started
        stats = await Worker(client, settings).frontier.stats()
    finally:
        await client.aclose()
    assert (stats["done"], stats["errors"], stats["queued"]) == (2, 2, 0)
    assert took < 5.0, f"took {took:.1f}s"


def test_a_dead_host_beside_live_ones_ends_as_a_connect_error(clean_redis: str,
                                                             tmp_path: Path) -> None:
    async def page(_: web.Request) -> web.Response:
        return html()

    dead = f"http://[::1]:{free_port('::1')}/"  # nothing listens there
    with Site(page) as site:
        live = [site.url("127.0.0.2", f"/{i}") for i in range(3)]
        seed_sync(clean_redis, "dead", [dead, *live])
        # The defaults (1 s between requests a host, 3 attempts) but loopback allowed.
        code, seconds, err = _crawl_cli(clean_redis, "dead", "--allow-private",
                                        tmp_path=tmp_path)
    assert code == 0, err
    types = _types(read_results(clean_redis, "dead"))
    assert types[dead] == "connect_error"
    assert all(types[u] is None for u in live)
    assert seconds < 30, f"took {seconds:.1f}s"


def test_status_and_the_progress_line_show_held_hosts_and_why(
        clean_redis: str, tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.Response:
        if request.host.startswith("127.0.0.2"):  # overloaded: come back in 4 s
            return web.Response(status=429, headers={"Retry-After": "4"})
        return html()

    with Site(handler, ips=("127.0.0.2", "127.0.0.3")) as site:
        urls = [site.url("127.0.0.2", "/a"), site.url("127.0.0.2", "/b"),
                site.url("127.0.0.3", "/c")]
        seed_sync(clean_redis, "held", urls)
        env = _env(tmp_path)
        log = tmp_path / "worker.log"
        with open(log, "w") as err:
            worker = subprocess.Popen(
                [sys.executable, "-m", "crawler", "worker", "--redis", clean_redis, "--crawl",
                 "held", "--allow-private", "--delay", "0", "--ignore-robots"], cwd=ROOT, env=env,
                stderr=err)
        try:
            def held() -> dict[str, object]:
                out = subprocess.run([sys.executable, "-m", "crawler", "status", "--redis",
                                      clean_redis, "--crawl", "held"], cwd=ROOT, env=env,
                                     capture_output=True, text=True, check=True).stdout
                return json.loads(out)["held"]  # type: ignore[no-any-return]

            wait_for(lambda: held()["urls"] == 2, 30, "the 429 host to be held")
            status = held()
            [listed] = status["listed"]  # type: ignore[misc]
            assert (listed["host"], listed["reason"], listed["queued"]) == (
                f"127.0.0.2:{site.port}", "retry-after", 2)
            assert 0 < listed["seconds_left"] <= 4
            # The progress line, every 2 s, says so too.
            wait_for(lambda: "held 2 (retry-after 2)" in log.read_text(), 10, "the progress line")
        finally:
            worker.terminate()
            worker.wait(30)
