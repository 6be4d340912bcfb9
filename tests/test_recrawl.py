"""Incremental recrawl, end to end: conditional revisits of a loopback site.

The server's own log is the witness: it records the conditional headers each
request carried, and answers 304 only when they match its current version.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web
from politeness_site import Site, results
from redis.asyncio import Redis
from typer.testing import CliRunner

from crawler.cli import app
from crawler.config import Settings
from crawler.discovery.recrawl import RevisitState, parse_age, requeue, revisit_field
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier
from crawler.store import keys
from crawler.worker import Worker

IP = "127.0.0.2"
PAGES = 600
CHANGED = 50
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass
class VersionedSite:
    """Even pages carry an ETag, odd ones a Last-Modified; ``bump`` changes a page."""

    version: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(PAGES), 1))
    conditional: list[tuple[str, str | None, str | None]] = field(default_factory=list)

    def bump(self, i: int) -> None:
        self.version[i] += 1

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.conditional.append((request.path, request.headers.get("If-None-Match"),
                                 request.headers.get("If-Modified-Since")))
        if request.path == "/":
            links = "".join(f'<a href="/p/{i}">{i}</a>' for i in range(PAGES))
            return web.Response(text=f"<html><title>index</title>{links}</html>",
                                content_type="text/html")
        if not request.path.startswith("/p/"):
            return web.Response(status=404)
        i = int(request.path[3:])
        v = self.version[i]
        headers: dict[str, str] = {}
        if i % 2 == 0:
            headers["ETag"] = f'"p{i}-v{v}"'
            if request.headers.get("If-None-Match") == headers["ETag"]:
                return web.Response(status=304, headers=headers)
        else:
            headers["Last-Modified"] = format_datetime(T0 + timedelta(days=v), usegmt=True)
            if request.headers.get("If-Modified-Since") == headers["Last-Modified"]:
                return web.Response(status=304, headers=headers)
        return web.Response(text=f"<html><title>page {i} v{v}</title></html>",
                            content_type="text/html", headers=headers)


async def run_worker(redis: Redis, settings: Settings) -> None:
    async with asyncio.timeout(60):
        await Worker(redis, settings).run()


async def test_recrawl_revisits_with_conditional_requests_and_tells_changed_pages(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(recrawl=True, max_per_host=8)
    server = VersionedSite()
    with Site(server, ips=(IP,)) as site:
        await seed(redis, settings, io.BytesIO(site.url(IP, "/").encode()))
        await run_worker(redis, settings)
        first = await results(redis, settings)
        assert len(first) == PAGES + 1 and all(r["visit"] == 1 for r in first)
        assert "not_modified" not in first[0] and "changed" not in first[0]
        assert not any(inm or ims for _, inm, ims in server.conditional)

        for i in range(CHANGED):
            server.bump(i * 7)
        assert await requeue(redis, settings, parse_age("1h")) == 0  # nothing that old
        server.conditional.clear()
        assert await requeue(redis, settings, 0) == PAGES + 1
        assert await requeue(redis, settings, 0) == 0  # queued already: not twice
        await run_worker(redis, settings)
        second = [r for r in await results(redis, settings) if r["visit"] == 2]
        hits = server.conditional

    pages = {r["url"].split(str(site.port), 1)[1]: r for r in second}
    assert len(second) == len(pages) == PAGES + 1  # one record a URL a visit
    changed = {f"/p/{i * 7}" for i in range(CHANGED)}
    not_modified = [p for p, r in pages.items() if r.get("not_modified")]
    assert len([p for p in not_modified if p != "/"]) == PAGES - CHANGED
    for path in changed:
        r = pages[path]
        assert r["status"] == 200 and r["changed"] is True and "not_modified" not in r
        assert r["title"] == f"page {path[3:]} v2"
    for path in not_modified:
        r = pages[path]
        assert r["status"] == 304 and path not in changed
        assert r["title"] == ("index" if path == "/" else f"page {path[3:]} v1")
    # The server's log: every page revisit sent its validator back.
    sent = {path: (inm, ims) for path, inm, ims in hits if path.startswith("/p/")}
    assert len(sent) == PAGES
    for path, (inm, ims) in sent.items():
        i = int(path[3:])
        assert (inm is not None) == (i % 2 == 0) and (ims is not None) == (i % 2 == 1)
    # Changes are counted in the state the next revisit reads.
    shard = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)[0]
    state = RevisitState.parse(await redis.hget(shard.revisits(f"{IP}:{site.port}"), "h/p/0"))
    assert state is not None and (state.visit, state.changes) == (2, 1)


async def test_without_recrawl_records_carry_no_visit_and_nothing_is_kept(
        redis: Redis, settings: Settings) -> None:
    server = VersionedSite(version={0: 1})
    with Site(server, ips=(IP,)) as site:
        await seed(redis, settings, io.BytesIO(site.url(IP, "/p/0").encode()))
        await run_worker(redis, settings)
    [record] = await results(redis, settings)
    assert "visit" not in record
    assert await requeue(redis, settings, 0) == 0
    assert not [k async for k in redis.scan_iter("*:v:*")]


def test_revisit_state_round_trips_titles_and_validators() -> None:
    state = RevisitState(1700000000, 3, 1, 2, 'e"a|b"', "a | title\nwith a newline")
    assert RevisitState.parse(state.dump()) == state
    assert RevisitState.parse("*" + state.dump()) == state
    assert RevisitState.parse(RevisitState(1, 1, 0, 0).dump()) == RevisitState(1, 1, 0, 0)
    assert RevisitState.parse("garbage") is None
    assert state.conditional_headers() == {"If-None-Match": '"a|b"'}


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200),
                                               ("7d", 604800), ("15", 15)])
def test_ages_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


def test_crawl_recrawl_refuses_a_bad_age(clean_redis: str) -> None:
    result = CliRunner().invoke(app, ["recrawl", "--redis", clean_redis, "--older-than", "soon"])
    assert result.exit_code == 2 and "not an age" in result.output


def test_a_urls_field_is_its_path_on_its_own_host() -> None:
    assert revisit_field("a.test", "https://a.test/x?y") == "s/x?y"
    assert revisit_field("a.test:81", "http://a.test:81/") == "h/"
    assert revisit_field("a.test", "http://a.test.evil/x") == "http://a.test.evil/x"
    assert revisit_field("10.0.0.1", "https://a.test/x") == "https://a.test/x"  # ip mode


async def test_the_claim_brings_back_each_urls_revisit_state_only_with_recrawl(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(recrawl=True)
    frontier = Frontier(redis, settings)
    await frontier.add([("http://a.test/x", 0), ("http://a.test/y", 0)])
    leases = (await frontier.claim(2, "w")).leases
    assert [lease.revisit_state for lease in leases] == ["", ""]  # first visits
    state = RevisitState(1700000000, 1, 0, 0, 'e"v1"', "x | title")
    for lease in leases:
        await frontier.complete(lease, "{}", revisit=(revisit_field("a.test", lease.url),
                                                      state.dump()))
    assert await requeue(redis, settings, 0) == 2
    again = (await frontier.claim(2, "w")).leases
    back = [RevisitState.parse(lease.revisit_state) for lease in again]
    # complete.lua stamped the fetch time on Redis's clock: the rest is as written.
    assert [replace(b, fetched=state.fetched) for b in back if b] == [state, state]
    await frontier.retry(next(lease for lease in again if lease.url.endswith("/x")), 0.0)
    plain = (await Frontier(redis, settings.replace(recrawl=False)).claim(1, "w")).leases
    assert [(lease.url, lease.revisit_state) for lease in plain] == [("http://a.test/x", "")]


async def test_urls_dropped_while_queued_for_a_revisit_can_be_revisited_again(
        redis: Redis, settings: Settings) -> None:
    from crawler.observe import control

    settings = settings.replace(recrawl=True)
    frontier = Frontier(redis, settings)
    urls = [f"http://a.test/{i}" for i in range(4)]
    await frontier.add([(url, 0) for url in urls])
    for lease in (await frontier.claim(4, "w")).leases:
        interval = 600 if lease.url.endswith("/3") else 0  # /3: an adaptive schedule
        state = RevisitState(1700000000, 1, 0, 0, 'e"v1"', "t", interval=interval)
        await frontier.complete(lease, "{}", revisit=(revisit_field("a.test", lease.url),
                                                      state.dump()))
    assert await requeue(redis, settings, 0) == 4
    # One is waiting to be retried (the delayed set) when the queue is dropped.
    [first] = (await frontier.claim(1, "w")).leases
    await frontier.retry(first, 60.0)
    await control.stop(redis, settings)
    assert await control.drop_queue(redis, settings) == 4
    assert await control.drop_queue(redis, settings) == 0  # again: nothing more changes
    await control.resume(redis, settings)
    shard = frontier.shards[0]
    states = await redis.hgetall(shard.revisits("a.test"))
    assert len(states) == 4 and not any(s.startswith("*") for s in states.values())
    assert await redis.zscore(shard.revisits_due("a.test"), "h/3") is not None
    assert await requeue(redis, settings, 0) == 4  # revisitable again, each once
    again = (await frontier.claim(10, "w")).leases
    assert sorted(lease.url for lease in again) == sorted(urls)


def test_the_state_keeps_the_capture_of_the_payload_its_validator_stands_for() -> None:
    from crawler.discovery.recrawl import next_visit
    from crawler.frontier import Lease
    from crawler.pages.warc import new_capture, unpack_capture

    date, record_id, packed = new_capture()
    assert unpack_capture(packed) == (date, record_id) and len(packed) == 39
    state = RevisitState(1700000000, 1, 0, 0, 'e"v1"', "t", capture=packed)
    assert RevisitState.parse(state.dump()) == state
    assert RevisitState.parse("*" + state.dump()) == state
    lease = Lease("1", 0, "a.test", 0, 0, "http://a.test/")
    etag = {"ETag": '"v1"'}

    def visit(record: dict[str, object], headers: dict[str, str] | None,
              capture: str = "") -> str:
        return next_visit(lease, state, record, headers, b"", capture=capture).capture

    assert visit({"status": 304}, etag) == packed  # not modified: the same payload
    assert visit({"status": 503, "error": ("http_status", "")}, {}) == packed  # failed
    assert visit({"status": None, "error": ("timeout", "")}, None) == packed
    assert visit({"status": 200}, etag) == packed  # same validator, no record written
    assert visit({"status": 200}, {"ETag": '"v2"'}) == ""  # changed, no record of it
    _, _, newer = new_capture()
    assert visit({"status": 200}, {"ETag": '"v2"'}, newer) == newer


async def test_fetch_times_and_the_recrawl_cutoff_are_on_redis_clock(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    settings = settings.replace(recrawl=True)
    server = VersionedSite(version={0: 1})
    real_time = time.time
    with Site(server, ips=(IP,)) as site:
        await seed(redis, settings, io.BytesIO(site.url(IP, "/p/0").encode()))
        monkeypatch.setattr(time, "time", lambda: real_time() - 7200)  # the worker's clock
        await run_worker(redis, settings)
    monkeypatch.setattr(time, "time", lambda: real_time() + 7200)  # crawl recrawl's
    assert await requeue(redis, settings, parse_age("1h")) == 0  # fetched just now
    monkeypatch.undo()
    assert await requeue(redis, settings, parse_age("1h")) == 0
    assert await requeue(redis, settings, 0) == 1  # negative control: it is due at 0s
