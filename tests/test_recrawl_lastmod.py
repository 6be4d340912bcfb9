"""Sitemap lastmod kept with the revisit state, and ``crawl recrawl --changed-since``.

A loopback site lists its pages in sitemaps with chosen ``<lastmod>`` times;
the server's own log says which pages were requested again, and with which
validator.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from politeness_site import Site, results
from redis.asyncio import Redis
from typer.testing import CliRunner

from crawler.cli import app
from crawler.config import Settings
from crawler.discovery import recrawl
from crawler.discovery.lastmod import parse_since, parse_w3c
from crawler.discovery.recrawl import RevisitState, requeue
from crawler.discovery.seeds import seed_sitemaps
from crawler.frontier import Frontier
from crawler.store import keys
from crawler.store.layout import crawl_layout
from crawler.worker import Worker

IP = "127.0.0.2"
PAGES = 9


def iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ListedSite:
    """Pages /p/<n> with a fixed ETag (304 when it matches); sitemaps by path."""

    sitemaps: dict[str, dict[int, int | None]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("If-None-Match")))
        if request.path in self.sitemaps:
            host = request.host
            entries = "".join(
                f"<url><loc>http://{host}/p/{i}</loc>"
                + (f"<lastmod>{iso(when)}</lastmod>" if when else "") + "</url>"
                for i, when in self.sitemaps[request.path].items())
            return web.Response(
                text='<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                     f"{entries}</urlset>", content_type="application/xml")
        if request.path.startswith("/p/"):
            etag = f'"{request.path}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            return web.Response(text=f"<html><title>{request.path}</title></html>",
                                content_type="text/html", headers={"ETag": etag})
        return web.Response(status=404)

    def fetched_again(self) -> dict[str, str | None]:
        return {path: inm for path, inm in self.requests if path.startswith("/p/") and inm}


async def run_worker(redis: Redis, settings: Settings) -> None:
    async with asyncio.timeout(30):
        await Worker(redis, settings).run()


async def states(redis: Redis, settings: Settings, host: str) -> dict[str, RevisitState]:
    shard = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)[0]
    out = {}
    for name, text in (await redis.hgetall(shard.revisits(host))).items():
        state = RevisitState.parse(text)
        assert state is not None, text
        out[name] = state
    return out


async def test_changed_since_requeues_exactly_pages_listed_as_changed_after_their_fetch(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(recrawl=True)
    old = int(time.time()) - 86400
    server = ListedSite()
    # The first sitemap lists pages 0..7, all last modified a day ago, but page 7
    # without a lastmod; page 8 is not listed yet.
    server.sitemaps["/s1.xml"] = {i: old for i in range(7)} | {7: None}
    with Site(server, ips=(IP,)) as site:
        host = f"{IP}:{site.port}"
        await seed_sitemaps(redis, settings, [site.url(IP, "/s1.xml")])
        await run_worker(redis, settings)
        first = await states(redis, settings, host)
        # Listed before their first fetch, kept through it.
        assert {f: s.lastmod for f, s in first.items()} == {
            f"h/p/{i}": old if i < 7 else 0 for i in range(8)}
        assert all(s.visit == 1 for s in first.values())
        # Negative control: lastmods older than the fetch queue nothing.
        assert await requeue(redis, settings, changed_since=old - 60) == 0

        fetched = max(s.fetched for s in first.values())
        # Lastmods after the fetch, none of them in the future.
        await asyncio.sleep(max(0.0, fetched + 3 - time.time()))
        # The sitemap, read again, lists done pages again: 0-2 changed at the
        # cutoff, 3 after the fetch but before the cutoff, 4 unchanged, 5 without
        # a lastmod (it keeps its old one), and 8, new, with a lastmod.
        cutoff = fetched + 2
        server.sitemaps["/s1.xml"] = {0: cutoff, 1: cutoff, 2: cutoff, 3: fetched + 1,
                                      4: old, 5: None, 8: cutoff}
        report = await seed_sitemaps(redis, settings, [site.url(IP, "/s1.xml")])
        assert (report.added, report.reread) == (0, 1)  # read before: read again
        await run_worker(redis, settings)
        assert [p for p, _ in server.requests].count("/s1.xml") == 2
        listed = await states(redis, settings, host)
        assert {f: s.lastmod for f, s in listed.items()} == {
            "h/p/0": cutoff, "h/p/1": cutoff, "h/p/2": cutoff, "h/p/3": fetched + 1,
            "h/p/4": old, "h/p/5": old, "h/p/6": old, "h/p/7": 0, "h/p/8": cutoff}
        assert listed["h/p/0"].visit == 1  # the listing queued no revisit by itself
        assert listed["h/p/8"].visit == 1 and listed["h/p/8"].fetched >= cutoff

        server.requests.clear()
        assert await requeue(redis, settings, changed_since=cutoff) == 3
        assert await requeue(redis, settings, changed_since=cutoff) == 0  # queued once
        await run_worker(redis, settings)
        assert server.fetched_again() == {f"/p/{i}": f'"/p/{i}"' for i in range(3)}
        revisits = [r for r in await results(redis, settings) if r.get("visit") == 2]
        assert sorted(r["url"] for r in revisits) == [site.url(IP, f"/p/{i}") for i in range(3)]
        assert all(r["status"] == 304 and r["not_modified"] for r in revisits)

        # Both conditions: a URL meeting either is queued. Page 3 changed after its
        # fetch, at this cutoff; nothing was fetched over an hour ago.
        assert await requeue(redis, settings, 3600, changed_since=fetched + 1) == 1
        after = await states(redis, settings, host)
        assert after["h/p/0"].lastmod == cutoff  # kept through the revisit


def test_w3c_datetimes_and_changed_since_values() -> None:
    assert parse_w3c("2026-11-01") == 1793491200
    assert parse_w3c("2026-11") == parse_w3c("2026-11-01T00:00Z") == 1793491200
    assert parse_w3c("2026-11-01T02:00:00+02:00") == 1793491200
    assert parse_w3c("2026-11-01T00:00:00.5Z") == 1793491200
    assert parse_w3c("2026-13-01") is None
    assert parse_w3c("yesterday") is None
    assert parse_since("2026-11-01") == 1793491200
    assert parse_since("7d", now=1793491200 + 7 * 86400) == 1793491200
    with pytest.raises(ValueError, match="not a date"):
        parse_since("2026")  # a year alone would read as seconds elsewhere: refused


def test_crawl_recrawl_needs_a_condition_and_refuses_a_bad_date(clean_redis: str) -> None:
    none = CliRunner().invoke(app, ["recrawl", "--redis", clean_redis])
    assert none.exit_code == 2 and "--changed-since" in none.output
    bad = CliRunner().invoke(app, ["recrawl", "--redis", clean_redis,
                                   "--changed-since", "someday"])
    assert bad.exit_code == 2 and "not a date" in bad.output


async def test_a_host_of_many_done_urls_is_requeued_over_several_bounded_calls(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = await crawl_layout(redis, settings.replace(recrawl=True))
    monkeypatch.setattr(recrawl, "REQUEUE_FIELDS", 100)  # about 100 fields a call
    calls: list[str] = []
    run = Frontier.run

    async def counted(self: Frontier, batch: list[Any]) -> list[Any]:
        calls.extend(name for name, _, _ in batch)
        return await run(self, batch)

    monkeypatch.setattr(Frontier, "run", counted)
    shard = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)[0]
    done = RevisitState(int(time.time()) - 100, 1, 0, 1, 'e"x"').dump()
    await redis.hset(shard.revisits("a.test"), mapping={f"s/p{i}": done for i in range(1000)})
    await redis.sadd(shard.recrawl_hosts, "a.test")
    assert await requeue(redis, settings, 10) == 1000
    assert await redis.llen(shard.queue("a.test")) == 1000
    assert calls.count("recrawl") >= 5
    assert await requeue(redis, settings, 10) == 0  # each marked: queued once


async def test_changed_since_reaches_every_shard(redis: Redis, settings: Settings) -> None:
    settings = await crawl_layout(redis, settings.replace(recrawl=True, shards=4))
    now = int(time.time())
    changed = RevisitState(now - 100, 1, 0, 1, 'e"x"', lastmod=now - 50).dump()
    unchanged = RevisitState(now - 100, 1, 0, 1, 'e"x"', lastmod=now - 200).dump()
    hosts = [f"h{i}.test" for i in range(12)]
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
    for host in hosts:
        shard = shards[keys.shard_of(host, settings.shards)]
        await redis.hset(shard.revisits(host), mapping={"s/new": changed, "s/old": unchanged})
        await redis.sadd(shard.recrawl_hosts, host)
    assert len({keys.shard_of(h, settings.shards) for h in hosts}) == 4
    assert await requeue(redis, settings, changed_since=now - 60) == len(hosts)
    for host in hosts:
        shard = shards[keys.shard_of(host, settings.shards)]
        # One URL queued: inline in the host state, no queue list (lua/_lib.lua enqueue).
        assert await redis.hexists(shard.host(host), keys.INLINE_ENTRIES[0])
        assert not await redis.hexists(shard.host(host), keys.INLINE_ENTRIES[1])
        assert not await redis.exists(shard.queue(host))
