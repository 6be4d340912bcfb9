"""crawl status: counters, held hosts, Redis memory by kind, and its warnings."""

from __future__ import annotations

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.observe.status import crawl_status, memory_by_kind


async def test_memory_by_kind_accounts_for_the_crawls_keys(redis: Redis,
                                                           settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    await frontier.add([(f"http://h{i % 10}.test/d{i % 7}/p{i}.html", 1) for i in range(2000)])
    await redis.set("someone-else:key", "x" * 10_000)  # not ours: not counted
    memory = await memory_by_kind(redis, settings)
    total = sum(memory["bytes"].values())
    used: int = 0
    async for key in redis.scan_iter(match=f"crawl:{{{settings.crawl}*"):
        used += int(await redis.memory_usage(key) or 0)
    assert total == used and not memory["sampled"]
    assert memory["bytes"]["queued"] > memory["bytes"]["hosts"] > 0
    assert memory["bytes"]["seen"] > 0 and memory["dedup_buckets_not_intset"] == 0


async def test_a_sampled_scan_scales_each_kind_to_the_whole(redis: Redis,
                                                            settings: Settings) -> None:
    frontier = Frontier(redis, settings)
    # Four URLs a host: up to 3 wait in the host state, with no queue key.
    await frontier.add([(f"http://h{i}.test/p{n}.html", 1) for i in range(3000) for n in range(4)])
    exact = await memory_by_kind(redis, settings)
    sampled = await memory_by_kind(redis, settings, budget=2000)
    assert sampled["sampled"]
    for kind in ("queued", "hosts"):
        assert 0.5 < sampled["bytes"][kind] / exact["bytes"][kind] < 2.0, kind


async def test_status_warns_when_dedup_buckets_outgrow_intsets(redis: Redis,
                                                               settings: Settings) -> None:
    # One bucket (bits=1: two buckets) holding more than the server keeps as an intset.
    settings = settings.replace(dedup_bucket_bits=1)
    limit = int((await redis.config_get("set-max-intset-entries"))["set-max-intset-entries"])
    await Frontier(redis, settings).add(
        [(f"http://h{i % 50}.test/{i}", 1) for i in range(2 * limit + 500)])
    status = await crawl_status(redis, settings)
    assert status["memory"]["dedup_buckets_not_intset"] >= 1
    assert any("no longer intsets" in w for w in status["warnings"])


async def test_busiest_hosts_include_a_host_whose_every_slot_is_leased(
        redis: Redis, settings: Settings) -> None:
    from crawler.observe.overview import top_hosts
    from crawler.observe.status import server_ms

    settings = settings.replace(max_per_host=1, delay=0)
    frontier = Frontier(redis, settings)
    await frontier.add([(f"http://busy.test/p{i}", 1) for i in range(30)])
    await frontier.add([(f"http://small.test/p{i}", 1) for i in range(3)])
    claimed = await frontier.claim(2, "w")
    assert {lease.host for lease in claimed.leases} == {"busy.test", "small.test"}
    # Both hosts are now at their limit of 1: neither is in the ready set.
    rows = await top_hosts(redis, settings, await server_ms(redis))
    assert [(r["host"], r["queued"]) for r in rows] == [("busy.test", 29), ("small.test", 2)]


async def test_a_dead_worker_is_reported_for_an_hour_then_forgotten_without_any_beat(
        redis: Redis, settings: Settings) -> None:
    """The last worker of a crawl was killed: no later heartbeat prunes it, so the
    readers must leave it out once it is past FORGET_AFTER, and the set expires."""
    from crawler.frontier.workers import FORGET_AFTER, Heartbeat
    from crawler.store import keys

    frontier = Frontier(redis, settings)
    beat = Heartbeat(frontier.scripts, settings.crawl, "node:1:aaaaaa")
    now = await beat.beat({"node": "node", "pid": "1", "every_ms": "1000"})
    ttl_ms = await redis.pttl(keys.workers_key(settings.crawl))
    assert 0 < ttl_ms <= FORGET_AFTER * 1000  # the set goes an hour after the last beat
    workers = keys.workers_key(settings.crawl)
    # Killed long ago (two hours) and recently (20 s): only the second is still reported.
    await redis.zadd(workers, {"node:2:bbbbbb": now - 2 * 3600 * 1000,
                               "node:1:aaaaaa": now - 20_000})
    status = await crawl_status(redis, settings)
    assert (status["workers"], status["workers_dead"]) == (0, 1)
    assert [w["id"] for w in status["worker_list"]] == ["node:1:aaaaaa"]


def test_status_rates_of_a_crawl_finished_long_ago_are_not_its_lifetime_average() -> None:
    from crawler.observe.overview import rates

    # One sample at the start (done 0), 120 pages, then nothing for 4 minutes:
    # "last_10s" was 0.4, the average since the start.
    started = [(1000.0, 0)]
    assert rates(started, 1300.0, 120) == {"last_10s": None, "last_5m": 0.4}
    # A sample taken after the last page: nothing since, so exactly 0.
    finished = [(1000.0, 0), (1060.0, 120)]
    assert rates(finished, 1300.0, 120) == {"last_10s": 0.0, "last_5m": 0.4}
    # A crawl going on: the window's own rate.
    going = [(1000.0, 0), (1289.0, 100)]
    assert rates(going, 1300.0, 150)["last_10s"] == round(50 / 11, 2)


async def test_the_crawls_since_is_null_until_its_state_is_changed(
        redis: Redis, settings: Settings) -> None:
    from crawler.observe import control

    await Frontier(redis, settings).add([("http://a.test/", 0)])
    assert (await crawl_status(redis, settings))["crawl"]["since"] is None  # not 1970
    await control.pause(redis, settings)
    since = (await crawl_status(redis, settings))["crawl"]["since"]
    assert abs(since - await control.server_time(redis)) < 60
