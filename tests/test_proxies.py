"""proxies = [...]: real loopback proxies (tests/forward_proxy.py) between the crawler and the site.

What each proxy carried is read from the proxy's own log, and politeness from
the target server's request log, never from the crawler's bookkeeping.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from crawl_helpers import by_url
from fault_helpers import wait_for
from forward_proxy import ForwardProxy
from politeness_site import Site, audit, crawl, html, min_start_gap, results
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier
from crawler.frontier.proxy_ledger import ProxyLedger, read_proxies
from crawler.net import proxies as rules
from crawler.net.fetch import Fetcher
from crawler.net.proxies import ProxyCount, ProxyPool, weight
from crawler.observe.metrics import crawl_families
from crawler.observe.status import crawl_status
from crawler.store.connection import server_ms
from crawler.worker import Worker

HOSTS = tuple(f"127.0.0.{i}" for i in range(2, 12))
PAGES = 5


async def pages(request: web.Request) -> web.StreamResponse:
    if request.path == "/robots.txt":
        return web.Response(status=404)
    if request.path == "/":
        return html(*(f"/p{i}" for i in range(1, PAGES)))
    return html(title=request.path)


def owner(proxies: list[ForwardProxy], authority: str) -> ForwardProxy:
    """The proxy a host sticks to while every proxy is up (rendezvous hashing)."""
    return max(proxies, key=lambda p: weight(p.url, authority))


def carried(proxy: ForwardProxy, site: Site, *, upto: int | None = None) -> set[str]:
    """The target hosts (ip) a proxy's log names, in its first ``upto`` entries."""
    seen = proxy.seen()[:upto]
    return {t.rsplit(":", 1)[0] for t in seen if t.endswith(f":{site.port}")}


@pytest.mark.parametrize("delay", [0.3, 0.0])
async def test_each_host_sticks_to_one_proxy_and_politeness_stays_per_target_host(
        redis: Redis, settings: Settings, delay: float) -> None:
    p1, p2, server = ForwardProxy(), ForwardProxy(), Site(pages)
    # Three hosts each proxy owns by the hash (its port is random): both carry some.
    candidates = [f"127.0.0.{i}" for i in range(2, 60)]
    hosts = tuple([h for h in candidates
                   if owner([p1, p2], f"{h}:{server.port}") is p1][:3] +
                  [h for h in candidates
                   if owner([p1, p2], f"{h}:{server.port}") is p2][:3])
    server.ips = hosts
    with server as site, p1, p2:
        # The slack's network half must cover the hop through the proxy (README: Proxies).
        settings = settings.replace(proxies=[p1.url, p2.url], delay=delay, max_per_host=1,
                                    politeness_slack=0.1)
        records = by_url(await crawl(redis, settings, [site.url(h) for h in hosts], limit=60))
        spans = {h: site.spans(h) for h in hosts}
    assert len(records) == len(hosts) * PAGES
    assert {r["status"] for r in records.values()} == {200}
    for host in hosts:  # every request of a host went through its own proxy, only
        mine = owner([p1, p2], f"{host}:{site.port}")
        other = p2 if mine is p1 else p1
        assert host in carried(mine, site) and host not in carried(other, site)
    assert len(hosts) == 6 and carried(p1, site) and carried(p2, site)
    # The target server saw each host's requests spaced by the delay.
    problems, _ = audit(spans, lambda _h: (1, delay), tolerance=0.005)
    assert problems == []
    if not delay:  # the negative control: without a delay the same check would fail
        assert min(min_start_gap(s) for s in spans.values()) < 0.3


async def test_a_proxy_killed_mid_crawl_hands_its_hosts_to_the_other(
        redis: Redis, settings: Settings) -> None:
    with Site(pages, ips=HOSTS) as site, ForwardProxy() as p1, ForwardProxy() as p2:
        victims = [h for h in HOSTS if owner([p1, p2], f"{h}:{site.port}") is p1]
        if not victims:  # which proxy owns more hosts depends on the random ports
            p1, p2 = p2, p1
            victims = list(HOSTS)
        settings = settings.replace(proxies=[p1.url, p2.url], delay=0.1, max_per_host=1,
                                    max_attempts=4)
        await seed_all(redis, settings, [site.url(h) for h in HOSTS])
        worker = asyncio.create_task(Worker(redis, settings).run())
        await asyncio.to_thread(wait_for, lambda: len(p1.seen()) >= 3, 30,
                                "the first proxy to carry 3 requests")
        p1.kill()
        before = len(p1.seen())
        async with asyncio.timeout(60):
            await worker
        records = by_url(await results(redis, settings))  # by_url: one record a URL
        status = await crawl_status(redis, settings, memory=False)
    assert len(records) == len(HOSTS) * PAGES
    assert {r["status"] for r in records.values()} == {200}
    assert len(p1.seen()) == before  # nothing went through it after it died
    moved = carried(p1, site) & carried(p2, site)
    assert moved, "no host of the dead proxy went on through the other"
    [dead] = [row for row in status["proxies"] if row["proxy"] == p1.url]
    assert dead["rested"] >= 1 and dead["resting_s"] > 0
    [alive] = [row for row in status["proxies"] if row["proxy"] == p2.url]
    assert alive["requests"] > 0 and alive["rested"] == 0
    metrics = {f.name: f for f in crawl_families(status, {})}
    assert any(s.labels == {"proxy": p1.url} and s.value >= 1
               for s in metrics["crawl_proxy_rested"].samples)


