"""robots.txt: fetched once per host per TTL, shared through Redis, parsed by protego.

RFC 9309 status rules, as the fetching worker stores them:

- 2xx: use the rules (``R`` + body);
- 4xx: no rules, allow everything (``A``);
- 5xx, timeout, unreachable: disallow everything for now (``D``) with a short
  TTL, so the host is tried again later.

Only the worker holding ``robots_lock:<origin>`` fetches; the others wait for
the cached verdict. The fetch takes the place of the page fetch in the host's
politeness slot: the page's lease is given back (no attempt counted) and
claimed again once the host's delay has passed, so the robots request and the
page request are spaced like any two requests to that host.

Crawl-delay raises the host's delay in Redis (``h:<host>`` field
``crawl_delay``), up to ``crawl_delay_cap``; claim.lua applies it for every
worker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import OrderedDict
from typing import TYPE_CHECKING

import aiohttp
from protego import Protego
from redis.asyncio import Redis

from crawler import errors, keys
from crawler.config import Settings
from crawler.fetch import fetch

if TYPE_CHECKING:
    from crawler.frontier import Frontier, Lease

UNAVAILABLE_TTL = 600.0
"""Seconds a 5xx/unreachable robots.txt blocks its host before it is fetched again."""
LOCK_TTL = 60.0
ROBOTS_MAX_BYTES = 512 * 1024
ROBOTS_MAX_REDIRECTS = 5
LOCAL_CACHE_SIZE = 10_000
WAIT_POLL = 0.05


class RobotsUnavailable(errors.FetchError):
    type = "robots_unavailable"
    retry = True


class RobotsFetched(Exception):
    """This lease was spent fetching robots.txt; its URL goes back to the queue."""


@dataclasses.dataclass(slots=True)
class Verdict:
    kind: str  # "A" allow all, "D" disallow all for now, "R" rules
    rules: Protego | None
    expires: float


def origin_of(url: str) -> str:
    scheme_end = url.index("//") + 2
    path_start = url.find("/", scheme_end)
    return url[:path_start] if path_start >= 0 else url


class RobotsCache:
    """Answers "may this URL be fetched?" for one worker process."""

    def __init__(self, redis: Redis, frontier: Frontier, session: aiohttp.ClientSession,
                 settings: Settings) -> None:
        self.redis = redis
        self.frontier = frontier
        self.session = session
        self.settings = settings
        self.agent = settings.user_agent.split("/", 1)[0].strip() or "*"
        self.local: OrderedDict[str, Verdict] = OrderedDict()
        self.fetch_settings = dataclasses.replace(
            settings, max_redirects=ROBOTS_MAX_REDIRECTS, max_body_bytes=ROBOTS_MAX_BYTES)
        self.fetches = 0  # robots.txt requests this process made

    async def check(self, lease: Lease) -> None:
        """Raise RobotsDisallowed, RobotsUnavailable or RobotsFetched, or return if allowed."""
        if not self.settings.obey_robots:
            return
        verdict = await self._verdict(lease)
        if verdict.kind == "D":
            raise RobotsUnavailable("robots.txt unavailable (5xx or unreachable); retry later")
        if verdict.kind == "R" and verdict.rules is not None and \
                not verdict.rules.can_fetch(lease.url, self.agent):
            raise errors.RobotsDisallowed(f"robots.txt disallows {lease.url}")

    async def _verdict(self, lease: Lease) -> Verdict:
        origin = origin_of(lease.url)
        cached = self.local.get(origin)
        if cached is not None and cached.expires > time.time():
            return cached
        shard = self.frontier.shards[lease.shard]
        key, lock = shard.robots(origin), shard.robots_lock(origin)
        deadline = time.monotonic() + LOCK_TTL
        while True:
            raw, ttl_ms = await self._read(key)
            if raw is not None:
                return self._remember(origin, raw, ttl_ms)
            if await self.redis.set(lock, "1", nx=True, px=int(LOCK_TTL * 1000)):
                break
            if time.monotonic() > deadline:
                raise RobotsUnavailable("timed out waiting for another worker's robots.txt fetch")
            await asyncio.sleep(WAIT_POLL)
        try:
            raw, ttl = await self._fetch(origin)
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(key, raw, px=int(ttl * 1000))
            self._queue_crawl_delay(pipe, shard, lease.host, raw)
            await pipe.execute()
        finally:
            await self.redis.delete(lock)
        raise RobotsFetched(origin)

    async def _read(self, key: str) -> tuple[str | None, int]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        raw, ttl = await pipe.execute()
        return raw, int(ttl)

    def _remember(self, origin: str, raw: str, ttl_ms: int) -> Verdict:
        kind = raw[:1]
        rules = Protego.parse(raw[1:]) if kind == "R" else None
        ttl = ttl_ms / 1000 if ttl_ms > 0 else self.settings.robots_ttl
        verdict = Verdict(kind, rules, time.time() + min(ttl, self.settings.robots_ttl))
        self.local[origin] = verdict
        self.local.move_to_end(origin)
        if len(self.local) > LOCAL_CACHE_SIZE:
            self.local.popitem(last=False)
        return verdict

    async def _fetch(self, origin: str) -> tuple[str, float]:
        """Fetch and classify one robots.txt. Returns (stored value, TTL seconds)."""
        self.fetches += 1
        try:
            resp = await fetch(self.session, origin + "/robots.txt", self.fetch_settings)
        except errors.TooLarge:
            return "A", self.settings.robots_ttl  # RFC 9309: parse at least 500 KiB; be lenient
        except errors.FetchError:
            return "D", UNAVAILABLE_TTL
        if 200 <= resp.status < 300:
            return "R" + resp.body.decode("utf-8", "replace"), self.settings.robots_ttl
        if 400 <= resp.status < 500:
            return "A", self.settings.robots_ttl
        return "D", UNAVAILABLE_TTL

    def _queue_crawl_delay(self, pipe: object, shard: keys.ShardKeys, host: str,
                           raw: str) -> None:
        if raw[:1] != "R":
            return
        delay = Protego.parse(raw[1:]).crawl_delay(self.agent)
        if delay is None:
            return
        capped = min(float(delay), self.settings.crawl_delay_cap)
        pipe.hset(shard.host(host), "crawl_delay", int(capped * 1000))  # type: ignore[attr-defined]
        if float(delay) > self.settings.crawl_delay_cap:
            pipe.hincrby(shard.stats, "robots_capped", 1)  # type: ignore[attr-defined]
