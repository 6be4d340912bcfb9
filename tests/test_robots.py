"""robots.txt (RFC 9309), Crawl-delay, and robots meta tags and headers, end to end.

Every test crawls a loopback server and reads the server's own log of what was
requested: a disallowed URL must never reach the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from politeness_site import Site, crawl, html, min_start_gap
from redis.asyncio import Redis

from crawler.bench.sitegen import free_port
from crawler.config import HostPolicy, Settings
from crawler.discovery.seeds import seed
from crawler.errors import RobotsDisallowed
from crawler.frontier import Frontier, Lease
from crawler.net.fetch import Fetcher
from crawler.net.robots import LOCKED, RobotsCache, RobotsUnavailable
from crawler.pages.parse import x_robots_tag
from crawler.worker import Worker

IP = "127.0.0.2"


@dataclass
class Server:
    """robots.txt answers (one per fetch; the last repeats) and pages by path."""

    robots: list[Callable[[web.Request], Any]] = field(default_factory=list)
    pages: dict[str, web.Response | Callable[[], web.Response]] = field(default_factory=dict)
    robots_fetches: int = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            answer = self.robots[min(self.robots_fetches, len(self.robots) - 1)]
            self.robots_fetches += 1
            result = answer(request)
            return await result if asyncio.iscoroutine(result) else result  # type: ignore[no-any-return]
        page = self.pages.get(request.path)
        if page is None:
            if request.path.startswith("/hop"):  # /hop/N redirects on to /hop/N-1, then robots
                n = int(request.path.rsplit("/", 1)[1])
                raise web.HTTPFound(f"/hop/{n - 1}" if n > 1 else "/real-robots.txt")
            if request.path == "/real-robots.txt":
                return web.Response(text="User-agent: *\nDisallow: /no\n")
            return html(title=request.path)
        return page() if callable(page) else page


def redirect(location: str) -> Callable[[web.Request], web.Response]:
    def answer(_: web.Request) -> web.Response:
        raise web.HTTPFound(location)

    return answer


def text(body: str, status: int = 200) -> Callable[[web.Request], web.Response]:
    return lambda _: web.Response(text=body, status=status, content_type="text/plain")


def site_of(server: Server) -> Site:
    return Site(server, ips=(IP,))


async def crawl_links(redis: Redis, settings: Settings, server: Server, links: list[str],
                      ) -> tuple[Site, dict[str, dict[str, Any]]]:
    """Crawl a start page linking to ``links``; return the site and results by URL."""
    server.pages.setdefault("/", html(*links))
    with site_of(server) as site:
        records = await crawl(redis, settings, [site.url(IP, "/")])
    return site, {r["url"].split(str(site.port), 1)[1]: r for r in records}


def error_type(record: dict[str, Any]) -> str | None:
    return record["error"]["type"] if record["error"] else None


# -- rules -----------------------------------------------------------------------------


async def test_disallowed_url_is_never_fetched_and_ends_robots_disallowed(
        redis: Redis, settings: Settings) -> None:
    server = Server([text("User-agent: *\nDisallow: /private/\n")])
    site, got = await crawl_links(redis, settings, server, ["/private/x", "/public"])
    assert "/private/x" not in site.paths()
    assert "/public" in site.paths()
    assert error_type(got["/private/x"]) == "robots_disallowed"
    assert got["/private/x"]["status"] is None
    assert error_type(got["/public"]) is None


@pytest.mark.parametrize(("rules", "path", "allowed"), [
    ("Disallow: /a/\nAllow: /a/b", "/a/b/c", True),  # the longer (more specific) rule wins
    ("Disallow: /a/\nAllow: /a/b", "/a/c", False),
    ("Disallow: /*.pdf$", "/doc.pdf", False),  # * matches anything, $ anchors the end
    ("Disallow: /*.pdf$", "/doc.pdf.html", True),
    ("Disallow: /tmp*/", "/tmpfiles/x", False),
    ("Disallow: /*?print=", "/page?print=1", False),
    ("Disallow:", "/anything", True),  # an empty Disallow allows everything
])
async def test_robots_rules_decide_what_is_fetched(
        redis: Redis, settings: Settings, rules: str, path: str, allowed: bool) -> None:
    server = Server([text(f"User-agent: *\n{rules}\n")])
    site, got = await crawl_links(redis, settings, server, [path])
    assert (path in site.paths()) is allowed
    assert (error_type(got[path]) == "robots_disallowed") is not allowed


async def test_the_group_for_our_product_token_wins_over_the_star_group(
        redis: Redis, settings: Settings) -> None:
    server = Server([text("User-agent: otherbot\nDisallow: /\n\n"
                          "User-agent: crawler\nDisallow: /mine\n\n"
                          "User-agent: *\nDisallow: /\n")])
    site, got = await crawl_links(redis, settings, server, ["/mine", "/open"])
    assert "/open" in site.paths()
    assert "/mine" not in site.paths()
    assert error_type(got["/mine"]) == "robots_disallowed"


async def test_user_agent_carries_the_product_token_and_contact_url(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(user_agent="mybot/2.0", contact_url="https://example.org/bot")
    server = Server([text("User-agent: mybot\nDisallow: /secret\n")])
    site, got = await crawl_links(redis, settings, server, ["/secret", "/open"])
    assert {h.user_agent for h in site.hits} == {"mybot/2.0 (+https://example.org/bot)"}
    assert error_type(got["/secret"]) == "robots_disallowed"


async def test_ignore_robots_fetches_disallowed_urls(redis: Redis, settings: Settings) -> None:
    server = Server([text("User-agent: *\nDisallow: /\n")])
    site, _ = await crawl_links(redis, settings.replace(obey_robots=False), server, ["/x"])
    assert sorted(site.paths()) == ["/", "/x"]


# -- status codes ------------------------------------------------------------------------


async def test_robots_404_allows_everything(redis: Redis, settings: Settings) -> None:
    server = Server([text("Disallow: /", status=404)])
    site, got = await crawl_links(redis, settings, server, ["/x"])
    assert "/x" in site.paths()
    assert error_type(got["/x"]) is None


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_robots_5xx_or_429_disallows_until_robots_is_fetched_again(
        redis: Redis, settings: Settings, status: int) -> None:
    server = Server([text("busy", status=status), text("User-agent: *\nAllow: /\n")])
    with site_of(server) as site:
        # The first failure holds the host for half to all of backoff_base.
        records = await crawl(redis, settings.replace(backoff_base=0.3), [site.url(IP, "/")])
        hits = sorted(site.hits, key=lambda h: h.start)
    assert [h.path for h in hits] == ["/robots.txt", "/robots.txt", "/"]
    assert hits[1].start - hits[0].start >= 0.15
    assert error_type(records[0]) is None


async def test_robots_that_stays_5xx_ends_urls_as_robots_unavailable(
        redis: Redis, settings: Settings) -> None:
    server = Server([text("down", status=500)])
    settings = settings.replace(max_attempts=3)
    with site_of(server) as site:
        records = await crawl(redis, settings, [site.url(IP, "/"), site.url(IP, "/2")])
        assert site.paths() == ["/robots.txt"] * 3  # its retry budget, then no more
    assert [error_type(r) for r in records] == ["robots_unavailable"] * 2
    assert "after 3 tries: HTTP 500" in records[0]["error"]["message"]


async def test_robots_timeout_disallows_for_now(redis: Redis, settings: Settings) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(4.0)
        return web.Response(text="")

    server = Server([slow, text("")])
    # Timeouts long enough for every other request on a busy machine.
    settings = settings.replace(read_timeout=1.0, total_timeout=1.5)
    with site_of(server) as site:
        records = await crawl(redis, settings, [site.url(IP, "/")])
        assert [h.path for h in sorted(site.hits, key=lambda h: h.start)] == [
            "/robots.txt", "/robots.txt", "/"]
    assert error_type(records[0]) is None


async def test_the_retry_budget_holds_when_robots_error_ttl_is_shorter_than_a_try(
        redis: Redis, settings: Settings) -> None:
    """A robots.txt that never answers, with robots_error_ttl (0.2 s) shorter than
    one timed-out fetch (0.8 s): the failures still add up to max_attempts, and the
    URL ends. The count once expired with the error TTL, between two tries, and the
    host's robots.txt was fetched again forever."""
    async def never(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="")

    server = Server([never])
    settings = settings.replace(max_attempts=3, robots_error_ttl=0.2, read_timeout=0.6,
                                total_timeout=0.8, backoff_base=0.1, backoff_max=0.2)
    with site_of(server) as site:
        records = await crawl(redis, settings, [site.url(IP, "/")], limit=30.0)
        assert site.paths() == ["/robots.txt"] * 3
    assert [error_type(r) for r in records] == ["timeout"]
    assert "after 3 tries" in records[0]["error"]["message"]


