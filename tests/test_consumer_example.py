"""examples/consumer.py on a crawl's results: consumers share the work, a crash loses nothing.

A crawl of a local site on 2 shards of one server, and on a local Valkey
Cluster (12 shards over 3 masters, so the streams live in different slots); a
"ghost" consumer of the same group reads a batch and dies without
acknowledging it; two example consumers then print every result exactly once
between them (the ghost's batch taken over with XAUTOCLAIM), and ``crawl
export --drain`` deletes from Redis only what the downstream group has
acknowledged too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from crawl_helpers import ROOT
from crawl_helpers import crawl as crawl_site
from redis.asyncio import Redis

from crawler.bench.cluster import LocalCluster
from crawler.bench.sitegen import SiteServer, SiteSpec
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.results.export import drain
from crawler.store.connection import connect
from crawler.store.layout import crawl_layout

GROUP = "downstream"
IDLE_MS = 2000


def start_consumer(redis_url: str, crawl: str, out: Path) -> subprocess.Popen[bytes]:
    with open(out, "wb") as fh:
        return subprocess.Popen([sys.executable, str(ROOT / "examples" / "consumer.py"),
                                 redis_url, crawl, GROUP], stdout=fh,
                                stderr=subprocess.STDOUT, env={**os.environ,
                                                               "IDLE_MS": str(IDLE_MS)})


async def pending(redis: Redis, streams: list[str]) -> int:
    return sum([(await redis.xpending(s, GROUP))["pending"] for s in streams])


async def test_two_consumers_share_every_result_and_take_over_a_crashed_ones(
        redis: Redis, settings: Settings, clean_redis: str, tmp_path: Path) -> None:
    settings = await crawl_layout(redis, settings.replace(shards=2))
    await consumers_share_the_crawl(redis, settings, clean_redis, tmp_path)


async def test_the_consumer_works_on_a_cluster_too(
        cluster: LocalCluster, settings: Settings, tmp_path: Path) -> None:
    settings = settings.replace(redis_url=cluster.url, crawl="consumers")
    client = await connect(settings)
    try:
        settings = await crawl_layout(client, settings)
        assert len(settings.shard_tags) == 12  # streams on every master, in many slots
        await consumers_share_the_crawl(client, settings, cluster.url, tmp_path)
    finally:
        await client.aclose()


async def consumers_share_the_crawl(redis: Redis, settings: Settings, redis_url: str,
                                    tmp_path: Path) -> None:
    with SiteServer(SiteSpec(hosts=4, pages=40, links=6, page_bytes=800)) as site:
        found = await crawl_site(redis, settings, site.spec.seeds())
    assert len(found) == 160
    streams = [shard.results for shard in Frontier(redis, settings).shards]
    sizes = {s: await redis.xlen(s) for s in streams}
    for stream in streams:
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    fullest = max(streams, key=lambda s: sizes[s])
    ghost = await redis.xreadgroup(GROUP, "ghost", {fullest: ">"}, count=10)
    assert len(ghost[0][1]) == 10  # read, never acknowledged: the ghost "crashed"

    # A drain now takes everything to its file but deletes nothing: the
    # downstream group has acknowledged nothing yet.
    assert await drain(redis, settings, tmp_path / "r.jsonl") == 160
    assert sum([await redis.xlen(s) for s in streams]) == 160

    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]
    consumers = [start_consumer(redis_url, settings.crawl, out) for out in outs]
    try:
        deadline = time.monotonic() + 60
        while True:
            lines = [line for out in outs for line in out.read_text().splitlines()]
            if len(lines) >= 160 and await pending(redis, streams) == 0:
                break
            assert time.monotonic() < deadline, f"{len(lines)} of 160 consumed"
            assert all(c.poll() is None for c in consumers), lines[-5:]
            await asyncio.sleep(0.2)
    finally:
        for consumer in consumers:
            consumer.terminate()
            consumer.wait(10)
    printed = Counter(line.split(" ", 1)[0] for line in lines)
    assert set(printed) == set(found)
    assert max(printed.values()) == 1
    # Which consumer got which batch depends on timing; each result went to one.
    # Every group has acknowledged every result now: the drain's trim empties Redis.
    assert await drain(redis, settings, tmp_path / "r.jsonl") == 0
    assert sum([await redis.xlen(s) for s in streams]) == 0
