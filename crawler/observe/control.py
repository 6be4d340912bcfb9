"""Steering a crawl as a whole, on every node at once: pause, resume, stop, and caps.

The state is written in two places, for two readers:

1. the crawl's ``meta`` hash (``state``, ``reason``, ``since``): what
   ``crawl status`` shows and what each worker polls about once a second, to
   stop claiming, or to drain and exit;
2. every shard's ``ctl`` hash (``state``, ``cap``): what ``claim.lua`` obeys.
   A worker that has not polled yet still cannot claim past a pause, a stop
   or a cap, because the claim itself refuses.

Caps hold across all nodes together. ``max_pages`` bounds each shard's
claims by an allotment (``cap``: done + leased may not pass it) whose sum
over the shards is ``max_pages``, never more; with one shard that is exact,
and with several the allotments are re-divided from the shards' counters as
the crawl goes (``enforce_caps``). ``max_errors`` is divided the same way (``errcap``):
a shard whose errors reach it claims nothing more, so the errors can pass the
cap only by the fetches in flight then. Reaching ``max_pages`` or
``max_errors`` in total, or ``max_duration`` on the server's clock, stops the
crawl; fetches already in flight still finish and are recorded.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier.cluster import runner_for
from crawler.frontier.scripts import ScriptRunner
from crawler.frontier.workers import PAUSED as PAUSED
from crawler.frontier.workers import RUNNING as RUNNING
from crawler.frontier.workers import STOPPED as STOPPED
from crawler.store import keys

CAPS_LOCK_TTL = 10.0
"""Seconds the re-division lock lives: a process that died holding it holds up no one
for longer."""


@dataclass(frozen=True)
class CrawlState:
    state: str = RUNNING
    reason: str = ""  # "operator", or the cap that ended it: max_pages, max_errors, ...
    since: float = 0.0  # Unix time of the change; 0: never changed (running since seeded)

    def as_dict(self) -> dict[str, Any]:
        """``since`` null for a crawl never paused or stopped: 0.0 read as 1970."""
        return {"state": self.state, "reason": self.reason, "since": self.since or None}


def _shards(settings: Settings) -> list[keys.ShardKeys]:
    return keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)


async def crawl_state(redis: Redis, settings: Settings) -> CrawlState:
    raw: list[Any] = await redis.hmget(keys.meta_key(settings.crawl),
                                       ["state", "reason", "since"])
    state, reason, since = (v.decode() if isinstance(v, bytes) else v for v in raw)
    return CrawlState(state or RUNNING, reason or "", float(since or 0))


async def set_state(redis: Redis, settings: Settings, state: str, reason: str = "") -> None:
    """Write the state for the claims first, then for status and the workers' poll."""
    for shard in _shards(settings):
        if state == RUNNING:
            await redis.hdel(shard.ctl, "state")
        else:
            await redis.hset(shard.ctl, "state", state)
    since = round(await server_time(redis), 3)  # Redis's clock, not this machine's
    await redis.hset(keys.meta_key(settings.crawl),
                     mapping={"state": state, "reason": reason, "since": since})


async def pause(redis: Redis, settings: Settings) -> None:
    await set_state(redis, settings, PAUSED, "operator")


async def resume(redis: Redis, settings: Settings) -> str:
    """Let the crawl claim again, unless a cap is still reached: then it stays as it
    was, and the cap's name is returned (a worker would stop it again at once)."""
    from crawler.store.crawl_settings import apply_stored, stored

    # The caps as stored now: a dashboard holds the settings it started with, and a
    # cap raised since (crawl config set) must let it resume.
    values, _ = await stored(redis, settings.crawl)
    now = settings if values is None else apply_stored(settings, values)
    reason = await reached_cap(redis, now, await shard_counters(redis, settings))
    if not reason:
        await set_state(redis, settings, RUNNING)
    return reason


async def stop(redis: Redis, settings: Settings, reason: str = "operator") -> None:
    await set_state(redis, settings, STOPPED, reason)


