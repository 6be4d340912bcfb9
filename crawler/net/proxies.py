"""Fetching through proxies (``proxies = [...]``): each host sticks to one, a failing one rests.

- Sticky: a host's proxy is the one with the highest hash of (proxy, host)
  among those not resting (rendezvous hashing), so every worker picks the same
  one for a host, and a proxy that rests moves only its own hosts, each to
  the next proxy of its own order; they come back when it wakes.
- Resting: a proxy refusing the connection is down and rests at once (the
  request goes on through the host's next proxy in the same fetch, no attempt
  lost); ``FAILURE_BURST`` failures in a row (connect errors, timeouts, 403,
  407 or 429 answers through it) rest it too. A rest lasts ``REST_BASE``
  seconds, doubling with each rest in a row up to ``REST_MAX``; a success after
  a rest starts the count again. With every proxy resting, the one waking
  first is used: a crawl told to use proxies never goes direct.
- Shared: each worker counts requests and failures and sends them to Redis
  every ``REPORT_EVERY`` seconds, and at once when a proxy should rest
  (``crawler.frontier.proxy_ledger``, one script, counted atomically, safe to
  send twice); the reply is every worker's verdict (which proxies rest, how
  long), so a proxy one worker found dead rests for all of them within a
  report. Counts are in ``crawl status`` and the metrics.
- The SSRF guard still applies to the target: its name is resolved here and
  every address checked before a request goes to the proxy (the proxy then
  resolves it again itself). The proxy's own address is not checked: the
  operator configured it, so it is trusted (it may well be on a private
  network).
- A proxy is named everywhere (Redis, status, metrics, logs) by its URL with
  the password hidden.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from crawler import errors
from crawler.config.redis_urls import redact

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.abc import AbstractResolver

    from crawler.frontier.scripts import ScriptRunner

log = logging.getLogger("crawler.net")

FAILURE_BURST = 5
"""Failures in a row through a proxy that rest it."""
BAN_STATUSES = frozenset({403, 407, 429})
"""Answers that, in a burst, say a proxy is banned (or its credentials refused)."""
REST_BASE = 30.0
"""Seconds of a proxy's first rest; each rest in a row doubles it."""
REST_MAX = 600.0
"""Longest rest, in seconds."""
REPORT_EVERY = 1.0
"""Seconds between a worker's reports of its proxy counts to Redis."""
TARGET_CACHE_TTL = 300.0
"""Seconds a target host's guard verdict is kept (the connector's DNS cache, the same)."""


class ProxyLedger(Protocol):
    """Where proxy counts are shared (``crawler.frontier.proxy_ledger.ProxyLedger``)."""

    async def report(self, seq: int, rows: list[tuple[str, int, int, bool, int, bool]]
                     ) -> dict[str, float]:
        """Add (proxy, requests, failures, succeeded, failures after the last success,
        rest now) once per ``seq``; returns proxy -> seconds of rest left."""
        ...


@dataclass(slots=True)
class ProxyCount:
    """One proxy's counts not yet reported, and its rest as last heard."""

    name: str  # the URL, password hidden
    requests: int = 0
    failures: int = 0
    succeeded: bool = False  # a success since the last report
    tail: int = 0  # failures since the last success (or the last report)
    in_a_row: int = 0  # failures in a row this worker saw
    rest_now: bool = False
    rests: int = 0  # rests in a row this worker gave it (before Redis answered)
    rested_until: float = 0.0  # monotonic


def weight(proxy: str, host: str) -> bytes:
    return hashlib.blake2b(f"{proxy}\n{host}".encode(), digest_size=8).digest()


def is_proxy_down(exc: BaseException) -> bool:
    """True when the proxy itself could not be reached (not the target)."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return True
    return type(exc).__module__.startswith("aiohttp_socks") and \
        type(exc).__name__ in ("ProxyConnectionError", "ProxyTimeoutError")


def socks_error(exc: BaseException) -> errors.FetchError | None:
    """aiohttp-socks errors, which aiohttp's classification does not know."""
    if type(exc).__module__.startswith("aiohttp_socks"):
        return errors.ConnectError(f"proxy: {type(exc).__name__}: {exc}")
    return None


