"""DNS for millions of hosts: c-ares (aiodns) behind a TTL cache, a negative cache and a limit.

``CachingResolver`` is the resolver every fetch's connections go through (the
SSRF guard, ``crawler.net.guard.GuardedResolver``, checks what it returns).
For each name it asks A and AAAA at once through c-ares' ``getaddrinfo``
(which also reads /etc/hosts, so ``localhost`` works), on the event loop, no
thread pool. Then:

- an answer is kept for its records' TTL, held within ``dns_min_ttl`` and
  ``dns_max_ttl``: a crawl asks again for a host whose TTL ran out, never
  before ``dns_min_ttl`` (a 0 s TTL would mean a query per connection);
- NXDOMAIN, SERVFAIL, REFUSED, and a name with no address records are kept
  ``dns_negative_ttl``: the host's next URLs fail at once, with no query;
- at most ``dns_concurrency`` lookups are in flight per process (each is an
  A and an AAAA query), and one lookup serves every caller asking for the same
  name meanwhile;
- each query waits ``dns_timeout`` for an answer and is sent ``dns_tries``
  times at most; past ``dns_timeout * dns_tries`` (plus a margin for c-ares'
  backoff) the lookup fails as a timeout, whatever c-ares does.

A failure is raised as ``LookupFailed`` (an OSError, which aiohttp wraps and
``crawler.net.fetch_errors.classify`` turns into a ``dns_error`` record whose
message says NXDOMAIN, SERVFAIL, timeout, ...). Timeouts and unreachable
servers are worth trying again later (``retry``), and are not cached;
answers about the name are final for the URL.

c-ares also keeps a cache of its own answers, within their TTL (at most an
hour) and pycares cannot turn it off: a name asked again after
``dns_max_ttl`` may be answered from it, never past the record's own TTL.
Search domains (``search`` in resolv.conf) are never appended: a link to
``http://intranet/`` must not reach a host of the crawler's own network.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp.abc import AbstractResolver, ResolveResult

from crawler.config import Settings
from crawler.config.settings import parse_server

if TYPE_CHECKING:
    import aiodns

CACHE_ENTRIES = 200_000
"""Names kept at most (positive and negative together), least recently used dropped first:
some 50 MB at worst, and the working set of hosts a process crawls at once is far smaller."""
TIMEOUT_MARGIN = 0.5
"""Seconds past ``dns_timeout * dns_tries`` a lookup may take before we give up on it."""


class LookupFailed(OSError):
    """A name did not resolve: ``kind`` is NXDOMAIN, SERVFAIL, timeout, ...; ``retry``
    says whether asking again later may help (a timeout may, an NXDOMAIN will not)."""

    def __init__(self, host: str, kind: str, detail: str, retry: bool) -> None:
        super().__init__(f"{host}: {kind} ({detail})" if detail else f"{host}: {kind}")
        self.host = host
        self.kind = kind
        self.detail = detail
        self.retry = retry

    def again(self) -> LookupFailed:
        """A new instance to raise: re-raising one would grow its traceback each time."""
        return LookupFailed(self.host, self.kind, self.detail, self.retry)


# c-ares status -> (what we call it, whether a later try may help). What may pass
# is not cached; an answer about the name is, for dns_negative_ttl.
_FAILURES: dict[str, tuple[str, bool]] = {
    "ARES_ENOTFOUND": ("NXDOMAIN", False),
    "ARES_ENODATA": ("no address records", False),
    "ARES_ESERVFAIL": ("SERVFAIL", False),
    "ARES_EREFUSED": ("REFUSED", False),
    "ARES_EBADNAME": ("not a valid name", False),
    "ARES_EFORMERR": ("FORMERR", False),
    "ARES_EBADRESP": ("malformed answer", True),
    "ARES_ETIMEOUT": ("timeout", True),
    "ARES_ECONNREFUSED": ("DNS server unreachable", True),
}


@dataclass(slots=True)
class Entry:
    """One name's cached outcome: its addresses, or the failure to raise again."""

    addresses: tuple[tuple[socket.AddressFamily, str], ...]
    expires: float  # time.monotonic()
    failure: LookupFailed | None = None


@dataclass(slots=True)
class DNSStats:
    """Counts since the resolver started, for the benchmark and the tests."""

    lookups: int = 0  # names sent to c-ares
    hits: int = 0  # answered from our cache (positive)
    negative_hits: int = 0  # failed at once from the negative cache
    joined: int = 0  # waited for a lookup of the same name already in flight
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # summed time of the lookups sent to c-ares
    most_in_flight: int = 0

    @property
    def hit_rate(self) -> float:
        asked = self.lookups + self.hits + self.negative_hits + self.joined
        return (asked - self.lookups) / asked if asked else 0.0


