"""Rendering pages that need JavaScript (crawler.net.browser, crawler.worker.render).

A real Chromium (Debian's ``chromium``, or ``browser_executable``) on a loopback
site with plain pages and three kinds of JavaScript page (tests/render_site.py):

- ``render = "auto"`` finds every page, renders exactly the JavaScript ones
  (checked against the site's truth), takes titles and links from the DOM,
  and stays within the host's politeness as the server's own request log
  shows it, the pages' subrequests counted;
- a browser killed while a page renders is a retry, not a lost URL;
- the SSRF guard refuses what a rendered page asks of 127.0.0.1 and
  169.254.169.254, in a network namespace of its own (``unshare -n``).

A crawl starts its worker's browser once (about 2 s); the module runs three.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from crawl_helpers import start_worker
from fault_helpers import by_url as exactly_once
from fault_helpers import leased_urls_of, read_results, seed_sync, wait_exit
from politeness_site import Hit, Site, by_url, crawl, max_in_flight
from redis.asyncio import Redis
from render_site import ALL_PAGES, JS_PAGES, SUBREQUEST_PREFIXES, handler

from crawler import errors
from crawler.config import Settings, load_settings
from crawler.net.browser import BrowserPool, browser_rss, host_of, require_playwright
from crawler.net.fetch import Fetcher, Response
from crawler.pages.needs_js import RenderNote, link_count, needs_javascript
from crawler.worker.render import Rendering

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH")
IN_NETNS = "CRAWL_TEST_IN_NETNS"


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"


# -- deciding -------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    (b"<html><body><noscript>You need to enable JavaScript to run this app.</noscript>"
     b"<div id=root></div><script src=/main.js></script></body></html>", "noscript"),
    (b'<html><body><div id="app"></div><script src="/bundle.js"></script></body></html>',
     "app_root"),
    (b"<html><body><p>Hi</p><script src=/x.js></script></body></html>", "empty_body"),
    (b"<html><body><p>Hi</p><a href=/a>a</a><a href=/b>b</a><a href=/c>c</a>"
     b'<div id="root"></div><script src=/x.js></script></body></html>', None),
    (b"<html><body><p>" + b"words " * 100 + b"</p><script src=/x.js></script></body></html>",
     None),
    (b"<html><body><div id=root></div></body></html>", None),  # no script: nothing to run
])
def test_a_page_that_needs_javascript_is_told_from_one_that_does_not(
        body: bytes, reason: str | None) -> None:
    assert needs_javascript(body) == reason


def test_render_per_host_pattern_comes_from_the_hosts_tables(tmp_path: Path) -> None:
    path = tmp_path / "crawl.toml"
    path.write_text('[render]\nrender = "never"\n[hosts."app.example.com"]\nrender = "always"\n'
                    '[hosts."slow.example.com"]\ndelay = 2\n')
    settings = load_settings(path, env={})
    assert settings.host_render == {"app.example.com": "always"}
    assert set(settings.host_overrides) == {"slow.example.com"}  # render alone: no override
    path.write_text('[hosts."a.test"]\nrender = "sometimes"\n')
    with pytest.raises(errors.ConfigError, match=r"hosts\.a\.test\.render"):
        load_settings(path, env={})


def test_rendering_without_playwright_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "playwright" else real(name, *a))
    with pytest.raises(errors.ConfigError, match=r"pip install 'crawler\[browser\]'"):
        require_playwright()


def plain(body: bytes, status: int = 200) -> Response:
    return Response(url="http://a.test/", final_url="http://a.test/", status=status,
                    content_type="text/html", charset="utf-8", body=body, headers={},
                    elapsed=0.01)


SHELL = b'<html><body><div id="app"></div><script src="/app.js"></script></body></html>'
STATIC = b"<html><body><p>" + b"words " * 60 + b"</p><a href=/a>a</a></body></html>"


def test_auto_stops_rendering_a_host_whose_renders_found_no_more_links() -> None:
    rendering = Rendering(Settings(render="auto", render_learn_pages=2), None)  # type: ignore[arg-type]
    assert rendering.decide("a.test", plain(SHELL)) == RenderNote(True, "app_root")
    rendering._learn("a.test", plain_links=1, rendered_links=1)
    assert rendering.decide("a.test", plain(SHELL)) == RenderNote(True, "app_root")
    rendering._learn("a.test", plain_links=1, rendered_links=0)
    assert rendering.decide("a.test", plain(SHELL)) == RenderNote(False, "host_static")
    assert rendering.decide("b.test", plain(SHELL)) == RenderNote(True, "app_root")  # per host
    assert rendering.decide("a.test", plain(STATIC)) == RenderNote(False, "static")


def test_auto_renders_every_page_of_a_host_whose_renders_found_many_more_links() -> None:
    rendering = Rendering(Settings(render="auto", render_learn_pages=2), None)  # type: ignore[arg-type]
    for _ in range(2):
        assert rendering.decide("a.test", plain(STATIC)) == RenderNote(False, "static")
        rendering._learn("a.test", plain_links=1, rendered_links=12)
    assert rendering.decide("a.test", plain(STATIC)) == RenderNote(True, "host_needs_js")
    assert rendering.decide("b.test", plain(STATIC)) == RenderNote(False, "static")


def test_render_of_a_host_pattern_overrides_the_crawls() -> None:
    settings = Settings(render="never", host_render={"app.test": "always", "x.app.test": "never"})
    rendering = Rendering(settings, None)  # type: ignore[arg-type]
    assert rendering.decide("www.app.test", plain(STATIC)) == RenderNote(True, "always")
    assert rendering.decide("x.app.test", plain(SHELL)) is None
    assert rendering.decide("other.test", plain(SHELL)) is None  # no fields in its record
    assert rendering.decide("app.test", plain(SHELL, status=404)) == RenderNote(False, "status")


def test_a_subrequests_host_is_compared_without_its_default_port() -> None:
    assert host_of("http://A.test:80/x") == host_of("http://a.test/y") == "a.test"
    assert host_of("http://127.0.0.2:8080/") == "127.0.0.2:8080"


# -- crawling the site ------------------------------------------------------------------------


Records = dict[str, tuple[str, bytes]]


def warc_records(directory: Path) -> tuple[Records, Records, Records]:
    """URL -> (record id, payload) of the response records, and URL -> (WARC-Refers-To,
    payload) of the conversion and the (screenshot) resource records, as warcio reads them."""
    from warcio.archiveiterator import ArchiveIterator

    responses: Records = {}
    conversions: Records = {}
    screenshots: Records = {}
    for path in sorted(directory.glob("*.warc.gz*")):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                url = record.rec_headers.get_header("WARC-Target-URI")
                if record.rec_type == "response":
                    responses[url] = (record.rec_headers.get_header("WARC-Record-ID"),
                                      record.content_stream().read())
                elif record.rec_type == "conversion":
                    assert record.rec_headers.get_header("Content-Type").startswith("text/html")
                    conversions[url] = (record.rec_headers.get_header("WARC-Refers-To"),
                                        record.content_stream().read())
                elif record.rec_type == "resource":
                    assert record.rec_headers.get_header("Content-Type") == "image/png"
                    screenshots[url] = (record.rec_headers.get_header("WARC-Refers-To"),
                                        record.content_stream().read())
    return responses, conversions, screenshots


def bursts(hits: list[Hit]) -> list[list[Hit]]:
    """The server's log cut at each request that is not a subrequest: a page (or
    robots.txt) and the subrequests its render made."""
    out: list[list[Hit]] = []
    for hit in sorted(hits, key=lambda h: h.start):
        if hit.path.startswith(SUBREQUEST_PREFIXES) and out:
            out[-1].append(hit)
        else:
            out.append([hit])
    return out


def render_settings(settings: Settings, **changes: Any) -> Settings:
    given: dict[str, Any] = {"render": "auto", "browser_executable": CHROMIUM or "",
                             "max_per_host": 1, "render_timeout": 15.0}
    return settings.replace(**(given | changes))


@needs_chromium
async def test_auto_renders_only_the_javascript_pages_finds_every_page_and_stays_polite(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    delay = 0.2
    settings = render_settings(settings, delay=delay, render_wait="a[href]",
                               warc_dir=str(tmp_path / "warc"), render_screenshot=True)
    with Site(handler) as site:
        records = by_url(await crawl(redis, settings, [site.url("127.0.0.2")], limit=60))
        hits = list(site.hits)
    found = {path_of(url): r for url, r in records.items()}
    assert set(found) == ALL_PAGES
    assert {p for p, r in found.items() if r["rendered"]} == JS_PAGES
    assert all(r["render_reason"] == "static" for p, r in found.items() if p not in JS_PAGES)
    assert found["/scripted"]["render_reason"] == "noscript"
    assert found["/app/about"]["render_reason"] == "app_root"
    # title and links come from the rendered DOM
    assert found["/app/about"]["title"] == "App: About"
    assert found["/app/about"]["links"] == 2
    assert found["/api-page"]["links"] == 3
    # the image the app asks for is refused, never requested; the API is a subrequest
    assert found["/app/"]["render_blocked"] == {"image": 1}
    assert found["/api-page"]["render_subrequests"] == 1
    paths = [h.path for h in hits]
    assert "/static/logo.png" not in paths
    assert paths.count("/api/items") == 1
    assert all(paths.count(p) == 1 for p in ALL_PAGES)  # the document is not fetched twice
    # WARC: each rendered page's response as fetched, then its DOM as a conversion record
    responses, conversions, screenshots = warc_records(tmp_path / "warc")
    assert {path_of(url) for url in conversions} == JS_PAGES == \
        {path_of(url) for url in screenshots}
    for url, (refers_to, html) in conversions.items():
        assert responses[url][0] == refers_to == screenshots[url][0]
        assert link_count(html) > link_count(responses[url][1]) == 0
        assert screenshots[url][1].startswith(b"\x89PNG\r\n")
    assert b"<title>App: About</title>" in conversions[site.url("127.0.0.2", "/app/about")][1]
    # politeness, from the server's own log: one request at a time, page starts the
    # delay apart, and after a render the host rests the delay for each subrequest.
    tolerance = 0.03
    assert max_in_flight([(h.start, h.end) for h in hits]) == 1
    groups = bursts(hits)
    assert sum(len(g) - 1 for g in groups) >= 5  # the renders' subrequests were counted
    for before, after in itertools.pairwise(groups):
        assert after[0].start - before[0].start >= delay - tolerance, (before, after)
        rest = delay * (len(before) - 1)
        assert after[0].start - before[-1].start >= rest - tolerance, (before, after)


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


def browser_pids(root: int | None = None) -> list[int]:
    """The descendants of ``root`` (this process) that are Chromium."""
    me, out = os.getpid() if root is None else root, []
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            names[int(name)] = stat[stat.index("(") + 1:stat.rindex(")")]
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor)
        if ancestor == me and "chrom" in names[pid]:
            out.append(pid)
    return out


@needs_chromium
async def test_the_browser_is_restarted_every_render_restart_pages_pages() -> None:
    settings = Settings(render="always", render_restart_pages=2, render_wait="a[href]",
                        browser_executable=CHROMIUM or "")
    page = plain(b"<html><body><div id=root></div><script>document.getElementById('root')"
                 b".innerHTML = '<a href=/x>x</a>'</script></body></html>")
    async with Fetcher(settings) as fetcher:
        pool = BrowserPool(settings, fetcher)
        try:
            for _ in range(3):  # the document is answered from `page`: no network at all
                done = await pool.render(page)
                assert link_count(done.response.body) == 1
            assert pool.launches == 2 and pool.rendered == 3
            assert browser_rss() > 10_000_000  # the browser of this process, counted
        finally:
            await pool.close()
    assert wait_gone(browser_pids(), 10) == []  # closed with the pool


def test_browser_memory_counts_only_this_process_browser_descendants() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert browser_rss() == 0  # a python child is not a browser
        assert browser_rss(child.pid) == 0
    finally:
        child.kill()
        child.wait()


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
             f"-p no:cacheprovider tests/test_render.py::test_ssrf_case")
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
    env = {"CRAWL_RENDER": "auto", "CRAWL_RENDER_WAIT": "a[href]", "CRAWL_MAX_PER_HOST": "4",
           "CRAWL_BROWSER_EXECUTABLE": CHROMIUM or "", "CRAWL_RENDER_CONCURRENCY": "4",
           "CRAWL_HOME": str(tmp_path / "home")}
    log = tmp_path / "workers.log"
    with Site(slow_subrequests) as site:
        seed_sync(clean_redis, crawl_name, [site.url("127.0.0.2")])
        first = start_worker(clean_redis, crawl_name, "--lease-time", "5", log=log, env=env)
        browsers: list[int] = []
        try:
            assert rendering.wait(30), log.read_text()[-2000:]
            assert leased_urls_of(clean_redis, crawl_name, first.pid), "nothing in flight"
            browsers = browser_pids(first.pid)
        finally:
            first.kill()  # SIGKILL: no shutdown, the leases stay behind
            first.wait()
        second = start_worker(clean_redis, crawl_name, "--lease-time", "5", log=log, env=env)
        assert wait_exit([second], timeout=90) == [0], log.read_text()[-2000:]
    records = read_results(clean_redis, crawl_name)
    found = {path_of(url): r for url, r in exactly_once(records).items()}  # fails on a dup
    assert set(found) == ALL_PAGES
    assert [r["error"] for r in found.values() if r["error"]] == []
    assert {p for p, r in found.items() if r["rendered"]} == JS_PAGES
    assert browsers
    assert wait_gone(browsers, 15) == []  # the killed worker's browser went with it


def wait_gone(pids: list[int], within: float) -> list[int]:
    """The ``pids`` still alive after ``within`` seconds; those are then killed (they are
    this test's own)."""
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return alive