class Route:
    """One request's way out: a proxy's session, and what to tell aiohttp."""

    def __init__(self, pool: ProxyPool, url: str, session: aiohttp.ClientSession,
                 proxy_arg: str | None) -> None:
        self.pool = pool
        self.url = url  # the proxy's own URL (credentials and all)
        self.name = pool.counts[url].name
        self.session = session
        self.proxy_arg = proxy_arg  # aiohttp's proxy=, for http(s) proxies

    async def check_target(self, target_url: str) -> None:
        await self.pool.check_target(target_url)

    def answered(self, status: int) -> None:
        self.pool.record(self.url, failed=status in BAN_STATUSES)

    def failed(self, error: errors.FetchError, cause: BaseException) -> None:
        """A request that failed: the proxy's fault when it could not connect or time out
        (a target's bad content, size or redirect is not)."""
        if isinstance(error, errors.ConnectError | errors.Timeout) \
                and not isinstance(error, errors.DNSError):
            self.pool.record(self.url, failed=True, down=is_proxy_down(cause))


class ProxyPool:
    """One worker's proxies: a session each, which one a host uses, their counts."""

    def __init__(self, proxies: tuple[str, ...], *, resolver: AbstractResolver,
                 open_session: Callable[[aiohttp.BaseConnector], aiohttp.ClientSession],
                 connector_args: dict[str, Any], ledger: ProxyLedger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.urls = proxies
        self.counts = {p: ProxyCount(redact(p)) for p in proxies}
        self._by_name = {c.name: c for c in self.counts.values()}
        self._resolver = resolver
        self._open_session = open_session
        self._connector_args = connector_args
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self.ledger = ledger
        self.clock = clock
        self._targets: dict[str, float] = {}  # host -> when its guard verdict expires
        self._seq = 0
        self._pending: tuple[int, list[tuple[str, int, int, bool, int, bool]]] | None = None
        self._last_report = clock()
        self._reporting: asyncio.Task[None] | None = None

    # -- choosing -----------------------------------------------------------------

    def order(self, host: str) -> list[str]:
        """The host's proxies, its own first: awake ones by weight, then resting ones
        by when they wake."""
        now = self.clock()
        awake = [p for p in self.urls if self.counts[p].rested_until <= now]
        resting = sorted((p for p in self.urls if p not in awake),
                         key=lambda p: self.counts[p].rested_until)
        return sorted(awake, key=lambda p: weight(p, host), reverse=True) + resting

    def routes(self, target_url: str) -> Iterator[Route]:
        """Routes for one request: its host's proxy, then, while proxies are down, the next."""
        host = urlsplit(target_url).netloc.lower()
        tried: set[str] = set()
        for _ in self.urls:
            proxy = next((p for p in self.order(host) if p not in tried), None)
            if proxy is None:
                return
            tried.add(proxy)
            yield self.route_via(proxy)

    def route_via(self, proxy: str) -> Route:
        session = self._sessions.get(proxy)
        scheme = urlsplit(proxy).scheme
        if session is None:
            session = self._sessions[proxy] = self._open_session(self._connector(proxy, scheme))
        return Route(self, proxy, session, None if scheme.startswith("socks") else proxy)

    def _connector(self, proxy: str, scheme: str) -> aiohttp.BaseConnector:
        import aiohttp

        if scheme.startswith("socks"):
            from aiohttp_socks import ProxyConnector

            # rdns: the proxy resolves the target's name, as an http proxy does.
            return ProxyConnector.from_url(proxy, rdns=True, **self._connector_args)
        # The proxy is reached with the system resolver: the operator trusts it.
        return aiohttp.TCPConnector(**self._connector_args)

    async def check_target(self, target_url: str) -> None:
        """The SSRF guard on the target's name (literals: ``check_literal_address``)."""
        parts = urlsplit(target_url)
        host = (parts.hostname or "").strip("[]")
        now = self.clock()
        if self._targets.get(host, 0.0) > now:
            return
        with contextlib.suppress(ValueError):
            import ipaddress

            ipaddress.ip_address(host)
            return
        from crawler.net.guard import Blocked

        try:
            await self._resolver.resolve(host, parts.port or 0, socket.AF_UNSPEC)
        except Blocked as exc:
            raise errors.BlockedAddress(str(exc)) from None
        except OSError as exc:
            raise errors.DNSError(f"DNS lookup failed: {exc}") from None
        self._targets[host] = now + TARGET_CACHE_TTL

    # -- counting and resting ---------------------------------------------------------

    def record(self, proxy: str, *, failed: bool, down: bool = False) -> None:
        count = self.counts[proxy]
        count.requests += 1
        if failed:
            count.failures += 1
            count.tail += 1
            count.in_a_row += 1
        else:
            count.succeeded, count.tail, count.in_a_row, count.rests = True, 0, 0, 0
        urgent = down or count.in_a_row >= FAILURE_BURST
        if urgent and count.rested_until <= self.clock():
            # Rest it here at once; Redis's answer (every worker's view) follows.
            count.rest_now = True
            count.rests += 1
            count.in_a_row = 0
            count.rested_until = self.clock() + rest_for(count.rests)
            log.warning("proxy %s rests %.0f s: %s", count.name, rest_for(count.rests),
                        "cannot connect to it" if down else f"{FAILURE_BURST} failures in a row")
        self._maybe_report(urgent)

    def _maybe_report(self, urgent: bool) -> None:
        if self.ledger is None or (self._reporting and not self._reporting.done()):
            return
        if urgent or self.clock() - self._last_report >= REPORT_EVERY:
            self._reporting = asyncio.create_task(self.report(), name="proxy-report")

    async def report(self) -> None:
        """Send the counts to Redis; learn which proxies every worker has rested."""
        if self.ledger is None:
            return
        self._last_report = self.clock()
        if self._pending is None:  # else the last one again: Redis may not have it
            rows = []
            for count in self.counts.values():
                if count.requests or count.rest_now:
                    rows.append((count.name, count.requests, count.failures, count.succeeded,
                                 count.tail, count.rest_now))
                count.requests = count.failures = count.tail = 0
                count.succeeded = count.rest_now = False
            self._seq += 1
            self._pending = (self._seq, rows)
        seq, rows = self._pending
        try:
            left = await self.ledger.report(seq, rows)
        except Exception as exc:  # Redis down: counts wait for the next report
            log.debug("proxy report failed: %s", exc)
            return
        self._pending = None
        now = self.clock()
        for name, seconds in left.items():
            known = self._by_name.get(name)
            if known is None:
                continue
            count = known
            if seconds > 0:
                count.rested_until = now + seconds
            elif not count.rest_now:  # else rested since: that goes in the next report
                count.rested_until = min(count.rested_until, now)

    async def close(self) -> None:
        if self._reporting is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reporting, 2.0)
        with contextlib.suppress(Exception):
            await self.report()
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def rest_for(rests: int) -> float:
    """Seconds of the ``rests``-th rest in a row."""
    return min(REST_BASE * 2.0 ** max(0, rests - 1), REST_MAX)


def shared_ledger(scripts: ScriptRunner, crawl: str, worker: str) -> ProxyLedger:
    """The crawl's proxy counts in Redis, with this module's rules for resting."""
    from crawler.frontier.proxy_ledger import ProxyLedger as SharedLedger

    return SharedLedger(scripts, crawl, worker, burst=FAILURE_BURST, rest_base=REST_BASE,
                        rest_max=REST_MAX)
