"""Scope (host, domain, any; include and exclude patterns) and trap limits, one rule a test."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from aiohttp import web
from politeness_site import Site, crawl, html
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier
from crawler.frontier.scope_anchors import ScopeStore
from crawler.pages.scope import Scope, anchors_for, registered_domain, repeated_segments
from crawler.store.keys import shard_of
from crawler.worker import Worker


def scope(settings: Settings, seeds: list[str], **changes: object) -> Scope:
    return Scope(settings.replace(**changes), anchors_for(seeds))


# -- scope modes -----------------------------------------------------------------------


def test_host_scope_follows_only_the_seed_hosts_with_their_port(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/", "http://127.0.0.2:8080/"], scope="host")
    assert s.allows("http://a.test/x")
    assert s.allows("http://127.0.0.2:8080/x")
    assert s.rejects("http://b.a.test/x", 1) == "host"
    assert s.rejects("http://127.0.0.2:8081/x", 1) == "host"


def test_domain_scope_follows_every_host_of_the_registered_domain(settings: Settings) -> None:
    s = scope(settings, ["http://www.example.co.uk/"], scope="domain")
    assert s.allows("http://shop.example.co.uk/x")
    assert s.allows("http://example.co.uk:8080/x")
    assert s.rejects("http://other.co.uk/x", 1) == "domain"
    assert s.rejects("http://example.com/x", 1) == "domain"


def test_domain_scope_keeps_sites_under_a_private_suffix_apart(settings: Settings) -> None:
    # github.io is in the PSL's private section: alice and bob are different sites.
    assert registered_domain("www.alice.github.io") == "alice.github.io"
    s = scope(settings, ["https://alice.github.io/"], scope="domain")
    assert s.allows("https://docs.alice.github.io/")
    assert not s.allows("https://bob.github.io/")


def test_any_scope_follows_every_host(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"], scope="any")
    assert s.allows("http://elsewhere.example/x")


def test_include_patterns_admit_only_matching_urls(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"], include=(r"/docs/", r"\.html$"))
    assert s.allows("http://a.test/docs/x")
    assert s.allows("http://a.test/p/1.html")
    assert s.rejects("http://a.test/blog/x", 1) == "include"


def test_exclude_patterns_reject_matching_urls(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"], exclude=(r"\?sort=", r"/logout"))
    assert s.allows("http://a.test/list?page=2")
    assert s.rejects("http://a.test/list?sort=asc", 1) == "exclude"
    assert s.rejects("http://a.test/logout", 1) == "exclude"


# -- trap limits -------------------------------------------------------------------------


def test_max_depth_rejects_links_deeper_than_the_limit(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"], max_depth=2)
    assert s.allows("http://a.test/x", 2)
    assert s.rejects("http://a.test/x", 3) == "depth"


def test_max_depth_zero_means_unlimited(settings: Settings) -> None:
    assert scope(settings, ["http://a.test/"], max_depth=0).allows("http://a.test/x", 10_000)


def test_urls_longer_than_max_url_length_are_rejected(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"])
    assert s.max_url_length == 2048
    base = "http://a.test/"
    assert s.allows(base + "x" * (2048 - len(base)))
    assert s.rejects(base + "x" * (2049 - len(base)), 1) == "url_length"


def test_a_segment_repeated_back_to_back_past_the_limit_is_a_trap(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"], max_repeated_segments=3)
    assert s.allows("http://a.test/a/a/a/x")
    assert s.rejects("http://a.test/a/a/a/a/x", 1) == "repeated_segments"


def test_a_run_of_segments_repeated_back_to_back_is_a_trap(settings: Settings) -> None:
    # What a relative link resolved against its own page keeps producing.
    s = scope(settings, ["http://a.test/"], max_repeated_segments=3)
    assert repeated_segments("http://a.test/cal/2024/01/2024/01/2024/01/2024/01/") == 4
    assert s.rejects("http://a.test/cal/2024/01/2024/01/2024/01/2024/01/", 1) \
        == "repeated_segments"


def test_a_segment_scattered_over_the_path_is_not_a_trap(settings: Settings) -> None:
    s = scope(settings, ["http://a.test/"], max_repeated_segments=3)
    assert repeated_segments("http://a.test/p/1/p/2/p/3/p/4/p/5") == 1
    assert s.allows("http://a.test/p/1/p/2/p/3/p/4/p/5")


async def test_max_pages_per_host_stops_adding_past_the_cap(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_pages_per_host=3))
    counts = await frontier.add([(f"http://a.test/{i}", 1) for i in range(5)]
                                + [("http://b.test/0", 1)])
    assert (counts.added, counts.capped) == (4, 2)
    assert (await frontier.stats())["queued"] == 4


async def test_a_cap_set_after_seeding_counts_the_seeds_already_queued(
        redis: Redis, settings: Settings) -> None:
    # crawl seed, then crawl worker --max-pages-per-host 3: the seed, queued
    # before there was a cap, takes one of the 3 (each host got 4 pages).
    await Frontier(redis, settings).add([("http://a.test/", 0), ("http://b.test/", 0),
                                         ("http://b.test/x", 0)])
    capped = Frontier(redis, settings.replace(max_pages_per_host=3))
    counts = await capped.add([(f"http://a.test/{i}", 1) for i in range(5)]
                              + [(f"http://b.test/{i}", 1) for i in range(5)])
    assert (counts.added, counts.capped) == (2 + 1, 3 + 4)
    assert (await capped.stats())["queued"] == 3 + 3


# -- end to end ----------------------------------------------------------------------------


async def test_crawl_requests_no_host_outside_the_scope(
        redis: Redis, settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            raise web.HTTPNotFound()
        port = request.url.port
        return html("/next", f"http://127.0.0.3:{port}/", f"http://127.0.0.2:{port}/a/a/a/a/x")

    with Site(handler, ips=("127.0.0.2", "127.0.0.3")) as site:
        records = await crawl(redis, settings, [site.url("127.0.0.2", "/")])
        assert site.paths("127.0.0.3") == []
        assert sorted(site.paths("127.0.0.2")) == ["/", "/next", "/robots.txt"]
    assert len(records) == 2


# -- the scope anchors in Redis -----------------------------------------------------------


async def test_anchors_live_in_a_set_per_shard_and_are_looked_up_not_copied(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(shards=4)
    store = ScopeStore(redis, settings)
    seeds = [f"http://h{i}.test/" for i in range(40)]
    await store.add(anchors_for(seeds))
    buckets = {shard.shard: [k async for k in redis.scan_iter(match=shard.scope + ":*")]
               for shard in store.shards}
    sizes = [sum([await redis.scard(k) for k in ks]) for ks in buckets.values()]
    assert sum(sizes) == 80 and all(sizes)  # a host and a domain anchor each, spread out
    # Fingerprints in intsets (8 B an anchor), not the anchors' names.
    assert {await redis.object("encoding", k) for ks in buckets.values() for k in ks} == {
        "intset"}
    assert not await redis.exists(*(shard.scope for shard in store.shards))
    found = await store.lookup({"host:h3.test", "host:elsewhere.test", "domain:h7.test"})
    assert found == {"host:h3.test": True, "host:elsewhere.test": False,
                     "domain:h7.test": True}


async def test_a_crawl_created_before_the_buckets_keeps_its_anchors_in_scope(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(shards=2)
    store = ScopeStore(redis, settings)
    old = "host:" + "old.test"
    await redis.sadd(store.shards[shard_of(old, 2)].scope, old)  # as crawls stored it before
    await store.add(anchors_for(["http://new.test/"]))
    found = await ScopeStore(redis, settings).lookup({old, "host:new.test", "host:no.test"})
    assert found == {old: True, "host:new.test": True, "host:no.test": False}


async def test_a_crawl_never_reads_the_scope_whole(redis: Redis, settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        n = int(request.path.strip("/") or 0) if request.path != "/robots.txt" else 99
        links = [f"/{n + 1}"] + [f"http://out{i}.test/" for i in range(20)]
        return html(*links) if n < 5 else html()

    before = await redis.info("commandstats")
    with Site(handler) as site:
        records = await crawl(redis, settings, [site.url("127.0.0.2", "/")])
    after = await redis.info("commandstats")

    def calls(info: dict[str, Any], name: str) -> int:
        return int(info.get(f"cmdstat_{name}", {}).get("calls", 0))

    assert len(records) == 6
    assert calls(after, "smembers") == calls(before, "smembers")
    # The 20 outside hosts are asked about once (then cached), not once a page:
    # one SMISMEMBER a bucket they fall in (at most one each), in one round trip.
    assert calls(after, "smismember") - calls(before, "smismember") <= 20 + 2


async def test_a_host_seeded_after_a_worker_saw_it_out_of_scope_has_its_links_followed(
        redis: Redis, settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        port = request.url.port
        if request.path == "/robots.txt":
            raise web.HTTPNotFound()
        if request.host.startswith("127.0.0.2"):
            return html(f"http://127.0.0.3:{port}/")  # b, not in scope yet
        return html("/more") if request.path == "/" else html()

    with Site(handler, ips=("127.0.0.2", "127.0.0.3")) as site:
        worker = Worker(redis, settings, forever=True)
        await seed(redis, settings, io.BytesIO(site.url("127.0.0.2", "/").encode()))
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(20):
                while not site.paths("127.0.0.2"):  # noqa: ASYNC110 - the site's own log
                    await asyncio.sleep(0.05)
                while worker.counters.pages < 1:  # noqa: ASYNC110 - b now cached as outside
                    await asyncio.sleep(0.05)
                await seed(redis, settings, io.BytesIO(site.url("127.0.0.3", "/").encode()))
                while "/more" not in site.paths("127.0.0.3"):  # noqa: ASYNC110 - b's links
                    await asyncio.sleep(0.05)
        finally:
            worker.request_stop()
            await task
