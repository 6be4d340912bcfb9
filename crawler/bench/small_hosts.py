"""What a host with one queued URL would cost in other layouts (issue 24's 250 B goal).

Not the frontier's code: each layout is written with plain commands for
``HOSTS`` hosts of usual names, each with one queued URL (a plain entry, as
lua/_lib.lua ``plain`` stores it), then measured with MEMORY USAGE (SAMPLES
0) of every key, per host. The dedup entry (8 B, an intset) is the same in
every layout and added to each. Layouts:

- ``now``: the frontier's own (h:<host> hash, q:<host> list, ready zset entry,
  scope set member);
- ``inline``: the URL inline in the host state until a second arrives (no
  list key);
- ``shared_hash``: a small host's state and URL as one field of a bucketed
  per-shard hash (listpack-encoded buckets of ~``BUCKET`` hosts);
- ``+bucketed_scope``: scope anchors in bucketed sets (listpack sets) instead
  of one big set;
- ``+bucketed_ready``: the ready set in bucketed zsets (listpack), with a top
  zset of each bucket's earliest score: what a claim would read.
"""

from __future__ import annotations

import asyncio
import json
import random
import zlib
from pathlib import Path
from typing import Any

from crawler.bench.shapes import host_name

HOSTS = 20_000
BUCKET = 64
DEDUP = 8.0


def _bucket(host: str, buckets: int) -> int:
    return zlib.crc32(host.encode()) % buckets


async def _usage(client: Any, pattern: str) -> int:
    total = 0
    async for key in client.scan_iter(match=pattern, count=1000):
        total += int(await client.memory_usage(key, samples=0) or 0)
    return total


async def _measure(url: str, count: int) -> dict[str, Any]:
    from redis.asyncio import Redis

    client: Any = Redis.from_url(url)
    rng = random.Random("small-hosts")
    hosts = [host_name(rng, i) for i in range(count)]
    entry = b"\x01\xff/" + b"a" * 30 + b".html"  # depth 0, plain, a 36-character path
    state: dict[str | bytes, str | bytes] = {"limit": "2", "delay": "1000"}
    buckets = max(1, count // BUCKET)
    base = "crawl:{x:0}:"
    out: dict[str, Any] = {"hosts": count, "bucket": BUCKET}
    try:
        pipe = client.pipeline(transaction=False)
        for i, host in enumerate(hosts):
            pipe.hset(f"{base}h:{host}", mapping=state)
            pipe.rpush(f"{base}q:{host}", entry)
            pipe.zadd(f"{base}ready", {host: 1_700_000_000_000 + i})
            pipe.sadd(f"{base}scope", f"host:{host}")
            pipe.hset(f"{base}hi:{host}", mapping={**state, "u": entry})
            packed = b"2|1000|" + entry
            pipe.hset(f"{base}small:{_bucket(host, buckets)}", host, packed)
            pipe.sadd(f"{base}scopeb:{_bucket(host, buckets)}", f"host:{host}")
            pipe.zadd(f"{base}readyb:{_bucket(host, buckets)}", {host: 1_700_000_000_000 + i})
        for b in range(buckets):
            pipe.zadd(f"{base}readytop", {str(b): 1_700_000_000_000 + b})
        await pipe.execute()
        part = {name: await _usage(client, f"{base}{pattern}") / count for name, pattern in (
            ("host_state", "h:*"), ("queue", "q:*"), ("ready", "ready"), ("scope", "scope"),
            ("inline_state", "hi:*"), ("shared_hash", "small:*"),
            ("bucketed_scope", "scopeb:*"),
            ("bucketed_ready", "readyb:*"), ("ready_top", "readytop"))}
        out["parts"] = {k: round(v, 1) for k, v in part.items()}
        now = DEDUP + part["host_state"] + part["queue"] + part["ready"] + part["scope"]
        inline = DEDUP + part["inline_state"] + part["ready"] + part["scope"]
        shared = DEDUP + part["shared_hash"] + part["ready"] + part["scope"]
        scoped = shared - part["scope"] + part["bucketed_scope"]
        ready = scoped - part["ready"] + part["bucketed_ready"] + part["ready_top"]
        out["per_host"] = {"now": round(now, 1), "inline": round(inline, 1),
                           "shared_hash": round(shared, 1),
                           "shared_hash+bucketed_scope": round(scoped, 1),
                           "shared_hash+bucketed_scope+bucketed_ready": round(ready, 1)}
    finally:
        await client.aclose()
    return out


def run_small_hosts(out: str | None, hosts: int = HOSTS, echo: Any = print) -> dict[str, Any]:
    from crawler.store.server import scratch_server

    with scratch_server("crawlsmall") as (url, _):
        report = asyncio.run(_measure(url, hosts))
    echo(json.dumps(report, indent=1))
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    return report
