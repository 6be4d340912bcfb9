"""``crawl bench render``: what rendering costs beside plain fetching.

A web server (a process of its own) serves the same site twice on
127.0.0.2 ... : ``/plain/<i>`` pages with their links in the HTML, and
``/js/<i>`` pages whose links a script builds (an app shell, ``<div
id="root">`` and ``/static/app.js``). Page ``i`` links to ``2i+1`` and
``2i+2``. One worker in this process crawls, each time from page 0 of
every host:

1. the plain site, ``render = "never"``: plain fetching;
2. the plain site, ``render = "auto"``: what deciding costs when nothing
   needs a browser (no page is rendered);
3. the JavaScript site, ``render = "auto"``: every page rendered.

Each run reports pages/s and the memory of this process (RSS) and of the
browser (its processes' PSS: the Playwright driver and Chromium), sampled
every 0.2 s, peak; the browser's peak divided by ``render_concurrency`` is
the memory a rendered page in flight costs. Only loopback addresses are
contacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crawler.bench.dns import _bytes_io, _line, _start, _stop
from crawler.bench.report import write_report

IPS = tuple(f"127.0.0.{2 + i}" for i in range(16))
TEXT = "<p>" + "Some words of a page about things. " * 40 + "</p>"
APP_JS = """
const i = Number(location.pathname.split('/').pop()), n = Number(document.body.dataset.n);
document.title = 'page ' + i;
document.getElementById('root').innerHTML = '<h1>page ' + i + '</h1>' +
  [2 * i + 1, 2 * i + 2].filter(c => c < n).map(c => '<a href="/js/' + c + '">' + c + '</a>')
    .join(' ');
"""


def _process_rss() -> int:
    with open("/proc/self/statm") as fh:
        import os

        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _sample(peaks: dict[str, int], stop: asyncio.Event) -> None:
    from crawler.net.browser_memory import browser_rss

    while not stop.is_set():
        peaks["process_rss"] = max(peaks.get("process_rss", 0), _process_rss())
        peaks["browser_pss"] = max(peaks.get("browser_pss", 0), browser_rss())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def crawl_run(port: int, hosts: int, kind: str, render: str, work: Path,
                    render_concurrency: int, browser: str) -> dict[str, Any]:
    """Crawl ``kind`` ("plain" or "js") on every host with ``render``, one worker."""
    from crawler.bench.servers import BenchRedis
    from crawler.config import Settings, load_settings
    from crawler.discovery.seeds import seed
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout
    from crawler.worker import Worker

    with BenchRedis(work) as valkey:
        settings = load_settings(base=Settings(), overrides={
            "redis_url": valkey.url, "crawl": f"render-{kind}-{render}",
            "home": str(work / "home"), "delay": 0.0, "allow_private": True,
            "max_per_host": render_concurrency, "render": render,
            "render_concurrency": render_concurrency, "browser_executable": browser,
            "render_wait": "networkidle" if kind == "plain" else "h1"})
        client = await connect(settings)
        peaks: dict[str, int] = {}
        stop = asyncio.Event()
        try:
            settings = await crawl_layout(client, settings)
            seeds = "\n".join(f"http://{ip}:{port}/{kind}/0" for ip in IPS[:hosts])
            await seed(client, settings, _bytes_io(seeds))
            worker = Worker(client, settings, quiet=True)
            sampler = asyncio.create_task(_sample(peaks, stop))
            started = time.monotonic()
            await worker.run()
            seconds = time.monotonic() - started
            stop.set()
            await sampler
        finally:
            await client.aclose()
    pages = worker.counters.pages
    out: dict[str, Any] = {
        "site": kind, "render": render, "pages": pages, "errors": worker.counters.errors,
        "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1),
        "process_rss_mb": round(peaks.get("process_rss", 0) / 2**20, 1),
        "browser_pss_mb": round(peaks.get("browser_pss", 0) / 2**20, 1)}
    if peaks.get("browser_pss"):
        out["browser_mb_per_page_in_flight"] = round(
            peaks["browser_pss"] / 2**20 / render_concurrency, 1)
    return out


def run_render_bench(hosts: int = 4, pages: int = 20, render_concurrency: int = 2,
                     browser: str = "", out: str | None = None, echo: Any = print
                     ) -> dict[str, Any]:
    import uvloop

    from crawler.net.browser import find_browser, require_playwright

    require_playwright()
    browser = find_browser(browser) or ""
    report: dict[str, Any] = {"hosts": hosts, "pages_per_host": pages,
                              "render_concurrency": render_concurrency,
                              "browser": browser or "Playwright's own", "runs": []}
    web_proc, web_port = _start(["-m", "crawler.bench.render", "--serve-web", str(pages)])
    try:
        for kind, render in (("plain", "never"), ("plain", "auto"), ("js", "auto")):
            with tempfile.TemporaryDirectory(prefix="renderbench") as work:
                run = uvloop.run(crawl_run(int(web_port), hosts, kind, render, Path(work),
                                           render_concurrency, browser))
            report["runs"].append(run)
            echo(_line(f"{kind} site, render={render}", run))
    finally:
        _stop(web_proc)
    plain, rendered = report["runs"][0], report["runs"][2]
    if rendered["pages_per_s"]:
        report["plain_to_rendered_speed"] = round(plain["pages_per_s"]
                                                  / rendered["pages_per_s"], 1)
        echo(f"rendering: {rendered['pages_per_s']} pages/s against {plain['pages_per_s']} "
             f"plain ({report['plain_to_rendered_speed']}x slower), browser "
             f"{rendered['browser_pss_mb']} MB at peak for {render_concurrency} pages at once")
    if out:
        write_report(out, report)
    return report


# -- the web server (its own process) ------------------------------------------------------


def serve_web(pages: int) -> None:
    """``/plain/<i>``, ``/js/<i>`` and ``/static/app.js`` on every address of IPS."""
    import uvloop
    from aiohttp import web

    from crawler.bench.sitegen import free_port

    async def plain(request: web.Request) -> web.Response:
        i = int(request.match_info["i"])
        links = " ".join(f'<a href="/plain/{c}">{c}</a>' for c in (2 * i + 1, 2 * i + 2)
                         if c < pages)
        return web.Response(text=f"<html><head><title>page {i}</title></head><body>{TEXT}"
                                 f"{links}</body></html>", content_type="text/html")

    async def shell(_request: web.Request) -> web.Response:
        return web.Response(text=f"<html><head><title>app</title></head><body data-n={pages}>"
                                 "<div id=root></div><script src=/static/app.js></script>"
                                 "</body></html>", content_type="text/html")

    async def app_js(_request: web.Request) -> web.Response:
        return web.Response(text=APP_JS, content_type="application/javascript")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/plain/{i:\\d+}", plain)
        app.router.add_get("/js/{i:\\d+}", shell)
        app.router.add_get("/static/app.js", app_js)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port(IPS[0])
        for ip in IPS:
            await web.TCPSite(runner, ip, port).start()
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    uvloop.run(main())


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-web"]:
    serve_web(int(sys.argv[2]))
