"""What a crawl looks like right now, read from the frontier itself (all shards, all workers).

``crawl status`` prints it; the worker's progress line uses ``held_hosts``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.crc import key_slot

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.frontier.workers import list_workers
from crawler.results.stream import count_results
from crawler.store import keys
from crawler.store.connection import is_cluster, primaries, server_ms

HELD_LISTED = 20
"""Held hosts listed by name in crawl status (the most URLs first); all are counted."""
HELD_SCAN = 1000
"""Most held hosts read a shard at a time."""


@dataclass(frozen=True, slots=True)
class HeldHost:
    host: str
    reason: str  # robots, backoff, retry-after, "trap: <why>" (lua/_traps.lua)
    until_ms: int  # server clock, when the hold ends
    queued: int


async def held_hosts(redis: Redis, settings: Settings) -> list[HeldHost]:
    """Hosts held back right now (robots.txt retry, 429/503 backoff, Retry-After)."""
    now = await server_ms(redis)
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
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
        for field in keys.INLINE_ENTRIES:  # a small host's queued URLs (binary: counted)
            pipe.hexists(shard.host(host), field)
        for queue in shard.queues(host):
            pipe.llen(queue)
    replies = await pipe.execute()
    step = 1 + len(keys.INLINE_ENTRIES) + keys.BANDS
    return [HeldHost(host, str(replies[step * i] or "backoff"), until,
                     sum(int(n) for n in replies[step * i + 1:step * (i + 1)]))
            for i, (_, host, until) in enumerate(found)]


def held_summary(held: list[HeldHost]) -> dict[str, Any]:
    by_reason: Counter[str] = Counter()
    for h in held:
        by_reason[h.reason.split(":", 1)[0]] += h.queued
    return {"hosts": len(held), "urls": sum(h.queued for h in held),
            "urls_by_reason": dict(by_reason)}


async def shard_table(redis: Redis, settings: Settings) -> list[dict[str, Any]]:
    """Each shard: its hash tag, the server that holds it (its master on a cluster), its URLs."""
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
    pipe = redis.pipeline(transaction=False)
    for shard in shards:
        pipe.hmget(shard.stats, "queued", "leased", "done")
    rows = []
    for shard, (queued, leased, done) in zip(shards, await pipe.execute(), strict=True):
        node = "this server"
        if is_cluster(redis):
            owner = redis.nodes_manager.get_node_from_slot(  # type: ignore[attr-defined]
                key_slot(shard.stats.encode()))
            node = owner.name
        rows.append({"shard": shard.shard, "tag": shard.base.split("{")[1].split("}")[0],
                     "node": node, "queued": int(queued or 0), "leased": int(leased or 0),
                     "done": int(done or 0)})
    return rows


async def crawl_status(redis: Redis, settings: Settings, *, memory: bool = True
                       ) -> dict[str, Any]:
    """The crawl's counters, workers and held hosts, as crawl status prints them."""
    from crawler.observe import overview

    status: dict[str, Any] = await Frontier(redis, settings).stats()
    status["errors_by_type"], status["status_classes"] = overview.tallies(status)
    now = await server_ms(redis)
    history = await overview.rate_history(redis, settings)
    status["rate"] = overview.rates(history, now / 1000, status["done"])
    status["eta_s"] = overview.eta_seconds(status["queued"], status["rate"]["last_5m"])
    workers = await list_workers(redis, settings.crawl, now)
    status["workers"] = sum(w.alive for w in workers)
    status["workers_dead"] = sum(not w.alive for w in workers)
    status["worker_list"] = overview.worker_rows(workers, now)
    status["top_hosts"] = await overview.top_hosts(redis, settings, now)
    status["shards"] = settings.shards
    status["by_shard"] = await shard_table(redis, settings)
    held = await held_hosts(redis, settings)
    status["held"] = {
        **held_summary(held),
        "listed": [{"host": h.host, "reason": h.reason, "queued": h.queued,
                    "seconds_left": round(max(0, h.until_ms - now) / 1000, 1)}
                   for h in sorted(held, key=lambda h: -h.queued)[:HELD_LISTED]],
    }
    status["proxies"] = await proxy_rows(redis, settings, now)
    if memory:
        status["memory"] = await memory_by_kind(redis, settings)
    status["results_pending"] = await count_results(redis, settings)
    from crawler.observe.control import crawl_state
    from crawler.observe.states import with_shown_state

    # running, paused, stopped as stored; finished when nothing is left (crawler.observe.states)
    status["crawl"] = with_shown_state((await crawl_state(redis, settings)).as_dict(), status)
    status["warnings"] = warnings_for(status)
    return status


