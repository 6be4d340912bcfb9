"""Sitemaps, end to end: pages linked from nowhere, found only through sitemaps.

Every test crawls a loopback site and reads the server's own log: each page
is requested once, and each URL ends in exactly one record.
"""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from politeness_site import Site, crawl, html, results
from redis.asyncio import Redis
from typer.testing import CliRunner

from crawler.cli import app
from crawler.config import Settings
from crawler.discovery import sitemaps
from crawler.discovery.seeds import seed_sitemaps
from crawler.worker import Worker

IP = "127.0.0.2"
OTHER = "127.0.0.3"  # never seeded: out of scope
PAGES = 40


@dataclass
class SitemapSite:
    """Serves files by path (bytes, with a content type); any /p/<n> is a page with no links."""

    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.path in self.files:
            body, content_type = self.files[request.path]
            return web.Response(body=body, content_type=content_type)
        if request.path.startswith(("/p/", "/private/")) or request.path == "/":
            return html(title="page " + request.path)
        return web.Response(status=404)


def urlset(*locs: str) -> bytes:
    body = "".join(f"<url><loc>{loc}</loc><lastmod>2026-11-01</lastmod></url>" for loc in locs)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset '
            f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</urlset>').encode()


def index(*locs: str) -> bytes:
    body = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<sitemapindex '
            f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</sitemapindex>').encode()


