"""Completions of concurrent fetches share pipelines (``Frontier.run_shared``), and stay exact."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from crawler.config import Settings
from crawler.frontier import Frontier, Lease
from crawler.store import keys


async def _leases(frontier: Frontier, n: int) -> list[Lease]:
    await frontier.add([(f"http://h{i}.test/p", 0) for i in range(n)])
    got: list[Lease] = []
    while len(got) < n:
        got += (await frontier.claim(n - len(got), "w")).leases
    return got


async def _result_urls(redis: Redis, settings: Settings) -> list[str]:
    shard = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)[0]
    entries: Any = await redis.xrange(shard.results)
    return sorted(json.loads(fields["r"])["url"] for _, fields in entries)


async def test_concurrent_completions_share_round_trips_and_each_gets_its_answer(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1, delay=0.0))
    leases = await _leases(frontier, 50)
    before = frontier.round_trips
    done = await asyncio.gather(*(
        frontier.complete(lease, json.dumps({"url": lease.url}),
                          links=[(f"http://{lease.host}/next", 1)]) for lease in leases))
    assert done == [True] * 50
    assert frontier.round_trips - before < 50  # the first goes alone, the rest share
    assert await _result_urls(redis, settings) == sorted(lease.url for lease in leases)
    assert (await frontier.stats())["queued"] == 50  # every page's link was added


async def test_a_stale_lease_in_a_shared_pipeline_fails_only_for_its_caller(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1, delay=0.0))
    leases = await _leases(frontier, 3)
    await frontier.complete(leases[0], json.dumps({"url": leases[0].url}))
    again = await asyncio.gather(*(
        frontier.complete(lease, json.dumps({"url": lease.url})) for lease in leases))
    assert again == [False, True, True]
    assert len(await _result_urls(redis, settings)) == 3  # exactly once each


async def test_a_connection_failure_reaches_every_caller_of_the_pipeline(
        redis: Redis, settings: Settings) -> None:
    frontier = Frontier(redis, settings.replace(max_per_host=1, delay=0.0))
    leases = await _leases(frontier, 2)
    broken = Frontier(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5),
                      settings)
    outcomes = await asyncio.gather(*(
        broken.complete(lease, "{}") for lease in leases), return_exceptions=True)
    await broken.redis.aclose()
    assert all(isinstance(o, RedisConnectionError) for o in outcomes), outcomes
    # Nothing was recorded; the leases are still held and can complete for real.
    assert await asyncio.gather(*(frontier.complete(lease, "{}") for lease in leases)) == \
        [True, True]
