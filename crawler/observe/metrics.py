"""Prometheus metrics: one worker process's (``crawl worker --metrics-port``), and the crawl's.

A worker serves ``/metrics`` from its own event loop (aiohttp), with its own
registry: fetches by status class and error type, fetch latency, bytes,
fetches in flight, frontier round trips, claim batch sizes, retries and
robots.txt fetches. Counters the worker keeps anyway (round trips, retries,
robots fetches) are read when scraped, not counted twice.

``crawl metrics --port`` serves the crawl-wide gauges, read from the
frontier at each scrape (the same numbers as ``crawl status``): queued,
leased, done, errors, per-shard sizes, live workers, Redis memory per node.

Who may scrape, the dashboard's rule (crawler.observe.access): bound to
loopback, no token is needed (one given is required all the same); bound
anywhere else, serving is refused without a token. With a token, a scrape
without ``Authorization: Bearer <token>`` is 401 (Prometheus:
``authorization: {credentials_file: ...}`` in the scrape config). Without
one, only a loopback ``Host`` is answered, so a web page cannot read the
metrics through DNS rebinding.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, NamedTuple, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from crawler.observe.overview import status_class

log = logging.getLogger("crawler.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)


class ScrapeCounts(NamedTuple):
    """Counters a worker keeps for itself, read when /metrics is scraped."""

    in_flight: int
    round_trips: int
    retries: int
    robots_fetches: int
    pages: int


class Scraped(Protocol):
    """The metrics' view of a worker (``crawler.worker.loop.Worker``)."""

    def scrape_counts(self) -> ScrapeCounts: ...


