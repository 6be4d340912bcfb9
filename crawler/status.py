"""What a crawl looks like right now, read from the frontier itself (all shards, all workers).

``crawl status`` prints it; the worker's progress line uses ``held_hosts``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from crawler import keys
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.workers import list_workers

HELD_LISTED = 20
"""Held hosts listed by name in crawl status (the most URLs first); all are counted."""
HELD_SCAN = 1000
"""Most held hosts read a shard at a time."""


@dataclass(frozen=True, slots=True)
class HeldHost:
    host: str
    reason: str  # robots, backoff, retry-after
    until_ms: int  # server clock, when the hold ends
    queued: int


async def server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def held_hosts(redis: Redis, settings: Settings) -> list[HeldHost]:
    """Hosts held back right now (robots.txt retry, 429/503 backoff, Retry-After)."""
    now = await server_ms(redis)
    shards = keys.all_shards(settings.crawl, settings.shards)
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        pipe.zrangebyscore(shard.held, now, "+inf", start=0, num=HELD_SCAN, withscores=True)
    found: list[tuple[keys.ShardKeys, str, int]] = []
    for shard, reply in zip(shards, await pipe.execute(), strict=True):
        found += [(shard, str(host), int(until)) for host, until in reply]
    if not found:
        return []
    pipe = redis.pipeline(transaction=False)
    for shard, host, _ in found:
        pipe.hget(shard.host(host), "hold")
        pipe.llen(shard.queue(host))
    replies = await pipe.execute()
    return [HeldHost(host, str(replies[2 * i] or "backoff"), until, int(replies[2 * i + 1]))
            for i, (_, host, until) in enumerate(found)]


def held_summary(held: list[HeldHost]) -> dict[str, Any]:
    by_reason: Counter[str] = Counter()
    for h in held:
        by_reason[h.reason] += h.queued
    return {"hosts": len(held), "urls": sum(h.queued for h in held),
            "urls_by_reason": dict(by_reason)}


async def crawl_status(redis: Redis, settings: Settings) -> dict[str, Any]:
    """The crawl's counters, workers and held hosts, as crawl status prints them."""
    status: dict[str, Any] = await Frontier(redis, settings).stats()
    now = await server_ms(redis)
    workers = await list_workers(redis, settings.crawl, now)
    status["workers"] = sum(w.alive for w in workers)
    status["workers_dead"] = sum(not w.alive for w in workers)
    status["shards"] = settings.shards
    held = await held_hosts(redis, settings)
    status["held"] = {
        **held_summary(held),
        "listed": [{"host": h.host, "reason": h.reason, "queued": h.queued,
                    "seconds_left": round(max(0, h.until_ms - now) / 1000, 1)}
                   for h in sorted(held, key=lambda h: -h.queued)[:HELD_LISTED]],
    }
    return status


async def crawl_is_done(redis: Redis, settings: Settings) -> bool:
    """Nothing queued, leased or waiting in any shard, and no live worker."""
    stats = await Frontier(redis, settings).stats()
    if stats["queued"] > 0 or stats["leased"] > 0:
        return False
    pipe = redis.pipeline(transaction=False)
    for shard in keys.all_shards(settings.crawl, settings.shards):
        pipe.zcard(shard.delayed)
    if any(int(n) for n in await pipe.execute()):
        return False
    workers = await list_workers(redis, settings.crawl, await server_ms(redis))
    return not any(w.alive for w in workers)