async def test_an_unreachable_host_ends_its_urls_with_the_connect_error_after_the_budget(
        redis: Redis, settings: Settings) -> None:
    port = free_port("127.0.0.4")  # nothing listens there
    dead = [f"http://127.0.0.4:{port}/", f"http://127.0.0.4:{port}/other"]
    records = await crawl(redis, settings.replace(max_attempts=2), dead)
    assert [error_type(r) for r in records] == ["connect_error"] * 2
    assert "robots.txt unreachable after 2 tries" in records[0]["error"]["message"]


async def test_robots_redirects_are_followed_up_to_five_hops(
        redis: Redis, settings: Settings) -> None:
    server = Server([redirect("/hop/4")])  # 1 + 4 hops to /real-robots.txt
    site, got = await crawl_links(redis, settings, server, ["/no", "/yes"])
    assert "/no" not in site.paths()
    assert error_type(got["/no"]) == "robots_disallowed"


@pytest.mark.parametrize(("target_delay", "spaced"), [(0.6, True), (0.0, False)])
async def test_a_robots_redirect_to_another_host_waits_for_that_hosts_turn(
        redis: Redis, settings: Settings, target_delay: float, spaced: bool) -> None:
    """127.0.0.2/robots.txt redirects to 127.0.0.3/robots.txt, a host crawled
    too, with its own delay: the hop is a request to 127.0.0.3 like any other,
    spaced from that host's own. With no delay there (the control) the two
    robots.txt requests to 127.0.0.3 go together."""
    origin, target = "127.0.0.2", "127.0.0.3"
    target_hit = asyncio.Event()  # used on the server's loop only

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.url.host == target:
            target_hit.set()
        if request.path == "/robots.txt":
            if request.url.host == origin:
                # Redirect right after the target's own first request: the hop
                # must not follow it before the target's delay.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(target_hit.wait(), 5.0)
                raise web.HTTPFound(f"http://{target}:{request.url.port}/robots.txt")
            return web.Response(text="User-agent: *\nDisallow: /no\n")
        return html()

    settings = settings.replace(host_overrides={target: HostPolicy(1, target_delay)})
    with Site(handler, ips=(origin, target)) as site:
        records = await crawl(redis, settings, [site.url(target, "/t"), site.url(origin, "/no"),
                                                site.url(origin, "/yes")])
        assert sorted(site.paths(target)) == ["/robots.txt", "/robots.txt", "/t"]
        gap = min_start_gap(site.spans(target))
    assert (gap >= 0.6) is spaced, f"smallest gap {gap:.3f} s"
    # The origin obeys the rules it was redirected to.
    assert {r["url"].rsplit("/", 1)[1]: error_type(r) for r in records} == {
        "t": None, "no": "robots_disallowed", "yes": None}


