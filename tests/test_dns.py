"""DNS (crawler.net.dns) against a real DNS server on loopback (crawler.bench.dnsserver).

The server answers h<i>.test with 127.0.0.<2 + i % 250> for 10,000 names,
nx*.test with NXDOMAIN, servfail*.test with SERVFAIL, never answers
silent*.test, and answers slow*.test after 200 ms; it logs every query.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from crawl_helpers import crawl
from redis.asyncio import Redis

pytest.importorskip("dnslib", reason="dnslib (a test extra) serves the test zone")

from crawler import errors
from crawler.bench.dnsserver import DNSServer
from crawler.bench.sitegen import free_port
from crawler.config import Settings, load_settings
from crawler.errors import ConfigError
from crawler.net.dns import CachingResolver, LookupFailed
from crawler.net.fetch import Fetcher
from crawler.net.guard import AddressPolicy, GuardedResolver


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer(hosts=10_000) as server:
        yield server


@pytest.fixture
async def site() -> AsyncIterator[int]:
    """A web server on 127.0.0.2 and 127.0.0.3 (one port) whose pages name their Host."""
    async def page(request: web.Request) -> web.Response:
        host = request.host.split(":")[0]
        return web.Response(text=f"<title>{host}</title><a href='/next'>n</a>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/next", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port("127.0.0.2")
    for ip in ("127.0.0.2", "127.0.0.3"):
        await web.TCPSite(runner, ip, port).start()
    yield port
    await runner.cleanup()


def on(dns: DNSServer, settings: Settings, **changes: object) -> Settings:
    return settings.replace(**{"dns_servers": (dns.address,), "dns_timeout": 0.3,
                               "dns_tries": 2, **changes})


# -- through the crawler -----------------------------------------------------------------


async def test_a_crawl_resolves_names_through_the_dns_server(
        redis: Redis, settings: Settings, dns: DNSServer, site: int) -> None:
    seeds = [f"http://h{i}.test:{site}/" for i in (0, 1, 250)]  # 127.0.0.2, .3, .2
    records = await crawl(redis, on(dns, settings, scope="host"), seeds)
    for i in (0, 1, 250):
        for path in ("/", "/next"):
            record = records[f"http://h{i}.test:{site}{path}"]
            assert record["error"] is None and record["title"] == f"h{i}.test", record
    asked = dns.log.names()
    assert {f"h{i}.test" for i in (0, 1, 250)} <= set(asked)
    # robots.txt, /, /next of each host: one A and one AAAA query a name, the rest cached
    assert all(asked[f"h{i}.test"] == 2 for i in (0, 1, 250)), asked


async def test_names_that_do_not_resolve_end_fast_as_dns_errors_saying_why(
        redis: Redis, settings: Settings, dns: DNSServer) -> None:
    urls = {"nx": "http://nx1.test/", "servfail": "http://servfail1.test/",
            "silent": "http://silent1.test/"}
    started = time.monotonic()
    records = await crawl(redis, on(dns, settings, obey_robots=False, max_attempts=2),
                          list(urls.values()))
    took = time.monotonic() - started
    nx, servfail, silent = (records[urls[k]] for k in ("nx", "servfail", "silent"))
    assert nx["error"]["type"] == "dns_error" and "NXDOMAIN" in nx["error"]["message"]
    assert servfail["error"]["type"] == "dns_error" and "SERVFAIL" in servfail["error"]["message"]
    assert silent["error"]["type"] == "dns_error" and "timeout" in silent["error"]["message"]
    assert nx["attempts"] == servfail["attempts"] == 1  # an answer about the name is final
    assert silent["attempts"] == 2  # a timeout is tried again, within max_attempts
    # each lookup is bounded by dns_timeout * dns_tries (+0.5 s): two of 1.1 s at most
    assert took < 8, took


async def test_a_host_whose_robots_txt_name_is_nxdomain_ends_all_its_urls(
        redis: Redis, settings: Settings, dns: DNSServer) -> None:
    urls = [f"http://nx2.test/p{i}" for i in range(5)]
    records = await crawl(redis, on(dns, settings), urls)
    assert {r["error"]["type"] for r in records.values()} == {"dns_error"}
    assert dns.log.asked("nx2.test", "A") == 1  # the negative cache answered the rest


async def test_a_robots_txt_lookup_that_times_out_is_tried_again_before_the_host_ends(
        redis: Redis, settings: Settings, dns: DNSServer) -> None:
    urls = [f"http://silent3.test/p{i}" for i in range(3)]
    records = await crawl(redis, on(dns, settings, dns_timeout=0.2, max_attempts=2), urls)
    assert all(r["error"]["type"] == "dns_error" and "timeout" in r["error"]["message"]
               for r in records.values()), records
    # robots.txt's retry budget: two lookups (each sent dns_tries = 2 times), where an
    # NXDOMAIN ends the host after one (the test above)
    assert dns.log.asked("silent3.test", "A") == 4


# -- the caches --------------------------------------------------------------------------


async def test_one_query_per_name_within_its_ttl_however_many_ask(
        settings: Settings, dns: DNSServer) -> None:
    resolver = CachingResolver(on(dns, settings))
    try:
        for _ in range(3):
            assert [r["host"] for r in await resolver.resolve("h5.test", 80, 0)] == ["127.0.0.7"]
        await asyncio.gather(*(resolver.resolve("slow1.test", 80, 0) for _ in range(20)))
    finally:
        await resolver.close()
    assert dns.log.asked("h5.test", "A") == 1
    assert dns.log.asked("slow1.test", "A") == 1  # 20 callers, one lookup in flight
    assert resolver.stats.hits == 2 and resolver.stats.joined == 19


async def test_a_ttl_that_ran_out_means_a_new_query_within_min_and_max(
        settings: Settings, dns: DNSServer) -> None:
    short = CachingResolver(on(dns, settings, dns_min_ttl=0))  # ttl1-*: a 1 s TTL
    floored = CachingResolver(on(dns, settings, dns_min_ttl=30))
    capped = CachingResolver(on(dns, settings, dns_min_ttl=0, dns_max_ttl=1))  # h*: 300 s
    try:
        for resolver, name in ((short, "ttl1-a.test"), (floored, "ttl1-b.test"),
                               (capped, "h7.test")):
            await resolver.resolve(name, 80, 0)
            await resolver.resolve(name, 80, 0)
        assert dns.log.asked("ttl1-a.test", "A") == 1  # within the TTL: cached
        await asyncio.sleep(1.3)
        for resolver, name in ((short, "ttl1-a.test"), (floored, "ttl1-b.test"),
                               (capped, "h7.test")):
            await resolver.resolve(name, 80, 0)
    finally:
        for resolver in (short, floored, capped):
            await resolver.close()
    assert dns.log.asked("ttl1-a.test", "A") == 2  # expired after its 1 s TTL
    assert dns.log.asked("ttl1-b.test", "A") == 1  # dns_min_ttl = 30 kept it
    # dns_max_ttl = 1 dropped a 300 s answer from our cache (c-ares' own cache may
    # answer the new lookup: the record's TTL allows it)
    assert capped.stats.lookups == 2 and short.stats.lookups == 2 and floored.stats.lookups == 1


async def test_nxdomain_and_servfail_are_cached_for_the_negative_ttl(
        settings: Settings, dns: DNSServer) -> None:
    resolver = CachingResolver(on(dns, settings, dns_negative_ttl=0.6))
    try:
        for name, kind in (("nx3.test", "NXDOMAIN"), ("servfail3.test", "SERVFAIL")):
            for _ in range(3):
                with pytest.raises(LookupFailed) as failed:
                    await resolver.resolve(name, 80, 0)
                assert failed.value.kind == kind and not failed.value.retry
        first = {n: dns.log.asked(n, "A") for n in ("nx3.test", "servfail3.test")}
        await asyncio.sleep(0.8)
        for name in ("nx3.test", "servfail3.test"):
            with pytest.raises(LookupFailed):
                await resolver.resolve(name, 80, 0)
    finally:
        await resolver.close()
    assert first["nx3.test"] == 1 and first["servfail3.test"] >= 1  # c-ares may try twice
    assert resolver.stats.negative_hits == 4
    assert dns.log.asked("nx3.test", "A") == 2  # asked again once the 0.6 s ran out
    assert dns.log.asked("servfail3.test", "A") > first["servfail3.test"]


# -- limits ------------------------------------------------------------------------------


async def test_lookups_in_flight_stay_within_dns_concurrency(
        settings: Settings, dns: DNSServer) -> None:
    async def burst(limit: int, tag: str) -> int:
        dns.log.clear()
        resolver = CachingResolver(on(dns, settings, dns_concurrency=limit))
        try:
            await asyncio.gather(*(resolver.resolve(f"slow{tag}{i}.test", 80, 0)
                                   for i in range(24)))
        finally:
            await resolver.close()
        assert resolver.stats.most_in_flight <= limit
        return dns.log.most_in_flight

    limited = await burst(3, "a")
    assert limited <= 2 * 3  # each lookup is an A and an AAAA query
    assert await burst(24, "b") > 2 * 3  # control: a larger limit lets more through


async def test_a_name_that_is_never_answered_times_out_within_its_bound(
        settings: Settings, dns: DNSServer) -> None:
    fetcher = Fetcher(on(dns, settings, dns_timeout=0.2, dns_tries=2))
    try:
        started = time.monotonic()
        with pytest.raises(errors.DNSError, match="timeout") as failed:
            await fetcher.get("http://silent2.test/")
        assert time.monotonic() - started < 0.2 * 2 + 0.5 + 0.5
        assert failed.value.retry
        with pytest.raises(errors.DNSError, match="NXDOMAIN") as nx:
            await fetcher.get("http://nx4.test/")
        assert not nx.value.retry
    finally:
        await fetcher.close()


# -- the SSRF guard on what DNS returned ---------------------------------------------------


async def test_a_name_resolving_to_loopback_is_blocked_without_allow_private(
        redis: Redis, settings: Settings, dns: DNSServer, site: int) -> None:
    guarded = on(dns, settings, allow_private=False, obey_robots=False)
    url = f"http://h0.test:{site}/"
    record = (await crawl(redis, guarded, [url]))[url]
    assert record["error"]["type"] == "blocked_address" and "127.0.0.2" in \
        record["error"]["message"]
    async with Fetcher(guarded.replace(allow_cidrs=("127.0.0.2/32",))) as fetcher:
        assert (await fetcher.get(url)).status == 200  # allow_cidrs lets it through
        with pytest.raises(errors.BlockedAddress):
            await fetcher.get(f"http://h1.test:{site}/")  # 127.0.0.3: still refused


async def test_the_guard_checks_every_address_a_and_aaaa(
        settings: Settings, dns: DNSServer) -> None:
    inner = CachingResolver(on(dns, settings))
    try:
        everything = await inner.resolve("six.test", 80, socket.AF_UNSPEC)
        assert {r["host"] for r in everything} == {"127.0.0.9", "::1"}
        guard = GuardedResolver(AddressPolicy(allow_cidrs=("127.0.0.9/32",)), inner)
        assert [r["host"] for r in await guard.resolve("six.test", 80, socket.AF_UNSPEC)] \
            == ["127.0.0.9"]  # ::1 (AAAA) dropped
        with pytest.raises(OSError, match="blocked"):
            await GuardedResolver(AddressPolicy(), inner).resolve("six.test", 80, 0)
    finally:
        await inner.close()


# -- the setting -------------------------------------------------------------------------


def test_dns_servers_from_the_environment_and_a_file_are_checked(tmp_path: object) -> None:
    got = load_settings(env={"CRAWL_DNS_SERVERS": "127.0.0.1:5353,::1,[::1]:53"})
    assert got.dns_servers == ("127.0.0.1:5353", "::1", "[::1]:53")
    with pytest.raises(ConfigError, match=r"CRAWL_DNS_SERVERS.*ip or ip:port"):
        load_settings(env={"CRAWL_DNS_SERVERS": "dns.example"})
    with pytest.raises(ConfigError, match="dns_servers"):
        load_settings(env={"CRAWL_DNS_SERVERS": "127.0.0.1:99999"})


async def test_politeness_by_ip_asks_the_same_resolver_as_the_fetches(
        redis: Redis, settings: Settings, dns: DNSServer, site: int) -> None:
    from crawl_helpers import seed_urls

    from crawler.worker import Worker

    s = on(dns, settings, politeness_key="ip", obey_robots=False)
    await seed_urls(redis, s, [f"http://h0.test:{site}/", f"http://h250.test:{site}/"])
    worker = Worker(redis, s)
    async with asyncio.timeout(60):
        await worker.run()
    keyer = worker.frontier.keyer
    assert keyer.cache["h0.test"][0] == keyer.cache["h250.test"][0] == "127.0.0.2"


def test_the_dns_benchmark_crawls_every_host_and_prints_its_figures() -> None:
    from crawler.bench.dns import run_dns_bench

    lines: list[str] = []
    report = run_dns_bench(hosts=120, concurrency=40, out=None, echo=lines.append)
    assert report["lookups"]["failed"] == {} and report["lookups"]["names"] == 120
    assert report["crawl"]["pages"] == 120 and report["crawl"]["errors"] == 0
    assert report["crawl"]["lookups"] == 120  # one a host: the rest came from the cache
    assert report["dns_server"]["queries"] >= 2 * 2 * 120  # A and AAAA, both runs
    assert "lookups/s" in lines[-1] and "pages_per_s" in lines[1]


def test_the_test_server_answers_over_tcp_too(dns: DNSServer) -> None:
    from dnslib import DNSRecord

    host, port = dns.address.split(":")
    reply = DNSRecord.parse(DNSRecord.question("h3.test").send(host, int(port), tcp=True,
                                                               timeout=5))
    assert [str(rr.rdata) for rr in reply.rr] == ["127.0.0.5"]
    assert dns.log.queries == [("h3.test", "A", "tcp")]
