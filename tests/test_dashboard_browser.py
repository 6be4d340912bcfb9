"""crawl dashboard in a real browser: headless Chromium (Debian's) driven by Playwright.

A real crawl (a ``crawl worker`` process on a generated, slowed site on
127.0.0.2+) and a real ``crawl dashboard`` process. The page must show the
counters moving; its Pause button must stop the workers claiming, as the
site's own request log shows; Resume must start them again. The screenshot
is kept at artifacts/dashboard.png.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from crawl_helpers import ROOT, start_worker
from fault_helpers import seed_sync, wait_exit, wait_for

from crawler.bench.sitegen import SiteServer, SiteSpec, free_port

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "artifacts" / "dashboard.png"
TOKEN = "browser-test-token-0123456789"
WAIT_MS = 30_000

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium; "
           ".ci/run installs it)")


def starts(site: SiteServer) -> list[float]:
    with site.log.lock:
        return sorted(start for _, _, start, _ in site.log.entries)


def answers(url: str) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def create_crawl(redis_url: str, name: str) -> None:
    """Record the crawl's layout, as seeding does: only seed creates a crawl, and
    the dashboard is opened on one that exists (before any URL is seeded)."""
    import asyncio

    from redis.asyncio import Redis

    from crawler.config import Settings
    from crawler.store.layout import crawl_layout

    async def main() -> None:
        client = Redis.from_url(redis_url)
        try:
            await crawl_layout(client, Settings(redis_url=redis_url, crawl=name))
        finally:
            await client.aclose()

    asyncio.run(main())


@pytest.fixture
def dashboard(clean_redis: str, tmp_path: Path) -> Iterator[str]:
    create_crawl(clean_redis, "browser")
    port = free_port()
    with open(tmp_path / "dashboard.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "crawler", "dashboard", "--redis", clean_redis,
             "--crawl", "browser", "--port", str(port), "--token", TOKEN],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(base + "/api/status") or proc.poll() is not None, 30,
                 "the dashboard to answer")
        assert proc.poll() is None, (tmp_path / "dashboard.log").read_text()
        printed = (tmp_path / "dashboard.log").read_text()
        assert f"{base}/?token={TOKEN}" in printed, printed  # the URL to open, printed
        yield base
    finally:
        proc.terminate()
        assert wait_exit([proc], 20) == [0], (tmp_path / "dashboard.log").read_text()


def test_the_dashboard_shows_the_crawl_live_and_pauses_and_resumes_it(
        clean_redis: str, dashboard: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    # Two hosts, one fetch in flight each, 0.1 s a page: about 20 pages/s, a
    # crawl of 800 pages that outlasts the test.
    spec = SiteSpec(hosts=2, pages=400, links=4, page_bytes=600, port=free_port())
    log = tmp_path / "worker.log"
    problems: list[str] = []
    with SiteServer(spec, slow={ip: 0.1 for ip in spec.host_ips()}) as site:
        seed_sync(clean_redis, "browser", spec.seeds())
        worker = start_worker(clean_redis, "browser", "--max-per-host", "1", log=log)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM))
                try:
                    # Without the token: 401, the page and its API alike.
                    stranger = browser.new_page()
                    assert stranger.goto(dashboard + "/").status == 401  # type: ignore[union-attr]
                    assert stranger.goto(dashboard + "/api/status").status == 401  # type: ignore[union-attr]
                    stranger.close()

                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
                    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
                            if msg.type == "error" else None)
                    page.goto(f"{dashboard}/?token={TOKEN}")
                    assert page.url == dashboard + "/"  # the token left the address bar
                    expect(page.locator("#state")).to_have_text("running", timeout=WAIT_MS)
                    expect(page.locator("#crawl-name")).to_have_text("browser")

                    # The counters move.
                    first = done_shown(page)
                    page.wait_for_function(
                        f"() => Number(document.getElementById('c-done').textContent"
                        f".replace(/,/g, '')) >= {first + 10}", timeout=WAIT_MS)

                    # Pause: the workers stop claiming. Negative control: just before,
                    # requests were starting several times a second.
                    page.click("#pause")
                    expect(page.locator("#state")).to_have_text("paused", timeout=WAIT_MS)
                    paused_at = time.monotonic()
                    assert len([t for t in starts(site) if t > paused_at - 1.5]) >= 5
                    expect(page.locator("#c-leased")).to_have_text("0", timeout=WAIT_MS)
                    time.sleep(2.5)
                    late = [round(t - paused_at, 2) for t in starts(site) if t > paused_at + 1.0]
                    assert late == [], f"requests started after the pause: {late}"
                    done_paused = done_shown(page)
                    assert worker.poll() is None  # paused, not ended

                    # Resume: requests start again, and the page counts them.
                    page.click("#resume")
                    expect(page.locator("#state")).to_have_text("running", timeout=WAIT_MS)
                    resumed_at = time.monotonic()
                    wait_for(lambda: len([t for t in starts(site) if t > resumed_at]) >= 5,
                             30, "requests after resume")
                    page.wait_for_function(
                        f"() => Number(document.getElementById('c-done').textContent"
                        f".replace(/,/g, '')) > {done_paused + 5}", timeout=WAIT_MS)
                    expect(page.locator("#results tbody tr").first).to_be_visible()
                    page.wait_for_selector("#chart polyline", timeout=WAIT_MS)

                    SCREENSHOT.parent.mkdir(exist_ok=True)
                    page.screenshot(path=str(SCREENSHOT), full_page=True)
                finally:
                    browser.close()
        finally:
            subprocess.run([sys.executable, "-m", "crawler", "stop", "--redis", clean_redis,
                            "--crawl", "browser"], cwd=ROOT, capture_output=True, timeout=60)
            assert wait_exit([worker], 60) == [0], log.read_text()[-2000:]
    assert problems == []
    assert SCREENSHOT.stat().st_size > 10_000


def done_shown(page: object) -> int:
    text = page.locator("#c-done").text_content() or ""  # type: ignore[attr-defined]
    return int(text.replace(",", "")) if text.replace(",", "").isdigit() else 0


def test_the_page_renders_every_status_field_and_keeps_hostile_text_as_text(
        dashboard: str) -> None:
    """The fields crawl status may carry (workers, hosts, rates, errors by type): the
    stream is replaced by one crafted snapshot, so the page's rendering is checked
    whatever this crawl status reports."""
    import json

    from playwright.sync_api import Route, expect, sync_playwright

    now = time.time()
    hostile = '<img src=x onerror="window.pwned=1">'
    snap = {
        "time": now, "crawl_name": "browser", "error": "",
        "chart": [[now - 60 + i, float(i % 7)] for i in range(60)],
        "status": {
            "queued": 1234567, "leased": 8, "done": 4321, "errors": 12, "workers": 2,
            "workers_dead": 1, "crawl": {"state": "paused", "reason": "operator", "since": now},
            "rate": {"last_10s": 42.5, "last_5m": 40.25}, "eta_s": 9000,
            "worker_list": [
                {"id": "w-1", "node": "node-a", "pid": 101, "pages": 3000, "errors": 10,
                 "rate": 30.0, "in_flight": 4, "last_seen_s": 1.2, "alive": True},
                {"id": "w-2", "node": "node-b", "pid": 202, "pages": 1321, "errors": 2,
                 "rate": 0.0, "in_flight": 0, "last_seen_s": 90, "alive": False}],
            "errors_by_type": {"timeout": 7, "connect_error": 5},
            "status_classes": {"2xx": 4300, "3xx": 9, "4xx": 10, "5xx": 2},
            "top_hosts": [{"host": "big.example", "queued": 90000, "next_in_s": 0.5,
                           "held": "backoff"}],
            "held": {"hosts": 0, "urls": 0, "listed": []},
        },
        "results": [{"url": "http://a.example/" + hostile, "status": None,
                     "title": None, "elapsed_ms": 12.0, "fetched_at": "2026-11-28T05:00:00.000Z",
                     "error": {"type": "timeout", "message": hostile}}],
    }
    body = "retry: 60000\n\ndata: " + json.dumps(snap) + "\n\n"

    def crafted(route: Route) -> None:
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page()
            page.route("**/api/events", crafted)
            page.goto(f"{dashboard}/?token={TOKEN}")
            expect(page.locator("#state")).to_have_text("paused", timeout=WAIT_MS)
            expect(page.locator("#reason")).to_have_text("(operator)")
            expect(page.locator("#c-queued")).to_have_text("1,234,567")
            expect(page.locator("#c-rate10")).to_have_text("42.5")
            expect(page.locator("#c-eta")).to_have_text("2.5 h")
            expect(page.locator("#workers tbody tr")).to_have_count(2)
            expect(page.locator("#workers tbody tr.dead")).to_contain_text("node-b")
            expect(page.locator("#hosts tbody")).to_contain_text("big.example")
            expect(page.locator("#error-types tbody")).to_contain_text("timeout7")
            expect(page.locator("#status-classes tbody")).to_contain_text("5xx2")
            expect(page.locator("#results tbody tr.error")).to_contain_text(
                "timeout: " + hostile)
            expect(page.locator("#chart polyline")).to_have_count(1)
            assert page.locator("#results img").count() == 0
            assert page.evaluate("window.pwned") is None
        finally:
            browser.close()


def test_nothing_scrolls_sideways_at_1280_px(dashboard: str) -> None:
    """The chart (an SVG at 100% width with a border) fits its section: no sideways
    scroll bar on the chart's section, any other section, or the page, at 1280 px."""
    import json

    from playwright.sync_api import Route, sync_playwright

    now = time.time()
    snap = {"time": now, "crawl_name": "browser", "error": "",
            "chart": [[now - 3600 + i * 10, float(i % 9)] for i in range(360)],
            "status": {"queued": 10, "leased": 1, "done": 5, "errors": 0, "workers": 1,
                       "crawl": {"state": "running", "reason": "", "since": now}},
            "results": []}
    body = "retry: 60000\n\ndata: " + json.dumps(snap) + "\n\n"

    def crafted(route: Route) -> None:
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/api/events", crafted)
            page.goto(f"{dashboard}/?token={TOKEN}")
            page.wait_for_selector("#chart polyline", timeout=WAIT_MS)
            wide = page.evaluate("""() => [...document.querySelectorAll('section')]
                .filter(s => s.scrollWidth > s.clientWidth)
                .map(s => (s.querySelector('h2') || s).textContent.trim().slice(0, 40)
                          + ': ' + s.scrollWidth + ' > ' + s.clientWidth)""")
            assert wide == []
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 1280
        finally:
            browser.close()
