"""cookies = true: one jar per host in Redis, shared by every worker, bounded, RFC 6265's rules.

Checked on what the loopback server received (its Cookie headers), not on the
crawler's bookkeeping.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web
from crawl_helpers import start_worker
from fault_helpers import wait_exit
from politeness_site import Site, by_url, html, results
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier
from crawler.frontier.leases import Lease
from crawler.net.cookies import (
    MAX_COOKIES,
    MAX_JAR_BYTES,
    cookie_header,
    parse_set_cookies,
    read_jar,
)
from crawler.store import keys
from crawler.worker import Worker

A = "127.0.0.2"


class CookieSite:
    """/login sets cookies; /members needs ``sid``; every request's cookies are logged."""

    def __init__(self) -> None:
        self.received: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.received.setdefault(request.path, []).append(
                request.headers.get("Cookie", ""))
        if request.path == "/robots.txt":
            return web.Response(status=404)
        if request.path == "/login":
            links = [f"/members/{i}" for i in range(30)] if request.query_string else \
                ["/members", "/private/x", "/elsewhere"]
            resp = html(*links)
            resp.headers.add("Set-Cookie", "sid=s3cr3t; Path=/; HttpOnly")
            resp.headers.add("Set-Cookie", "sec=1; Path=/; Secure")  # over http: refused
            resp.headers.add("Set-Cookie", "scoped=1; Path=/private")
            resp.headers.add("Set-Cookie", "brief=1; Path=/; Max-Age=1")
            resp.headers.add("Set-Cookie", "foreign=1; Path=/; Domain=example.com")
            resp.headers.add("Set-Cookie", f"own=1; Path=/; Domain={A}")
            return resp
        cookie = request.headers.get("Cookie", "")
        if request.path.startswith("/members") and "sid=s3cr3t" not in cookie:
            return web.Response(status=403, text="log in first")
        return html(title=request.path)

    def cookies(self, path: str) -> set[str]:
        """The cookie names the one request to ``path`` carried."""
        [header] = self.received[path]
        return {part.split("=", 1)[0] for part in header.split("; ") if part}


async def run_worker(redis: Redis, settings: Settings, urls: list[str]) -> str:
    await seed(redis, settings, io.BytesIO("\n".join(urls).encode()))
    worker = Worker(redis, settings)
    async with asyncio.timeout(30):
        await worker.run()
    return worker.id


@pytest.mark.parametrize("enabled", [True, False])
async def test_a_cookie_set_for_one_worker_is_sent_by_another(
        redis: Redis, settings: Settings, enabled: bool) -> None:
    """Worker 1 fetches /login only; worker 2, a separate Worker, then fetches /members:
    the only way it has the cookie is the jar in Redis. With cookies off (the negative
    control) nothing is sent and /members answers 403."""
    site = CookieSite()
    settings = settings.replace(cookies=enabled, max_attempts=1)
    with Site(site.handle) as server:
        first = await run_worker(redis, settings.replace(exclude=["/members", "/private"]),
                                 [server.url(A, "/login")])
        await asyncio.sleep(1.2)  # past brief's Max-Age=1, on any clock
        second = await run_worker(redis, settings, [server.url(A, "/members"),
                                                    server.url(A, "/private/x")])
        records = by_url(await results(redis, settings))
    assert first != second
    members = records[server.url(A, "/members")]
    assert members["worker"] == second
    if not enabled:
        assert members["status"] == 403
        assert site.received["/members"] == [""]
        assert "cookies_sent" not in members
        return
    assert members["status"] == 200
    # HttpOnly is stored and sent; Secure over http, a foreign Domain and an
    # expired Max-Age are not; a Domain naming the host itself is kept.
    assert site.cookies("/members") == {"sid", "own"}
    assert site.cookies("/private/x") == {"sid", "own", "scoped"}  # Path respected
    assert members["cookies_sent"] == 2
    assert records[server.url(A, "/login")]["cookies_sent"] == 0
    # A record says how many cookies were sent, never which.
    assert all("s3cr3t" not in json.dumps(r) for r in records.values())


