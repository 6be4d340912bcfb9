"""Adaptive revisits: a forever worker keeps a site fresh by itself.

One page changes at every request, another never does. With small bounds
(1 s .. 8 s, 2 s at first) the server's own log shows the changing page
revisited at the shortest interval and the unchanging one at doubling
intervals; the stored intervals say the same. With the option off, nothing
comes back.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from politeness_site import Site, results
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.recrawl import RevisitState, revisit_field
from crawler.discovery.revisit_schedule import next_interval, requeue_due
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier
from crawler.store import keys
from crawler.store.crawl_settings import crawl_wide
from crawler.worker import Worker

IP = "127.0.0.2"
BOUNDS = {"revisit_min": 1, "revisit_initial": 2, "revisit_max": 8}


@dataclass
class ChangingSite:
    """/changing has a new ETag at every request; /static always the same (304 on match)."""

    hits: dict[str, list[tuple[float, str | None]]] = field(
        default_factory=lambda: {"/changing": [], "/static": []})
    versions: itertools.count[int] = field(default_factory=itertools.count)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.path not in self.hits:
            return web.Response(status=404)
        sent = request.headers.get("If-None-Match")
        self.hits[request.path].append((time.monotonic(), sent))
        etag = f'"v{next(self.versions)}"' if request.path == "/changing" else '"same"'
        if sent == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(text=f"<html><title>{etag}</title></html>",
                            content_type="text/html", headers={"ETag": etag})


async def stored(redis: Redis, settings: Settings, host: str, path: str) -> RevisitState:
    shard = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)[0]
    state = RevisitState.parse(await redis.hget(shard.revisits(host), "h" + path))
    assert state is not None
    return state


async def until(condition: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_a_forever_worker_revisits_a_changing_page_more_often_than_an_unchanging_one(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(recrawl=True, revisit_adaptive=True, **BOUNDS)
    server = ChangingSite()
    with Site(server, ips=(IP,)) as site:
        host = f"{IP}:{site.port}"
        await seed(redis, settings, io.BytesIO(
            f"{site.url(IP, '/changing')}\n{site.url(IP, '/static')}".encode()))
        worker = Worker(redis, settings, forever=True)
        task = asyncio.create_task(worker.run())
        try:
            static, changing = server.hits["/static"], server.hits["/changing"]
            await until(lambda: len(static) >= 3)
            # By the unchanging page's third request the changing one was asked more.
            assert len(changing) > len(static)
            await until(lambda: len(changing) >= 4)
        finally:
            worker.request_stop()
            await asyncio.wait_for(task, 30)
        # Every revisit was conditional; the server answered the static page 304.
        assert all(sent is not None for _, sent in static[1:] + changing[1:])
        # Doubling from 2 s: each static request at least its interval (less the
        # second its due time is rounded down) after the last, however loaded the machine.
        for (earlier, _), (later, _), interval in zip(static, static[1:], (2, 4, 8),
                                                      strict=False):
            assert later - earlier >= interval - 1
        records = await results(redis, settings)
    static_state = await stored(redis, settings, host, "/static")
    changing_state = await stored(redis, settings, host, "/changing")
    # 2 after the first visit, doubled at each 304, never past 8.
    assert static_state.interval == min(8, 2 ** static_state.visit)
    assert static_state.changes == 0
    # 2, then halved at every change, never under 1.
    assert changing_state.interval == 1 and changing_state.changes == changing_state.visit - 1
    # One record a URL a visit: visits 1..n, each once.
    for url, state in ((site.url(IP, "/static"), static_state),
                       (site.url(IP, "/changing"), changing_state)):
        visits = sorted(r["visit"] for r in records if r["url"] == url)
        assert visits == list(range(1, len(visits) + 1))
        assert len(visits) in (state.visit, state.visit + 1)  # + one finishing at the stop
    assert all(r["not_modified"] for r in records
               if r["url"].endswith("/static") and r["visit"] > 1)


async def test_without_the_option_a_forever_worker_revisits_nothing(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(recrawl=True, revisit_adaptive=False, **BOUNDS)
    server = ChangingSite()
    with Site(server, ips=(IP,)) as site:
        await seed(redis, settings, io.BytesIO(
            f"{site.url(IP, '/changing')}\n{site.url(IP, '/static')}".encode()))
        worker = Worker(redis, settings, forever=True)
        task = asyncio.create_task(worker.run())
        try:
            await until(lambda: all(server.hits.values()))
            await asyncio.sleep(3.5)  # with the option on, both would be asked again by now
        finally:
            worker.request_stop()
            await asyncio.wait_for(task, 30)
    assert {path: len(hits) for path, hits in server.hits.items()} == {
        "/changing": 1, "/static": 1}
    assert not [k async for k in redis.scan_iter("*due*")]


async def test_a_revisit_is_scheduled_once_however_often_its_lease_comes_back(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(recrawl=True, revisit_adaptive=True, **BOUNDS)
    url = "http://a.test/page"
    await seed(redis, settings, io.BytesIO(url.encode()))
    frontier = Frontier(redis, settings)
    [lease] = (await frontier.claim(1, "w")).leases
    assert await frontier.retry(lease, 0.0, count_attempt=False)  # given back, claimed again
    [lease] = (await frontier.claim(1, "w")).leases
    state = RevisitState(int(time.time()), 1, 0, 0, 'e"x"', "t", interval=2)
    revisit = (revisit_field(lease.host, url), state.dump())
    assert await frontier.complete(lease, "{}", revisit=revisit)
    assert not await frontier.complete(lease, "{}", revisit=revisit)  # a late duplicate
    shard = frontier.shards[lease.shard]
    assert await redis.zrange(shard.revisits_due(lease.host), 0, -1) == ["h/page"]
    assert await redis.zrange(shard.due_hosts, 0, -1) == [lease.host]
    assert await requeue_due(frontier) == 0  # not due yet
    await redis.zadd(shard.revisits_due(lease.host), {"h/page": 0})  # as if time had passed
    await redis.zadd(shard.due_hosts, {lease.host: 0})
    assert await requeue_due(frontier) == 1
    assert await requeue_due(frontier) == 0  # queued once: off the schedule until its result
    assert await redis.zcard(shard.due_hosts) == 0
    [again] = (await frontier.claim(1, "w")).leases
    assert again.url == url


def test_intervals_halve_on_change_double_when_unchanged_within_bounds(
        settings: Settings) -> None:
    on = settings.replace(recrawl=True, revisit_adaptive=True, **BOUNDS)
    before = RevisitState(0, 1, 0, 0, interval=4)
    assert next_interval(None, {}, on) == 2
    assert next_interval(before, {"changed": True}, on) == 2
    assert next_interval(before, {"not_modified": True}, on) == 8
    assert next_interval(before, {"changed": False}, on) == 8
    assert next_interval(before, {"error": {"type": "timeout"}}, on) == 4
    assert next_interval(RevisitState(0, 1, 0, 0, interval=8), {"not_modified": True}, on) == 8
    assert next_interval(RevisitState(0, 1, 0, 0, interval=1), {"changed": True}, on) == 1
    assert next_interval(before, {"changed": True}, settings.replace(recrawl=True)) == 0
    # Crawl-wide, like recrawl: stored with the crawl, changed by crawl config set.
    assert {"recrawl", "revisit_adaptive", "revisit_initial", "revisit_min",
            "revisit_max"} <= set(crawl_wide())
