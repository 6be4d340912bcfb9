"""Which workers are alive: heartbeats on the server's clock, and what each one reports.

Every worker beats every few seconds (``heartbeat.lua``): its id's score in
the crawl's ``workers`` ZSET becomes the server's time, and its own hash gets
its node, pid and counters. A worker is live while its last beat is at most
``DEAD_AFTER_BEATS`` of its heartbeat intervals old; a killed one is then
reported as dead, and forgotten an hour later. A worker that exits cleanly
removes itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier.scripts import ScriptRunner
from crawler.frontier.transitions import Frontier
from crawler.store import keys
from crawler.store.connection import server_ms

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"
"""A crawl's states: ``crawler.observe.control`` sets them, claim.lua obeys them."""

HEARTBEAT_EVERY = 5.0
"""Seconds between a worker's heartbeats (shorter with a short lease_time)."""
DEAD_AFTER_BEATS = 3
"""Heartbeats a worker may miss before it counts as dead."""
FORGET_AFTER = 3600.0
"""Seconds after its last heartbeat that a dead worker is still reported."""


class Heartbeat:
    """One worker's heartbeat."""

    def __init__(self, scripts: ScriptRunner, crawl: str, worker: str) -> None:
        self.scripts = scripts
        self.worker = worker
        self.keys = [keys.workers_key(crawl), keys.worker_key(crawl, worker)]

    async def beat(self, report: dict[str, Any]) -> int:
        """Say this worker is alive, with what it reports; returns the server's ms."""
        fields = [str(v) for kv in report.items() for v in kv]
        [now] = await self.scripts.run([("heartbeat", self.keys, [
            self.worker, int(FORGET_AFTER * 1000), int(FORGET_AFTER * 1000), *fields])])
        return int(now)

    async def leave(self) -> None:
        await self.scripts.run([("heartbeat", self.keys, [self.worker, 0, 0, ""])])


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    id: str
    last_beat_ms: int
    alive: bool
    report: dict[str, str]


async def list_workers(redis: Redis, crawl: str, now_ms: int) -> list[WorkerInfo]:
    """Every worker heard from in the last hour, live ones first, each with its report.

    Older entries are left out here too: heartbeat.lua drops them only when
    some worker of the crawl beats, and after the last one died none does.
    """
    beats: list[tuple[str, float]] = await redis.zrangebyscore(  # type: ignore[assignment]
        keys.workers_key(crawl), now_ms - int(FORGET_AFTER * 1000), "+inf", withscores=True)
    pipe = redis.pipeline(transaction=False)
    for worker, _ in beats:
        pipe.hgetall(keys.worker_key(crawl, str(worker)))
    reports = await pipe.execute() if beats else []
    out = []
    for (worker, score), report in zip(beats, reports, strict=True):
        # Each worker says how often it beats (its lease_time sets that).
        every_ms = float(report.get("every_ms") or HEARTBEAT_EVERY * 1000)
        alive = now_ms - int(score) <= DEAD_AFTER_BEATS * every_ms + 1000
        out.append(WorkerInfo(str(worker), int(score), alive,
                              {str(k): str(v) for k, v in report.items()}))
    return sorted(out, key=lambda w: (not w.alive, -w.last_beat_ms))


async def crawl_end(redis: Redis, settings: Settings) -> str:
    """Why the crawl fetches nothing more until someone acts, or '' while it may go on.

    ``finished``: nothing queued, leased or waiting in any shard, and no live
    worker. ``stopped (REASON)``: an operator or a cap (``max_pages``...) stopped
    it, nothing is leased and no worker is alive: its queue waits for ``crawl
    resume``, not for a worker (``crawl export --follow`` ends there too).
    """
    stats = await Frontier(redis, settings).stats()
    raw: list[Any] = await redis.hmget(keys.meta_key(settings.crawl), ["state", "reason"])
    state, reason = (v.decode() if isinstance(v, bytes) else v for v in raw)
    stopped = state == STOPPED
    if not stopped and (stats["leased"] or stats["queued"]):
        return ""
    now = await server_ms(redis)
    pipe = redis.pipeline(transaction=False)
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        pipe.zcount(shard.leases, now, "+inf")
        pipe.zcard(shard.delayed)
    counts = [int(n) for n in await pipe.execute()]
    # Stopped: only a worker gives an expired lease back, and none runs a stopped
    # crawl, so a lease a killed worker left counts while it could still complete;
    # its queued and waiting URLs wait for crawl resume.
    if any(counts[0::2]) or (not stopped and any(counts[1::2])):
        return ""
    workers = await list_workers(redis, settings.crawl, now)
    if any(w.alive for w in workers):
        return ""
    return f"stopped ({reason or 'operator'})" if stopped else "finished"
