"""``crawl bench memory --shape NAME``: what a queued URL of one URL shape costs, by key kind.

On a fresh embedded Valkey, seed a shape's URLs (crawler/bench/shapes.py)
with ``crawl seed``'s code, then read ``MEMORY USAGE`` (every element:
SAMPLES 0) of each of the crawl's keys, grouped by what they hold: dedup,
queues, prefix tables, host state, the ready set, scope anchors, the rest.
The parts sum to the total; bytes a URL are the total over the URLs queued,
every key included. ``used_memory`` grown is reported too (it also counts
the server's own tables: the key space's hash table, allocator rounding).

Then seed one URL on each of ``SOLO_HOSTS`` new hosts: what a host with a
single queued URL costs, all keys (scope and ready entries included).
"""

from __future__ import annotations

import asyncio
import io
import random
import time
from typing import Any

from crawler.bench.report import write_report
from crawler.bench.shapes import SHAPES, host_name, shape_urls

SOLO_HOSTS = 1000
SLOW_MICROS = 2000
PARTS = ("dedup", "queue", "prefixes", "host_state", "ready", "scope", "idle", "other")
_PART_OF = {"seen": "dedup", "q": "queue", "q1": "queue", "q2": "queue", "px": "prefixes",
            "h": "host_state", "ready": "ready", "scope": "scope", "idle": "idle"}


def part_of(key: str) -> str:
    """The part of the breakdown a crawl key counts in (by its name after the hash tag)."""
    return _PART_OF.get(key.split("}:", 1)[-1].split(":", 1)[0], "other")


async def bytes_by_part(client: Any, crawl: str) -> dict[str, int]:
    """MEMORY USAGE (SAMPLES 0) of every key of ``crawl``, summed by part."""
    out = dict.fromkeys(PARTS, 0)
    names: list[str] = []
    async for key in client.scan_iter(match=f"crawl:{{{crawl}*", count=1000):
        names.append(key.decode() if isinstance(key, bytes) else str(key))
    for start in range(0, len(names), 1000):
        pipe = client.pipeline(transaction=False)
        for key in names[start:start + 1000]:
            pipe.memory_usage(key, samples=0)
        for key, used in zip(names[start:start + 1000], await pipe.execute(), strict=True):
            out[part_of(key)] += int(used or 0)
    return out


async def _used_memory(client: Any) -> int:
    return int((await client.info("memory"))["used_memory"])


def _per(parts: dict[str, int], count: int) -> dict[str, float]:
    return {k: round(v / max(1, count), 1) for k, v in parts.items()}


async def _measure_shape(url: str, shape: str, n: int, per_host: int) -> dict[str, Any]:
    from crawler.config import Settings
    from crawler.discovery.seeds import seed
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    urls = shape_urls(shape, n, per_host)
    crawl = f"mem-{shape}"
    base = Settings(redis_url=url, crawl=crawl, expected_urls=max(n, 10_000), delay=0)
    client = await connect(base)
    try:
        settings = await crawl_layout(client, base)
        await client.config_set("slowlog-log-slower-than", SLOW_MICROS)
        await client.config_set("slowlog-max-len", 100_000)
        await client.slowlog_reset()
        await client.config_resetstat()
        used_before = await _used_memory(client)
        started = time.monotonic()
        report = await seed(client, settings, io.BytesIO("\n".join(urls).encode()))
        seconds = time.monotonic() - started
        slow: Any = await client.slowlog_get(100_000)
        await client.slowlog_reset()  # its entries hold call arguments: not the crawl's
        evalsha = (await client.info("commandstats")).get("cmdstat_evalsha", {})
        calls, usec = evalsha.get("calls", 0), evalsha.get("usec", 0)
        used_after = await _used_memory(client)
        parts = await bytes_by_part(client, crawl)
        total = sum(parts.values())
        # The shards' own count: a pipeline resent after a timeout finds its URLs
        # seen, so the seed report's ``added`` can fall short of what is queued.
        from crawler.store import keys

        queued = 0
        for shard in keys.all_shards(crawl, settings.shards, settings.shard_tags):
            queued += int(await client.hget(shard.stats, "queued") or 0)
        hosts = len({u.split("/", 3)[2] for u in urls})
        out: dict[str, Any] = {
            "shape": shape, "urls": n, "queued": queued, "added_reported": report.added,
            "hosts": hosts,
            "mean_url_length": round(sum(map(len, urls)) / n, 1),
            "bytes": parts, "bytes_total": total,
            "bytes_per_url": round(total / max(1, queued), 1),
            "bytes_per_url_by_part": _per(parts, queued),
            "used_memory_per_url": round((used_after - used_before) / max(1, queued), 1),
            "seed": {"seconds": round(seconds, 2), "urls_per_s": round(n / max(seconds, 1e-9)),
                     "add_calls": calls, "mean_call_ms": round(usec / max(1, calls) / 1000, 3),
                     "calls_over_2ms": sum(e["duration"] > SLOW_MICROS for e in slow),
                     "slowest_call_ms": round(max((e["duration"] for e in slow), default=0)
                                              / 1000, 2)}}
        rng = random.Random(f"solo:{shape}")
        solo = [f"https://{host_name(rng, 10_000_000 + i)}/index.html" for i in range(SOLO_HOSTS)]
        used_before = await _used_memory(client)
        await seed(client, settings, io.BytesIO("\n".join(solo).encode()))
        grown = {k: v - parts[k] for k, v in (await bytes_by_part(client, crawl)).items()}
        out["solo_host"] = {"bytes": sum(grown.values()) / SOLO_HOSTS,
                            "by_part": _per(grown, SOLO_HOSTS),
                            "used_memory": round((await _used_memory(client) - used_before)
                                                 / SOLO_HOSTS, 1)}
        out["solo_host"]["bytes"] = round(out["solo_host"]["bytes"], 1)
        await client.flushall()
        return out
    finally:
        await client.aclose()


def table(reports: list[dict[str, Any]]) -> str:
    """The reports as a text table: B a queued URL by part, then a single-URL host's cost."""
    head = ["shape", "hosts", "len", "B/URL", *PARTS, "used/URL", "URLs/s", ">2ms", "solo host"]
    rows = [head]
    for r in reports:
        by = r["bytes_per_url_by_part"]
        rows.append([r["shape"], str(r["hosts"]), str(r["mean_url_length"]),
                     str(r["bytes_per_url"]), *(str(by[p]) for p in PARTS),
                     str(r["used_memory_per_url"]), str(r["seed"]["urls_per_s"]),
                     str(r["seed"]["calls_over_2ms"]), str(r["solo_host"]["bytes"])])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True))
                     for row in rows)


def run_shapes(shapes: list[str], n: int, per_host: int, out: str | None,
               echo: Any = print) -> list[dict[str, Any]]:
    """Measure each shape on its own fresh server; print the table, write the JSON."""
    from crawler.store.server import scratch_server

    for shape in shapes:
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    reports = []
    for shape in shapes:
        with scratch_server("crawlmem") as (url, _):
            reports.append(asyncio.run(_measure_shape(url, shape, n, per_host)))
        echo(f"{shape}: {reports[-1]['bytes_per_url']} B a queued URL, all keys")
    echo(table(reports))
    if out:
        write_report(out, reports)
    return reports
