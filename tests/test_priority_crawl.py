"""Priorities end to end: sitemap ``<priority>`` and the extraction hook raise URLs.

Each site has one host crawled one request at a time (``max_per_host = 1``),
so the order of the server's own log is the order the frontier gave URLs
out. Each test runs beside its negative control: the same site without the
priorities, whose order stays first in, first out.
"""

from __future__ import annotations

import pytest
from aiohttp import web
from politeness_site import Site, crawl, html
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.net.fetch import Response
from crawler.pages.extract import Page

IP = "127.0.0.2"
SITEMAP_PRIORITIES = {8: "0.6", 9: "1.0", 10: "0.9", 11: "0.7", 0: "0.5", 1: "0.2"}
"""Pages /p/<n> listed with a <priority>; the rest (2..7) name none."""


def urlset(entries: list[tuple[str, str | None]]) -> bytes:
    body = "".join(f"<url><loc>{loc}</loc>"
                   + (f"<priority>{priority}</priority>" if priority else "") + "</url>"
                   for loc, priority in entries)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset '
            f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>').encode()


def pages_in_order(site: Site, prefix: str) -> list[str]:
    return [path for path in site.paths(IP) if path.startswith(prefix)]


@pytest.mark.parametrize(("with_priorities", "expected"), [
    (True, [9, 10, 8, 11, 0, 1, 2, 3, 4, 5, 6, 7]),  # top, then high, then the rest
    (False, list(range(12))),  # negative control: the order they are listed in
])
async def test_sitemap_priorities_are_fetched_first_on_a_one_slot_host(
        redis: Redis, settings: Settings, with_priorities: bool, expected: list[int]) -> None:
    files: dict[str, tuple[bytes, str]] = {}

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path in files:
            body, content_type = files[request.path]
            return web.Response(body=body, content_type=content_type)
        return html(title="page " + request.path)

    with Site(handler, ips=(IP,)) as site:
        files["/robots.txt"] = (f"Sitemap: {site.url(IP, '/map.xml')}\n".encode(), "text/plain")
        files["/map.xml"] = (urlset([
            (site.url(IP, f"/p/{i}"), SITEMAP_PRIORITIES.get(i) if with_priorities else None)
            for i in range(12)]), "application/xml")
        records = await crawl(redis, settings.replace(max_per_host=1), [site.url(IP, "/")])
        order = pages_in_order(site, "/p/")
    assert order == [f"/p/{i}" for i in expected]
    assert len(records) == 1 + 1 + 12  # the seed, the sitemap, its pages: once each


@pytest.mark.parametrize(("hook", "expected"), [
    ("extract_hooks:raises_two_links",
     ["/a/4", "/b/hidden", "/a/5", "/a/0", "/a/1", "/a/2", "/a/3"]),
    ("extract_hooks:follows_without_priority",  # negative control: page order, then follows
     ["/a/0", "/a/1", "/a/2", "/a/3", "/a/4", "/a/5", "/b/hidden"]),
])
async def test_links_the_hook_raises_are_fetched_first_on_a_one_slot_host(
        redis: Redis, settings: Settings, hook: str, expected: list[str]) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return html(*(f"/a/{i}" for i in range(6)))
        return html()

    with Site(handler, ips=(IP,)) as site:
        records = await crawl(redis, settings.replace(max_per_host=1, extract=hook),
                              [site.url(IP, "/")])
        order = [path for path in site.paths(IP) if path.startswith(("/a/", "/b/"))]
    assert order == expected
    assert len(records) == 1 + 7 and all(r["error"] is None for r in records)


def test_a_priority_outside_0_to_1_is_the_hooks_error() -> None:
    page = Page(Response("http://h.test/", "http://h.test/", 200, "text/html", "utf-8", b"",
                         {}, 0.0), None)
    assert page.follow("/x", priority=0.8)
    with pytest.raises(ValueError, match=r"0\.0 to 1\.0"):
        page.follow("/y", priority=1.5)
    assert page._follow == ["http://h.test/x"] and page._priorities == {"http://h.test/x": 0.8}
