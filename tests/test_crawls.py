"""A crawl's layout: fixed by its first command, read back by every later one."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.errors import ConfigError
from crawler.store.layout import INTSET_FILL, bucket_bits, crawl_layout, intset_entries


@pytest.mark.parametrize("expected", [1_000, 100_000, 10_000_000, 1_000_000_000])
@pytest.mark.parametrize(("shards", "intset"), [(1, 512), (1, 8192), (48, 512)])
def test_buckets_stay_intsets_up_to_the_expected_size(expected: int, shards: int,
                                                      intset: int) -> None:
    bits = bucket_bits(expected, shards, intset)
    per_bucket = expected / shards / 2 ** bits
    assert per_bucket <= INTSET_FILL * intset or bits == 24
    # ...and no more buckets than needed: half as many would overflow.
    assert bits == 1 or expected / shards / 2 ** (bits - 1) > INTSET_FILL * intset


async def test_the_first_command_fixes_the_layout_for_every_later_one(
        redis: Redis, settings: Settings) -> None:
    first = await crawl_layout(redis, settings.replace(dedup_bucket_bits=0, shards=2,
                                                       expected_urls=50_000_000))
    later = await crawl_layout(redis, settings.replace(dedup_bucket_bits=0, expected_urls=1000))
    assert (later.shards, later.dedup_bucket_bits, later.expected_urls) == \
        (2, first.dedup_bucket_bits, 50_000_000)
    assert first.dedup_bucket_bits == bucket_bits(50_000_000, 2, await intset_entries(redis))


async def test_a_crawls_shard_count_cannot_change(redis: Redis, settings: Settings) -> None:
    await crawl_layout(redis, settings.replace(shards=3))
    with pytest.raises(ConfigError, match="created with 3 shards"):
        await crawl_layout(redis, settings.replace(shards=4))
