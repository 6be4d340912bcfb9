"""Fewer wasted fetches, end to end: query cleaning, rel=canonical, Link headers, text sitemaps.

Every test crawls a loopback site and reads the server's own log of requests.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web
from politeness_site import Site, by_url, crawl, html
from redis.asyncio import Redis

from crawler.bench.waste_canonical import measure_canonical_async
from crawler.config import Settings

IP = "127.0.0.2"
SESSION = "9f8e7d6c5b4a39281706"


def tracking_site(site_box: list[Site]) -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return html("/p/1?utm_source=news&utm_medium=mail", "/p/1?fbclid=IwAR0x",
                        "/p/1", f"/p/2;jsessionid={SESSION}", f"/p/2?sid={SESSION}",
                        "/p/3?id=1&gclid=z", "/p/3?gclid=y&id=1")
        if request.path.startswith("/p/"):
            return html(title=request.path_qs)
        return web.Response(status=404)
    return handler


async def test_tracking_and_session_variants_are_fetched_once_each_without_the_parameters(
        redis: Redis, settings: Settings) -> None:
    with Site(tracking_site([]), ips=(IP,)) as site:
        records = await crawl(redis, settings, [site.url(IP, "/")])
        hits = Counter(site.paths(IP))
    # One request per distinct page, and none carrying a tracking or session parameter.
    assert hits["/p/1"] == hits["/p/2"] == hits["/p/3?id=1"] == 1
    assert sum(hits.values()) == 1 + 1 + 3  # robots.txt, the home page, three pages
    found = by_url(records)
    assert len(records) == 4
    # The record keeps the URL as found first; dedup_url names the key; final_url what answered.
    first = found[site.url(IP, "/p/1?utm_source=news&utm_medium=mail")]
    assert first["dedup_url"] == site.url(IP, "/p/1") == first["final_url"]
    assert first["title"] == "/p/1"
    session = found[site.url(IP, f"/p/2;jsessionid={SESSION}")]
    assert session["dedup_url"] == site.url(IP, "/p/2") and session["title"] == "/p/2"
    assert found[site.url(IP, "/")]["dedup_url"] is None  # nothing to clean: no key named


async def test_with_clean_query_off_every_variant_is_fetched(redis: Redis,
                                                             settings: Settings) -> None:
    with Site(tracking_site([]), ips=(IP,)) as site:
        records = await crawl(redis, settings.replace(clean_query=False), [site.url(IP, "/")])
        hits = Counter(site.paths(IP))
    assert hits["/p/1?utm_source=news&utm_medium=mail"] == hits["/p/1?fbclid=IwAR0x"] == 1
    assert len(records) == 1 + 7
    assert all(r["dedup_url"] is None for r in records)


def canonical_site() -> Any:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return html("/doc?view=print", "/self")
        if request.path == "/doc" and request.query.get("view") == "print":
            return html("/only-from-print", head='<link rel="canonical" href="/doc">',
                        title="print")
        if request.path == "/self":
            return html(head='<link rel="canonical" href="/self">', title="self")
        if request.path in ("/doc", "/only-from-print"):
            return html(title=request.path)
        return web.Response(status=404)
    return handler


async def crawl_canonical(redis: Redis, settings: Settings, **changes: Any
                          ) -> tuple[dict[str, dict[str, Any]], Counter[str], Site]:
    with Site(canonical_site(), ips=(IP,)) as site:
        records = await crawl(redis, settings.replace(**changes), [site.url(IP, "/")])
        return by_url(records), Counter(site.paths(IP)), site


async def test_canonical_follow_marks_the_duplicate_and_queues_its_canonical(
        redis: Redis, settings: Settings) -> None:
    found, hits, site = await crawl_canonical(redis, settings, canonical="follow")
    print_view = found[site.url(IP, "/doc?view=print")]
    assert print_view["canonical"] == print_view["duplicate_of"] == site.url(IP, "/doc")
    assert hits["/doc"] == 1 and found[site.url(IP, "/doc")]["duplicate_of"] is None
    assert hits["/only-from-print"] == 1  # canonical_links = "follow": still followed
    own = found[site.url(IP, "/self")]  # a page naming itself is no duplicate
    assert own["canonical"] == site.url(IP, "/self") and own["duplicate_of"] is None


async def test_canonical_links_drop_leaves_a_duplicates_links_unfollowed(
        redis: Redis, settings: Settings) -> None:
    found, hits, site = await crawl_canonical(redis, settings, canonical="follow",
                                              canonical_links="drop")
    assert hits["/only-from-print"] == 0 and hits["/doc"] == 1
    assert found[site.url(IP, "/doc?view=print")]["duplicate_of"] == site.url(IP, "/doc")


async def test_canonical_record_only_records_it(redis: Redis, settings: Settings) -> None:
    found, hits, site = await crawl_canonical(redis, settings)  # the default: "record"
    print_view = found[site.url(IP, "/doc?view=print")]
    assert print_view["canonical"] == site.url(IP, "/doc") and print_view["duplicate_of"] is None
    assert hits["/doc"] == 0  # not queued
    found, _, site = await crawl_canonical(redis, settings.replace(crawl="off"), canonical="off")
    assert found[site.url(IP, "/doc?view=print")]["canonical"] is None


async def test_link_headers_of_a_pdf_give_its_canonical_and_its_next_page(
        redis: Redis, settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return html("/a.pdf")
        if request.path.endswith(".pdf"):
            links = '</a.html>; rel="canonical", </b.pdf>; rel="next", </s.css>; rel=preload'
            return web.Response(body=b"%PDF-1.4\n%%EOF\n", content_type="application/pdf",
                                headers={"Link": links} if request.path == "/a.pdf" else {})
        return html(title=request.path)

    with Site(handler, ips=(IP,)) as site:
        found = by_url(await crawl(redis, settings.replace(canonical="follow"),
                                   [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    pdf = found[site.url(IP, "/a.pdf")]
    assert pdf["canonical"] == pdf["duplicate_of"] == site.url(IP, "/a.html")
    assert hits["/b.pdf"] == hits["/a.html"] == 1
    assert hits["/s.css"] == 0  # a resource of the page, not a page


async def test_a_robots_sitemap_served_as_plain_text_is_read(redis: Redis,
                                                             settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            return web.Response(text=f"User-agent: *\nSitemap: {site.url(IP, '/map.txt')}\n")
        if request.path == "/map.txt":
            lines = "".join(site.url(IP, f"/p/{i}") + "\n" for i in range(5))
            return web.Response(text=" \n" + lines, content_type="text/plain")
        return html(title=request.path)

    with Site(handler, ips=(IP,)) as site:
        found = by_url(await crawl(redis, settings, [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    assert all(hits[f"/p/{i}"] == 1 for i in range(5))
    assert found[site.url(IP, "/map.txt")]["urls"] == 5
    assert found[site.url(IP, "/p/4")]["status"] == 200


async def test_canonical_follow_with_links_dropped_saves_most_fetches_on_the_generated_site(
        clean_redis: str) -> None:
    result = await measure_canonical_async(clean_redis, pages=40, limit=60)
    runs = result["runs"]
    record = runs["canonical=record, canonical_links=follow"]
    drop = runs["canonical=follow, canonical_links=drop"]
    assert record["fetches"] == result["urls"]  # every variant of every page
    assert drop["fetches"] <= result["pages"] + len("xxxx") + 1  # canonicals, 4 variants, home
    assert record["distinct_pages"] == drop["distinct_pages"] == result["pages"]
    assert all(run["fetched_twice"] == 0 for run in runs.values())
    assert drop["saved"] > 0.7
