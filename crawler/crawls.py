"""A crawl as a whole: the layout fixed when it is created.

The first command that touches a crawl records its layout in ``meta``: the
shard count, and the dedup bucket bits sized from ``expected_urls`` and the
server's ``set-max-intset-entries`` so that every bucket stays an intset (8
bytes a URL) up to the declared size. Every later command reads the layout
back, so all workers agree whatever their own settings say.
"""

from __future__ import annotations

import json
import math
import time

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from crawler import keys
from crawler.config import Settings
from crawler.errors import ConfigError

INTSET_FILL = 0.25
"""Fraction of set-max-intset-entries a bucket is sized to hold at expected_urls: a quarter,
because adding to an intset moves half of it (8 KiB at 2048 entries, 32 KiB at 8192), and
extra buckets cost only a key each."""
DEFAULT_INTSET_ENTRIES = 512
"""Redis's and Valkey's default, assumed when CONFIG GET is not allowed."""
MAX_BUCKET_BITS = 24


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


async def crawl_layout(redis: Redis, settings: Settings) -> Settings:
    """The settings with the crawl's recorded layout (recorded by the first command)."""
    meta = keys.meta_key(settings.crawl)
    bits = settings.dedup_bucket_bits or bucket_bits(
        settings.expected_urls, settings.shards, await intset_entries(redis))
    proposed = json.dumps({"shards": settings.shards, "dedup_bucket_bits": bits,
                           "expected_urls": settings.expected_urls,
                           "created": round(time.time(), 3)})
    await redis.hsetnx(meta, "layout", proposed)
    stored = await redis.hget(meta, "layout")
    layout = json.loads(stored or proposed)
    shards = int(layout["shards"])
    if shards != settings.shards and settings.shards != 1:
        raise ConfigError("shards", f"crawl {settings.crawl!r} was created with {shards} "
                          f"shards; it cannot change to {settings.shards}")
    return settings.replace(shards=shards, dedup_bucket_bits=int(layout["dedup_bucket_bits"]),
                            expected_urls=int(layout["expected_urls"]))
