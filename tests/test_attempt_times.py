"""elapsed_ms is the last attempt's time; total_elapsed_ms covers every attempt."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from crawl_helpers import crawl
from redis.asyncio import Redis

from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.store import keys

SLOW = 0.3
"""Seconds every response here takes."""


@pytest.fixture
async def flaky_site() -> AsyncIterator[str]:
    """/flaky answers 503 twice then 200; /broken always 500; /once 200; each after SLOW."""
    hits: Counter[str] = Counter()

    async def handle(request: web.Request) -> web.Response:
        hits[request.path] += 1
        await asyncio.sleep(SLOW)
        if request.path == "/robots.txt":
            return web.Response(status=404)
        if request.path == "/broken" or (request.path == "/flaky" and hits["/flaky"] <= 2):
            return web.Response(status=503 if request.path == "/flaky" else 500)
        return web.Response(text="<title>ok</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.2", port).start()
    yield f"http://127.0.0.2:{port}"
    await runner.cleanup()


async def test_total_elapsed_covers_every_attempt_of_a_retried_url(
        redis: Redis, settings: Settings, flaky_site: str) -> None:
    settings = settings.replace(max_attempts=3, max_per_host=1)
    records = await crawl(redis, settings, [f"{flaky_site}/flaky", f"{flaky_site}/broken",
                                            f"{flaky_site}/once"])
    flaky, broken, once = (records[f"{flaky_site}/{p}"] for p in ("flaky", "broken", "once"))
    assert (flaky["status"], flaky["attempts"]) == (200, 3)
    assert (broken["error"]["type"], broken["attempts"]) == ("http_status", 3)
    for record in (flaky, broken):
        assert SLOW * 1000 <= record["elapsed_ms"] < 2 * SLOW * 1000  # the last attempt
        assert record["total_elapsed_ms"] >= 3 * SLOW * 1000  # all three
        assert record["total_elapsed_ms"] < 3 * SLOW * 1000 + 3000
    assert once["attempts"] == 1 and once["total_elapsed_ms"] == once["elapsed_ms"]
    # The attempt times are forgotten once their URL is done.
    assert not await redis.exists(keys.ShardKeys(settings.crawl, 0).attempt_ms)


async def test_the_earlier_attempts_time_rides_with_the_next_lease_and_counts_once(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    await frontier.add([("http://a.test/x", 0)])
    [lease] = (await frontier.claim(1, "w")).leases
    assert lease.earlier_ms == 0
    assert await frontier.retry(lease, 0.0, elapsed=0.25)
    # The same retry sent again (a pipeline resent after a dropped connection): a no-op.
    assert not await frontier.retry(lease, 0.0, elapsed=0.25)
    [again] = (await frontier.claim(1, "w", request_id="r1")).leases
    assert (again.attempts, again.earlier_ms) == (1, 250.0)
    [same] = (await frontier.claim(1, "w", request_id="r1")).leases  # a resent claim
    assert (same.id, same.earlier_ms) == (again.id, 250.0)
    assert await frontier.complete(again, "{}")
    assert not await redis.exists(keys.ShardKeys(settings.crawl, 0).attempt_ms)