class WorkerMetrics:
    """What one worker process counts for Prometheus."""

    def __init__(self, worker: Scraped | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter("crawler_fetches", "Responses received, by status class",
                               ["status_class"], registry=r)
        self.errors = Counter("crawler_fetch_errors", "URLs ended with an error, by type",
                              ["type"], registry=r)
        self.latency = Histogram("crawler_fetch_duration_seconds",
                                 "Time from request to the whole body", registry=r,
                                 buckets=LATENCY_BUCKETS)
        self.bytes = Counter("crawler_response_bytes", "Body bytes received", registry=r)
        self.claims = Histogram("crawler_claim_batch_size", "URLs leased per claim",
                                registry=r, buckets=BATCH_BUCKETS)
        if worker is not None:
            in_flight = Gauge("crawler_fetches_in_flight", "Fetches in flight", registry=r)
            in_flight.set_function(lambda: worker.scrape_counts().in_flight)
            r.register(_WorkerCounters(worker))

    def fetched(self, status: int, elapsed: float, size: int) -> None:
        self.fetches.labels(status_class(status)).inc()
        self.latency.observe(elapsed)
        self.bytes.inc(size)

    def failed(self, kind: str, elapsed: float, status: int | None) -> None:
        self.errors.labels(kind).inc()
        if status is not None:
            self.fetches.labels(status_class(status)).inc()
        if elapsed > 0:
            self.latency.observe(elapsed)

    def claimed(self, leases: int) -> None:
        self.claims.observe(leases)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _WorkerCounters(Collector):
    """Counters the worker keeps for itself, read at scrape time."""

    def __init__(self, worker: Scraped) -> None:
        self.worker = worker

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = self.worker.scrape_counts()
        yield CounterMetricFamily("crawler_frontier_round_trips", "Redis round trips made",
                                  value=counts.round_trips)
        yield CounterMetricFamily("crawler_retries", "URLs given back to retry later",
                                  value=counts.retries)
        yield CounterMetricFamily("crawler_robots_fetches", "robots.txt fetches made",
                                  value=counts.robots_fetches)
        yield CounterMetricFamily("crawler_pages", "URLs finished with a result",
                                  value=counts.pages)


def crawl_families(status: dict[str, Any], memory: dict[str, int]) -> list[GaugeMetricFamily]:
    """The crawl-wide gauges, from a ``crawl status`` reading and INFO used_memory per node."""
    out = []
    for name in ("queued", "leased", "done", "seen", "errors"):
        out.append(GaugeMetricFamily(f"crawl_{name}", f"URLs {name}, all shards",
                                     value=status.get(name, 0)))
    workers = GaugeMetricFamily("crawl_workers", "Workers by heartbeat", labels=["alive"])
    workers.add_metric(["true"], status.get("workers", 0))
    workers.add_metric(["false"], status.get("workers_dead", 0))
    out.append(workers)
    shard = GaugeMetricFamily("crawl_shard_urls", "URLs per shard", labels=["shard", "kind"])
    for row in status.get("by_shard", []):
        for kind in ("queued", "leased", "done"):
            shard.add_metric([str(row["shard"]), kind], row[kind])
    out.append(shard)
    used = GaugeMetricFamily("crawl_redis_used_memory_bytes", "INFO used_memory",
                             labels=["node"])
    for node, value in memory.items():
        used.add_metric([node], value)
    out.append(used)
    rate = (status.get("rate") or {}).get("last_10s")
    out.append(GaugeMetricFamily("crawl_pages_per_second", "Pages/s over the last 10 s",
                                 value=rate or 0.0))
    state = GaugeMetricFamily("crawl_state", "1 for the crawl's state", labels=["state"])
    current = (status.get("crawl") or {}).get("state", "running")
    from crawler.observe.states import STATES

    for name in STATES:
        state.add_metric([name], 1.0 if name == current else 0.0)
    out.append(state)
    proxies = [("requests", "Requests through the proxy, every worker's"),
               ("failures", "Failed requests through the proxy (connect, timeout, 403/407/429)"),
               ("rested", "Times the proxy was rested"),
               ("resting_s", "Seconds until the proxy wakes, 0 if awake")]
    for field, about in proxies:
        family = GaugeMetricFamily(f"crawl_proxy_{field}", about, labels=["proxy"])
        for row in status.get("proxies", []):
            family.add_metric([row["proxy"]], row[field])
        out.append(family)
    return out


def exposition(families: list[GaugeMetricFamily]) -> bytes:
    registry = CollectorRegistry()

    class Once(Collector):
        def collect(self) -> Iterator[GaugeMetricFamily]:
            yield from families

    registry.register(Once())
    return generate_latest(registry)


TOKEN_ENV = "CRAWL_METRICS_TOKEN"


def required_token(host: str, token: str | None, what: str) -> str | None:
    """The token scrapes of ``what`` bound to ``host`` must send; None on loopback without one.

    Raises CrawlError for an address beyond loopback without a token: the
    metrics (hosts, rates, Redis nodes) are not for anyone who can reach it.
    """
    from crawler.errors import CrawlError
    from crawler.observe.access import is_loopback

    if token:
        return token
    if is_loopback(host):
        return None
    raise CrawlError(f"{what} on {host}: an address beyond loopback needs a token (set "
                     f"{TOKEN_ENV}, or --metrics-token / --token); scrapes then send "
                     "Authorization: Bearer <token>")


def _bearer_guard(token: str | None) -> Any:
    from crawler.observe.access import bearer_token, host_name, is_loopback, token_matches

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if token is None:
            if not is_loopback(host_name(request).lower()):
                raise web.HTTPForbidden(text="/metrics answers only on a loopback host name "
                                             "(give a token to serve beyond loopback)")
        elif not token_matches(bearer_token(request), token):
            raise web.HTTPUnauthorized(text="token required: Authorization: Bearer <token>",
                                       headers={"WWW-Authenticate": "Bearer"})
        response: web.StreamResponse = await handler(request)
        return response

    return check


async def serve(render: Callable[[], Awaitable[bytes]], host: str, port: int,
                token: str | None = None) -> web.AppRunner:
    """Serve ``/metrics`` from this event loop; the caller cleans the runner up.

    ``token``: what ``required_token`` gave; every scrape must send it.
    """
    async def metrics(_request: web.Request) -> web.Response:
        body = await render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application(middlewares=[_bearer_guard(token)])
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