def one_record_each(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(r["url"] for r in records)
    assert all(n == 1 for n in counts.values()), counts.most_common(3)
    return {r["url"]: r for r in records}


def robots(site: Site, *sitemap_paths: str) -> tuple[bytes, str]:
    lines = "".join(f"Sitemap: {site.url(IP, path)}\n" for path in sitemap_paths)
    return f"User-agent: *\nDisallow: /private/\n{lines}".encode(), "text/plain"


async def test_pages_listed_only_in_a_gzipped_sitemap_behind_an_index_are_crawled(
        redis: Redis, settings: Settings) -> None:
    server = SitemapSite()
    with Site(server, ips=(IP, OTHER)) as site:
        pages = [site.url(IP, f"/p/{i}") for i in range(PAGES)]
        listed = [*pages, site.url(IP, "/private/secret"), site.url(OTHER, "/p/elsewhere"),
                  "not a url", pages[0]]
        server.files.update({
            "/robots.txt": robots(site, "/sitemap_index.xml"),
            "/sitemap_index.xml": (index(site.url(IP, "/maps/pages.xml.gz")), "application/xml"),
            "/maps/pages.xml.gz": (gzip.compress(urlset(*listed)), "application/gzip"),
        })
        by_url = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
        assert not site.paths(OTHER)  # out of scope: never requested

    for i, url in enumerate(pages):
        assert by_url[url]["status"] == 200 and by_url[url]["title"] == f"page /p/{i}"
        assert by_url[url]["depth"] == 1
        assert hits[f"/p/{i}"] == 1
    assert by_url[site.url(IP, "/private/secret")]["error"]["type"] == "robots_disallowed"
    assert hits["/private/secret"] == 0
    assert hits["/robots.txt"] == 1 and hits["/sitemap_index.xml"] == 1
    assert hits["/maps/pages.xml.gz"] == 1
    index_record = by_url[site.url(IP, "/sitemap_index.xml")]
    gz_record = by_url[site.url(IP, "/maps/pages.xml.gz")]
    assert index_record["kind"] == gz_record["kind"] == "sitemap"
    assert index_record["urls"] == 1 and index_record["error"] is None
    assert gz_record["urls"] == len(listed) and gz_record["error"] is None
    assert "kind" not in by_url[pages[0]]
    # The seed, the sitemaps, the pages and the disallowed page: nothing else.
    assert len(by_url) == 1 + 2 + PAGES + 1


async def test_without_the_sitemaps_setting_robots_sitemaps_are_not_read(
        redis: Redis, settings: Settings) -> None:
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        server.files.update({
            "/robots.txt": robots(site, "/map.txt"),
            "/map.txt": (site.url(IP, "/p/1").encode(), "text/plain")})
        by_url = one_record_each(await crawl(redis, settings.replace(sitemaps=False),
                                             [site.url(IP, "/")]))
        assert "/map.txt" not in site.paths(IP)
    assert list(by_url) == [site.url(IP, "/")]


async def test_seeded_sitemap_is_read_and_a_page_linking_to_it_does_not_hide_it(
        redis: Redis, settings: Settings) -> None:
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        server.files["/map.txt"] = (
            "\n".join(site.url(IP, f"/p/{i}") for i in range(5)).encode(), "text/plain")
        server.files["/"] = (b'<html><a href="/map.txt">map</a></html>', "text/html")
        report = await seed_sitemaps(redis, settings, [site.url(IP, "/map.txt"), "nope"])
        assert (report.added, report.invalid) == (1, 1)
        records = await crawl(redis, settings, [site.url(IP, "/")])
        hits = Counter(site.paths(IP))
    # The map is fetched twice: once as the seed's link (a page), once as a sitemap.
    assert hits["/map.txt"] == 2
    kinds = Counter((r["url"], r.get("kind")) for r in records)
    assert kinds[site.url(IP, "/map.txt"), "sitemap"] == 1
    assert kinds[site.url(IP, "/map.txt"), None] == 1
    for i in range(5):
        assert hits[f"/p/{i}"] == 1 and kinds[site.url(IP, f"/p/{i}"), None] == 1


async def test_malformed_and_over_limit_sitemaps_end_as_errors_keeping_what_was_read(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_URLS", 5)
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        broken = urlset(*(site.url(IP, f"/p/b{i}") for i in range(3)))[:-len("</urlset>")]
        server.files.update({
            "/robots.txt": robots(site, "/broken.xml", "/big.xml"),
            "/broken.xml": (broken + b"<url><loc>x</url>", "application/xml"),
            "/big.xml": (urlset(*(site.url(IP, f"/p/g{i}") for i in range(8))), "text/xml"),
        })
        by_url = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    broken_record = by_url[site.url(IP, "/broken.xml")]
    big_record = by_url[site.url(IP, "/big.xml")]
    assert broken_record["kind"] == "sitemap" and broken_record["urls"] == 3
    assert broken_record["error"]["type"] == "sitemap_error"
    assert broken_record["error"]["message"].startswith("malformed XML")
    assert big_record["urls"] == 5 and big_record["error"]["message"] == "more than 5 URLs"
    assert {f"/p/b{i}" for i in range(3)} | {f"/p/g{i}" for i in range(5)} \
        == {p for p in hits if p.startswith("/p/")}


async def test_sitemap_indexes_nested_too_deep_end_unfetched(
        redis: Redis, settings: Settings) -> None:
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        depth = sitemaps.MAX_NESTING + 2
        for level in range(depth):  # /i0 names /i1 names ... ; the last would list a page
            body = index(site.url(IP, f"/i{level + 1}")) if level < depth - 1 \
                else urlset(site.url(IP, "/p/deep"))
            server.files[f"/i{level}"] = (body, "application/xml")
        server.files["/robots.txt"] = robots(site, "/i0")
        server.files["/i0"] = (index(site.url(IP, "/i1"), site.url(IP, "/i0")), "text/xml")
        by_url = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    for level in range(sitemaps.MAX_NESTING + 1):
        assert hits[f"/i{level}"] == 1  # /i0 naming itself is deduplicated
        assert by_url[site.url(IP, f"/i{level}")]["error"] is None
    too_deep = by_url[site.url(IP, f"/i{sitemaps.MAX_NESTING + 1}")]
    assert too_deep["error"]["type"] == "sitemap_error" and too_deep["status"] is None
    assert hits[f"/i{sitemaps.MAX_NESTING + 1}"] == 0 and hits["/p/deep"] == 0


async def test_a_sitemap_that_redirects_is_read_at_its_target(
        redis: Redis, settings: Settings) -> None:
    server = SitemapSite()

    with Site(server, ips=(IP,)) as site:
        server.files.update({
            "/robots.txt": robots(site, "/old-map.xml"),
            "/new-map.xml": (urlset(site.url(IP, "/p/1")), "application/xml")})
        real = server.__call__

        async def handler(request: web.Request) -> web.StreamResponse:
            if request.path == "/old-map.xml":
                raise web.HTTPMovedPermanently("/new-map.xml")
            return await real(request)

        site.handler = handler
        by_url = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
    assert by_url[site.url(IP, "/old-map.xml")]["status"] == 301
    assert by_url[site.url(IP, "/new-map.xml")]["kind"] == "sitemap"
    assert by_url[site.url(IP, "/new-map.xml")]["urls"] == 1
    assert by_url[site.url(IP, "/p/1")]["status"] == 200


async def test_a_second_worker_run_reads_no_sitemap_again(redis: Redis,
                                                          settings: Settings) -> None:
    """A sitemap's record is the crawl's last word on it: exactly once, like a page."""
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        server.files.update({
            "/robots.txt": robots(site, "/m.txt"),
            "/m.txt": (site.url(IP, "/p/1").encode(), "text/plain")})
        first = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
        await Worker(redis, settings).run()
        assert len(await results(redis, settings)) == len(first) == 3


# -- crawl seed --sitemap ------------------------------------------------------------


def test_crawl_seed_sitemap_queues_the_sitemap(clean_redis: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["seed", "--redis", clean_redis, "--sitemap", "http://127.0.0.2/map.xml",
            "--sitemap", "ftp://127.0.0.2/x"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "added 1, already seen 0, invalid 1" in result.stdout
    assert "--sitemap 2:" in result.stderr
    again = CliRunner().invoke(app, args[:5])
    assert "added 0, already seen 1" in again.stdout


def test_crawl_seed_without_file_or_sitemap_is_refused(clean_redis: str) -> None:
    result = CliRunner().invoke(app, ["seed", "--redis", clean_redis])
    assert result.exit_code == 2 and "--sitemap" in result.output


async def test_a_sitemap_that_stalls_midway_ends_as_an_error_and_keeps_its_urls(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(read_timeout=0.5, total_timeout=1.5, max_attempts=2)
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        first_part = "".join(site.url(IP, f"/p/{i}") + "\n" for i in range(3)).encode()
        real = server.__call__
        stalls = 0

        async def handler(request: web.Request) -> web.StreamResponse:
            nonlocal stalls
            if request.path != "/stall.txt":
                return await real(request)
            stalls += 1  # the log records a request when it ends; this one never does
            resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            await resp.write(first_part)
            await asyncio.sleep(30)  # never finishes: the worker's timeout must
            return resp

        site.handler = handler
        server.files["/robots.txt"] = robots(site, "/stall.txt", "/missing.xml")
        by_url = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    stalled = by_url[site.url(IP, "/stall.txt")]
    assert stalled["error"]["type"] == "timeout" and stalled["attempts"] == 2
    assert stalls == 2
    for i in range(3):  # queued before the stall: crawled once each
        assert hits[f"/p/{i}"] == 1 and by_url[site.url(IP, f"/p/{i}")]["status"] == 200
    missing = by_url[site.url(IP, "/missing.xml")]
    assert missing["kind"] == "sitemap" and missing["status"] == 404 and missing["urls"] == 0


async def test_a_sitemap_cut_short_mid_entry_queues_no_half_read_url(
        redis: Redis, settings: Settings) -> None:
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        whole = urlset(site.url(IP, "/p/1"), site.url(IP, "/p/2345"))
        # Cut inside the last <loc>: "/p/2345" read as far as "/p/23", a URL in scope.
        cut = whole[:whole.index(b"/p/2345") + len(b"/p/23")]
        gz_cut = gzip.compress(cut.replace(b"/p/1<", b"/p/6<"))  # whole gzip, cut XML
        server.files.update({
            "/robots.txt": robots(site, "/cut.xml", "/cut.xml.gz"),
            "/cut.xml": (cut, "application/xml"),  # sent whole: a cap upstream cut it
            "/cut.xml.gz": (gz_cut, "application/gzip")})
        by_url = one_record_each(await crawl(redis, settings, [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    for path in ("/cut.xml", "/cut.xml.gz"):
        record = by_url[site.url(IP, path)]
        assert record["error"]["type"] == "sitemap_error", record
        assert record["urls"] == 1  # the entry whose </url> arrived
    assert hits["/p/1"] == 1 and hits["/p/6"] == 1
    assert not [p for p in hits if p.startswith("/p/2")], hits  # no "/p/23", "/p/2", ...
