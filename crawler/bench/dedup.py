"""``crawl bench --dedup N``: Valkey memory per URL for N fingerprints, without fetching.

Adds N distinct URLs through the frontier's real ``add`` path (add.lua, 2000
URLs a call) to a fresh embedded Valkey, then reports:

- the dedup sets' own memory (``MEMORY USAGE`` of every ``seen:<bucket>``
  set) per URL: the figure the design targets (<= 10 B at 1M URLs);
- the whole server's ``used_memory`` growth per URL, which also counts the
  host queues holding every URL's text until it is crawled;
- how many sets left the compact intset encoding (should be none).

An external Redis needs ``set-max-intset-entries`` at least the largest bucket
(URLs per shard / 2**dedup_bucket_bits, with head room): the default 512 keeps
intsets only to ~2M URLs a shard with 4096 buckets; the embedded server uses 8192.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import redis as sync_redis

from crawler.bench.report import write_report
from crawler.bench.servers import seen_set_bytes

TARGET_BYTES_PER_URL = 10.0
HOSTS = 1000
CHUNK = 20_000


async def _add(url: str, n: int) -> float:
    from crawler.config import Settings, load_settings
    from crawler.frontier import Frontier
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    settings = load_settings(base=Settings(), overrides={"redis_url": url, "crawl": "dedup",
                                                         "expected_urls": max(n, 1)})
    client = await connect(settings)
    settings = await crawl_layout(client, settings)
    frontier = Frontier(client, settings, local_dedup=False)
    started = time.monotonic()
    try:
        for start in range(0, n, CHUNK):
            await frontier.add((f"http://h{i % HOSTS}.example/p/{i}", 0)
                               for i in range(start, min(n, start + CHUNK)))
    finally:
        await client.aclose()
    return time.monotonic() - started


def _encodings(client: sync_redis.Redis) -> dict[str, int]:
    counts: dict[str, int] = {}
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(match="*:seen:*", count=1000):
        pipe.object("encoding", key)
    for enc in pipe.execute():
        name = enc.decode() if isinstance(enc, bytes) else str(enc)
        counts[name] = counts.get(name, 0) + 1
    return counts


def run_dedup(n: int, out: str | None = None, echo: Any = print) -> dict[str, Any]:
    from crawler.store.server import ensure_server, stop_server

    with tempfile.TemporaryDirectory(prefix="crawldedup") as tmp:
        home = Path(tmp)
        url = ensure_server(home)
        client = sync_redis.Redis.from_url(url)
        try:
            before = int(client.info("memory")["used_memory"])
            seconds = asyncio.run(_add(url, n))
            after = int(client.info("memory")["used_memory"])
            seen_bytes, sets = seen_set_bytes(client)
            encodings = _encodings(client)
            config: Any = client.config_get("set-max-intset-entries")
            intset_limit = int(config["set-max-intset-entries"])
        finally:
            client.close()
            stop_server(home)
    per_url = seen_bytes / n
    report = {
        "urls": n,
        "seconds": round(seconds, 1),
        "adds_per_s": round(n / seconds),
        "dedup_bytes_per_url": round(per_url, 2),
        "used_memory_bytes_per_url": round((after - before) / n, 1),
        "dedup_sets": sets,
        "set_encodings": encodings,
        "set_max_intset_entries": intset_limit,
        "ok": per_url <= TARGET_BYTES_PER_URL and set(encodings) <= {"intset"},
    }
    echo(f"{n} URLs added in {seconds:.1f}s ({report['adds_per_s']}/s)\n"
         f"dedup sets: {per_url:.2f} B/URL over {sets} sets {encodings} "
         f"(target <= {TARGET_BYTES_PER_URL:.0f})\n"
         f"all Valkey memory (incl. queued URL text): {report['used_memory_bytes_per_url']} B/URL")
    if out:
        write_report(out, report, echo)
    return report