async def seed_all(redis: Redis, settings: Settings, urls: list[str]) -> None:
    import io

    await seed(redis, settings, io.BytesIO("\n".join(urls).encode()))


async def test_a_socks5_proxy_carries_the_crawl(redis: Redis, settings: Settings) -> None:
    pytest.importorskip("aiohttp_socks", reason="aiohttp-socks is not installed")
    with Site(pages, ips=HOSTS[:2]) as site, ForwardProxy(kind="socks5") as proxy:
        settings = settings.replace(proxies=[proxy.url])
        records = by_url(await crawl(redis, settings, [site.url(h) for h in HOSTS[:2]]))
    assert {r["status"] for r in records.values()} == {200}
    assert len(records) == 2 * PAGES
    assert carried(proxy, site) == set(HOSTS[:2])


async def test_an_https_target_goes_through_a_connect_tunnel(
        redis: Redis, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the fetcher's default context trusts it
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.2").configure_cert(server_ctx)
    app = web.Application()
    app.router.add_get("/{tail:.*}", pages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with ForwardProxy() as proxy:
            settings = settings.replace(proxies=[proxy.url])
            records = by_url(await crawl(redis, settings, [f"https://127.0.0.2:{port}/"]))
    finally:
        await runner.cleanup()
    assert {r["status"] for r in records.values()} == {200}
    assert len(records) == PAGES
    assert proxy.seen() and set(proxy.seen()) == {f"127.0.0.2:{port}"}  # CONNECT tunnels


async def test_an_https_proxy_is_reached_over_tls(
        redis: Redis, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    proxy_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(proxy_ctx)
    with Site(pages, ips=HOSTS[:1]) as site, ForwardProxy(tls=proxy_ctx) as proxy:
        assert proxy.url.startswith("https://")
        settings = settings.replace(proxies=[proxy.url])
        records = by_url(await crawl(redis, settings, [site.url(HOSTS[0])]))
    assert {r["status"] for r in records.values()} == {200}
    assert len(records) == PAGES
    assert carried(proxy, site) == {HOSTS[0]}


async def test_proxy_credentials_reach_the_proxy_but_not_the_warc_request_record(
        settings: Settings) -> None:
    with Site(pages, ips=HOSTS[:1]) as site, ForwardProxy() as proxy:
        url = proxy.url.replace("http://", "http://user:s3cret@")
        async with Fetcher(settings.replace(proxies=[url])) as fetcher:
            resp = await fetcher.get(site.url(HOSTS[0], "/p1"))
        assert resp.status == 200
        assert b"Proxy-Authorization: Basic dXNlcjpzM2NyZXQ=" in proxy.heads[0]
        assert resp.request_headers is not None
        assert "proxy-authorization" not in {k.lower() for k in resp.request_headers}
        assert fetcher.proxies is not None
        assert [c.name for c in fetcher.proxies.counts.values()] == [
            proxy.url.replace("http://", "http://user:***@")]


async def test_the_ssrf_guard_checks_the_target_but_trusts_the_proxy(
        redis: Redis, settings: Settings) -> None:
    """allow_private is off: the proxy on 127.0.0.1 is used (the operator configured it),
    a target named localhost is refused before anything reaches the proxy, and the one
    private network allowed (allow_cidrs) is crawled through it."""
    with Site(pages, ips=("127.0.0.3",)) as site, ForwardProxy() as proxy:
        settings = settings.replace(proxies=[proxy.url], allow_private=False,
                                    allow_cidrs=["127.0.0.3/32"], max_attempts=1)
        blocked = f"http://localhost:{site.port}/"
        records = by_url(await crawl(redis, settings, [site.url("127.0.0.3"), blocked]))
    assert records[blocked]["status"] is None
    assert records[blocked]["error"]["type"] == "blocked_address"
    assert all("localhost" not in t for t in proxy.seen())
    assert records[site.url("127.0.0.3")]["status"] == 200
    assert carried(proxy, site) == {"127.0.0.3"}


# -- resting and the shared counts -------------------------------------------------------


class Ledger:
    """A stand-in ledger for the pool alone: keeps what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[Any]]] = []

    async def report(self, seq: int, rows: list[Any]) -> dict[str, float]:
        self.sent.append((seq, rows))
        return {}


def pool(proxies: tuple[str, ...], clock: list[float]) -> ProxyPool:
    return ProxyPool(proxies, resolver=None, open_session=None, connector_args={},  # type: ignore[arg-type]
                     clock=lambda: clock[0])


def test_a_burst_of_bans_rests_a_proxy_and_its_hosts_move_then_come_back() -> None:
    clock = [100.0]
    proxies = ("http://a:1", "http://b:1")
    p = pool(proxies, clock)
    host = next(h for h in (f"h{i}" for i in range(100)) if p.order(h)[0] == proxies[0])
    for _ in range(rules.FAILURE_BURST - 1):
        p.record(proxies[0], failed=True)
    assert p.order(host)[0] == proxies[0]  # one short of a burst: it stays
    p.record(proxies[0], failed=False)  # a success breaks the row
    for _ in range(rules.FAILURE_BURST - 1):
        p.record(proxies[0], failed=True)
    assert p.order(host)[0] == proxies[0]
    p.record(proxies[0], failed=True)
    assert p.order(host) == [proxies[1], proxies[0]]  # rested: its host moved
    clock[0] += rules.REST_BASE + 0.1
    assert p.order(host)[0] == proxies[0]  # awake again: the host comes back


def test_a_proxy_that_refuses_connections_rests_at_once_with_bounded_backoff() -> None:
    clock = [0.0]
    p = pool(("http://a:1",), clock)
    rests = []
    for _ in range(8):
        p.record("http://a:1", failed=True, down=True)
        rests.append(p.counts["http://a:1"].rested_until - clock[0])
        clock[0] += rests[-1] + 0.1
    assert rests[:3] == pytest.approx([rules.REST_BASE, 2 * rules.REST_BASE, 4 * rules.REST_BASE])
    assert max(rests) == rules.REST_MAX
    # With every proxy resting the one waking first is used: never direct.
    assert p.order("h") == ["http://a:1"]


async def test_proxy_counts_are_shared_counted_once_per_report_and_rest_every_worker(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    one = ProxyLedger(frontier.scripts, settings.crawl, "w1", burst=5, rest_base=30,
                      rest_max=600)
    two = ProxyLedger(frontier.scripts, settings.crawl, "w2", burst=5, rest_base=30,
                      rest_max=600)
    assert await one.report(1, [("http://a:1", 10, 3, False, 3, False)]) == {}
    assert await one.report(1, [("http://a:1", 10, 3, False, 3, False)]) == {}  # sent twice
    now = await server_ms(redis)
    [a] = await read_proxies(redis, settings.crawl, now)
    assert (a.requests, a.failures, a.rested) == (10, 3, 0)
    # Two more failures in a row, from another worker: a burst of 5 as Redis sees it.
    left = await two.report(1, [("http://a:1", 2, 2, False, 2, False)])
    assert 29 < left["http://a:1"] <= 30
    # The first worker learns it with its next report, whatever it sends.
    assert (await one.report(2, []))["http://a:1"] > 29
    [a] = await read_proxies(redis, settings.crawl, await server_ms(redis))
    assert (a.requests, a.failures, a.rested) == (12, 5, 1)


def test_a_proxy_is_named_without_its_password() -> None:
    count = ProxyCount(rules.redact("http://user:pw@proxy:3128"))
    assert count.name == "http://user:***@proxy:3128"
    with pytest.raises(ValueError):
        Settings(proxies=["ftp://proxy:21"])


def test_a_proxy_password_is_not_printed_by_the_worker_or_crawl_config(
        clean_redis: str, tmp_path: Path) -> None:
    """The worker's "now set for every worker" line, `crawl config show` and a bad value's
    message name the proxy with its password hidden."""
    import json
    import os
    import subprocess
    import sys

    from crawl_helpers import ROOT
    from fault_helpers import seed_sync

    def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=ROOT,
                              env={**os.environ, "CRAWL_HOME": str(tmp_path), **env},
                              capture_output=True, text=True, timeout=60)

    crawl_name = "proxypw"
    seed_sync(clean_redis, crawl_name, [])
    proxy = "http://user:s3cret@127.0.0.1:9"
    worker = cli("worker", "--redis", clean_redis, "--crawl", crawl_name,
                 CRAWL_PROXIES=proxy)
    assert worker.returncode == 0, worker.stderr
    assert "user:***@127.0.0.1:9" in worker.stderr
    shown = cli("config", "show", "--json", "--redis", clean_redis, "--crawl", crawl_name)
    assert json.loads(shown.stdout)["proxies"] == ["http://user:***@127.0.0.1:9"]
    bad = cli("config", "show", "--redis", clean_redis, "--crawl", crawl_name,
              CRAWL_PROXIES="ftp://user:s3cret@host:21")
    assert bad.returncode != 0 and "user:***@host" in bad.stderr
    assert all("s3cret" not in out for run in (worker, shown, bad)
               for out in (run.stdout, run.stderr))
