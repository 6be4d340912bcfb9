"""Loopback test servers that log every request, and the politeness audit fed by that log.

The audit never looks at the crawler's own bookkeeping: it reads start and
end times the server took, per host, and checks them against the limits the
crawl was given. ``Site`` serves any handler on a few 127.0.0.x addresses from
a background thread; its log records each request's start (when the server
began handling it), its end (when the handler returned, before the response
was written) and its User-Agent.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.discovery.seeds import seed
from crawler.store import keys
from crawler.worker import Worker

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Span = tuple[float, float]  # (start, end), seconds on the server's monotonic clock


@dataclass(frozen=True)
class Hit:
    ip: str
    path: str
    start: float
    end: float
    user_agent: str


@dataclass
class Site:
    """``handler`` served on ``ips`` (one shared port) from a background thread."""

    handler: Handler
    ips: tuple[str, ...] = ("127.0.0.2",)
    port: int = field(default_factory=free_port)
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, ip: str, path: str = "/") -> str:
        return f"http://{ip}:{self.port}{path}"

    def paths(self, ip: str | None = None) -> list[str]:
        with self._lock:
            return [h.path for h in self.hits if ip is None or h.ip == ip]

    def spans(self, ip: str, *, pages_only: bool = False) -> list[Span]:
        with self._lock:
            return sorted((h.start, h.end) for h in self.hits if h.ip == ip
                          and not (pages_only and h.path == "/robots.txt"))

    def __enter__(self) -> Site:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            start = time.monotonic()
            try:
                return await handler(request)
            finally:
                ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
                with self._lock:
                    self.hits.append(Hit(ip, request.path_qs, start, time.monotonic(),
                                         request.headers.get("User-Agent", "")))

        async def route(request: web.Request) -> web.StreamResponse:
            return await self.handler(request)

        app = web.Application(middlewares=[record])
        app.router.add_route("*", "/{tail:.*}", route)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        for ip in self.ips:
            await web.TCPSite(self._runner, ip, self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def html(*links: str, head: str = "", title: str = "t") -> web.Response:
    body = "".join(f'<a href="{href}">x</a>' for href in links)
    return web.Response(text=f"<html><head><title>{title}</title>{head}</head>"
                             f"<body>{body}</body></html>", content_type="text/html")


# -- the audit ---------------------------------------------------------------------


def max_in_flight(spans: list[Span]) -> int:
    """Most requests the server was handling at once. An end at the same instant
    as a start counts first: back-to-back is not overlap."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    peak = now = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def min_start_gap(spans: list[Span]) -> float:
    """Smallest time between two consecutive request starts (inf with fewer than two)."""
    starts = sorted(s for s, _ in spans)
    return min((b - a for a, b in itertools.pairwise(starts)), default=float("inf"))


@dataclass(frozen=True)
class HostFigures:
    requests: int
    max_in_flight: int
    min_gap: float


def audit(spans_by_host: dict[str, list[Span]], policy: Callable[[str], tuple[int, float]],
          tolerance: float, stall_at: Callable[[float], float] | None = None,
          ) -> tuple[list[str], dict[str, HostFigures]]:
    """Violations of (limit, delay) per host, as the server saw them, and the figures.

    ``stall_at`` (``RequestLog.stall_at``): how late the server may have
    stamped a start because its own loop was held off. Two starts closer than
    the delay are a violation only if they stay closer with the earlier one's
    possible lateness added back: a gap the server's stall alone can explain
    proves nothing about the client. The figures keep the raw gaps."""
    problems: list[str] = []
    figures: dict[str, HostFigures] = {}
    for host, spans in sorted(spans_by_host.items()):
        limit, delay = policy(host)
        fig = HostFigures(len(spans), max_in_flight(spans), min_start_gap(spans))
        figures[host] = fig
        if fig.max_in_flight > limit:
            problems.append(f"{host}: {fig.max_in_flight} in flight, limit {limit}")
        starts = sorted(s for s, _ in spans)
        for a, b in itertools.pairwise(starts):
            stalled = stall_at(a) if stall_at is not None else 0.0
            if b - a + stalled < delay - tolerance:
                problems.append(f"{host}: starts {(b - a) * 1000:.1f} ms apart "
                                f"(the server stalled {stalled * 1000:.1f} ms before the first), "
                                f"delay {delay * 1000:.0f} ms")
                break
    return problems, figures


# -- running a crawl in this process ------------------------------------------------


async def crawl(redis: Redis, settings: Settings, seeds: list[str], *,
                limit: float = 20.0) -> list[dict[str, Any]]:
    """Seed, run one Worker until the crawl is done (``limit`` s at most), return the results."""
    await seed(redis, settings, io.BytesIO("\n".join(seeds).encode()))
    async with asyncio.timeout(limit):
        await Worker(redis, settings).run()
    return await results(redis, settings)


async def results(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    out = []
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        entries: Any = await redis.xrange(shard.results)
        out += [json.loads(fields["r"]) for _, fields in entries]
    return out


def by_url(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["url"]: r for r in records}
