"""Redirects go through the frontier: each hop is a record, and waits for its host's slot.

Checked on the server's own request log, as the politeness tests are: the
crawler's bookkeeping is not evidence.
"""

from __future__ import annotations

import pytest
from aiohttp import web
from politeness_site import Site, by_url, crawl, html, min_start_gap
from redis.asyncio import Redis

from crawler.config import Settings

A, B = "127.0.0.2", "127.0.0.3"


async def chain(request: web.Request) -> web.StreamResponse:
    hops = {"/a": "/b", "/b": "/c"}
    if request.path in hops:
        raise web.HTTPFound(hops[request.path])
    if request.path == "/cross":
        raise web.HTTPMovedPermanently(f"http://{B}:{request.url.port}/landed")
    if request.path == "/robots.txt":
        return web.Response(status=404)
    return html(title=request.path)


@pytest.mark.parametrize("delay", [1.0, 0.0])
async def test_the_hops_of_a_redirect_chain_are_spaced_by_the_hosts_delay(
        redis: Redis, settings: Settings, delay: float) -> None:
    # The server and the worker share this process: a request's stamp at the server
    # can lag its send by tens of ms when the test machine is busy (0.976 s for a
    # 1 s delay once, in CI). Wider slack covers that lag, as the README says to do
    # for a slow path; hops that were not spaced at all would still be ~0 s apart.
    settings = settings.replace(delay=delay, max_per_host=1, politeness_slack=0.1)
    with Site(chain) as site:
        records = by_url(await crawl(redis, settings, [site.url(A, "/a")], limit=30))
        pages = site.spans(A, pages_only=True)
        assert [h.path for h in sorted(site.hits, key=lambda h: h.start)] == [
            "/robots.txt", "/a", "/b", "/c"]
    a, b, c = (site.url(A, p) for p in ("/a", "/b", "/c"))
    assert (records[a]["status"], records[a]["redirect_to"]) == (302, b)
    assert (records[b]["status"], records[b]["redirect_to"]) == (302, c)
    assert (records[c]["status"], records[c]["title"], records[c]["redirect_to"]) == (
        200, "/c", None)
    assert [records[u]["depth"] for u in (a, b, c)] == [0, 0, 0]
    if delay:
        assert min_start_gap(pages) >= delay
    else:  # the negative control: without a delay, the same check fails
        assert min_start_gap(pages) < 1.0


async def test_a_redirect_to_another_host_waits_for_that_hosts_robots_txt(
        redis: Redis, settings: Settings) -> None:
    with Site(chain, ips=(A, B)) as site:
        records = by_url(await crawl(redis, settings.replace(scope="any"),
                                     [site.url(A, "/cross")]))
        on_b = [h.path for h in sorted(site.hits, key=lambda h: h.start) if h.ip == B]
    assert on_b == ["/robots.txt", "/landed"]
    assert records[site.url(A, "/cross")]["redirect_to"] == site.url(B, "/landed")
    assert records[site.url(B, "/landed")]["status"] == 200


async def test_a_seeds_redirect_to_another_host_brings_that_host_into_scope(
        redis: Redis, settings: Settings) -> None:
    # example.com -> https://www.example.com/ must not leave a host-scoped crawl empty.
    with Site(chain, ips=(A, B)) as site:
        records = by_url(await crawl(redis, settings.replace(scope="host"),
                                     [site.url(A, "/cross")]))
    assert records[site.url(B, "/landed")]["status"] == 200


async def test_a_links_redirect_out_of_scope_is_recorded_but_not_followed(
        redis: Redis, settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return html("/cross")
        return await chain(request)

    with Site(handler, ips=(A, B)) as site:
        records = by_url(await crawl(redis, settings.replace(scope="host"),
                                     [site.url(A, "/")]))
        assert not [h for h in site.hits if h.ip == B]
    assert records[site.url(A, "/cross")]["redirect_to"] == site.url(B, "/landed")
    assert site.url(B, "/landed") not in records
