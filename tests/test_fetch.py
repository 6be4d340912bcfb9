"""fetch.py: the SSRF guard (addresses, resolver, redirect hops) and response handling.

No test resolves a real name: names go to a stub resolver that maps them to
loopback addresses, and ``*.invalid`` must fail before any resolver is asked.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from crawl_helpers import crawl
from redis.asyncio import Redis

from crawler import errors
from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.net.fetch import Fetcher, Response, redirect_target
from crawler.net.guard import AddressPolicy, GuardedResolver
from crawler.urls import resolve


class StubResolver(AbstractResolver):
    """Answers from a dict; records every name it was asked. Never touches the network."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError(f"stub: no such name {host}")
        return [ResolveResult(hostname=host, host=ip, port=port,
                              family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST) for ip in self.table[host]]

    async def close(self) -> None:
        pass


REFUSED = [
    "127.0.0.1", "127.9.9.9",                       # loopback
    "10.0.0.1", "172.16.5.4", "192.168.1.1",        # RFC 1918
    "169.254.169.254", "169.254.0.1",               # link-local, cloud metadata
    "100.64.0.1", "100.127.255.254",                # CGNAT
    "224.0.0.1", "239.255.255.250",                 # multicast
    "240.0.0.1", "255.255.255.255", "0.0.0.0",      # reserved, broadcast, unspecified
    "192.0.2.1", "198.18.0.1",                      # documentation, benchmarking
    "::1", "::",                                    # IPv6 loopback, unspecified
    "fc00::1", "fd12:3456::1",                      # unique local (fc00::/7)
    "fe80::1", "fe80::1%eth0",                      # link-local
    "ff02::1",                                      # multicast
    "::ffff:127.0.0.1", "::ffff:169.254.169.254",   # IPv4-mapped
    "::7f00:1", "2002:7f00:1::1", "64:ff9b::a9fe:a9fe",  # IPv4-compatible, 6to4, NAT64
    "fec0::1",                                      # site-local
    "not-an-ip",
]


