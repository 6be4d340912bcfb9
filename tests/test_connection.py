"""The Redis client: bounded waits, and a pool that never hands out a broken connection."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest
import redis as sync_redis
from fault_proxy import LosingProxy
from redis.asyncio import Redis

from crawler.aio import cancel_and_wait
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.store.connection import make_client


async def test_commands_cancelled_at_any_moment_leave_no_connection_out_of_step(
        clean_redis: str) -> None:
    client = make_client(clean_redis, max_connections=8)
    rng = random.Random(7)

    async def busy(n: int) -> None:
        pipe = client.pipeline(transaction=n % 2 == 0)  # MULTI/EXEC and plain pipelines
        for i in range(20):
            pipe.set(f"k{n}:{i}", i)
            pipe.get(f"k{n}:{i}")
        await pipe.execute()

    try:
        for round_ in range(40):
            tasks = [asyncio.create_task(busy(round_ * 10 + i)) for i in range(10)]
            for _ in range(rng.randrange(4)):
                await asyncio.sleep(0)  # cancel at a different step of the commands each round
            await asyncio.sleep(rng.random() * 0.002)
            assert not await cancel_and_wait(tasks, within=5.0)

        # A connection given back mid-reply would answer the next command with
        # an old reply; one left inside MULTI would answer QUEUED.
        async def check(n: int) -> None:
            value = f"v{n}-{rng.random()}"
            await client.set(f"check{n}", value)
            assert await client.get(f"check{n}") == value

        await asyncio.gather(*(check(n) for n in range(200)))
        # Flag x: inside MULTI. (Valkey 9 prints multi=0, not -1, for any client
        # that has ever run a MULTI, so that field cannot tell.)
        clients = sync_redis.Redis.from_url(clean_redis).client_list()
        assert not [c for c in clients if "x" in c["flags"]], clients
    finally:
        await client.aclose()


async def test_a_connection_killed_by_the_server_is_replaced(clean_redis: str) -> None:
    client = make_client(clean_redis, max_connections=2)
    try:
        await client.set("a", "1")
        admin = sync_redis.Redis.from_url(clean_redis)
        for c in admin.client_list():
            if c.get("cmd") in ("set", "get") or c.get("name") == "":
                admin.client_kill_filter(_id=c["id"], skipme=True)
        assert await client.get("a") == "1"  # redis-py reconnects and retries
    finally:
        await client.aclose()


def test_the_client_bounds_every_wait_on_redis() -> None:
    client = make_client("redis://127.0.0.1:1/0")
    kwargs = client.connection_pool.connection_kwargs
    assert 0 < kwargs["socket_timeout"] <= 30 and 0 < kwargs["socket_connect_timeout"] <= 10
    assert kwargs["health_check_interval"] > 0 and kwargs["socket_keepalive"]
    assert client.connection_pool.timeout is not None  # waiting for a free connection too


async def _claim_through_a_proxy_that_loses_the_reply(clean_redis: str, settings: Settings,
                                                      request_id: str) -> tuple[int, int, int]:
    """(leases returned, leases held in Redis, replies lost) for a claim of 3 of 6 hosts."""
    frontier = Frontier(Redis.from_url(clean_redis, decode_responses=True), settings)
    await frontier.add([(f"http://h{i}.test/", 0) for i in range(6)])
    host, port = clean_redis.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    async with LosingProxy(host, int(port), frontier.scripts.shas["claim"].encode()) as proxy:
        client = make_client(f"redis://127.0.0.1:{proxy.port}/0")
        try:
            result = await Frontier(client, settings).claim(3, "w1", request_id=request_id)
        finally:
            await client.aclose()
    stats = await frontier.stats()
    await frontier.redis.aclose()
    return len(result.leases), stats["leased"], proxy.lost_replies


@pytest.mark.skipif(bool(os.environ.get("CRAWL_TEST_REDIS_URL", "").startswith("unix")),
                    reason="the proxy speaks TCP")
async def test_a_claim_whose_reply_was_lost_gets_the_same_leases_again(
        clean_redis: str, settings: Settings) -> None:
    returned, held, lost = await _claim_through_a_proxy_that_loses_the_reply(
        clean_redis, settings.replace(max_per_host=1), request_id="1")
    assert lost == 1
    assert returned == held == 3  # no lease holds a host that nobody will fetch


@pytest.mark.skipif(bool(os.environ.get("CRAWL_TEST_REDIS_URL", "").startswith("unix")),
                    reason="the proxy speaks TCP")
async def test_without_a_request_id_a_lost_claim_reply_strands_leases(
        clean_redis: str, settings: Settings) -> None:
    # The negative control: the proxy really loses a reply that the server ran.
    returned, held, lost = await _claim_through_a_proxy_that_loses_the_reply(
        clean_redis, settings.replace(max_per_host=1), request_id="")
    assert lost == 1
    assert (returned, held) == (3, 6)


def test_a_unix_socket_client_takes_the_same_bounds(tmp_path: Path) -> None:
    client = make_client(f"unix://{tmp_path}/valkey.sock")
    connection = client.connection_pool.make_connection()
    assert connection.socket_timeout and connection.health_check_interval
