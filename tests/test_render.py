"""Rendering pages that need JavaScript (crawler.net.browser, crawler.worker.render).

A real Chromium (Debian's ``chromium``, or ``browser_executable``) on a loopback
site with plain pages and three kinds of JavaScript page (tests/render_site.py):
``render = "auto"`` finds every page, renders exactly the JavaScript ones
(checked against the site's truth), takes titles and links from the DOM,
archives the DOM and a screenshot beside the response in the WARC file, and
stays within the host's politeness as the server's own request log shows it,
the pages' subrequests counted. The decisions and what ``auto`` learns per
host are checked without a browser. Faults (a browser or a worker killed, the
SSRF guard in a namespace of its own) are in tests/test_render_faults.py.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from politeness_site import Hit, Site, by_url, crawl, max_in_flight
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

from crawler import errors
from crawler.config import Settings, load_settings
from crawler.net.browser import BrowserPool, require_playwright
from crawler.net.browser_memory import browser_rss
from crawler.net.browser_routes import host_of
from crawler.net.fetch import Fetcher, Response
from crawler.pages.needs_js import RenderNote, link_count, needs_javascript
from crawler.worker.render import Rendering

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


def test_a_lease_shorter_than_a_fetch_and_a_render_stops_the_worker_at_start(
        caplog: pytest.LogCaptureFixture) -> None:
    """A lease is not renewed while its page renders: one that may expire mid-render is a
    settings error at start (a hook may ask for a second render), a warning when the
    crawl's settings change under a running worker."""
    fits = Settings(render="auto", lease_time=60, total_timeout=30, render_timeout=30,
                    browser_executable=CHROMIUM or "")
    rendering = Rendering(fits, None)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match=r"lease_time: 59 s is shorter .* = 60 s"):
        Rendering(fits.replace(lease_time=59), None)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigError, match=r"2 x render_timeout, with an extraction "
                                                 r"hook = 90 s"):
        Rendering(fits.replace(extract="extract_hooks:quick"), None)  # type: ignore[arg-type]
    Rendering(fits.replace(render="never", lease_time=1), None)  # type: ignore[arg-type]
    rendering.use(fits.replace(lease_time=10))
    assert rendering.settings.lease_time == 10
    assert "lease_time: 10 s is shorter" in caplog.text


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
    assert found["/api-page"]["render_blocked"] == {"robots": 1}
    paths = [h.path for h in hits]
    assert "/static/logo.png" not in paths
    assert paths.count("/api/items") == 1 and "/api/secret" not in paths
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
