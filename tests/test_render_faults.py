"""Rendering under faults and attacks (crawler.net.browser, crawler.worker.render).

- a browser killed while a page renders is a retry, not a lost URL;
- a ``crawl worker`` killed while its pages render loses nothing, and its
  browser goes with it;
- the SSRF guard refuses what a rendered page asks of 127.0.0.1 and
  169.254.169.254, in a network namespace of its own (``unshare -n``), the
  site itself on loopback with only its own address allowed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from aiohttp import web
from crawl_helpers import start_worker
from fault_helpers import by_url as exactly_once
from fault_helpers import leased_urls_of, read_results, seed_sync, wait_exit
from politeness_site import Site, by_url, crawl
from redis.asyncio import Redis
from render_site import (
    ALL_PAGES,
    CHROMIUM,
    JS_PAGES,
    SUBREQUEST_PREFIXES,
    browser_pids,
    handler,
    needs_chromium,
    path_of,
    render_settings,
    wait_gone,
)

from crawler.config import Settings

ROOT = Path(__file__).resolve().parent.parent
IN_NETNS = "CRAWL_TEST_IN_NETNS"


@needs_chromium
async def test_a_browser_killed_while_a_page_renders_is_a_retry_not_a_lost_url(
        redis: Redis, settings: Settings) -> None:
    held = threading.Event()  # set on the server's thread
    calls = 0

    async def site_handler(request: web.Request) -> web.StreamResponse:
        nonlocal calls
        if request.path == "/api/slow":
            calls += 1
            if calls == 1:  # the first render waits here while its browser is killed
                held.set()
                await asyncio.sleep(3)
            return web.Response(text="[]", content_type="application/json")
        return await handler(request)

    settings = render_settings(settings, render="always", delay=0.0)
    page = ("<html><body><div id=app></div><script>fetch('/api/slow').then(() => "
            "document.getElementById('app').innerHTML = '<a href=\"/plain/a\">a</a>')</script>"
            "</body></html>")

    async def shell(request: web.Request) -> web.StreamResponse:
        if request.path == "/shell":
            return web.Response(text=page, content_type="text/html")
        return await site_handler(request)

    with Site(shell) as site:
        async def kill_browser() -> int:
            await asyncio.to_thread(held.wait, 30)
            killed = 0
            for pid in browser_pids():
                os.kill(pid, signal.SIGKILL)  # the browser this test's worker started
                killed += 1
            return killed

        killer = asyncio.create_task(kill_browser())
        records = by_url(await crawl(redis, settings.replace(include=(r"/shell$",)),
                                     [site.url("127.0.0.2", "/shell")], limit=60))
        assert await killer > 0
    [record] = records.values()
    assert record["error"] is None
    assert record["attempts"] == 2
    assert record["rendered"] is True and record["links"] == 1


# -- the SSRF guard, in a network namespace of its own ----------------------------------------


def test_a_rendered_pages_requests_to_private_addresses_are_refused_in_a_namespace() -> None:
    """Re-runs ``ssrf_case`` under ``unshare -n``: nothing can leave the machine."""
    if os.environ.get(IN_NETNS):
        pytest.skip("the outer test runs this")
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2)")
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -n is not permitted here: {probe.stderr.decode().strip()}")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CRAWL_", "PYTEST_XDIST"))}
    env[IN_NETNS] = "1"
    inner = (f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:randomly -n0 "
             f"-p no:cacheprovider tests/test_render_faults.py::test_ssrf_case")
    done = subprocess.run(["unshare", "-n", "sh", "-c", inner], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout


@pytest.mark.skipif(not os.environ.get(IN_NETNS), reason="run inside unshare -n by the test above")
async def test_ssrf_case(redis: Redis, settings: Settings) -> None:
    async def secret_handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="secret")

    secret = Site(secret_handler, ips=("127.0.0.1",))
    page = ("<html><body><div id=root></div><script>"
            f"fetch('http://127.0.0.1:{secret.port}/steal').catch(() => 0);"
            "fetch('http://169.254.169.254/latest/meta-data/').catch(() => 0);"
            "fetch('http://[::ffff:127.0.0.1]:" f"{secret.port}/v6').catch(() => 0);"
            "document.getElementById('root').innerHTML = '<a href=\"/plain/a\">a</a>';"
            "</script></body></html>")

    async def site_handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/ssrf":
            return web.Response(text=page, content_type="text/html")
        return await handler(request)

    # The site is on loopback too: only its own address is allowed, not the rest.
    settings = render_settings(settings, render="always", delay=0.0, allow_private=False,
                               render_other_hosts=True,  # the guard alone stands in the way
                               allow_cidrs=("127.0.0.5/32",), include=(r"/ssrf$",))
    with secret, Site(site_handler, ips=("127.0.0.5",)) as site:
        records = by_url(await crawl(redis, settings, [site.url("127.0.0.5", "/ssrf")],
                                     limit=60))
        assert secret.hits == []
    [record] = records.values()
    assert record["rendered"] is True and record["links"] == 1
    assert record["render_blocked"] == {"blocked_address": 3}


# -- a worker killed while pages render --------------------------------------------------------


@needs_chromium
def test_a_worker_killed_while_pages_render_loses_nothing(clean_redis: str,
                                                          tmp_path: Path) -> None:
    """kill -9 of a ``crawl worker`` while its browser renders; a second worker takes the
    leases back when they expire: every page has exactly one result, none an error."""
    rendering = threading.Event()

    async def slow_subrequests(request: web.Request) -> web.StreamResponse:
        if request.path.startswith(SUBREQUEST_PREFIXES):
            rendering.set()
            await asyncio.sleep(0.2)  # renders take a while: the kill lands inside one
        return await handler(request)

    crawl_name = "renderkill"
    # Every page of the site shows a link once rendered: waiting for one is quicker
    # than waiting for the network to be idle.
    # A lease must outlast a fetch and a render (lease_time >= total_timeout +
    # render_timeout, or the worker will not start): short ones, for a quick reclaim.
    # 9 s to render, not 5: under two busy loops a render of /api-page once met its
    # time before its items arrived, so the pages they link to were never found.
    env = {"CRAWL_RENDER": "auto", "CRAWL_RENDER_WAIT": "a[href]", "CRAWL_MAX_PER_HOST": "4",
           "CRAWL_TOTAL_TIMEOUT": "3", "CRAWL_RENDER_TIMEOUT": "9",
           "CRAWL_BROWSER_EXECUTABLE": CHROMIUM or "", "CRAWL_RENDER_CONCURRENCY": "4",
           "CRAWL_HOME": str(tmp_path / "home")}
    log = tmp_path / "workers.log"
    with Site(slow_subrequests) as site:
        seed_sync(clean_redis, crawl_name, [site.url("127.0.0.2")])
        first = start_worker(clean_redis, crawl_name, "--lease-time", "12", log=log, env=env)
        browsers: list[int] = []
        try:
            assert rendering.wait(30), log.read_text()[-2000:]
            assert leased_urls_of(clean_redis, crawl_name, first.pid), "nothing in flight"
            browsers = browser_pids(first.pid)
        finally:
            first.kill()  # SIGKILL: no shutdown, the leases stay behind
            first.wait()
        second = start_worker(clean_redis, crawl_name, "--lease-time", "12", log=log, env=env)
        assert wait_exit([second], timeout=90) == [0], log.read_text()[-2000:]
    records = read_results(clean_redis, crawl_name)
    found = {path_of(url): r for url, r in exactly_once(records).items()}  # fails on a dup
    renders = {p: (r["rendered"], r.get("render_wait"), r["links"]) for p, r in found.items()
               if p in JS_PAGES}
    assert set(found) == ALL_PAGES, renders
    assert [r["error"] for r in found.values() if r["error"]] == []
    assert {p for p, r in found.items() if r["rendered"]} == JS_PAGES
    assert browsers
    assert wait_gone(browsers, 15) == []  # the killed worker's browser went with it


def test_a_worker_whose_lease_may_expire_mid_render_stops_at_start_with_one_line(
        clean_redis: str, tmp_path: Path) -> None:
    """A lease is not renewed while its page renders: ``crawl worker`` refuses a lease_time
    shorter than a fetch and a render, before it claims anything."""
    seed_sync(clean_redis, "shortlease", ["http://127.0.0.2:9/"])
    log = tmp_path / "worker.log"
    env = {"CRAWL_RENDER": "auto", "CRAWL_BROWSER_EXECUTABLE": CHROMIUM or ""}
    worker = start_worker(clean_redis, "shortlease", "--lease-time", "20", log=log, env=env)
    assert wait_exit([worker], timeout=60) != [0]
    text = log.read_text()
    assert "lease_time: 20 s is shorter than a rendered page may hold its lease " \
           "(total_timeout + render_timeout = 60 s)" in text, text[-2000:]
    assert "Traceback" not in text and "now set for every worker" not in text  # not stored
    assert read_results(clean_redis, "shortlease") == []  # nothing claimed, nothing fetched
