"""What ``canonical = "follow"`` saves, on a site built for it: ``measure_canonical``.

The site (``CanonicalSite``): ``pages`` distinct pages, each served under
``VARIANTS`` URLs (``/p/7``, ``/p/7?view=print``, ``/p/7?sort=asc``,
``/p/7?ref=related``, ``/p/7/amp``), none of them a tracking parameter that
query cleaning would drop. Every variant declares ``<link rel=canonical
href=/p/7>``. As on real sites, a variant links to its neighbours under the
same variant (a print view links to print views), and the home page links to
the first page under every variant. So without canonicals a crawl fetches
every variant of every page; with ``canonical = "follow"`` and
``canonical_links = "drop"`` it fetches the canonical pages, plus the few
variants linked from canonical pages (here: the home page's).

The crawl runs a real worker against a Redis (``redis_url``) and this site on
loopback; each run gets its own crawl name. Figures: server-side fetches (every
request but robots.txt), distinct pages fetched, URLs fetched more than once.
"""

from __future__ import annotations

import asyncio
import io
import socket
import time
from collections import Counter
from typing import Any, Literal

VARIANTS = ("", "?view=print", "?sort=asc", "?ref=related", "/amp")
"""How each page can be reached; the first is its canonical URL."""

NEIGHBOURS = (1, 7, 31)
"""Page i links to pages i+1, i+7, i+31 (mod pages), under its own variant."""

CanonicalMode = Literal["off", "record", "follow"]
LinksMode = Literal["follow", "drop"]
MODES: tuple[tuple[CanonicalMode, LinksMode], ...] = (
    ("record", "follow"), ("follow", "follow"), ("follow", "drop"))
"""(canonical, canonical_links) of each measured run."""


def _variant_url(page: int, variant: str) -> str:
    return f"/p/{page}/amp" if variant == "/amp" else f"/p/{page}{variant}"


class CanonicalSite:
    """The generated site's pages, by request path and query (see the module doc)."""

    def __init__(self, pages: int = 200) -> None:
        self.pages = pages

    def body(self, path_qs: str) -> str | None:
        """The page at ``path_qs``, or None (404)."""
        if path_qs == "/":
            links = [_variant_url(0, v) for v in VARIANTS]
            return self._html("home", None, links)
        path, _, query = path_qs.partition("?")
        parts = path.split("/")
        if len(parts) < 3 or parts[1] != "p" or not parts[2].isdigit():
            return None
        page = int(parts[2])
        suffix = "/".join(parts[3:])
        variant = "?" + query if query else ("/amp" if suffix == "amp" else "")
        if page >= self.pages or variant not in VARIANTS or (suffix and suffix != "amp") \
                or (query and suffix):
            return None
        links = [_variant_url((page + step) % self.pages, variant) for step in NEIGHBOURS]
        return self._html(f"page {page}", f"/p/{page}", links)

    @staticmethod
    def _html(title: str, canonical: str | None, links: list[str]) -> str:
        head = f'<link rel="canonical" href="{canonical}">' if canonical else ""
        body = "".join(f'<a href="{href}">{href}</a>' for href in links)
        return (f"<html><head><title>{title}</title>{head}</head>"
                f"<body><p>{title}</p>{body}</body></html>")


def _free_port(ip: str) -> int:
    with socket.socket() as sock:
        sock.bind((ip, 0))
        return int(sock.getsockname()[1])


async def _crawl(redis_url: str, crawl: str, site: CanonicalSite, origin: str,
                 hits: Counter[str], canonical: CanonicalMode, canonical_links: LinksMode,
                 limit: float) -> dict[str, Any]:
    from redis.asyncio import Redis

    from crawler.config import Settings
    from crawler.discovery.seeds import seed
    from crawler.worker import Worker

    settings = Settings(redis_url=redis_url, crawl=crawl, dedup_bucket_bits=8,
                        allow_private=True, delay=0.0, max_per_host=8, concurrency=32,
                        canonical=canonical, canonical_links=canonical_links,
                        connect_timeout=2, read_timeout=3, total_timeout=5)
    client = Redis.from_url(redis_url, decode_responses=True)
    hits.clear()
    started = time.monotonic()
    try:
        await seed(client, settings, io.BytesIO((origin + "/").encode()))
        async with asyncio.timeout(limit):
            await Worker(client, settings).run()
    finally:
        await client.aclose()
    fetched = {path for path in hits if path != "/robots.txt"}
    pages = {path.split("?")[0].split("/")[2] for path in fetched if path.startswith("/p/")}
    return {
        "fetches": sum(n for path, n in hits.items() if path != "/robots.txt"),
        "distinct_pages": len(pages),
        "fetched_twice": sum(1 for path in fetched if hits[path] > 1),
        "seconds": round(time.monotonic() - started, 2),
    }


async def measure_canonical_async(redis_url: str, *, pages: int = 200, ip: str = "127.0.0.2",
                                  limit: float = 60.0, prefix: str = "canonical-bench"
                                  ) -> dict[str, Any]:
    """Crawl the generated site once per ``MODES`` entry; fetches and pages of each run."""
    from aiohttp import web

    site = CanonicalSite(pages)
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.Response:
        hits[request.path_qs] += 1
        body = site.body(request.path_qs)
        if body is None:
            return web.Response(status=404)
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = _free_port(ip)
    await web.TCPSite(runner, ip, port).start()
    origin = f"http://{ip}:{port}"
    runs: dict[str, Any] = {}
    try:
        for canonical, links in MODES:
            name = f"canonical={canonical}, canonical_links={links}"
            runs[name] = await _crawl(redis_url, f"{prefix}-{canonical}-{links}", site, origin,
                                      hits, canonical, links, limit)
    finally:
        await runner.cleanup()
    base = runs[f"canonical={MODES[0][0]}, canonical_links={MODES[0][1]}"]["fetches"]
    for run in runs.values():
        run["saved"] = round(1 - run["fetches"] / base, 3) if base else 0.0
    return {"pages": pages, "variants": len(VARIANTS), "urls": pages * len(VARIANTS) + 1,
            "runs": runs}


def measure_canonical(redis_url: str, **kw: Any) -> dict[str, Any]:
    """``measure_canonical_async`` from synchronous code (a benchmark command)."""
    return asyncio.run(measure_canonical_async(redis_url, **kw))


def report_lines(result: dict[str, Any]) -> list[str]:
    """The figures as a benchmark prints them."""
    lines = [f"rel=canonical: {result['pages']} pages x {result['variants']} URLs each "
             f"(+ home page), every variant declaring its canonical"]
    for name, run in result["runs"].items():
        lines.append(f"  {name:<42} {run['fetches']:>5} fetches  "
                     f"{run['distinct_pages']:>4} distinct pages  "
                     f"{run['saved']:>6.1%} saved  {run['fetched_twice']} fetched twice")
    return lines
