"""Steering a crawl as a whole: its stored settings, caps, pause, resume and stop.

Real ``crawl`` processes against the test Valkey and a generated site on
127.0.0.2+; what reached the site is read from the server's own request log.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT
from fault_helpers import read_results, seed_sync, stats, wait_exit, wait_for
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from crawler.bench.sitegen import SiteServer, SiteSpec, free_port
from crawler.config import Settings
from crawler.discovery.seeds import seed
from crawler.frontier import Frontier
from crawler.observe import control
from crawler.observe.control import allotments
from crawler.store import keys
from crawler.store.layout import crawl_layout


def env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    return {**clean, **extra}


def cli(*args: str, extra_env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=ROOT,
                          env=env(**(extra_env or {})), capture_output=True, text=True,
                          timeout=60, input=stdin)


def worker(redis_url: str, crawl: str, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    with open(log, "ab") as err:
        return subprocess.Popen([sys.executable, "-m", "crawler", "worker", "--redis", redis_url,
                                 "--crawl", crawl, "--quiet", *flags], cwd=ROOT, env=env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)


def status(redis_url: str, crawl: str) -> dict[str, Any]:
    done = cli("status", "--redis", redis_url, "--crawl", crawl)
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.fixture
def site() -> Iterator[SiteServer]:
    spec = SiteSpec(hosts=3, pages=200, links=6, page_bytes=600, port=free_port())
    with SiteServer(spec, slow={ip: 0.02 for ip in spec.host_ips()}) as server:
        yield server


# -- settings stored with the crawl ------------------------------------------------------


def test_a_worker_flag_that_disagrees_with_the_crawls_setting_is_refused(
        clean_redis: str, tmp_path: Path) -> None:
    crawl = "pinned"
    seed_sync(clean_redis, crawl, [])  # only seed makes a crawl; config set needs one
    assert cli("config", "set", "--redis", clean_redis, "--crawl", crawl, "delay=2").returncode == 0
    refused = cli("worker", "--redis", clean_redis, "--crawl", crawl, "--delay", "0.5")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "delay is 2.0" in lines[0] and "--delay gives 0.5" in lines[0]
    assert "crawl config set delay=0.5" in lines[0]
    # The same value agrees: the worker runs (and exits, nothing being queued).
    agreed = cli("worker", "--redis", clean_redis, "--crawl", crawl, "--delay", "2", "--quiet")
    assert agreed.returncode == 0, agreed.stderr


def test_a_value_first_given_to_a_worker_becomes_the_crawls_and_a_second_is_refused(
        clean_redis: str) -> None:
    crawl = "firstgiven"
    seed_sync(clean_redis, crawl, [])  # created with the defaults, none of them chosen
    first = cli("worker", "--redis", clean_redis, "--crawl", crawl, "--delay", "0.3", "--quiet")
    assert first.returncode == 0 and "delay = 0.3" in first.stderr, first.stderr
    shown = json.loads(cli("config", "show", "--json", "--redis", clean_redis,
                           "--crawl", crawl).stdout)
    assert shown["delay"] == 0.3
    second = cli("worker", "--redis", clean_redis, "--crawl", crawl, "--delay", "0.7")
    assert second.returncode == 2 and "delay is 0.3" in second.stderr
    from_env = cli("worker", "--redis", clean_redis, "--crawl", crawl,
                   extra_env={"CRAWL_DELAY": "0.7"})
    assert from_env.returncode == 2 and "environment variable CRAWL_DELAY" in from_env.stderr


async def test_workers_starting_together_agree_on_the_value_they_all_give(
        redis: Redis, settings: Settings) -> None:
    """Many workers given the same flag, starting at once on a crawl that has only the
    defaults: one pins the value, and every other one must read the value with the
    pin (never a pin beside the old value, which would refuse a worker that agrees)."""
    import asyncio

    from crawler.store.crawl_settings import adopt, set_values, stored_and_pinned

    origins = {"allow_private": "--allow-private", "delay": "--delay"}
    given = settings.replace(allow_private=True, delay=0.25)
    for round_ in range(15):
        crawl = settings.replace(crawl=f"together{round_}")
        await adopt(redis, crawl, {}, strict=True)  # `crawl seed`: the defaults, nothing pinned
        started = [adopt(redis, given.replace(crawl=crawl.crawl), origins, strict=True)
                   for _ in range(8)]
        # An operator's change racing the workers' pins loses neither.
        change = set_values(redis, crawl, {"max_pages": "500"})
        results = await asyncio.gather(*started, change)
        assert all(r.allow_private and r.delay == 0.25 for r in results[:-1])
        values, _, chosen = await stored_and_pinned(redis, crawl.crawl)
        assert values is not None and values["max_pages"] == 500
        assert (values["allow_private"], values["delay"]) == (True, 0.25)
        assert {"allow_private", "delay", "max_pages"} <= chosen


def test_config_set_checks_names_and_values_like_flags(clean_redis: str) -> None:
    seed_sync(clean_redis, "checks", [])  # only seed makes a crawl; config set needs one
    base = ["config", "set", "--redis", clean_redis, "--crawl", "checks"]
    typo = cli(*base, "dealy=2")
    assert typo.returncode == 2 and "did you mean 'delay'" in typo.stderr
    node = cli(*base, "concurrency=5")
    assert node.returncode == 2 and "a node's own setting" in node.stderr
    layout = cli(*base, "shards=4")
    assert layout.returncode == 2 and "fixed when the crawl was created" in layout.stderr
    bad = cli(*base, "delay=-1")
    assert bad.returncode == 2 and "delay" in bad.stderr
    ok = cli(*base, "scope=domain", "max_pages=50")
    assert ok.returncode == 0 and 'scope = "domain"' in ok.stdout, ok.stderr
    # A list: an array as the README writes it, and a regex with a comma, kept whole.
    lists = cli(*base, 'drop_params=["ref_*", "from"]', r"exclude=/p/[0-9]{1,2}\.html")
    assert lists.returncode == 0, lists.stderr
    assert 'drop_params = ["ref_*", "from"]' in lists.stdout, lists.stdout
    assert 'exclude = ["/p/[0-9]{1,2}\\\\.html"]' in lists.stdout, lists.stdout


def test_a_stored_value_a_newer_check_refuses_leaves_the_crawl_usable(
        clean_redis: str) -> None:
    """An older version stored user_agent = "" (now refused: no product token). The
    crawl's commands still run, say so, and config set stores a good one."""
    import json

    import redis as sync_redis

    from crawler.store import keys

    seed_sync(clean_redis, "old", [])
    assert cli("config", "set", "--redis", clean_redis, "--crawl", "old",
               "delay=1").returncode == 0  # the crawl's values are stored from here
    client = sync_redis.Redis.from_url(clean_redis, decode_responses=True)
    try:
        key = keys.settings_key("old")
        values = json.loads(client.hget(key, "json"))
        values["user_agent"] = ""
        client.hset(key, "json", json.dumps(values))
    finally:
        client.close()
    status_run = cli("status", "--redis", clean_redis, "--crawl", "old")
    assert status_run.returncode == 0, status_run.stderr
    assert "its stored user_agent \"\" is no longer accepted" in status_run.stderr
    fixed = cli("config", "set", "--redis", clean_redis, "--crawl", "old", "user_agent=mybot/2")
    assert fixed.returncode == 0 and 'user_agent = "mybot/2"' in fixed.stdout, fixed.stderr
    again = cli("status", "--redis", clean_redis, "--crawl", "old")
    assert again.returncode == 0 and "no longer accepted" not in again.stderr