async def test_two_workers_crawling_at_once_share_the_jar(
        redis: Redis, settings: Settings) -> None:
    """Two Worker objects crawl together; every page after /login carries its cookie,
    whichever worker fetched it (max_per_host = 1 and a delay put /login first)."""
    site = CookieSite()
    settings = settings.replace(cookies=True, max_per_host=1, delay=0.05, max_attempts=1)
    with Site(site.handle) as server:
        await seed(redis, settings, io.BytesIO(server.url(A, "/login").encode()))
        workers = [Worker(redis, settings), Worker(redis, settings)]
        async with asyncio.timeout(30):
            await asyncio.gather(*(w.run() for w in workers))
        records = by_url(await results(redis, settings))
    assert records[server.url(A, "/members")]["status"] == 200
    assert "sid=s3cr3t" in site.received["/members"][0]
    assert {r["worker"] for r in records.values()} <= {w.id for w in workers}


async def test_two_worker_processes_send_the_cookie_whichever_fetches_the_page(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    """Two `crawl worker --cookies` processes: /login is fetched by one, and the 30
    pages that need its cookie are spread over both (a delay keeps them both busy)."""
    site = CookieSite()
    with Site(site.handle) as server:
        await seed(redis, settings, io.BytesIO(server.url(A, "/login?many").encode()))
        log = tmp_path / "workers.log"
        procs = [start_worker(settings.redis_url or "", settings.crawl, "--cookies",
                              "--delay", "0.1", log=log) for _ in range(2)]
        codes = await asyncio.to_thread(wait_exit, procs, 60)
        records = by_url(await results(redis, settings))
    assert codes == [0, 0], log.read_text()[-2000:]
    members = [r for url, r in records.items() if "/members/" in url]
    assert len(members) == 30
    assert {r["status"] for r in members} == {200}, log.read_text()[-2000:]
    assert min(r["cookies_sent"] for r in members) >= 2  # sid, own (and brief, within 1 s)
    assert len({r["worker"] for r in members}) == 2  # fetched by both processes


async def test_the_warc_request_record_keeps_the_cookie_header_sent(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    from warcio.archiveiterator import ArchiveIterator

    site = CookieSite()
    warc_dir = tmp_path / "warc"
    settings = settings.replace(cookies=True, max_per_host=1, warc_dir=str(warc_dir),
                                exclude=["/private", "/elsewhere"])
    with Site(site.handle) as server:
        await run_worker(redis, settings, [server.url(A, "/login")])
    sent = {}
    for path in warc_dir.glob("*.warc.gz"):
        with open(path, "rb") as fh:  # noqa: ASYNC230 - a test
            for record in ArchiveIterator(fh):
                if record.rec_type == "request":
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    sent[uri] = record.http_headers.get_header("Cookie")
    assert sent[server.url(A, "/login")] is None
    assert "sid=s3cr3t" in sent[server.url(A, "/members")]


# -- the jar in Redis: bounds and expiry (cookies.lua, claim.lua) ----------------------


async def _lease_for(frontier: Frontier, url: str) -> Lease:
    await frontier.add([(url, 0)])
    claimed = await frontier.claim(1, "w")
    [lease] = claimed.leases
    return lease


def _updates(lines: list[str], url: str) -> list[object]:
    return [MAX_COOKIES, MAX_JAR_BYTES,
            *(a for u in parse_set_cookies(lines, url) for a in u.script_args())]


async def test_a_jar_keeps_at_most_50_cookies_and_8_kib_dropping_the_oldest(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(cookies=True)
    frontier = Frontier(redis, settings)
    url = f"http://{A}/"
    lease = await _lease_for(frontier, url)
    for i in range(60):  # one a call, each set later (in ms, Redis's clock) than the last
        await frontier.run([frontier.cookies_call(lease, _updates([f"c{i}=v"], url))])
        await asyncio.sleep(0.003)
    jar_key = frontier.shards[lease.shard].cookie_jar(lease.host)
    names = {f.split(" ")[2] for f in await redis.hkeys(jar_key)}
    assert names == {f"c{i}" for i in range(10, 60)}
    big = "x" * 3000
    await frontier.run([frontier.cookies_call(
        lease, _updates([f"big{i}={big}" for i in range(4)], url))])
    stored = await redis.hgetall(jar_key)
    assert sum(len(k) + len(v) for k, v in stored.items()) <= MAX_JAR_BYTES
    assert len({k for k in stored if k.endswith(("big0", "big1", "big2", "big3"))}) == 2
    await frontier.complete(lease, "{}")


async def test_an_expired_cookie_is_not_handed_out_and_leaves_the_jar(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(cookies=True)
    frontier = Frontier(redis, settings)
    url = f"http://{A}/"
    lease = await _lease_for(frontier, url)
    past = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() - 3600))
    await frontier.run([frontier.cookies_call(lease, _updates(
        ["keep=1", "soon=1; Max-Age=1", f"old=1; Expires={past}"], url))])
    await frontier.complete(lease, "{}")
    await asyncio.sleep(1.1)
    lease = await _lease_for(frontier, url + "next")
    assert {c.name for c in read_jar(lease.cookies)} == {"keep"}
    jar_key = frontier.shards[lease.shard].cookie_jar(lease.host)
    assert [f.split(" ")[2] for f in await redis.hkeys(jar_key)] == ["keep"]
    # Max-Age=0 deletes the stored cookie.
    await frontier.run([frontier.cookies_call(lease, _updates(["keep=; Max-Age=0"], url))])
    assert not await redis.exists(jar_key)


async def test_without_cookies_a_claim_hands_out_no_jar(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(cookies=True))
    lease = await _lease_for(frontier, f"http://{A}/")
    await frontier.run([frontier.cookies_call(lease, _updates(["a=1"], f"http://{A}/"))])
    await frontier.complete(lease, "{}")
    off = Frontier(redis, settings.replace(cookies=False))
    lease = await _lease_for(off, f"http://{A}/2")
    assert lease.cookies == ""
    assert "a=1" not in repr(lease)
    assert keys.ShardKeys(settings.crawl, 0).cookie_jar("h").endswith(":ck:h")


# -- the rules, on the parser alone ---------------------------------------------------


def test_secure_cookies_go_over_https_only() -> None:
    [update] = parse_set_cookies(["t=1; Secure"], "https://example.com/a")
    jar = read_jar(f"{update.field}\n0|0|s|1")
    assert cookie_header(jar, "https://example.com/b") == ("t=1", 1)
    assert cookie_header(jar, "http://example.com/b") == (None, 0)
    assert parse_set_cookies(["t=1; Secure"], "http://example.com/a") == []


def test_path_defaults_to_the_directory_and_is_matched_by_segments() -> None:
    [update] = parse_set_cookies(["p=1"], "http://example.com/docs/page")
    assert update.path == "/docs"
    jar = read_jar(f"{update.field}\n0|0|-|1")
    assert cookie_header(jar, "http://example.com/docs/other")[1] == 1
    assert cookie_header(jar, "http://example.com/docs")[1] == 1
    assert cookie_header(jar, "http://example.com/docsearch")[1] == 0
    assert cookie_header(jar, "http://example.com/")[1] == 0


def test_a_domain_cookie_stays_with_the_host_that_set_it() -> None:
    [update] = parse_set_cookies(["d=1; Domain=.example.com"], "http://www.example.com/")
    jar = read_jar(f"{update.field}\n0|0|-|1")
    assert cookie_header(jar, "http://www.example.com/")[1] == 1
    assert cookie_header(jar, "http://shop.example.com/")[1] == 0  # per-host jar
    assert parse_set_cookies(["d=1; Domain=other.com"], "http://www.example.com/") == []


def test_oversized_and_malformed_cookies_are_refused() -> None:
    assert parse_set_cookies(["big=" + "x" * 5000], "http://example.com/") == []
    assert parse_set_cookies(["bad name=1", "=nameless", "ctl=a\x01b"],
                             "http://example.com/") == []
    [kept] = parse_set_cookies(["x=1; Partitioned; SameSite=Lax"], "http://example.com/")
    assert (kept.name, kept.value) == ("x", "1")