@pytest.mark.parametrize("address", REFUSED)
def test_policy_refuses_non_public_address(address: str) -> None:
    assert not AddressPolicy().permits(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_policy_permits_public_address(address: str) -> None:
    assert AddressPolicy().permits(address)


def test_allow_private_lifts_the_guard() -> None:
    policy = AddressPolicy(allow_private=True)
    assert all(policy.permits(a) for a in ["127.0.0.1", "169.254.169.254", "fc00::1"])


def test_allow_cidrs_lifts_the_guard_only_inside_the_listed_networks() -> None:
    policy = AddressPolicy(allow_cidrs=("10.1.0.0/16", "127.0.0.2/32"))
    assert policy.permits("10.1.2.3") and policy.permits("127.0.0.2")
    assert policy.permits("::ffff:10.1.2.3")
    assert not policy.permits("10.2.0.1") and not policy.permits("127.0.0.3")


# -- the resolver --------------------------------------------------------------------


async def test_resolver_refuses_a_name_that_resolves_only_to_private_addresses() -> None:
    stub = StubResolver({"innocent.example": ["10.0.0.5", "169.254.169.254"]})
    with pytest.raises(OSError, match="blocked addresses"):
        await GuardedResolver(AddressPolicy(), stub).resolve("innocent.example", 80)


async def test_resolver_drops_private_addresses_and_keeps_public_ones() -> None:
    stub = StubResolver({"mixed.example": ["127.0.0.1", "93.184.215.14", "::1"]})
    found = await GuardedResolver(AddressPolicy(), stub).resolve("mixed.example", 80)
    assert [r["host"] for r in found] == ["93.184.215.14"]


@pytest.mark.parametrize("name", ["host.invalid", "a.b.INVALID.", "invalid", "x.onion"])
async def test_special_use_names_fail_without_asking_any_resolver(name: str) -> None:
    stub = StubResolver({name: ["93.184.215.14"]})
    with pytest.raises(socket.gaierror):
        await GuardedResolver(AddressPolicy(), stub).resolve(name, 80)
    assert stub.asked == []


async def test_dns_failure_of_invalid_name_never_calls_getaddrinfo(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[object] = []

    def spy(*args: object, **kwargs: object) -> object:
        asked.append(args[0])
        raise AssertionError("getaddrinfo must not be called for *.invalid")

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    async with Fetcher(settings) as fetcher:
        with pytest.raises(errors.DNSError):
            await fetcher.get("http://no-such-host.invalid/")
    assert asked == []


# -- fetches against a local server ------------------------------------------------------


@pytest.fixture
async def origins() -> AsyncIterator[dict[str, str]]:
    """One tiny site on 127.0.0.2 and 127.0.0.3; /hop redirects to the ``to`` parameter."""
    hits: list[str] = []

    async def page(request: web.Request) -> web.Response:
        hits.append(f"{request.host}{request.path}")
        return web.Response(text="<title>internal</title>", content_type="text/html")

    async def hop(request: web.Request) -> web.Response:
        hits.append(f"{request.host}{request.path}")
        raise web.HTTPFound(request.query["to"])

    app = web.Application()
    app.router.add_get("/page", page)
    app.router.add_get("/hop", hop)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port("127.0.0.2")
    for ip in ("127.0.0.2", "127.0.0.3"):
        await web.TCPSite(runner, ip, port).start()
    yield {"a": f"http://127.0.0.2:{port}", "b": f"http://127.0.0.3:{port}",
           "port": str(port), "hits": hits}  # type: ignore[dict-item]
    await runner.cleanup()


@pytest.fixture
def guarded(settings: Settings) -> Settings:
    """The guard on, with only 127.0.0.2 let through (it stands for a public host)."""
    return settings.replace(allow_private=False, allow_cidrs=("127.0.0.2/32",))


async def test_literal_private_address_is_blocked_before_connecting(
        guarded: Settings, origins: dict[str, str]) -> None:
    async with Fetcher(guarded) as fetcher:
        with pytest.raises(errors.BlockedAddress):
            await fetcher.get(origins["b"] + "/page")
    assert origins["hits"] == []


async def test_a_redirect_is_an_answer_with_its_canonical_target_not_a_second_request(
        guarded: Settings, origins: dict[str, str]) -> None:
    async with Fetcher(guarded) as fetcher:
        resp = await fetcher.get(origins["a"] + f"/hop?to={origins['b']}/./page#frag")
    assert resp.status == 302 and resp.redirect_to == origins["b"] + "/page"
    assert origins["hits"] == ["127.0.0.2:" + origins["port"] + "/hop"]


async def test_a_followed_redirect_to_a_private_address_is_blocked(
        guarded: Settings, origins: dict[str, str]) -> None:
    # robots.txt fetches follow redirects: the guard checks every hop.
    async with Fetcher(guarded) as fetcher:
        with pytest.raises(errors.BlockedAddress):
            await fetcher.get(origins["a"] + f"/hop?to={origins['b']}/page",
                              follow_redirects=True)
    assert origins["hits"] == ["127.0.0.2:" + origins["port"] + "/hop"]


async def test_a_followed_redirect_to_a_name_resolving_to_a_private_address_is_blocked(
        guarded: Settings, origins: dict[str, str]) -> None:
    port = origins["port"]
    stub = StubResolver({"public.example": ["127.0.0.2"], "sneaky.example": ["127.0.0.3"]})
    async with Fetcher(guarded, resolver=stub) as fetcher:
        with pytest.raises(errors.BlockedAddress, match=r"sneaky\.example"):
            await fetcher.get(f"http://public.example:{port}/hop?to="
                              f"http://sneaky.example:{port}/page", follow_redirects=True)
    assert stub.asked == ["public.example", "sneaky.example"]
    assert len(origins["hits"]) == 1  # only the first hop reached a server


async def test_a_page_redirect_to_a_private_address_ends_the_target_as_blocked(
        redis: Redis, guarded: Settings, origins: dict[str, str]) -> None:
    start = origins["a"] + f"/hop?to={origins['b']}/page"
    records = await crawl(redis, guarded.replace(obey_robots=False, scope="any"), [start])
    assert records[start]["redirect_to"] == origins["b"] + "/page"
    assert records[origins["b"] + "/page"]["error"]["type"] == "blocked_address"
    assert origins["hits"] == ["127.0.0.2:" + origins["port"] + "/hop"]


async def test_name_resolving_to_an_allowed_address_is_fetched(
        guarded: Settings, origins: dict[str, str]) -> None:
    stub = StubResolver({"public.example": ["127.0.0.2"]})
    async with Fetcher(guarded, resolver=stub) as fetcher:
        resp = await fetcher.get(f"http://public.example:{origins['port']}/page")
    assert resp.status == 200 and resp.body == b"<title>internal</title>"


async def test_blocked_fetch_is_an_error_result_of_type_blocked_address(
        redis: Redis, settings: Settings, origins: dict[str, str]) -> None:
    s = settings.replace(allow_private=False, obey_robots=False)
    url = origins["b"] + "/page"
    record = (await crawl(redis, s, [url]))[url]
    assert record["error"]["type"] == "blocked_address"
    assert record["attempts"] == 1
    assert origins["hits"] == []


async def test_allow_private_setting_lets_the_worker_fetch_loopback(
        redis: Redis, settings: Settings, origins: dict[str, str]) -> None:
    s = settings.replace(allow_private=True, obey_robots=False)
    url = origins["b"] + "/page"
    record = (await crawl(redis, s, [url]))[url]
    assert record["error"] is None and record["title"] == "internal"


# -- response details --------------------------------------------------------------------


def _response(body: bytes, content_type: str | None) -> Response:
    return Response(url="http://x/", final_url="http://x/", status=200,
                    content_type=content_type, charset=None, body=body, headers={}, elapsed=0)


@pytest.mark.parametrize("body", [b"<!DOCTYPE html><p>", b"  \n<html>", b"<HEAD><title>x"])
def test_untyped_html_is_sniffed_as_html(body: bytes) -> None:
    assert _response(body, None).is_html


@pytest.mark.parametrize("body,content_type", [(b"%PDF-1.7", None), (b"<html>", "image/png"),
                                               (b"<html>", "application/json")])
def test_non_html_is_not_parsed(body: bytes, content_type: str | None) -> None:
    assert not _response(body, content_type).is_html


@pytest.mark.parametrize("location", ["../x?a=1#f", "/p/./q", "//other.example/z", "?only",
                                      " http://Example.COM:80/a b ", "x\ty"])
def test_a_location_is_joined_by_the_same_rule_as_links(location: str) -> None:
    page = "http://example.com/dir/page.html?q=1"
    assert redirect_target(page, location) == resolve(page, location)