class CachingResolver(AbstractResolver):
    """aiohttp resolver on c-ares with positive and negative caches; see the module doc."""

    def __init__(self, settings: Settings) -> None:
        self.servers = [parse_server(s) for s in settings.dns_servers]
        self.min_ttl = settings.dns_min_ttl
        self.max_ttl = max(settings.dns_max_ttl, settings.dns_min_ttl)
        self.negative_ttl = settings.dns_negative_ttl
        self.timeout = settings.dns_timeout
        self.tries = settings.dns_tries
        self.concurrency = settings.dns_concurrency
        self.cache: OrderedDict[str, Entry] = OrderedDict()
        self.stats = DNSStats()
        self._pending: dict[str, asyncio.Future[Entry]] = {}
        self._slots = asyncio.Semaphore(self.concurrency)
        self._in_flight = 0
        self._channel: aiodns.DNSResolver | None = None

    def _open_channel(self) -> aiodns.DNSResolver:
        import aiodns
        import pycares

        kw: dict[str, Any] = {"timeout": self.timeout, "tries": self.tries,
                              "flags": pycares.ARES_FLAG_NOSEARCH}
        if self.servers:
            kw["nameservers"] = self.servers
        return aiodns.DNSResolver(loop=asyncio.get_running_loop(), **kw)

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        entry = await self.lookup(host)
        if entry.failure is not None:
            raise entry.failure.again()
        wanted = [(f, ip) for f, ip in entry.addresses if family in (socket.AF_UNSPEC, f)]
        if not wanted:  # aiohttp asks AF_UNSPEC unless its connector was told a family
            raise LookupFailed(host, "no address records", f"of family {family!r}", False)
        return [ResolveResult(hostname=host, host=ip, port=port, family=f, proto=0,
                              flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
                for f, ip in wanted]

    async def lookup(self, host: str) -> Entry:
        """The cached entry for ``host`` if still fresh, else one from c-ares."""
        name = host.rstrip(".").lower()
        now = time.monotonic()
        entry = self.cache.get(name)
        if entry is not None and entry.expires > now:
            self.cache.move_to_end(name)
            if entry.failure is None:
                self.stats.hits += 1
            else:
                self.stats.negative_hits += 1
            return entry
        pending = self._pending.get(name)
        if pending is not None:
            self.stats.joined += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[Entry] = asyncio.get_running_loop().create_future()
        self._pending[name] = future
        try:
            entry = await self._ask(name)
            future.set_result(entry)
        except BaseException as exc:  # a cancelled caller: the others get the error
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._pending[name]
        return entry

    async def _ask(self, name: str) -> Entry:
        async with self._slots:
            self._in_flight += 1
            self.stats.most_in_flight = max(self.stats.most_in_flight, self._in_flight)
            self.stats.lookups += 1
            started = time.monotonic()
            try:
                return self._remember(name, await self._query(name))
            finally:
                self._in_flight -= 1
                self.stats.seconds += time.monotonic() - started

    async def _query(self, name: str) -> Entry | LookupFailed:
        import aiodns
        from pycares import errno as ares_errno

        if self._channel is None:
            self._channel = self._open_channel()
        bound = self.timeout * self.tries + TIMEOUT_MARGIN
        try:
            async with asyncio.timeout(bound):
                result = await self._channel.getaddrinfo(
                    name, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM)
        except TimeoutError:
            return LookupFailed(name, "timeout", f"no answer within {bound:g} s", True)
        except aiodns.error.DNSError as exc:
            code = exc.args[0] if exc.args else -1
            symbol = next((s for s, _ in _FAILURES.items()
                           if getattr(ares_errno, s, None) == code), "")
            kind, retry = _FAILURES.get(symbol, (f"c-ares error {code}", True))
            detail = exc.args[1] if len(exc.args) > 1 else ""
            return LookupFailed(name, kind, str(detail), retry)
        addresses: list[tuple[socket.AddressFamily, str]] = []
        ttl = self.max_ttl
        for node in result.nodes:
            if node.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = node.addr[0]
            ip = ip.decode() if isinstance(ip, bytes) else str(ip)
            if (socket.AddressFamily(node.family), ip) not in addresses:
                addresses.append((socket.AddressFamily(node.family), ip))
            ttl = min(ttl, node.ttl)
        for cname in result.cnames:  # the chain is only as fresh as its shortest link
            ttl = min(ttl, cname.ttl)
        if not addresses:
            return LookupFailed(name, "no address records", "", False)
        return Entry(tuple(addresses), time.monotonic() + min(max(ttl, self.min_ttl),
                                                              self.max_ttl))

    def _remember(self, name: str, got: Entry | LookupFailed) -> Entry:
        if isinstance(got, Entry):
            entry = got
        else:
            self.stats.failures[got.kind] = self.stats.failures.get(got.kind, 0) + 1
            cached = not got.retry
            entry = Entry((), time.monotonic() + (self.negative_ttl if cached else 0.0), got)
        if entry.expires > time.monotonic():
            self.cache[name] = entry
            self.cache.move_to_end(name)
            while len(self.cache) > CACHE_ENTRIES:
                self.cache.popitem(last=False)
        return entry

    async def first_address(self, name: str) -> str | None:
        """The first address of ``name`` (IPv4 first), or None: for ``politeness_key = ip``."""
        entry = await self.lookup(name)
        addresses = sorted(entry.addresses, key=lambda a: a[0] != socket.AF_INET)
        if not addresses:
            return None
        family, ip = addresses[0]
        return f"[{ip}]" if family == socket.AF_INET6 else ip

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
