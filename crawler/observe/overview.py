"""The operator's view of a crawl: rates, tallies, workers and busiest hosts.

Everything here is read from the frontier, summed over shards and workers,
never from one worker's memory:

- **rates** come from samples of the crawl's ``done`` counter that workers
  write every ``SAMPLE_EVERY`` seconds (one worker per interval, by a lock),
  kept for an hour: pages/s over the last 10 s and 5 min, a chart's history;
- **tallies** are counters ``complete.lua`` keeps per shard: ``s:2xx`` ...
  for responses by status class, ``e:<type>`` for errors by type;
- **top hosts** are the hosts with the most URLs queued among those ready to
  claim, those with every slot leased, and those held back (a sample of at
  most ``TOP_SCAN`` of each a shard: a crawl of millions of hosts is not
  scanned whole once a second).
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier.workers import WorkerInfo
from crawler.store import keys

SAMPLE_EVERY = 5.0
"""Seconds between two samples of the crawl's done counter."""
HISTORY = 3600.0
"""Seconds of samples kept (the dashboard's chart)."""
TOP_SCAN = 200
"""Hosts read a shard, ready ones first, when looking for the busiest."""
TOP_HOSTS = 10


def status_class(status: int | None) -> str:
    """``2xx`` ... for a response status; ``none`` for no response."""
    return f"{status // 100}xx" if status and 100 <= status < 600 else "none"


def status_tally(status: int | None) -> str:
    """The frontier's counter for a result with this status (see the tallies above)."""
    return "s:" + status_class(status)


async def sample_done(redis: Redis, settings: Settings, done: int) -> bool:
    """Record the crawl's done counter, unless another worker did within the interval."""
    crawl = settings.crawl
    if not await redis.set(keys.rate_lock_key(crawl), 1, nx=True,
                           px=int(SAMPLE_EVERY * 900)):
        return False
    seconds, micros = await redis.time()  # one clock for every node's samples
    pipe = redis.pipeline(transaction=True)
    pipe.lpush(keys.rate_key(crawl), f"{int(seconds) + int(micros) / 1e6:.3f}:{done}")
    pipe.ltrim(keys.rate_key(crawl), 0, int(HISTORY / SAMPLE_EVERY))
    await pipe.execute()
    return True


async def rate_history(redis: Redis, settings: Settings) -> list[tuple[float, int]]:
    """(Unix time, done) samples over the last hour, oldest first."""
    raw: list[Any] = await redis.lrange(keys.rate_key(settings.crawl), 0, -1)
    out = []
    for item in reversed(raw):
        at, _, done = (item.decode() if isinstance(item, bytes) else item).partition(":")
        out.append((float(at), int(done)))
    return out


def rates(history: list[tuple[float, int]], now: float, done: int) -> dict[str, float | None]:
    """Pages/s over the last 10 s and 5 min, from the samples and the counter now.

    The newest sample at least (about) the window old is the base; with none
    that old, the oldest one. A base more than twice the window old says
    nothing about the window unless nothing was done since it (0.0): a crawl
    finished minutes ago showed its lifetime average as its last 10 s."""
    def over(seconds: float) -> float | None:
        older = [(at, d) for at, d in history if at <= now - seconds * 0.9]
        if not older:
            older = history[:1]
        if not older or now - older[-1][0] < 1.0:
            return None
        at, then = older[-1]
        if done <= then:
            return 0.0
        if now - at > 2 * seconds:
            return None
        return round((done - then) / (now - at), 2)

    return {"last_10s": over(10), "last_5m": over(300)}


def eta_seconds(queued: int, rate: float | None) -> float | None:
    """Seconds until the queue known now is crawled, at the 5-minute rate."""
    if not queued or not rate:
        return None
    return round(queued / rate, 1)


def tallies(stats: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Take ``e:<type>`` and ``s:<class>`` out of summed shard stats: (errors, classes)."""
    errors = {k[2:]: stats.pop(k) for k in [k for k in stats if k.startswith("e:")]}
    classes = {k[2:]: stats.pop(k) for k in [k for k in stats if k.startswith("s:")]}
    return errors, classes


def worker_rows(workers: list[WorkerInfo], now_ms: int) -> list[dict[str, Any]]:
    rows = []
    for w in workers:
        r = w.report
        rows.append({"id": w.id, "node": r.get("node", ""), "pid": int(r.get("pid") or 0),
                     "pages": int(r.get("pages") or 0), "errors": int(r.get("errors") or 0),
                     "rate": float(r.get("rate") or 0.0),
                     "in_flight": int(r.get("in_flight") or 0),
                     "last_seen_s": round((now_ms - w.last_beat_ms) / 1000, 1),
                     "alive": w.alive})
    return rows


async def top_hosts(redis: Redis, settings: Settings, now_ms: int) -> list[dict[str, Any]]:
    """The hosts with the most queued URLs (among a sample), with their next time and hold."""
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        pipe.zrange(shard.ready, 0, TOP_SCAN - 1)
        pipe.zrangebyscore(shard.held, now_ms, "+inf", start=0, num=TOP_SCAN)
        pipe.zrange(shard.leases, 0, TOP_SCAN - 1)  # hosts at their limit are not ready
    replies = await pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for i, shard in enumerate(shards):
        pipe.hmget(shard.lease_data, replies[3 * i + 2] or ["-"])
    leased = await pipe.execute()
    found: list[tuple[keys.ShardKeys, str]] = []
    for i, shard in enumerate(shards):
        names = {_s(h) for h in replies[3 * i]} | {_s(h) for h in replies[3 * i + 1]}
        names |= {_s(data).split("|", 1)[0] for data in leased[i] if data}
        found += [(shard, host) for host in sorted(names)]
    if not found:
        return []
    pipe = redis.pipeline(transaction=False)
    for shard, host in found:
        pipe.hmget(shard.host(host), "next", "hold")
        pipe.zscore(shard.held, host)
        for field in keys.INLINE_ENTRIES:  # a small host's queued URLs (binary: counted)
            pipe.hexists(shard.host(host), field)
        for queue in shard.queues(host):
            pipe.llen(queue)
    replies = await pipe.execute()
    rows: list[dict[str, Any]] = []
    step = 2 + len(keys.INLINE_ENTRIES) + keys.BANDS
    for i, (_, host) in enumerate(found):
        (nxt, hold), held_until = replies[step * i], replies[step * i + 1]
        queued = sum(int(n) for n in replies[step * i + 2:step * (i + 1)])
        held = held_until is not None and float(held_until) > now_ms
        rows.append({"host": host, "queued": int(queued),
                     "next_in_s": round(max(0, int(nxt or 0) - now_ms) / 1000, 1),
                     "held": _s(hold or b"backoff") if held else None})
    rows.sort(key=lambda r: (-r["queued"], r["host"]))
    return rows[:TOP_HOSTS]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
