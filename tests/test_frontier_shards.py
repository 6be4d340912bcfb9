"""The frontier's lifecycle and layout: reclaim, the finished signal, crawls, shards.

The hash-tag test runs on a Valkey in cluster mode, where a script that
touches a key of another slot than its declared keys fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis
from crawl_helpers import reclaim_expired
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from crawler.bench.sitegen import free_port
from crawler.config import Settings
from crawler.frontier import Frontier, Lease
from crawler.store import keys
from crawler.store.server import server_args

MakeFrontier = Callable[..., Frontier]
TAGGED_KEY = re.compile(r"^crawl:\{(?P<crawl>[^:}]+):(?P<shard>\d+)\}:(?P<rest>.*)$")


@pytest.fixture
def make_frontier(redis: Redis, settings: Settings) -> MakeFrontier:
    def make(**changes: Any) -> Frontier:
        return Frontier(redis, settings.replace(**changes))

    return make


def urls(host: str, n: int) -> list[tuple[str, int]]:
    return [(f"http://{host}/p/{i}", 0) for i in range(n)]


def many_hosts(n: int, per_host: int = 2) -> list[tuple[str, int]]:
    return [u for h in range(n) for u in urls(f"h{h}.test", per_host)]


def some_raised(pairs: list[tuple[str, int]]) -> dict[str, int]:
    """Every third URL raised, to the high or the top priority band."""
    return {url: 1 + i % 2 for i, (url, _) in enumerate(pairs) if i % 3 == 0}


async def claim_all(frontier: Frontier, n: int) -> list[Lease]:
    got: list[Lease] = []
    deadline = time.monotonic() + 5
    while len(got) < n and time.monotonic() < deadline:
        result = await frontier.claim(64, "w")
        got += result.leases
        if not result.leases:
            await asyncio.sleep(0.01)
    assert len(got) == n
    return got


# -- reclaim -----------------------------------------------------------------------


async def test_reclaim_returns_an_expired_lease_with_one_more_attempt(
        make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(lease_time=0.05, max_per_host=1)
    await frontier.add(urls("a.test", 2))
    [lease] = (await frontier.claim(5, "dead-worker")).leases
    assert await reclaim_expired(frontier, 1) == 1
    stats = await frontier.stats()
    assert (stats["queued"], stats["leased"]) == (2, 0)
    # Back at the front of its host queue, with the lost attempt counted.
    [again] = (await frontier.claim(5, "w")).leases
    assert (again.url, again.attempts, again.depth) == (lease.url, 1, lease.depth)


async def test_reclaim_leaves_live_leases_alone(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(lease_time=30)
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(1, "w")).leases
    assert await frontier.reclaim() == 0
    assert await frontier.complete(lease, "{}")


# -- finished ------------------------------------------------------------------------


async def test_an_empty_crawl_is_finished(make_frontier: MakeFrontier) -> None:
    result = await make_frontier().claim(10, "w")
    assert result.finished
    assert result.wait < 0


async def test_a_crawl_with_leases_out_is_not_finished(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(10, "w")).leases
    result = await frontier.claim(10, "w")
    assert result.leases == [] and not result.finished
    await frontier.complete(lease, "{}")
    assert (await frontier.claim(10, "w")).finished


async def test_a_crawl_with_a_delayed_retry_is_not_finished(make_frontier: MakeFrontier) -> None:
    frontier = make_frontier()
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(10, "w")).leases
    await frontier.retry(lease, 30)
    result = await frontier.claim(10, "w")
    assert result.leases == [] and not result.finished
    assert 0 < result.wait <= 30


async def test_a_lease_in_one_shard_keeps_every_shard_unfinished(
        make_frontier: MakeFrontier) -> None:
    frontier = make_frontier(shards=4)
    await frontier.add(urls("a.test", 1))
    [lease] = (await frontier.claim(10, "w")).leases
    # Most shards are empty; the claim must still report the crawl as running.
    assert not (await frontier.claim(10, "w")).finished
    await frontier.complete(lease, "{}")
    assert (await frontier.claim(10, "w")).finished


# -- several crawls, one Redis ------------------------------------------------------


async def test_crawls_sharing_one_redis_do_not_see_each_others_urls(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    red, blue = make_frontier(crawl="red"), make_frontier(crawl="blue")
    assert (await red.add(urls("shared.test", 3))).added == 3
    # The same URLs are new to another crawl: dedup is per crawl.
    assert (await blue.add(urls("shared.test", 1) + urls("blue.test", 1))).added == 2
    red_leases = await claim_all(red, 3)
    assert {lease.host for lease in red_leases} == {"shared.test"}
    for lease in red_leases:
        await red.complete(lease, json.dumps({"crawl": "red"}))
    assert (await red.claim(10, "w")).finished
    assert not (await blue.claim(0, "w")).finished
    assert (await blue.stats())["done"] == 0
    assert await redis.xlen(keys.ShardKeys("blue", 0).results) == 0
    assert await redis.xlen(keys.ShardKeys("red", 0).results) == 3


# -- shards ------------------------------------------------------------------------------


async def test_hosts_spread_over_shards(make_frontier: MakeFrontier, redis: Redis) -> None:
    frontier = make_frontier(crawl="sharded", shards=4)
    await frontier.add(many_hosts(40))
    queues: dict[int, list[str]] = {}
    async for key in redis.scan_iter(match="crawl:{sharded:*}:h:*"):  # small hosts: no q:
        match = TAGGED_KEY.match(key)
        assert match is not None
        host = match["rest"].removeprefix("h:")
        assert keys.shard_of(host, 4) == int(match["shard"])
        queues.setdefault(int(match["shard"]), []).append(host)
    assert sorted(queues) == [0, 1, 2, 3]
    assert sum(len(hosts) for hosts in queues.values()) == 40


async def test_claim_and_complete_work_across_shards(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    frontier = make_frontier(crawl="sharded", shards=4)
    await frontier.add(many_hosts(20, per_host=3))
    leases = await claim_all(frontier, 60)
    assert {lease.shard for lease in leases} == {0, 1, 2, 3}
    for lease in leases:
        assert await frontier.complete(lease, json.dumps({"url": lease.url}))
    assert (await frontier.claim(10, "w")).finished
    stats = await frontier.stats()
    assert (stats["done"], stats["queued"], stats["leased"]) == (60, 0, 0)
    lengths = [await redis.xlen(s.results) for s in keys.all_shards("sharded", 4)]
    assert sum(lengths) == 60 and all(lengths)


async def test_every_crawl_key_carries_its_shards_hash_tag(
        make_frontier: MakeFrontier, redis: Redis) -> None:
    frontier = make_frontier(crawl="tagged", shards=3, lease_time=0.05)
    await frontier.add(many_hosts(12, per_host=3), bands=some_raised(many_hosts(12, per_host=3)))
    leases = (await frontier.claim(6, "w")).leases
    await frontier.retry(leases[0], 10)
    await frontier.complete(leases[1], "{}")
    await reclaim_expired(frontier, 4)
    per_crawl = {keys.meta_key("tagged"), keys.workers_key("tagged")}
    raised_queues = 0
    async for key in redis.scan_iter(match="crawl:*"):
        if key in per_crawl:
            continue
        match = TAGGED_KEY.match(key)
        assert match is not None, key
        assert match["crawl"] == "tagged"
        raised_queues += match["rest"].startswith(("q1:", "q2:"))
        host = re.sub(r"^(q\d?|h):", "", match["rest"])
        if host != match["rest"]:
            assert keys.shard_of(host, 3) == int(match["shard"]), key
    assert raised_queues  # the priority bands' queues were among the keys checked


# -- a cluster-mode server: scripts must stay inside one slot ----------------------------


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Valkey cluster owning every slot."""
    home: Path = tmp_path_factory.mktemp("cluster")
    port = free_port()
    args = server_args(home, port=port, unix=False, persist=False)
    # The bus port defaults to port + 10000, past 65535 for high free ports.
    args += ["--cluster-enabled", "yes", "--cluster-config-file", str(home / "nodes.conf"),
             "--cluster-port", str(free_port())]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = sync_redis.Redis(host="127.0.0.1", port=port)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
                break
            except sync_redis.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None, "no cluster node"
                time.sleep(0.02)
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "cluster state never became ok"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(cluster_url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


def slot_checked(frontier: Frontier) -> Frontier:
    """Mark the scripts as declaring their keys: then a cluster node refuses any
    access to a key outside the slot of the script's KEYS."""
    scripts = frontier.scripts
    scripts.sources = {name: "#!lua\n" + src for name, src in scripts.sources.items()}
    scripts.shas = {name: hashlib.sha1(src.encode()).hexdigest()
                    for name, src in scripts.sources.items()}
    return frontier


async def test_the_cluster_node_refuses_a_script_that_leaves_its_slot(cluster: Redis) -> None:
    # Negative control for the test below: the check it relies on is real.
    with pytest.raises(ResponseError, match="same slot"):
        await cluster.eval("#!lua\nredis.call('SET', KEYS[1], 1)\n"
                           "return redis.call('SET', 'crawl:{other:0}:x', 1)", 1,
                           "crawl:{cluster:0}:x")


async def test_every_script_touches_one_slot_only(cluster: Redis, settings: Settings) -> None:
    s = settings.replace(crawl="cluster", shards=4, lease_time=0.05)
    frontier = slot_checked(Frontier(cluster, s))
    await frontier.add(many_hosts(16, per_host=3), bands=some_raised(many_hosts(16, per_host=3)))
    leases = await claim_all(frontier, 48)
    for lease in leases[:16]:
        await frontier.complete(lease, "{}", links=many_hosts(24, per_host=1))
    for lease in leases[16:24]:
        await frontier.retry(lease, 0.01)
    for lease in leases[24:32]:
        await frontier.retry(lease, 5, host_backoff=True)
    assert await reclaim_expired(frontier, 16) == 16  # the rest expire
    await frontier.claim(64, "w")  # due retries move back to their queues
    assert (await frontier.stats())["done"] == 16


async def test_a_finished_host_shrinks_to_nothing_and_one_under_a_cap_to_its_count(
        redis: Redis, settings: Settings) -> None:
    for cap, left in ((0, None), (5, {"pages": "2"})):
        s = settings.replace(crawl=f"compact{cap}", max_per_host=2, max_pages_per_host=cap)
        frontier = Frontier(redis, s)
        await frontier.add([("http://a.test/1", 0), ("http://a.test/2", 0)])
        for lease in (await frontier.claim(2, "w")).leases:
            await frontier.complete(lease, "{}")
        await frontier.reclaim()  # the sweep runs with every reclaim
        host = frontier.shards[0].host("a.test")
        state = await redis.hgetall(host) or None
        assert state == left, cap
        assert not await redis.exists(frontier.shards[0].queue("a.test"),
                                      frontier.shards[0].prefixes("a.test"))
