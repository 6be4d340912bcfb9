"""A crawl as a whole: the layout fixed when it is created.

The first command that touches a crawl records its layout in ``meta``: the
shard count (on a cluster, ``SHARDS_PER_MASTER`` a master, their hash tags
chosen so that their slots fall evenly on the masters), and the dedup bucket
bits sized from ``expected_urls`` and the
server's ``set-max-intset-entries`` so that every bucket stays an intset (8
bytes a URL) up to the declared size. Every later command reads the layout
back, so all workers agree whatever their own settings say.
"""

from __future__ import annotations

import json
import math
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ResponseError

from crawler.config import Settings
from crawler.errors import ConfigError
from crawler.store import keys

INTSET_FILL = 0.25
"""Fraction of set-max-intset-entries a bucket is sized to hold at expected_urls: a quarter,
because adding to an intset moves half of it (8 KiB at 2048 entries, 32 KiB at 8192), and
extra buckets cost only a key each."""
DEFAULT_INTSET_ENTRIES = 512
"""Redis's and Valkey's default, assumed when CONFIG GET is not allowed."""
MAX_BUCKET_BITS = 24
SHARDS_PER_MASTER = 4
"""A new crawl on a cluster gets this many shards for each master there is."""


def bucket_bits(expected_urls: int, shards: int, intset_entries: int) -> int:
    """Bits of fingerprint that pick a bucket, so buckets stay intsets up to expected_urls."""
    per_shard = expected_urls / shards
    buckets = per_shard / max(1.0, INTSET_FILL * intset_entries)
    return max(1, min(MAX_BUCKET_BITS, math.ceil(math.log2(max(2.0, buckets)))))


async def intset_entries(redis: Redis) -> int:
    """The server's set-max-intset-entries (managed servers may refuse CONFIG: assume 512)."""
    try:
        reply = await redis.config_get("set-max-intset-entries")
    except ResponseError:
        return DEFAULT_INTSET_ENTRIES
    value = reply.get("set-max-intset-entries")
    return int(value) if value else DEFAULT_INTSET_ENTRIES


def cluster_tags(crawl: str, shards: int, owners: list[str]) -> list[str]:
    """Hash tags for ``shards`` shards whose slots fall on the masters in turn.

    ``owners``: slot -> the master that serves it (16384 entries). Shard i
    goes to master i mod M: its tag is ``NAME:i.k`` for the first k whose
    slot that master serves.
    """
    masters = sorted(set(owners))
    tags = []
    for shard in range(shards):
        want = masters[shard % len(masters)]
        k = 0
        while owners[key_slot(f"{crawl}:{shard}.{k}".encode())] != want:
            k += 1
        tags.append(f"{crawl}:{shard}.{k}")
    return tags


def slot_owners(redis: Any) -> list[str] | None:
    """On a cluster, slot -> its master's name, as the client knows it now; else None."""
    if not isinstance(redis, RedisCluster):
        return None
    return [redis.nodes_manager.get_node_from_slot(slot).name for slot in range(16384)]


async def crawl_layout(redis: Redis, settings: Settings) -> Settings:
    """The settings with the crawl's recorded layout (recorded by the first command)."""
    meta = keys.meta_key(settings.crawl)
    shards, tags = settings.shards, list(settings.shard_tags)
    owners = slot_owners(redis)
    if owners is not None and not tags:
        # A new crawl on a cluster: several shards a master, spread evenly.
        if shards == 1:
            shards = SHARDS_PER_MASTER * len(set(owners))
        tags = cluster_tags(settings.crawl, shards, owners)
    bits = settings.dedup_bucket_bits or bucket_bits(
        settings.expected_urls, shards, await intset_entries(redis))
    # On Redis's clock, like every crawl-level time: max_duration compares it with
    # TIME, and the machine that created the crawl may be hours off.
    seconds, micros = await redis.time()
    proposed = json.dumps({"shards": shards, "dedup_bucket_bits": bits, "shard_tags": tags,
                           "expected_urls": settings.expected_urls,
                           "created": round(int(seconds) + int(micros) / 1e6, 3)})
    await redis.hsetnx(meta, "layout", proposed)
    stored = await redis.hget(meta, "layout")
    layout = json.loads(stored or proposed)
    recorded = int(layout["shards"])
    if recorded != settings.shards and settings.shards != 1:
        raise ConfigError("shards", f"crawl {settings.crawl!r} was created with {recorded} "
                          f"shards; it cannot change to {settings.shards}")
    return settings.replace(shards=recorded, dedup_bucket_bits=int(layout["dedup_bucket_bits"]),
                            expected_urls=int(layout["expected_urls"]),
                            shard_tags=tuple(layout.get("shard_tags") or ()))
