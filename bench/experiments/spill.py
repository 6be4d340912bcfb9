"""``python -m bench.experiments.spill``: what spilling queue tails to disk would save.

Issue 24's "past RAM" measurement. The frontier does not spill: this
experiment measures what the design in ARCHITECTURE.md ("Past RAM: queue
tails in segments") would save and cost, on a real frontier of N queued URLs
(10 million by default) in the embedded Valkey:

1. seed N URLs on H hosts (``crawl bench memory``'s 76-character catalog
   URLs, or one of its ``--shape`` generators) with ``crawl seed``'s own code
   (``crawler.discovery.seeds.seed``): ``used_memory``, and bytes by kind;
2. spill: each host queue's entries past the first ``HEAD`` go, in order,
   into one segment file (length-prefixed entries, zstd level 3, fsync'ed),
   then leave the list (``LTRIM``): URLs/s, bytes on disk a URL, and
   ``used_memory`` after;
3. refill: each segment read back and pushed onto its queue's end, in
   order; every queue must then equal its digest from before the spill
   (same entries, same order), and a claim through ``Frontier.claim`` must
   still decode its URLs.

Plain commands move the tails here, one host at a time; the design makes
each move one atomic script (a spill stages the tail and records the
segment, a refill checks the segment's name before it pushes), which this
measurement does not need because nothing else runs against the server.
Only loopback and a temporary directory are used.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import struct
import time
from pathlib import Path
from typing import Any

from crawler.bench.memory import url_76
from crawler.bench.report import write_report

HEAD = 1000
"""Entries a host queue keeps in Redis: what claims read until a refill comes."""
SEED_CHUNK = 500_000
"""URLs handed to ``seed`` at a time, so the URL text never sits in memory whole."""


def _segment(entries: list[bytes]) -> bytes:
    from backports import zstd  # the standard library's compression.zstd from 3.14

    raw = b"".join(struct.pack(">I", len(e)) + e for e in entries)
    return zstd.compress(raw, level=3)


def _entries(segment: bytes) -> list[bytes]:
    from backports import zstd

    raw = zstd.decompress(segment)
    out, at = [], 0
    while at < len(raw):
        (size,) = struct.unpack_from(">I", raw, at)
        out.append(raw[at + 4:at + 4 + size])
        at += 4 + size
    return out


async def _queue_keys(client: Any, prefix: str) -> list[bytes]:
    found = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    return sorted(found)


async def _digest(client: Any, key: bytes) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for entry in await client.lrange(key, 0, -1):
        digest.update(struct.pack(">I", len(entry)) + entry)
    return digest.hexdigest()


async def _used(client: Any) -> int:
    return int((await client.info("memory"))["used_memory"])


def _urls(shape: str, n: int, hosts: int, first: int, count: int) -> list[str]:
    """URLs first..first+count of n: ``crawl bench memory``'s 76-character catalog URLs,
    or one of ``crawler.bench.shapes`` (n // hosts a host, generated whole once)."""
    if shape == "catalog":
        return [url_76(i, hosts) for i in range(first, first + count)]
    from crawler.bench.shapes import shape_urls

    cached = _SHAPED.get((shape, n, hosts))
    if cached is None:
        cached = _SHAPED[(shape, n, hosts)] = shape_urls(shape, n, per_host=max(1, n // hosts))
    return cached[first:first + count]


_SHAPED: dict[tuple[str, int, int], list[str]] = {}


async def _measure(url: str, n: int, hosts: int, shape: str, home: Path,
                   echo: Any) -> dict[str, Any]:
    from redis.asyncio import Redis

    from crawler.config import Settings
    from crawler.discovery.seeds import seed
    from crawler.frontier import Frontier
    from crawler.observe.status import memory_by_kind
    from crawler.store import keys
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    base = Settings(redis_url=url, crawl="spill", expected_urls=max(n, 1_000_000),
                    max_per_host=1000, delay=0)
    client = await connect(base)
    settings = await crawl_layout(client, base)
    # Queue entries are bytes (a header byte, prefix ids): read them undecoded.
    raw = Redis.from_url(url, decode_responses=False)
    report: dict[str, Any] = {"urls": n, "hosts": hosts, "head": HEAD, "shape": shape}
    try:
        empty = await _used(client)
        started = time.monotonic()
        for first in range(0, n, SEED_CHUNK):
            lines = "\n".join(_urls(shape, n, hosts, first, min(SEED_CHUNK, n - first)))
            await seed(client, settings, io.BytesIO(lines.encode()))
        report["seed_urls_per_s"] = round(n / (time.monotonic() - started))
        report["in_redis"] = {"used_memory_grown": await _used(client) - empty,
                              "bytes_by_kind": (await memory_by_kind(client, settings))["bytes"]}
        echo(f"seeded {n} URLs at {report['seed_urls_per_s']}/s: "
             f"{report['in_redis']['used_memory_grown'] / n:.1f} B a URL all in")

        shard = keys.ShardKeys(settings.crawl, 0, settings.shard_tags[0]
                               if settings.shard_tags else "")
        queues = await _queue_keys(raw, shard.queue_prefix(0))
        before = {key: await _digest(raw, key) for key in queues}
        segments = home / "segments"
        segments.mkdir()
        spilled = disk = 0
        started = time.monotonic()
        for number, key in enumerate(queues):
            tail = await raw.lrange(key, HEAD, -1)
            if not tail:
                continue
            path = segments / f"{number:06d}.seg"
            with path.open("wb") as f:
                f.write(_segment(tail))
                f.flush()
                os.fsync(f.fileno())
            await raw.ltrim(key, 0, HEAD - 1)
            spilled += len(tail)
            disk += path.stat().st_size
        spill_seconds = time.monotonic() - started
        kept = await _used(client) - empty
        report["spill"] = {"urls_spilled": spilled, "seconds": round(spill_seconds, 1),
                           "urls_per_s": round(spilled / max(spill_seconds, 1e-9)),
                           "disk_bytes_per_url": round(disk / max(spilled, 1), 2),
                           "used_memory_grown_after": kept,
                           "bytes_per_queued_url_in_redis_after": round(kept / n, 1)}
        echo(f"spilled {spilled} URLs at {report['spill']['urls_per_s']}/s, "
             f"{report['spill']['disk_bytes_per_url']} B a URL on disk; Redis now "
             f"{kept / 2**20:.0f} MiB ({report['spill']['bytes_per_queued_url_in_redis_after']} "
             f"B a queued URL)")

        started = time.monotonic()
        refilled = 0
        for number, key in enumerate(queues):
            path = segments / f"{number:06d}.seg"
            if not path.exists():
                continue
            entries = _entries(path.read_bytes())
            for at in range(0, len(entries), 1000):
                await raw.rpush(key, *entries[at:at + 1000])
            refilled += len(entries)
        refill_seconds = time.monotonic() - started
        after = {key: await _digest(raw, key) for key in queues}
        report["refill"] = {"urls": refilled, "seconds": round(refill_seconds, 1),
                            "urls_per_s": round(refilled / max(refill_seconds, 1e-9)),
                            "queues_identical": after == before}
        claimed = (await Frontier(client, settings).claim(100, "spill")).leases
        report["claim_after_refill"] = {"urls": len(claimed),
                                        "decoded": all(lease.url.startswith(("https://", "http://"))
                                                       for lease in claimed)}
        echo(f"refilled at {report['refill']['urls_per_s']}/s; queues identical: "
             f"{report['refill']['queues_identical']}; a claim after: "
             f"{report['claim_after_refill']}")
    finally:
        await raw.aclose()
        await client.aclose()
    return report


def run_spill(n: int, hosts: int, shape: str, out: str | None,
              echo: Any = print) -> dict[str, Any]:
    from crawler.store.server import scratch_server

    with scratch_server("crawlspill") as (url, home):
        report = asyncio.run(_measure(url, n, hosts, shape, home, echo))
    echo(json.dumps(report, indent=1))
    if out:
        write_report(out, report)
    return report


def main() -> None:
    """``python -m bench.experiments.spill [--urls N] [--hosts N] [--out FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[1])
    parser.add_argument("--urls", type=int, default=10_000_000, help="queued URLs")
    parser.add_argument("--hosts", type=int, default=1000, help="hosts they spread over")
    parser.add_argument("--shape", default="catalog",
                        help="catalog (crawl bench memory's URLs) or a crawl bench memory --shape")
    parser.add_argument("--out", default="bench/results/spill-latest.json",
                        help="JSON report path ('' for none)")
    args = parser.parse_args()
    run_spill(args.urls, args.hosts, args.shape, args.out or None)


if __name__ == "__main__":
    main()
