"""``python -m bench.experiments.list_nodes``:
What the size of a host queue's list nodes costs and saves, by URL shape.

Valkey stores a list in nodes of ``list-max-listpack-size`` (default -2:
8 KB of entries; a positive N: N entries) and, with ``list-compress-depth
1``, LZF-compresses every node but the first and the last. A host of 100
URLs (4-7 KB of entries) fits one node at -2, so nothing is compressed;
smaller nodes give it inner nodes to compress.

For each setting and each shape (crawler/bench/shapes.py, ``--per-host``
URLs a host; no query budget, so big hosts of the query shape are not cut
as traps), on a fresh embedded Valkey (append-only, as a crawl runs it):
seed the URLs with ``crawl seed``'s code, then read ``MEMORY USAGE`` of every
key by part (as ``crawl bench memory --shape``) and ``used_memory`` grown;
the seeding speed, the mean add call's server time and the calls over 2 ms
(SLOWLOG); then claim every URL (claims of 1,000, one URL a host a pass) and
report claim.lua's server time a URL (``INFO commandstats``).

Only loopback and a temporary directory are used.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import time
from pathlib import Path
from typing import Any

SETTINGS = ("-2", "-1", "64", "32", "16")
CLAIM_BATCH = 1000
SLOW_MICROS = 2000


async def _evalsha(client: Any) -> tuple[int, int]:
    stats = (await client.info("commandstats")).get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def _cpu(client: Any) -> float:
    """Seconds of CPU the server used: unlike a call's wall time, not stretched by other
    processes' load on a shared machine."""
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


async def _run(url: str, shape: str, n: int, per_host: int, node: str,
               claim: bool) -> dict[str, Any]:
    from crawler.bench.memory_shapes import bytes_by_part
    from crawler.bench.shapes import shape_urls
    from crawler.config import Settings
    from crawler.discovery.seeds import seed
    from crawler.frontier import Frontier
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    urls = shape_urls(shape, n, per_host)
    base = Settings(redis_url=url, crawl=f"nodes-{shape}", expected_urls=max(n, 10_000),
                    delay=0, max_per_host=1_000_000, trap_query_budget=0)
    client = await connect(base)
    try:
        await client.config_set("list-max-listpack-size", node)
        settings = await crawl_layout(client, base)
        await client.config_set("slowlog-log-slower-than", SLOW_MICROS)
        await client.config_set("slowlog-max-len", 100_000)
        await client.slowlog_reset()
        await client.config_resetstat()
        used_before = int((await client.info("memory"))["used_memory"])
        cpu, started = await _cpu(client), time.monotonic()
        await seed(client, settings, io.BytesIO("\n".join(urls).encode()))
        seconds = time.monotonic() - started
        seed_cpu = await _cpu(client) - cpu
        calls, usec = await _evalsha(client)
        slow: Any = await client.slowlog_get(100_000)
        await client.slowlog_reset()
        used = int((await client.info("memory"))["used_memory"]) - used_before
        parts = await bytes_by_part(client, settings.crawl)
        from crawler.store import keys

        queued = 0
        for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
            queued += int(await client.hget(shard.stats, "queued") or 0)
        frontier = Frontier(client, settings, local_dedup=False)
        await client.config_resetstat()
        claimed, started, cpu = 0, time.perf_counter(), await _cpu(client)
        while claim and claimed < n:  # a host's leases are capped: a few big hosts stop early
            leases = (await frontier.claim(CLAIM_BATCH, "bench")).leases
            if not leases:
                break
            claimed += len(leases)
        claim_seconds = time.perf_counter() - started
        claim_cpu = await _cpu(client) - cpu
        _, claim_usec = await _evalsha(client)
        await client.flushall()
        return {"shape": shape, "node": node, "urls": n, "per_host": per_host, "queued": queued,
                "bytes_per_url": round(sum(parts.values()) / queued, 1),
                "queue_per_url": round(parts["queue"] / queued, 1),
                "prefixes_per_url": round(parts["prefixes"] / queued, 1),
                "used_memory_per_url": round(used / queued, 1),
                "seed_urls_per_s": round(n / seconds),
                "add_mean_ms": round(usec / max(1, calls) / 1000, 3),
                "add_calls": calls,
                "seed_server_cpu_us_per_url": round(seed_cpu * 1e6 / n, 2),
                "add_calls_over_2ms": sum(e["duration"] > SLOW_MICROS for e in slow),
                "claimed": claimed,
                "claim_server_us_per_url": round(claim_usec / max(1, claimed), 2),
                "claim_server_cpu_us_per_url": round(claim_cpu * 1e6 / max(1, claimed), 2),
                "claimed_urls_per_s": round(claimed / claim_seconds)}
    finally:
        await client.aclose()


def run(shapes: list[str], nodes: list[str], n: int, per_host: int, repeat: int,
        out: str | None, claim: bool = True) -> list[dict[str, Any]]:
    from crawler.store.server import scratch_server

    rows: list[dict[str, Any]] = []
    for shape in shapes:
        for node in nodes:
            runs = []
            for _ in range(repeat):
                with scratch_server("crawlnodes") as (url, _):
                    runs.append(asyncio.run(_run(url, shape, n, per_host, node, claim)))
            row = {key: (statistics.median(r[key] for r in runs)
                         if isinstance(runs[0][key], (int, float)) else runs[0][key])
                   for key in runs[0]}
            row["runs"] = runs
            rows.append(row)
            print(f"{shape:>14} {per_host:>5} a host, node {node:>3}: "
                  f"{row['bytes_per_url']:6.1f} B/URL "
                  f"(queue {row['queue_per_url']}, used_memory {row['used_memory_per_url']}); "
                  f"seed {row['seed_urls_per_s']}/s, add {row['add_mean_ms']} ms, "
                  f">2ms {row['add_calls_over_2ms']}/{row['add_calls']}; "
                  f"claim {row['claim_server_us_per_url']} µs/URL; server CPU a URL: seed "
                  f"{row['seed_server_cpu_us_per_url']} µs, claim "
                  f"{row['claim_server_cpu_us_per_url']} µs", flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def main() -> None:
    """``python -m bench.experiments.list_nodes [--shape S ...] [--node N ...] [--urls N]``."""
    import argparse

    from crawler.bench.shapes import PATHS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--shape", action="append", help="shape(s); default: every 100-a-host one")
    parser.add_argument("--node", action="append", help=f"list-max-listpack-size values; "
                        f"default: {' '.join(SETTINGS)}")
    parser.add_argument("--urls", type=int, default=100_000, help="URLs of each shape")
    parser.add_argument("--per-host", type=int, default=100, help="URLs a host")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (median)")
    parser.add_argument("--no-claim", action="store_true", help="memory and seeding only")
    parser.add_argument("--out", default="bench/results/list-nodes-latest.json",
                        help="JSON report path ('' for none)")
    args = parser.parse_args()
    run(args.shape or list(PATHS), args.node or list(SETTINGS), args.urls, args.per_host,
        args.repeat, args.out or None, not args.no_claim)


if __name__ == "__main__":
    main()
