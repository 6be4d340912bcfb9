"""The crawls on one Redis (or cluster): finding them, summing each up, deleting one.

A crawl exists once its ``meta`` key holds a layout (``crawler.crawls``), so
the crawls are the ``crawl:{NAME}:meta`` keys, found with SCAN on every
server: one, or each master of a cluster. Deleting a crawl removes every key
under its prefixes (``crawl:{NAME}:``, ``crawl:{NAME:`` and each shard's hash
tag from the layout), whatever the key is; ``meta`` goes last, so a deletion
cut short still shows in ``crawl list`` and can be run again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from crawler.frontier.workers import list_workers
from crawler.store import keys
from crawler.store.connection import primaries

SCAN_COUNT = 1000
DELETE_BATCH = 500
"""Keys unlinked in one pipeline."""


@dataclass(frozen=True, slots=True)
class CrawlSummary:
    """One crawl as ``crawl list`` shows it."""

    name: str
    shards: int
    queued: int
    leased: int
    done: int
    errors: int
    workers: int  # live ones
    created: float | None  # unix time (Redis's clock); None: created before it was recorded
    state: str = "running"  # as shown: running, paused, stopped or finished (observe.states)


async def _scan(redis: Redis, pattern: str) -> list[str]:
    """Every key matching ``pattern`` on every server (each master of a cluster)."""
    nodes = await primaries(redis)
    found: list[str] = []
    try:
        for node in nodes:
            async for key in node.scan_iter(match=pattern, count=SCAN_COUNT):
                found.append(key.decode() if isinstance(key, bytes) else str(key))
    finally:
        if nodes[0] is not redis:
            for node in nodes:
                await node.aclose()
    return found


async def crawl_names(redis: Redis) -> list[str]:
    """The names of the crawls on this server or cluster, sorted."""
    head, tail = keys.meta_key("\0").split("\0")
    names = {key[len(head):-len(tail)] for key in await _scan(redis, keys.meta_key("*"))
             if key.startswith(head) and key.endswith(tail)}
    return sorted(name for name in names if name and ":" not in name)


async def crawl_exists(redis: Redis, name: str) -> bool:
    return bool(await redis.exists(keys.meta_key(name)))


async def read_layout(redis: Redis, name: str) -> dict[str, Any] | None:
    raw = await redis.hget(keys.meta_key(name), "layout")
    return json.loads(raw) if raw else None


async def summarize(redis: Redis, name: str, now_ms: int) -> CrawlSummary:
    layout = await read_layout(redis, name) or {}
    shards = keys.all_shards(name, int(layout.get("shards", 1)),
                             tuple(layout.get("shard_tags") or ()))
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        pipe.hmget(shard.stats, "queued", "leased", "done", "errors")
    totals = [0, 0, 0, 0]
    for reply in await pipe.execute():
        totals = [t + int(v or 0) for t, v in zip(totals, reply, strict=True)]
    workers = await list_workers(redis, name, now_ms)
    created = layout.get("created")
    queued, leased, done, errors = totals
    from crawler.observe.states import shown_state

    stored = await redis.hget(keys.meta_key(name), "state")
    alive = sum(w.alive for w in workers)
    state = shown_state(stored.decode() if isinstance(stored, bytes) else stored or "running",
                        queued=queued, leased=leased, workers=alive, done=done)
    return CrawlSummary(name, len(shards), queued, leased, done, errors,
                        workers=alive,
                        created=float(created) if created is not None else None, state=state)


def age_text(created: float | None, now: float | None = None) -> str:
    """``42s``, ``17m``, ``5h``, ``3d``; ``?`` when the crawl did not record it."""
    if created is None:
        return "?"
    seconds = max(0.0, (time.time() if now is None else now) - created)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _glob(text: str) -> str:
    """``text`` matched literally by a Redis glob (names may hold ``*``, ``?`` or ``[``)."""
    return "".join("\\" + c if c in "\\*?[]" else c for c in text)


def key_patterns(name: str, layout: dict[str, Any] | None) -> list[str]:
    """SCAN patterns that together match every key of the crawl ``name``."""
    prefixes = [keys.crawl_base(name), f"{keys.PREFIX}:{{{name}:"]
    for tag in (layout or {}).get("shard_tags") or ():
        if not str(tag).startswith(f"{name}:"):
            prefixes.append(f"{keys.PREFIX}:{{{tag}}}:")
    return [_glob(prefix) + "*" for prefix in prefixes]


async def crawl_keys(redis: Redis, name: str) -> list[str]:
    """Every key of the crawl, ``meta`` last."""
    meta = keys.meta_key(name)
    found: set[str] = set()
    for pattern in key_patterns(name, await read_layout(redis, name)):
        found.update(await _scan(redis, pattern))
    found.discard(meta)
    return [*sorted(found), meta]


async def delete_crawl(redis: Redis, name: str,
                       on_progress: Callable[[int], None] | None = None) -> int:
    """Delete every key of the crawl; returns how many there were. ``meta`` goes last.

    One key a command: on a cluster the keys sit in many slots, and the
    client sends each to the master that owns it (spelled ``execute_command``:
    the cluster pipeline's own ``unlink`` is a coroutine, not a queued command).
    """
    found = await crawl_keys(redis, name)
    deleted = 0
    for start in range(0, len(found), DELETE_BATCH):
        pipe = redis.pipeline(transaction=False)
        for key in found[start:start + DELETE_BATCH]:
            pipe.execute_command("UNLINK", key)
        deleted += sum(int(n) for n in await pipe.execute())
        if on_progress:
            on_progress(deleted)
    return deleted


async def no_such_crawl(redis: Redis, name: str, looked: str | None = None) -> str:
    """What to tell someone who named a crawl that is not there: the ones that are.

    ``looked``: where the crawls were looked for (crawler.store.where), said after."""
    names = await crawl_names(redis)
    place = f"; looked in {looked}" if looked else ""
    if not names:
        return (f"there is no crawl {name!r}, nor any other yet (crawl seed creates one)"
                + place)
    listed = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
    return (f"there is no crawl {name!r}; the crawls here are: {listed} (see crawl list)"
            + place)


async def live_workers(redis: Redis) -> dict[str, int]:
    """Crawl name -> its workers with a live heartbeat, for every crawl that has any."""
    from crawler.store.connection import server_ms

    now = await server_ms(redis)
    out = {}
    for name in await crawl_names(redis):
        alive = sum(w.alive for w in await list_workers(redis, name, now))
        if alive:
            out[name] = alive
    return out