async def test_more_than_five_robots_redirects_allow_everything(
        redis: Redis, settings: Settings) -> None:
    server = Server([redirect("/hop/5")])  # 6 hops: RFC 9309 "unavailable"
    site, got = await crawl_links(redis, settings, server, ["/no"])
    assert "/no" in site.paths()
    assert error_type(got["/no"]) is None


# -- size: the first 512 KiB are read and obeyed ------------------------------------------


def padded(head: str, size: int) -> str:
    """``head`` then comment lines, ``size`` characters in all."""
    line = "# " + "x" * 77 + "\n"
    body = head + line * ((size - len(head)) // len(line))
    return body + "#" * (size - len(body) - 1) + "\n"


@pytest.mark.parametrize(("rules", "fetched"), [
    ("Disallow: /", []),
    ("Allow: /", ["/", "/secret"]),  # the control: the same 3 MiB, allowing all
])
async def test_a_3_mib_robots_txt_is_obeyed_as_far_as_it_is_read(
        redis: Redis, settings: Settings, rules: str, fetched: list[str]) -> None:
    body = padded(f"User-agent: *\n{rules}\n", 3 * 1024 * 1024)  # its rule in the first KiB
    with site_of(Server([text(body)])) as site:
        records = await crawl(redis, settings, [site.url(IP, "/"), site.url(IP, "/secret")])
        assert sorted(site.paths()) == sorted(["/robots.txt", *fetched])
    assert {error_type(r) for r in records} == {"robots_disallowed" if not fetched else None}


async def test_robots_txt_is_read_to_512_kib_then_no_further_and_its_cut_line_dropped(
        redis: Redis, settings: Settings) -> None:
    from crawler.net.robots import ROBOTS_PARSE_BYTES

    cut_line = "Disallow: /secret-deep\n"  # kept cut, "Disallow: /s" would forbid /secret
    at_cut = len("Disallow: /s")
    head = padded("User-agent: *\nDisallow: /private\n", ROBOTS_PARSE_BYTES - at_cut)
    filler = padded("", 64 * 1024).encode()
    sent = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        try:
            await resp.write((head + cut_line).encode())
            for _ in range(1024):  # 64 MiB at most; a reader that never stops times out
                await resp.write(filler)
                sent += len(filler)
        except (ConnectionError, RuntimeError):
            pass  # the crawler stopped reading and closed the connection
        return resp

    with site_of(Server([endless])) as site:
        records = await crawl(redis, settings, [site.url(IP, "/private/x"),
                                                site.url(IP, "/secret")])
        assert sorted(site.paths()) == ["/robots.txt", "/secret"]
    assert {r["url"].rsplit("/", 1)[1]: error_type(r) for r in records} == {
        "x": "robots_disallowed", "secret": None}
    assert sent < 60 * 1024 * 1024  # the server was cut off long before its 64 MiB


# -- fetched once, shared ------------------------------------------------------------------


async def test_two_workers_racing_fetch_each_robots_txt_once(
        redis: Redis, settings: Settings) -> None:
    ips = ("127.0.0.2", "127.0.0.3", "127.0.0.4")

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/robots.txt":
            await asyncio.sleep(0.3)  # both workers hold leases of the host meanwhile
            return web.Response(text="User-agent: *\nDisallow: /private\n")
        return html(*(f"/p{i}" for i in range(6)))

    with Site(handler, ips=ips) as site:
        await seed(redis, settings, _lines([site.url(ip, "/") for ip in ips]
                                           + [site.url(ip, "/p0") for ip in ips]))
        # Two leases a worker: the first cannot take every URL before the second starts.
        workers = [Worker(redis, settings.replace(concurrency=2, claim_batch=2))
                   for _ in range(2)]
        async with asyncio.timeout(20):
            await asyncio.gather(*(w.run() for w in workers))
        for ip in ips:
            assert site.paths(ip).count("/robots.txt") == 1
    assert all(w.counters.pages > 0 for w in workers)
    assert sum(w.robots.waits for w in workers if w.robots) > 0, "no race happened"
    assert sum(w.robots.fetches for w in workers if w.robots) == 3


async def test_a_verdict_stored_while_we_wait_for_the_lock_is_used_not_fetched_again(
        redis: Redis, settings: Settings) -> None:
    """Another worker holds the fetch lock; it stores its verdict and lets go while
    we wait: we must use its verdict, not fetch again. (Reading and locking are one
    script, robots_peek.lua: no verdict can land between them.)"""
    with site_of(Server([text("")])) as site:
        frontier = Frontier(redis, settings)
        await frontier.add([(site.url(IP, "/x"), 0)])
        [lease] = (await frontier.claim(1, "w")).leases
        fetcher = Fetcher(settings)
        cache = RobotsCache(frontier, fetcher, settings)
        shard, origin = frontier.shards[0], f"http://{IP}:{site.port}"
        await redis.set(shard.robots_lock(origin), "theirs", px=60_000)

        async def the_other_worker_finishes() -> None:
            await asyncio.sleep(0.2)
            await redis.set(shard.robots(origin), "RUser-agent: *\nDisallow: /x\n", px=60_000)
            await redis.delete(shard.robots_lock(origin))

        finishing = asyncio.create_task(the_other_worker_finishes())
        try:
            with pytest.raises(RobotsDisallowed):
                await cache.check(lease)
        finally:
            await finishing
            await fetcher.close()
        assert site.hits == []
    assert cache.fetches == 0
    assert cache.waits == 1


async def test_a_verdict_or_else_the_fetch_lock_comes_in_one_round_trip(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    cache = RobotsCache(frontier, Fetcher(settings), settings)
    try:
        shard, origin = frontier.shards[0], "http://127.0.0.2"
        lock, key = shard.robots_lock(origin), shard.robots(origin)
        before = frontier.round_trips
        assert await cache._read(shard, origin, "mine", lock=True) == (None, LOCKED)
        assert frontier.round_trips == before + 1
        assert await redis.get(lock) == "mine"
        assert await cache._read(shard, origin, "theirs", lock=True) == (None, 0)  # held
        await redis.set(key, "A", px=60_000)
        raw, ttl_ms = await cache._read(shard, origin, "theirs", lock=True)
        assert raw == "A" and 0 < ttl_ms <= 60_000
        assert await redis.get(lock) == "mine"  # a verdict found takes no lock
        await redis.delete(lock, key)
        assert await cache._read(shard, origin, "late", lock=False) == (None, 0)
        assert not await redis.exists(lock)  # past its deadline a lease takes no lock
    finally:
        await cache.fetcher.close()


async def test_a_verdict_about_to_expire_holds_the_host_for_what_is_left_not_a_day(
        redis: Redis, settings: Settings) -> None:
    """A "robots.txt unavailable for now" verdict lives for its backoff (tens of ms
    here). Read in its last millisecond, PTTL says 0; read just after it went, a GET
    and a PTTL sent apart said the verdict and -2. Either was taken for "no expiry",
    and the lease went back with the host held for robots_ttl: a day. (Found as a
    1-in-30 hang of test_robots_that_stays_5xx... under load.)"""
    frontier = Frontier(redis, settings)
    cache = RobotsCache(frontier, Fetcher(settings), settings)
    try:
        shard, origin = frontier.shards[0], "http://127.0.0.2"
        read = cache._read
        for ttl_ms in (0, -2):
            await redis.set(shard.robots(origin), "Drobots_unavailable|HTTP 500", px=60_000)

            async def read_at_its_end(*args: Any, ttl_ms: int = ttl_ms, **kwargs: Any
                                      ) -> tuple[str | None, int]:
                raw, _ = await read(*args, **kwargs)
                return raw, ttl_ms  # what PTTL answers in the verdict's last moment

            cache._read = read_at_its_end  # type: ignore[method-assign]
            lease = Lease(id="1", shard=0, host="127.0.0.2", attempts=0, depth=0,
                          url="http://127.0.0.2/")
            with pytest.raises(RobotsUnavailable) as raised:
                await cache.check(lease)
            cache._read = read  # type: ignore[method-assign]
            cache.local.clear()
            assert raised.value.retry_after < 1.0, (ttl_ms, raised.value.retry_after)
    finally:
        await cache.fetcher.close()


@pytest.mark.parametrize(("ttl", "again"), [(86400.0, 0), (0.5, 1)])
async def test_robots_is_fetched_again_only_after_its_ttl(
        redis: Redis, settings: Settings, ttl: float, again: int) -> None:
    server = Server([text("User-agent: *\nDisallow: /private\n")])
    settings = settings.replace(robots_ttl=ttl)
    with site_of(server) as site:
        await crawl(redis, settings, [site.url(IP, "/a")])
        first = site.paths().count("/robots.txt")
        if again:  # wait until the verdict has expired in Redis, however long that takes
            key = Frontier(redis, settings).shards[0].robots(site.url(IP, "/")[:-1])
            async with asyncio.timeout(10):
                while await redis.exists(key):  # noqa: ASYNC110 - polling Redis
                    await asyncio.sleep(0.05)
        await crawl(redis, settings, [site.url(IP, "/b")])  # a new worker: only Redis remembers
        assert site.paths().count("/robots.txt") == first + again
        assert {"/a", "/b"} <= set(site.paths())


# -- Crawl-delay ------------------------------------------------------------------------------


@pytest.mark.parametrize(("rules", "spaced"), [("Crawl-delay: 0.6", True), ("", False)])
async def test_crawl_delay_spaces_the_hosts_requests(
        redis: Redis, settings: Settings, rules: str, spaced: bool) -> None:
    server = Server([text(f"User-agent: *\n{rules}\n")])
    site, _ = await crawl_links(redis, settings, server, ["/1", "/2", "/3"])
    gap = min_start_gap(site.spans(IP))
    assert len(site.hits) == 5
    assert (gap >= 0.6) is spaced


@pytest.mark.parametrize(("rules", "spaced"), [("Crawl-delay: 0.5", True), ("", False)])
async def test_urls_claimed_before_the_crawl_delay_was_known_are_spaced_by_it(
        redis: Redis, settings: Settings, rules: str, spaced: bool) -> None:
    """delay = 0 and 4 a host: one claim takes all three URLs before robots.txt
    is read. The first fetches robots.txt; the other two must not then go at once."""
    with site_of(Server([text(f"User-agent: *\n{rules}\n")])) as site:
        await crawl(redis, settings, [site.url(IP, f"/{i}") for i in (1, 2, 3)])
        assert sorted(site.paths()) == ["/1", "/2", "/3", "/robots.txt"]
        gap = min_start_gap(site.spans(IP))
    assert (gap >= 0.5) is spaced, f"smallest gap {gap:.3f} s"


@pytest.mark.parametrize(("rules", "spaced"), [("Crawl-delay: 0.5", True), ("", False)])
async def test_a_late_start_never_shortens_a_crawl_delay_gap(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch, rules: str,
        spaced: bool) -> None:
    """delay = 0: the only spacing is robots.txt's Crawl-delay. The worker reaches
    the send of the first page 0.4 s after its claim; sent that late, it would
    start 0.1 s before the next page, claimed on time. Given back unfetched, it
    waits for a later slot."""
    check = RobotsCache.check
    late: list[str] = []

    async def late_once(self: RobotsCache, lease: Any, deadline: float = float("inf")) -> None:
        await check(self, lease, deadline)
        if not late:
            late.append(lease.url)
            await asyncio.sleep(0.4)

    monkeypatch.setattr(RobotsCache, "check", late_once)
    pages = [f"/{i}" for i in range(1, 5)]
    with site_of(Server([text(f"User-agent: *\n{rules}\n")])) as site:
        await crawl(redis, settings, [site.url(IP, page) for page in pages])
        assert sorted(site.paths()) == [*pages, "/robots.txt"]
        gap = min_start_gap(site.spans(IP))
    assert late
    assert (gap >= 0.5) is spaced, f"smallest gap {gap:.3f} s"


async def test_crawl_delay_over_the_cap_is_crawled_at_the_cap_and_counted(
        redis: Redis, settings: Settings) -> None:
    server = Server([text("User-agent: *\nCrawl-delay: 60\n")])
    started = time.monotonic()
    site, _ = await crawl_links(redis, settings.replace(crawl_delay_cap=0.2), server, ["/1"])
    assert 0.2 <= min_start_gap(site.spans(IP)) < 1.0
    assert time.monotonic() - started < 5
    stats = await redis.hgetall(f"crawl:{{{settings.crawl}:0}}:stats")
    assert stats["robots_capped"] == "1"


# -- robots meta tags and X-Robots-Tag -------------------------------------------------------


async def test_meta_robots_nofollow_follows_no_links_but_counts_them(
        redis: Redis, settings: Settings) -> None:
    server = Server([text("")], {"/": html("/a", "/b", head='<meta name="robots" '
                                                             'content="nofollow">')})
    site, got = await crawl_links(redis, settings, server, [])
    assert set(site.paths()) == {"/robots.txt", "/"}
    assert got["/"]["links"] == 2


async def test_x_robots_tag_nofollow_follows_no_links(redis: Redis, settings: Settings) -> None:
    page = html("/a", "/b")
    page.headers["X-Robots-Tag"] = "nofollow"
    site, got = await crawl_links(redis, settings, Server([text("")], {"/": page}), [])
    assert set(site.paths()) == {"/robots.txt", "/"}
    assert got["/"]["links"] == 2


async def test_x_robots_tag_for_another_crawler_is_ignored_and_ours_obeyed(
        redis: Redis, settings: Settings) -> None:
    theirs, ours = html("/a"), html("/b")
    theirs.headers["X-Robots-Tag"] = "otherbot: none"
    ours.headers["X-Robots-Tag"] = "crawler: nofollow"  # our product token (crawler/0.1)
    server = Server([text("")], {"/theirs": theirs, "/ours": ours})
    with site_of(server) as site:
        await crawl(redis, settings, [site.url(IP, "/theirs"), site.url(IP, "/ours")])
        assert "/a" in site.paths() and "/b" not in site.paths()


@pytest.mark.parametrize(("values", "directives"), [
    (["noindex"], {"noindex"}),
    (["otherbot: none"], set()),
    (["NoIndex, NoFollow"], {"noindex", "nofollow"}),
    (["crawler: nofollow", "otherbot: noindex"], {"nofollow"}),
    (["otherbot: noindex, crawler: nofollow"], {"nofollow"}),  # scope runs to the next agent
    (["unavailable_after: 25 Jun 2010 15:00:00 PST"], {"unavailable_after"}),
    (["crawler: unavailable_after: 25 Jun 2010, max-snippet: 20"],
     {"unavailable_after", "max-snippet"}),
    (["googlebot: none", "noarchive"], {"noarchive"}),  # each header value starts unscoped
])
def test_x_robots_tag_directives_follow_googles_documented_format(
        values: list[str], directives: set[str]) -> None:
    assert x_robots_tag(values, "crawler") == directives


@pytest.mark.parametrize("where", ["meta", "header"])
async def test_noindex_is_recorded_and_links_are_still_followed(
        redis: Redis, settings: Settings, where: str) -> None:
    page = html("/a", head='<meta name="robots" content="noindex">' if where == "meta" else "")
    if where == "header":
        page.headers["X-Robots-Tag"] = "noindex"
    site, got = await crawl_links(redis, settings, Server([text("")], {"/": page}), [])
    assert got["/"]["noindex"] is True
    assert got["/a"]["noindex"] is False
    assert "/a" in site.paths()


@pytest.mark.parametrize(("follow_nofollow", "followed"), [(False, False), (True, True)])
async def test_rel_nofollow_links_are_skipped_unless_follow_nofollow(
        redis: Redis, settings: Settings, follow_nofollow: bool, followed: bool) -> None:
    page = web.Response(text='<a href="/plain">p</a><a rel="nofollow" href="/nf">n</a>',
                        content_type="text/html")
    site, got = await crawl_links(redis, settings.replace(follow_nofollow=follow_nofollow),
                                  Server([text("")], {"/": page}), [])
    assert "/plain" in site.paths()
    assert ("/nf" in site.paths()) is followed
    assert got["/"]["links"] == 2


def _lines(urls: list[str]) -> io.BytesIO:
    return io.BytesIO("\n".join(urls).encode())



async def test_the_fetch_lock_is_released_only_by_its_holder_in_one_script(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    frontier = Frontier(redis, settings)
    cache = RobotsCache(frontier, Fetcher(settings), settings)
    shard, origin = frontier.shards[0], "http://127.0.0.2"
    lock = shard.robots_lock(origin)
    await redis.set(lock, "theirs")
    sent: list[str] = []

    def refuse(name: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            sent.append(name)  # a GET then a DEL from the client could race
            raise AssertionError(f"unlock sent {name} from the client")
        return call

    monkeypatch.setattr(redis, "get", refuse("GET"))
    monkeypatch.setattr(redis, "delete", refuse("DEL"))
    await cache._unlock(shard, origin, "ours")  # another worker took it meanwhile
    assert await redis.exists(lock)
    await cache._unlock(shard, origin, "theirs")
    assert not await redis.exists(lock)
    assert sent == []
    await cache.fetcher.close()


async def test_redis_keeps_only_the_rules_we_obey_not_the_file(
        redis: Redis, settings: Settings) -> None:
    others = "".join(f"User-agent: bot{i}\nDisallow: /{'x' * 40}{i}/\n" for i in range(5000))
    body = others + "User-agent: *\nDisallow: /private\nSitemap: http://s.test/map.xml\n"
    assert len(body) > 250_000
    server = Server([text(body)])
    site, _ = await crawl_links(redis, settings, server, ["/private/x", "/public"])
    assert "/private/x" not in site.paths() and "/public" in site.paths()
    key = Frontier(redis, settings).shards[0].robots(site.url(IP, "/")[:-1])
    stored = await redis.get(key)
    assert stored is not None and len(stored) < 200
    assert stored.startswith("R") and "Disallow: /private" in stored.replace("disallow", "Disallow")


async def test_rules_for_us_past_64_kib_are_cut_at_a_line_and_what_is_kept_is_obeyed(
        redis: Redis, settings: Settings) -> None:
    from crawler.net.robots_rules import RULES_MAX_CHARS

    ours = "".join(f"Disallow: /blocked{i:05d}/\n" for i in range(6000))  # ~150 KiB for *
    body = "User-agent: *\n" + ours
    assert len(body) > 2 * RULES_MAX_CHARS
    server = Server([text(body)])
    site, _ = await crawl_links(redis, settings, server, ["/blocked00000/x", "/public"])
    assert "/blocked00000/x" not in site.paths() and "/public" in site.paths()
    key = Frontier(redis, settings).shards[0].robots(site.url(IP, "/")[:-1])
    stored = await redis.get(key)
    assert stored is not None and RULES_MAX_CHARS // 2 < len(stored) <= RULES_MAX_CHARS + 16
    assert stored.endswith("/\n")  # cut between lines, never inside a rule
