"""crawl dashboard, without a browser: its token rule, its API against crawl status, its actions.

The aiohttp app runs on aiohttp's test server against the real test Valkey;
the crawl is a real ``crawl worker`` process on a generated site on loopback.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from crawl_helpers import ROOT, seed_urls, start_worker
from redis.asyncio import Redis

from crawler.bench.sitegen import SiteServer, SiteSpec, free_port
from crawler.config import Settings
from crawler.dashboard import make_app
from crawler.dashboard.feed import DoneSamples, latest_results, rate_series
from crawler.observe import control
from crawler.observe.access import ACTION_HEADER, COOKIE, token_for
from crawler.observe.status import crawl_status
from crawler.store.layout import crawl_layout

ACT = {ACTION_HEADER: "1"}
COUNTERS = ("queued", "leased", "done", "errors", "seen", "results_pending", "workers",
            "workers_dead", "shards", "by_shard", "held", "crawl", "errors_by_type",
            "status_classes")


@asynccontextmanager
async def dashboard(redis: Redis, settings: Settings, token: str | None = None,
                    poll_every: float = 1.0) -> AsyncIterator[TestClient[Any, Any]]:
    client = TestClient(TestServer(make_app(redis, settings, token, poll_every=poll_every),
                                   host="127.0.0.1"))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def crawl_of(redis: Redis, settings: Settings, name: str) -> Settings:
    return await crawl_layout(redis, settings.replace(crawl=name))


async def wait_until(check: Any, within: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if value := await check():
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


# -- the token rule -----------------------------------------------------------------------


def test_a_token_is_required_beyond_loopback_and_kept_when_given() -> None:
    assert token_for("127.0.0.1", None) == (None, False)
    assert token_for("::1", None) == (None, False)
    assert token_for("localhost", None) == (None, False)
    generated, was_generated = token_for("0.0.0.0", None)
    assert was_generated and generated and len(generated) >= 24
    assert token_for("0.0.0.0", None)[0] != generated  # fresh each start
    assert token_for("127.0.0.1", "mine") == ("mine", False)
    assert token_for("10.1.2.3", "mine") == ("mine", False)


async def test_with_a_token_every_answer_is_401_without_it(redis: Redis,
                                                           settings: Settings) -> None:
    s = await crawl_of(redis, settings, "tok")
    async with dashboard(redis, s, token="s3cret-token") as client:
        for path in ("/", "/app.js", "/style.css", "/api/status", "/api/events"):
            answer = await client.get(path)
            assert answer.status == 401, path
        for wrong in ({"Authorization": "Bearer nope"}, {"Cookie": f"{COOKIE}=nope"}):
            assert (await client.get("/api/status", headers=wrong)).status == 401
        refused = await client.post("/api/pause", headers=ACT)
        assert refused.status == 401
        assert (await control.crawl_state(redis, s)).state == "running"  # nothing happened
        # A script may send it as a bearer token.
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert (await client.get("/api/status", headers=bearer)).status == 200
        # The first page load carries it in the URL: it becomes a cookie, and leaves the URL.
        first = await client.get("/?token=s3cret-token", allow_redirects=False)
        assert first.status == 303 and first.headers["Location"] == "/"
        cookie = first.cookies[COOKIE]
        assert cookie.value == "s3cret-token" and cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        page = await client.get("/")  # the client's cookie jar now holds it
        assert page.status == 200 and "<title>crawl dashboard</title>" in await page.text()
        assert (await client.post("/api/pause", headers=ACT)).status == 200
        assert (await control.crawl_state(redis, s)).state == "paused"


async def test_without_a_token_only_loopback_names_and_marked_posts_are_served(
        redis: Redis, settings: Settings) -> None:
    s = await crawl_of(redis, settings, "open")
    async with dashboard(redis, s) as client:
        assert (await client.get("/")).status == 200
        assert (await client.get("/", headers={"Host": "localhost:8080"})).status == 200
        # DNS rebinding: a page on another name that resolves here is refused.
        assert (await client.get("/api/status", headers={"Host": "evil.example"})).status == 403
        # A cross-site form cannot set a header: a POST without it does nothing.
        assert (await client.post("/api/stop")).status == 403
        assert (await control.crawl_state(redis, s)).state == "running"
        page = await client.get("/")
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]


# -- actions ------------------------------------------------------------------------------


async def test_the_buttons_endpoints_set_the_crawls_state(redis: Redis,
                                                         settings: Settings) -> None:
    s = await crawl_of(redis, settings, "steer")
    async with dashboard(redis, s) as client:
        for action, state, reason in (("pause", "paused", "operator"), ("resume", "running", ""),
                                      ("stop", "stopped", "operator")):
            answer = await client.post(f"/api/{action}", headers=ACT)
            assert answer.status == 200
            assert (await answer.json())["crawl"]["state"] == state
            stored = await control.crawl_state(redis, s)
            assert (stored.state, stored.reason) == (state, reason)
            shown = await (await client.get("/api/status")).json()
            assert shown["status"]["crawl"]["state"] == state
        assert (await client.post("/api/drop", headers=ACT)).status == 404
        assert (await client.get("/api/pause")).status == 405


# -- the live stream ----------------------------------------------------------------------


async def read_events(client: TestClient[Any, Any], count: int) -> list[dict[str, Any]]:
    answer = await client.get("/api/events")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while len(events) < count:
            line = (await answer.content.readline()).decode()
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
    answer.close()
    return events


async def test_the_stream_sends_a_snapshot_each_poll_and_a_change_at_once(
        redis: Redis, settings: Settings) -> None:
    s = await crawl_of(redis, settings, "stream")
    async with dashboard(redis, s, poll_every=0.2) as client:
        first, second = await read_events(client, 2)
        assert second["time"] > first["time"]
        assert first["status"]["crawl"]["state"] == "running"
    # A change shows up without waiting for the next poll (a very slow one here).
    async with dashboard(redis, s, poll_every=30) as client:
        stream = asyncio.create_task(read_events(client, 2))
        await asyncio.sleep(0.5)
        assert (await client.post("/api/pause", headers=ACT)).status == 200
        _, changed = await asyncio.wait_for(stream, 10)
        assert changed["status"]["crawl"]["state"] == "paused"


async def test_resume_at_a_reached_cap_is_refused_with_what_lets_the_crawl_go_on(
        redis: Redis, settings: Settings) -> None:
    """Resumed at its cap, a crawl was stopped again by the next worker: the button
    said nothing. It is a 409 naming the cap, and the crawl stays stopped."""
    from crawler.store.crawl_settings import set_values

    s = await crawl_of(redis, settings, "atcap")
    s = await set_values(redis, s, {"max_duration": "0.001"})
    await asyncio.sleep(0.01)
    await control.stop(redis, s, "max_duration")
    async with dashboard(redis, s) as client:
        refused = await client.post("/api/resume", headers=ACT)
        assert refused.status == 409
        assert "crawl config set max_duration=N" in await refused.text()
        assert (await control.crawl_state(redis, s)).state == "stopped"
        # The cap lifted while the dashboard runs (crawl config set): its Resume works.
        await set_values(redis, s, {"max_duration": "0"})
        assert (await client.post("/api/resume", headers=ACT)).status == 200
    assert (await control.crawl_state(redis, s)).state == "running"


# -- the numbers, during a real crawl -------------------------------------------------------


async def test_the_api_shows_the_same_numbers_as_crawl_status_during_a_crawl(
        redis: Redis, settings: Settings, clean_redis: str, tmp_path: Path) -> None:
    spec = SiteSpec(hosts=2, pages=300, links=4, page_bytes=600, port=free_port())
    s = await crawl_of(redis, settings, "numbers")
    # Nothing listens on this host: its robots.txt, then the URL, fail (an error record).
    missing = f"http://127.0.0.9:{spec.port}/p/0.html"
    with SiteServer(spec, slow={ip: 0.03 for ip in spec.host_ips()}) as site:
        await seed_urls(redis, s, [missing, *spec.seeds()])
        worker = start_worker(clean_redis, s.crawl, "--max-per-host", "1",
                              log=tmp_path / "w.log",
                              env={"CRAWL_BACKOFF_BASE": "0.05", "CRAWL_BACKOFF_MAX": "0.2"})
        try:
            async with dashboard(redis, s) as client:
                async def done_enough() -> bool:
                    now = await crawl_status(redis, s, memory=False)
                    return int(now["done"]) >= 30 and int(now["errors"]) >= 1

                await wait_until(done_enough, 60, "30 pages done, one error")
                assert (await client.post("/api/pause", headers=ACT)).status == 200

                async def settled() -> bool:  # fetches in flight finished
                    return int((await crawl_status(redis, s, memory=False))["leased"]) == 0

                await wait_until(settled, 30, "no URL leased")
                await asyncio.sleep(0.5)
                shown = await (await client.get("/api/status")).json()
                direct = await crawl_status(redis, s, memory=False)
                cli = await asyncio.to_thread(subprocess.run, [
                    sys.executable, "-m", "crawler", "status", "--redis", clean_redis,
                    "--crawl", s.crawl], cwd=ROOT, capture_output=True, text=True, timeout=60)
                assert cli.returncode == 0, cli.stderr
                printed = json.loads(cli.stdout)
                every = await latest_results(redis, s, count=10_000)
                assert site.log.entries  # the crawl really ran
        finally:
            await control.stop(redis, s)
            await asyncio.to_thread(worker.wait, 60)
    assert shown["status"]["done"] >= 30 and shown["status"]["workers"] == 1
    for name in COUNTERS:
        assert shown["status"][name] == direct[name] == printed[name], name
    assert set(direct) - {"memory"} <= set(shown["status"])  # every field, memory aside
    def workers(status: dict[str, Any]) -> list[tuple[str, int, int]]:
        return [(w["id"], w["pages"], w["errors"]) for w in status["worker_list"]]

    assert workers(shown["status"]) == workers(direct) == workers(printed)
    assert shown["status"]["errors_by_type"] == {"connect_error": 1}
    # Latest results: the newest first, over the shards, with their errors.
    results = shown["results"]
    assert len(results) == min(25, direct["results_pending"])
    stamps = [r["fetched_at"] for r in results]
    assert stamps == sorted(stamps, reverse=True)
    assert len(every) == direct["results_pending"] and results == every[:25]
    [error] = [r for r in every if r["error"]]
    assert error["url"] == missing and error["error"]["type"] == "connect_error"


# -- the chart's series -------------------------------------------------------------------


def test_rate_series_is_pages_per_second_and_bounded_in_points() -> None:
    samples = [(1000.0 + t, 5 * t) for t in range(3601)]  # 5 pages/s for an hour
    series = rate_series(samples, points=360)
    assert len(series) <= 361 and series[-1][0] == 4600.0
    assert all(abs(rate - 5.0) < 1e-9 for _, rate in series)
    assert rate_series([(1.0, 3)]) == []
    # A counter that went down (crawl recreated) is no pages, not a negative rate.
    assert rate_series([(0.0, 100), (1.0, 0), (2.0, 4)]) == [(1.0, 0.0), (2.0, 4.0)]


def test_done_samples_keep_the_last_hour() -> None:
    kept = DoneSamples(keep=3600)
    for t in range(0, 7200, 10):
        kept.add(float(t), t)
    recent = kept.recent()
    assert recent[0][0] >= 7190 - 3600 and recent[-1] == (7190.0, 7190)


async def test_redis_away_is_said_on_the_page_not_a_crash(settings: Settings) -> None:
    gone = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True,
                          socket_connect_timeout=1)
    try:
        async with dashboard(gone, settings) as client:
            answer = await client.get("/api/status")
            assert answer.status == 200
            assert "ConnectionError" in (await answer.json())["error"]
            assert (await client.get("/")).status == 200
    finally:
        await gone.aclose()