def test_config_set_delay_reaches_running_workers_as_the_server_log_shows(
        clean_redis: str, tmp_path: Path) -> None:
    spec = SiteSpec(hosts=1, pages=400, links=6, page_bytes=600, port=free_port())
    crawl, log = "livedelay", tmp_path / "w.log"
    with SiteServer(spec, slow={spec.host_ips()[0]: 0.01}) as site:
        seed_sync(clean_redis, crawl, spec.seeds())
        procs = [worker(clean_redis, crawl, log, "--allow-private", "--delay", "0.05")
                 for _ in range(2)]
        wait_for(lambda: len(site.log.entries) >= 20, 30, "20 requests")
        changed = cli("config", "set", "--redis", clean_redis, "--crawl", crawl, "delay=0.8")
        assert changed.returncode == 0, changed.stderr
        set_at = time.monotonic()
        wait_for(lambda: len([e for e in site.log.entries if e[2] > set_at + 1.0]) >= 5,
                 30, "5 requests after the change")
        cli("stop", "--redis", clean_redis, "--crawl", crawl)
        wait_exit(procs, 60)
        starts = sorted(start for _, _, start, _ in site.log.entries)
    before = [b - a for a, b in itertools.pairwise(starts) if b < set_at]
    after = [b - a for a, b in itertools.pairwise(starts) if a > set_at + 1.0]
    # Negative control: before the change the host was fetched far faster.
    assert sorted(before)[len(before) // 2] < 0.3, before
    assert after and min(after) >= 0.75, after  # both workers obey the new delay
    assert "crawl settings changed" in log.read_text()


# -- caps ---------------------------------------------------------------------------------


def test_max_pages_ends_the_crawl_with_that_many_records(
        clean_redis: str, site: SiteServer, tmp_path: Path) -> None:
    crawl, log = "capped", tmp_path / "w.log"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    assert cli("config", "set", "--redis", clean_redis, "--crawl", crawl,
               "max_pages=100").returncode == 0
    procs = [worker(clean_redis, crawl, log, "--allow-private", "--delay", "0",
                    "--max-per-host", "4") for _ in range(2)]
    assert wait_exit(procs, 90) == [0, 0], log.read_text()[-2000:]
    records = read_results(clean_redis, crawl)
    # One shard: claims stop at done + leased = 100, so in-flight fetches
    # cannot overshoot; the site has 600 pages.
    assert len(records) == 100
    assert len({r["url"] for r in records}) == 100
    crawl_state = status(clean_redis, crawl)["crawl"]
    assert crawl_state["state"] == "stopped" and crawl_state["reason"] == "max_pages"
    assert stats(clean_redis, crawl)["queued"] > 0  # the rest stays queued, not lost
    # Resuming alone would be undone by the next worker at once: it is refused,
    # and says what goes on. Raised, the cap lets it resume.
    refused = cli("resume", "--redis", clean_redis, "--crawl", crawl)
    assert refused.returncode == 1 and "not resumed" in refused.stderr
    assert "crawl config set max_pages=N" in refused.stderr
    assert status(clean_redis, crawl)["crawl"]["state"] == "stopped"
    assert cli("config", "set", "--redis", clean_redis, "--crawl", crawl,
               "max_pages=110").returncode == 0
    assert cli("resume", "--redis", clean_redis, "--crawl", crawl).returncode == 0
    assert status(clean_redis, crawl)["crawl"]["state"] == "running"


def test_max_errors_stops_the_crawl(clean_redis: str, tmp_path: Path) -> None:
    crawl, log = "errors", tmp_path / "w.log"
    closed = free_port("127.0.0.2")  # nothing listens: every fetch is a connect error
    seed_sync(clean_redis, crawl, [f"http://127.0.0.{i}:{closed}/" for i in range(2, 40)])
    assert cli("config", "set", "--redis", clean_redis, "--crawl", crawl, "max_errors=5",
               "max_attempts=1", "obey_robots=false").returncode == 0
    # Two fetches in flight at most: the errors may pass the cap by those.
    proc = worker(clean_redis, crawl, log, "--allow-private", "--delay", "0",
                  "--concurrency", "2")
    assert wait_exit([proc], 60) == [0], log.read_text()[-2000:]
    errors = [r for r in read_results(clean_redis, crawl) if r["error"]]
    assert 5 <= len(errors) <= 5 + 2, len(errors)  # not the 38 the queue held
    assert status(clean_redis, crawl)["crawl"]["reason"] == "max_errors"


def test_max_duration_stops_the_crawl(clean_redis: str, site: SiteServer,
                                      tmp_path: Path) -> None:
    crawl, log = "timed", tmp_path / "w.log"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    # One request at a time a host, 0.02 s each: the 600 pages take 4 s and
    # more. The clock runs from the crawl's creation (the seed), on Redis's
    # clock, so a slow start counts too: at worst nothing is fetched.
    assert cli("config", "set", "--redis", clean_redis, "--crawl", crawl,
               "max_duration=2").returncode == 0
    proc = worker(clean_redis, crawl, log, "--allow-private", "--delay", "0")
    assert wait_exit([proc], 60) == [0], log.read_text()[-2000:]
    assert len(read_results(clean_redis, crawl)) < 600
    assert status(clean_redis, crawl)["crawl"]["reason"] == "max_duration"


# -- pause, resume, stop ------------------------------------------------------------------


def test_pause_stops_claims_on_every_worker_and_resume_goes_on(
        clean_redis: str, site: SiteServer, tmp_path: Path) -> None:
    crawl, log = "paused", tmp_path / "w.log"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    procs = [worker(clean_redis, crawl, log, "--allow-private", "--delay", "0")
             for _ in range(2)]
    wait_for(lambda: len(site.log.entries) >= 20, 30, "20 requests")
    assert cli("pause", "--redis", clean_redis, "--crawl", crawl).returncode == 0
    paused_at = time.monotonic()
    time.sleep(2.0)
    # Requests started more than 0.5 s after the pause: none (in-flight ones finish).
    late = [e for e in site.log.entries if e[2] > paused_at + 0.5]
    assert not late, late[:3]
    assert all(p.poll() is None for p in procs)  # paused workers wait, they do not exit
    assert status(clean_redis, crawl)["crawl"]["state"] == "paused"
    assert cli("resume", "--redis", clean_redis, "--crawl", crawl).returncode == 0
    resumed_at = time.monotonic()
    wait_for(lambda: any(e[2] > resumed_at for e in site.log.entries), 30, "a request")
    assert wait_exit(procs, 90) == [0, 0], log.read_text()[-2000:]
    assert len(read_results(clean_redis, crawl)) == 600


def test_stop_makes_every_worker_exit_and_drop_discards_the_queue(
        clean_redis: str, site: SiteServer, tmp_path: Path) -> None:
    crawl, log = "stopped", tmp_path / "w.log"
    seed_sync(clean_redis, crawl, site.spec.seeds())
    procs = [worker(clean_redis, crawl, log, "--allow-private", "--delay", "0")
             for _ in range(2)]
    wait_for(lambda: len(site.log.entries) >= 20, 30, "20 requests")
    declined = cli("stop", "--drop", "--redis", clean_redis, "--crawl", crawl, stdin="n\n")
    assert declined.returncode != 0 and stats(clean_redis, crawl)["queued"] > 0
    stopped = cli("stop", "--drop", "--yes", "--redis", clean_redis, "--crawl", crawl)
    assert stopped.returncode == 0 and "dropped" in stopped.stdout, stopped.stderr
    assert wait_exit(procs, 30) == [0, 0], log.read_text()[-2000:]
    after = stats(clean_redis, crawl)
    assert after["queued"] == 0 and after["leased"] == 0 and after["dropped"] > 0
    assert status(clean_redis, crawl)["crawl"] == {**status(clean_redis, crawl)["crawl"],
                                                   "state": "stopped", "reason": "operator"}
    # A worker started on a stopped crawl says so and exits.
    late = cli("worker", "--redis", clean_redis, "--crawl", crawl, "--allow-private",
               "--delay", "0")
    assert late.returncode == 0 and "is stopped" in late.stderr


@given(limit=st.integers(0, 10_000),
       shards=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 3000)),
                       min_size=1, max_size=64))