async def proxy_rows(redis: Redis, settings: Settings, now_ms: int) -> list[dict[str, Any]]:
    """Per proxy, every worker's counts (``proxies = [...]``; crawler.net.proxies)."""
    from crawler.frontier.proxy_ledger import read_proxies

    return [{"proxy": p.name, "requests": p.requests, "failures": p.failures,
             "rested": p.rested, "resting_s": round(p.rests_for, 1)}
            for p in await read_proxies(redis, settings.crawl, now_ms)]


# -- Redis memory by kind -----------------------------------------------------------------

KINDS = {"px": "queued", "seen": "seen", "h": "hosts", "results": "results",
         "robots": "robots", "robots_fails": "robots", "robots_lock": "robots",
         "v": "revisits", "recrawl_hosts": "revisits", "due": "revisits",
         "due_hosts": "revisits", "nd": "near_dups", "ndo": "near_dups", "tq": "near_dups",
         "tp": "near_dups",
         **{keys.queue_name(band): "queued" for band in range(keys.BANDS)}}
"""Key name (after the crawl's hash tag) -> the kind its memory counts as; else ``other``."""
SCAN_BUDGET = 200_000
"""Keys crawl status visits at most; past it, each kind is scaled from what it saw."""


def kind_of(key: str) -> str:
    name = key.split("}:", 1)[-1].split(":", 1)[0]
    return KINDS.get(name, "other")


async def memory_by_kind(redis: Redis, settings: Settings, budget: int = SCAN_BUDGET
                         ) -> dict[str, Any]:
    """The crawl's Redis memory by kind, from MEMORY USAGE of its keys (sampled past budget).

    Also counts dedup buckets that left the intset encoding (each URL in them
    then costs about 40 bytes instead of 8).
    """
    prefix = f"{keys.PREFIX}:{{{settings.crawl}"
    nodes = await primaries(redis)
    total_keys = visited = 0
    ours: list[str] = []
    complete = True
    try:
        for node in nodes:  # one server, or each master of a cluster
            total_keys += int(await node.dbsize())
            cursor = 0
            while True:
                cursor, batch = await node.scan(cursor=cursor, count=1000)
                visited += len(batch)
                ours += [str(k) for k in batch if str(k).startswith(prefix)]
                if int(cursor) == 0:
                    break
                if visited >= budget:
                    complete = False
                    break
    finally:
        if nodes[0] is not redis:
            for node in nodes:
                await node.aclose()
    pipe = redis.pipeline(transaction=False)
    for key in ours:
        pipe.memory_usage(key)
        if kind_of(key) == "seen":
            pipe.object("encoding", key)
    replies = iter(await pipe.execute())
    kinds: dict[str, int] = dict.fromkeys(("queued", "seen", "hosts", "results", "robots",
                                           "revisits", "near_dups", "other"), 0)
    buckets = wide_buckets = 0
    for key in ours:
        kind = kind_of(key)
        kinds[kind] += int(next(replies) or 0)
        if kind == "seen":
            buckets += 1
            wide_buckets += str(next(replies)) != "intset"
    scale = 1.0 if complete else total_keys / max(1, visited)
    return {"bytes": {k: round(v * scale) for k, v in kinds.items()},
            "sampled": not complete, "keys": round(len(ours) * scale),
            "dedup_buckets_not_intset": round(wide_buckets * scale),
            "dedup_buckets": round(buckets * scale)}


def warnings_for(status: dict[str, Any]) -> list[str]:
    out = []
    memory = status.get("memory") or {}
    if memory.get("dedup_buckets_not_intset"):
        out.append(f"{memory['dedup_buckets_not_intset']} of {memory['dedup_buckets']} dedup "
                   "buckets are no longer intsets (about 40 bytes a URL instead of 8): the "
                   "crawl outgrew expected_urls, or the server's set-max-intset-entries is "
                   "lower than when the crawl was created")
    if status.get("results_over_maxlen"):
        out.append(f"results are past results_maxlen with nothing acknowledged to delete "
                   f"({status['results_over_maxlen']} times): run crawl export --drain, "
                   "or nothing will ever bound them")
    return out
