"""What the dashboard shows: the crawl's status, its pages/s history and its latest results.

One ``Feed`` per dashboard polls Redis once a second, however many pages are
open, and hands each new snapshot to every SSE stream (``wait_newer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.observe.status import crawl_status
from crawler.results.stream import stream_id
from crawler.store import keys

POLL_EVERY = 1.0
"""Seconds between snapshots."""
HISTORY_SECONDS = 3600.0
"""How far back the pages/s chart goes."""
CHART_POINTS = 360
"""Most points of the chart (an hour at 10 s each)."""
LATEST_RESULTS = 25
"""Results listed, the newest first."""


class DoneSamples:
    """(unix time, done) samples this dashboard takes each poll: the chart until
    the workers' own samples (every 5 s, ``crawler.overview``) are enough."""

    def __init__(self, keep: float = HISTORY_SECONDS) -> None:
        self.keep = keep
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> None:
        self.samples.append((at, done))
        while self.samples and self.samples[0][0] < at - self.keep:
            self.samples.popleft()

    def recent(self) -> list[tuple[float, int]]:
        return list(self.samples)


async def rate_samples(redis: Redis, settings: Settings, local: DoneSamples
                       ) -> list[tuple[float, int]]:
    """(unix time, done) over the last hour: the crawl's own history, which the
    workers sample (``crawler.overview.rate_history``: it covers the time
    before this dashboard started), or this dashboard's samples while that has
    fewer than two (no worker has run for long yet). The one place that chooses."""
    from crawler.observe.overview import rate_history

    history = await rate_history(redis, settings)
    return history if len(history) >= 2 else local.recent()


def rate_series(samples: list[tuple[float, int]], points: int = CHART_POINTS
                ) -> list[tuple[float, float]]:
    """Pages/s from (time, done) samples: at most ``points`` (time, rate) pairs,
    each the mean rate since the previous one. A counter that went down (a
    crawl recreated) counts as no pages, not a negative rate."""
    samples = sorted(samples)
    if len(samples) < 2:
        return []
    step = max(1, -(-(len(samples) - 1) // points))  # ceil: at most `points` intervals
    picked = samples[::step]
    if picked[-1] != samples[-1]:
        picked.append(samples[-1])
    out = []
    for (t0, d0), (t1, d1) in itertools.pairwise(picked):
        if t1 > t0:
            out.append((round(t1, 3), round(max(0, d1 - d0) / (t1 - t0), 3)))
    return out


async def latest_results(redis: Redis, settings: Settings, count: int = LATEST_RESULTS
                         ) -> list[dict[str, Any]]:
    """The newest ``count`` results over every shard (XREVRANGE on each), newest first."""
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        pipe.xrevrange(shard.results, count=count)
    found: list[tuple[tuple[int, int], dict[str, Any]]] = []
    for shard, entries in zip(shards, await pipe.execute(), strict=True):
        for entry_id, fields in entries:
            try:
                record = json.loads(fields.get("r") or "{}")
            except ValueError:
                record = {"error": {"type": "unreadable", "message": "not JSON"}}
            if not isinstance(record, dict):
                continue
            record["id"] = f"{shard.shard}-{entry_id}"
            found.append((stream_id(str(entry_id)), record))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [record for _, record in found[:count]]


async def snapshot(redis: Redis, settings: Settings, local: DoneSamples) -> dict[str, Any]:
    """Everything the page shows, as one JSON-ready object.

    ``status`` is exactly what ``crawl status --json`` prints, without the
    Redis memory scan (too heavy for once a second)."""
    status = await crawl_status(redis, settings, memory=False)
    now = time.time()
    local.add(now, int(status.get("done", 0)))
    samples = sorted(await rate_samples(redis, settings, local))
    return {"time": round(now, 3), "crawl_name": settings.crawl, "status": status,
            "chart": rate_series(samples),
            "results": await latest_results(redis, settings)}


class Feed:
    """The latest snapshot, refreshed every ``POLL_EVERY`` seconds by one task."""

    def __init__(self, redis: Redis, settings: Settings, every: float = POLL_EVERY) -> None:
        self.redis = redis
        self.settings = settings
        self.every = every
        self.samples = DoneSamples()
        self.latest: dict[str, Any] | None = None
        self.version = 0
        self.error = ""
        self.closed = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> dict[str, Any]:
        """Take a snapshot now, publish it to the streams, and return it."""
        try:
            snap = await snapshot(self.redis, self.settings, self.samples)
            self.error = ""
        except Exception as exc:  # Redis away: say so on the page, keep polling
            self.error = f"{type(exc).__name__}: {exc}"
            snap = {**(self.latest or {}), "time": round(time.time(), 3)}
        snap["error"] = self.error
        async with self._changed:
            self.latest, self.version = snap, self.version + 1
            self._changed.notify_all()
        return snap

    async def wait_newer(self, seen: int, within: float) -> tuple[int, dict[str, Any] | None]:
        """The first snapshot newer than version ``seen`` (None after ``within``
        seconds without one, or once closed)."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.closed or self.version > seen), within)
            if self.closed or self.version <= seen:
                return seen, None
            return self.version, self.latest

    async def _run(self) -> None:
        while not self.closed:
            await self.refresh()
            await asyncio.sleep(self.every)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboard-feed")

    async def close(self) -> None:
        async with self._changed:
            self.closed = True
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