def test_allotments_sum_to_the_cap_and_go_where_urls_wait(
        limit: int, shards: list[tuple[int, int]]) -> None:
    used, queued = [u for u, _ in shards], [q for _, q in shards]
    caps = allotments(limit, used, queued)
    assert all(cap >= u for cap, u in zip(caps, used, strict=True))  # nothing taken back
    assert sum(caps) == max(limit, sum(used))
    if any(queued):  # a shard with nothing queued gets no share it could not use
        assert all(cap == u for cap, u, q in zip(caps, used, queued, strict=True) if q == 0)


async def test_a_stale_reading_of_the_counters_never_lets_the_shards_claim_past_max_pages(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shard 0 leases 5 pages under its allotment. A re-division then works from
    # counters read before that (as one read shard by shard, while they claim,
    # may): shard 0 used nothing, shard 1 has everything queued. Written as
    # they stand, those allotments (0 and 10) would let shard 1 claim 10 more.
    s = settings.replace(crawl="stalecap", shards=2, max_pages=10, max_per_host=100)
    host = {shard: next(h for h in (f"h{i}.test" for i in itertools.count())
                        if keys.shard_of(h, 2) == shard) for shard in (0, 1)}
    frontier = Frontier(redis, s)
    await frontier.add([(f"http://{host[0]}/{i}", 0) for i in range(20)])
    assert await control.enforce_caps(redis, s) == ""
    first: list[Any] = []
    while len(first) < 5:
        first += (await frontier.claim(5 - len(first), "w")).leases
    assert {lease.shard for lease in first} == {0} and len(first) == 5
    await frontier.add([(f"http://{host[1]}/{i}", 0) for i in range(20)])

    async def stale(_redis: Redis, _settings: Settings) -> list[dict[str, int]]:
        return [{"queued": 0, "done": 0, "leased": 0}, {"queued": 20, "done": 0, "leased": 0}]

    monkeypatch.setattr(control, "shard_counters", stale)
    await control.enforce_caps(redis, s)
    caps = [int(await redis.hget(shard.ctl, "cap") or 0) for shard in frontier.shards]
    assert sum(caps) <= 10 and caps[0] >= 5
    later: list[Any] = []
    while batch := (await frontier.claim(50, "w")).leases:
        later += batch
    assert len(first) + len(later) <= 10
    assert not await redis.exists(frontier.shards[0].caps_lock)  # released


async def test_a_crawl_created_on_a_clock_two_hours_behind_keeps_its_max_duration(
        redis: Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # The seeding machine's clock is 2 h behind Redis's; the checks run elsewhere.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 7200)
    s = await crawl_layout(redis, settings.replace(crawl="skewed", dedup_bucket_bits=0))
    await seed(redis, s, io.BytesIO(b"http://a.test/\n"))
    await control.pause(redis, s)
    monkeypatch.undo()
    server_now = await control.server_time(redis)
    assert abs(await control.created_at(redis, s) - server_now) < 60  # Redis's clock
    paused = await control.crawl_state(redis, s)
    assert paused.state == control.PAUSED and abs(paused.since - server_now) < 60
    await control.resume(redis, s)
    assert await control.enforce_caps(redis, s.replace(max_duration=3600)) == ""
    assert (await control.crawl_state(redis, s)).state == control.RUNNING
    # Negative control: once max_duration has passed on Redis's clock, it stops.
    age = await control.server_time(redis) - await control.created_at(redis, s)
    await asyncio.sleep(max(0.0, 1.05 - age))
    assert await control.enforce_caps(redis, s.replace(max_duration=1)) == "max_duration"
    assert (await control.crawl_state(redis, s)).state == control.STOPPED
