"""Per-host politeness that holds across every worker on every node.

All of it is decided in Redis, at claim time (``crawler/lua/claim.lua``):

- **limit and delay**: a host is claimable only with a free slot
  (``inflight < limit``) and once ``now >= next``; a claim sets
  ``next = now + max(delay, crawl_delay)``.
- **the policy table**: ``publish_policy`` writes the settings' default and
  ``host_overrides`` into every shard (key ``policy``, see ``crawler.keys``)
  under a version that is a digest of the table. The scripts resolve a host's
  limit and delay from it (exact host, then the longest domain suffix, then
  the default) whenever the version differs from the one the host was last
  resolved with. So a worker started with changed overrides changes them for
  hosts already known too; the most recently published table wins. Without
  a published table, the policy ``add.lua`` stored when it first saw the host
  holds (``HSETNX``), as before.
- **Crawl-delay** (``crawler.robots``), **backoff** on 429/503 (``retry.lua``)
  and the **adaptive delay** (``adaptive_delay``, passed to ``complete.lua``)
  only ever push ``next`` later.
- **slack**: the claim is the politeness decision, but the server sees the
  request later, by the time the worker takes to read the claim's reply,
  start the task, maybe consult robots.txt, and send. If one request goes out
  late and the next on time, their gap shrinks by the difference. So a worker
  claims with ``politeness_slack`` added to every delay > 0, and must reach
  the send within half of it from *sending* the claim (an upper bound on the
  time since Redis ran it, with no clock to synchronise), or it raises
  ``SlotMissed`` and gives the lease back unfetched. The other half covers
  what no worker can see: opening a connection, the send, the server's read.
  A robots.txt fetch, a host's first request and always on a new connection,
  has the next request counted from its end instead (``robots.lua``).

Politeness is keyed by host with its port (``urls.host_key``), or with
``politeness_key = "ip"`` by the server's address, so many host names on one
server are throttled together. ``PolitenessKeys`` resolves names when their
URLs are added, in the adding process, with a bounded cache. The address is
only a throttling key: fetches still resolve through the SSRF guard
(``fetch.GuardedResolver``), so a name that later points somewhere private is
still refused, and an unresolvable name keeps its host key. Overrides name
hosts, not addresses: each address records the names seen on it (``add.lua``,
the first 32), and its policy is the strictest of those names' policies.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable

from redis.asyncio import Redis

from crawler.aio import cancel_and_wait
from crawler.config import HostPolicy, Settings
from crawler.store import keys
from crawler.urls import host_key, hostname

__all__ = ["PolitenessKeys", "SlotMissed", "adaptive_delay", "policy_table", "publish_policy",
           "start_deadline"]

DNS_CACHE_SIZE = 10_000
"""Host names whose address a process remembers (least recently used go first)."""
DNS_TTL = 300.0
"""Seconds a resolved address is trusted as a politeness key."""
DNS_FAILURE_TTL = 60.0
"""Seconds an unresolvable name keeps its host key before it is tried again."""
RESOLVE_TIMEOUT = 5.0
"""Seconds one batch of lookups may take; names not resolved by then keep their host key."""

START_BUDGET = 0.5
"""Share of the slack a worker may spend before the send; the rest is for the network."""

Resolve = Callable[[str], Awaitable[str | None]]


class SlotMissed(Exception):
    """The request could not start within the slack of its claim; the lease goes back."""


def start_deadline(settings: Settings, claim_sent: float, spaced: bool) -> float:
    """``time.monotonic()`` after which a request claimed at ``claim_sent`` must not start.

    ``spaced``: the claim spaced the host's next request (``Lease.spaced``):
    its delay, from the policy Redis holds or robots.txt's Crawl-delay, is
    over 0. Only the claim knows: this worker's settings may say ``delay = 0``
    while the host has a Crawl-delay or another worker's published override.
    Infinite when not spaced: without spacing to keep, a late start harms
    nothing, and giving leases back would only slow a busy worker.
    """
    if not spaced or settings.politeness_slack <= 0:
        return math.inf
    return claim_sent + settings.politeness_slack * START_BUDGET


def _spec(policy: HostPolicy) -> str:
    return f"{policy.max_per_host}|{round(policy.delay * 1000)}"


def policy_table(settings: Settings) -> dict[str, str]:
    """The table ``publish_policy`` writes: ``d``, ``x:<pattern>``, ``s:<suffix>``, ``v``.

    Same precedence as ``Settings.policy_for``: an exact pattern beats any
    suffix, a longer suffix beats a shorter one (patterns are written in
    order of length, so of two spelling the same suffix the longer wins).
    """
    table = {"d": _spec(HostPolicy(settings.max_per_host, settings.delay))}
    for pattern, policy in sorted(settings.host_overrides.items(), key=lambda kv: len(kv[0])):
        table["x:" + pattern] = _spec(policy)
        table["s:" + pattern.lstrip(".")] = _spec(policy)
    digest = hashlib.sha1(repr(sorted(table.items())).encode()).hexdigest()[:16]
    table["v"] = digest
    return table


async def publish_policy(redis: Redis, settings: Settings) -> str:
    """Make the settings' politeness the crawl's, for every host. Returns the version.

    Each shard's table is replaced in one MULTI, so a script never sees half
    a table. Hosts pick it up at their next claim or slot release.
    """
    table = policy_table(settings)
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        pipe = redis.pipeline(transaction=True)
        pipe.delete(shard.policy)
        pipe.hset(shard.policy, mapping=table)  # type: ignore[arg-type]
        await pipe.execute()
    return table["v"]


def adaptive_delay(elapsed: float, settings: Settings) -> float:
    """Seconds the host waits after a response that took ``elapsed`` (Heritrix's rule).

    ``delay_factor`` times the response time, at most ``max_delay``; the
    host's own delay (between request starts) still applies underneath.
    """
    if not settings.adaptive_delay:
        return 0.0
    return max(0.0, min(settings.max_delay, settings.delay_factor * elapsed))


def _ip_literal(name: str) -> str | None:
    try:
        ip = ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None
    return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed


async def system_resolve(name: str) -> str | None:
    """The first address the system resolver gives for ``name``, or None."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    for family in (socket.AF_INET, socket.AF_INET6):
        for info in infos:
            if info[0] == family:
                return _ip_literal(str(info[4][0]))
    return None


class PolitenessKeys:
    """Maps a canonical URL to its politeness key: ``host[:port]``, or its server's IP.

    In ``ip`` mode, ``prime`` must run (it is async) before ``key`` is asked
    about new names; ``key`` itself never blocks and falls back to the host key.
    """

    def __init__(self, settings: Settings, resolve: Resolve | None = None,
                 capacity: int = DNS_CACHE_SIZE) -> None:
        self.by_ip = settings.politeness_key == "ip"
        self.resolve = resolve or system_resolve
        self.capacity = capacity
        self.cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self.lookups = 0  # names sent to the resolver, for tests and the benchmark

    def key(self, url: str) -> str:
        if not self.by_ip:
            return host_key(url)
        name = hostname(url)
        literal = _ip_literal(name)
        if literal is not None:
            return literal
        hit = self.cache.get(name)
        if hit is not None and hit[0] is not None:
            return hit[0]
        return host_key(url)

    async def prime(self, urls: Iterable[str]) -> None:
        """Resolve the names among ``urls`` that the cache lacks or holds expired."""
        if not self.by_ip:
            return
        now = time.monotonic()
        names = set()
        for url in urls:
            name = hostname(url)
            hit = self.cache.get(name)
            if (hit is None or hit[1] <= now) and _ip_literal(name) is None:
                names.add(name)
        if not names:
            return
        ordered = sorted(names)
        self.lookups += len(ordered)
        tasks = [asyncio.ensure_future(self.resolve(n)) for n in ordered]
        done, pending = await asyncio.wait(tasks, timeout=RESOLVE_TIMEOUT)
        await cancel_and_wait(pending, within=RESOLVE_TIMEOUT)
        now = time.monotonic()
        for name, task in zip(ordered, tasks, strict=True):
            ip = task.result() if task in done and task.exception() is None else None
            self._remember(name, ip, now + (DNS_TTL if ip else DNS_FAILURE_TTL))

    def _remember(self, name: str, ip: str | None, expires: float) -> None:
        self.cache[name] = (ip, expires)
        self.cache.move_to_end(name)
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)