async def shard_counters(redis: Redis, settings: Settings) -> list[dict[str, int]]:
    """Each shard's ``stats`` hash, as numbers (one round trip per shard)."""
    out = []
    for shard in _shards(settings):
        raw: dict[Any, Any] = await redis.hgetall(shard.stats)
        out.append({(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()})
    return out


def allotments(limit: int, used: list[int], queued: list[int]) -> list[int]:
    """Each shard's cap: what it used, plus a share of what is left of ``limit``.

    What is left goes to the shards with URLs queued, the most queued first:
    a share given to a shard with nothing to claim would sit there unused,
    and the crawl would wait forever short of its cap. The caps sum to
    ``limit`` (or to what is used, once that passed it).
    """
    left = max(0, limit - sum(used))
    takers = sorted((i for i, q in enumerate(queued) if q > 0), key=lambda i: -queued[i])
    takers = takers or list(range(len(used)))
    caps = list(used)
    share, extra = divmod(left, len(takers))
    for rank, i in enumerate(takers):
        caps[i] += share + (rank < extra)
    return caps


async def created_at(redis: Redis, settings: Settings) -> float:
    raw = await redis.hget(keys.meta_key(settings.crawl), "layout")
    return float(json.loads(raw).get("created", 0)) if raw else 0.0


async def server_time(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return float(seconds) + micros / 1e6


async def enforce_caps(redis: Redis, settings: Settings, *, lifted: bool = False,
                       scripts: ScriptRunner | None = None) -> str:
    """Stop the crawl if a cap is reached (returns which), else re-divide ``max_pages``
    and ``max_errors`` (``_redivide``).

    ``lifted``: the settings just changed, so a ``max_pages`` now 0 removes the
    shards' allotments. ``scripts``: the caller's script runner, if it has one."""
    if lifted:
        for shard in _shards(settings):
            lift = [f for f, on in (("cap", settings.max_pages), ("errcap", settings.max_errors))
                    if not on]
            if lift:
                await redis.hdel(shard.ctl, *lift)
    if not (settings.max_pages or settings.max_errors or settings.max_duration):
        return ""
    counters = await shard_counters(redis, settings)
    reason = await reached_cap(redis, settings, counters)
    if reason:
        if (await crawl_state(redis, settings)).state != STOPPED:
            await stop(redis, settings, reason)
        return reason
    if settings.max_pages or settings.max_errors:
        await _redivide(redis, settings, counters, scripts)
    return ""


async def reached_cap(redis: Redis, settings: Settings, counters: list[dict[str, int]]
                      ) -> str:
    """The cap the crawl has reached (max_pages, max_errors, max_duration), or ''."""
    if settings.max_pages and sum(c.get("done", 0) for c in counters) >= settings.max_pages:
        return "max_pages"
    if settings.max_errors and sum(c.get("errors", 0) for c in counters) >= settings.max_errors:
        return "max_errors"
    if settings.max_duration:
        started = await created_at(redis, settings)
        if started and await server_time(redis) - started >= settings.max_duration:
            return "max_duration"
    return ""


def raise_cap_hint(cap: str) -> str:
    """What lets a crawl stopped by ``cap`` go on (crawl resume, the worker): resuming
    alone does not, the cap is reached still."""
    return f"raise it first (crawl config set {cap}=N, 0 for none), then crawl resume"


async def _redivide(redis: Redis, settings: Settings, counters: list[dict[str, int]],
                    scripts: ScriptRunner | None) -> None:
    """Re-divide ``max_pages`` and ``max_errors`` among the shards by their counters.

    The counters were read shard by shard while the shards went on claiming,
    and other workers re-divide too: allotments written from such a reading
    as it stands could sum past the cap. So one process re-divides at a time
    (``caps_lock``), and it first takes room from the shards that are to get
    less, each at its current count (recap.lua), then gives others only the
    room that freed. A process that stalls past half the lock's life gives
    nothing that round.
    """
    shards = _shards(settings)
    lock, token = shards[0].caps_lock, uuid.uuid4().hex
    if not await redis.set(lock, token, nx=True, px=int(CAPS_LOCK_TTL * 1000)):
        return  # another process is re-dividing: its allotments will do
    started = time.monotonic()
    runner = scripts or runner_for(redis)
    queued = [c.get("queued", 0) for c in counters]
    try:
        for field, limit, used in (
                ("cap", settings.max_pages,
                 [c.get("done", 0) + c.get("leased", 0) for c in counters]),
                ("errcap", settings.max_errors, [c.get("errors", 0) for c in counters])):
            if not limit:
                continue
            targets = allotments(limit, used, queued)
            now = [int(n) for n in await runner.run(
                [("recap", s.script_keys, [s.base, field, t, 0])
                 for s, t in zip(shards, targets, strict=True)])]
            room, gives = limit - sum(now), []
            for i in sorted(range(len(shards)), key=lambda i: now[i] - targets[i]):
                give = min(targets[i] - now[i], room)
                if give > 0:
                    gives.append(("recap", shards[i].script_keys,
                                  [shards[i].base, field, now[i] + give, 1]))
                    room -= give
            if gives and time.monotonic() - started < CAPS_LOCK_TTL / 2:
                await runner.run(gives)
    finally:
        await runner.run([("unlock", shards[0].script_keys, [shards[0].base, lock, token])])
        if scripts is None:
            await runner.close()


async def wait_for_leases(redis: Redis, settings: Settings, within: float) -> bool:
    """Wait until no URL is leased in any shard; False if some still are after ``within``."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while sum(c.get("leased", 0) for c in await shard_counters(redis, settings)) > 0:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


async def drop_queue(redis: Redis, settings: Settings) -> int:
    """Discard every queued and delayed URL of the crawl; returns how many.

    Meant for a stopped crawl (nothing claims meanwhile). Hosts are found by
    SCAN of each priority band's queues and of the host states (a host's only
    URL waits inline in its state) on the node that holds each shard, and
    dropped by ``drop.lua`` in batches, each batch one atomic transition that
    empties every band of its hosts."""
    from crawler.frontier import Frontier

    frontier = Frontier(redis, settings)
    total = 0
    try:
        for shard in _shards(settings):
            first = True
            batch: list[str] = []
            for prefix in (shard.host_prefix,
                           *(shard.queue_prefix(band) for band in range(keys.BANDS))):
                async with _node_of(redis, shard) as node:
                    async for raw in node.scan_iter(match=prefix + "*", count=1000):
                        batch.append((raw.decode() if isinstance(raw, bytes) else raw)
                                     [len(prefix):])
                        if len(batch) == 500:
                            total += await _drop(frontier, shard, first, batch)
                            first, batch = False, []
            total += await _drop(frontier, shard, first, batch)
    finally:
        await frontier.scripts.close()
    return total


async def forget_robots(redis: Redis, settings: Settings) -> int:
    """Delete the crawl's stored robots.txt verdicts (``forget_robots.lua``); returns how many.

    For a change of the settings a verdict was made under (the product token
    it was read for, the address policy that let it be fetched or blocked it).
    """
    from crawler.frontier import Frontier

    frontier = Frontier(redis, settings)
    total = 0
    try:
        for shard in _shards(settings):
            prefix = shard.robots_prefix
            batch: list[str] = []
            async with _node_of(redis, shard) as node:
                async for raw in node.scan_iter(match=prefix + "*", count=1000):
                    batch.append((raw.decode() if isinstance(raw, bytes) else raw)[len(prefix):])
                    if len(batch) == 500:
                        total += await _forget(frontier, shard, batch)
                        batch = []
            total += await _forget(frontier, shard, batch)
    finally:
        await frontier.scripts.close()
    return total


async def _forget(frontier: Any, shard: keys.ShardKeys, origins: list[str]) -> int:
    if not origins:
        return 0
    [forgotten] = await frontier.scripts.run([("forget_robots", shard.script_keys,
                                               [shard.base, *origins])])
    return int(forgotten)


async def _drop(frontier: Any, shard: keys.ShardKeys, first: bool, hosts: list[str]) -> int:
    [dropped] = await frontier.scripts.run([("drop", shard.script_keys,
                                             [shard.base, int(first), *hosts])])
    return int(dropped)


@contextlib.asynccontextmanager
async def _node_of(redis: Redis, shard: keys.ShardKeys) -> AsyncIterator[Any]:
    """The client to SCAN a shard's keys with: the node that owns its slot on a cluster
    (a client of its own: the asyncio cluster client has no per-node connection to lend)."""
    from redis.asyncio.cluster import RedisCluster

    from crawler.store.connection import make_node_client

    if not isinstance(redis, RedisCluster):
        yield redis
        return
    node = redis.get_node_from_key(shard.base)
    client = make_node_client(node.host, int(node.port), redis.nodes_manager.connection_kwargs,
                              max_connections=2)
    try:
        yield client
    finally:
        await client.aclose()


async def still_old(redis: Redis, crawl: str, changed: set[str]) -> list[str]:
    """Warnings for changed settings running workers cannot take: each names them."""
    from crawler.frontier.workers import list_workers
    from crawler.store.crawl_settings import NOT_LIVE

    names = sorted(changed & set(NOT_LIVE))
    if not names:
        return []
    now_ms = int(await server_time(redis) * 1000)
    running = [w.id for w in await list_workers(redis, crawl, now_ms) if w.alive]
    if not running:
        return []
    return [f"{name}: running workers keep the old value until restarted ({NOT_LIVE[name]}): "
            + ", ".join(running) for name in names]
