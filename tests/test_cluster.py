"""The frontier on a real Valkey Cluster: 3 masters and 3 replicas from the bundled binary.

Each test that breaks the cluster (a killed master, a resharding) starts its
own; the others share one (the ``cluster`` fixture of conftest.py, which the
consumer example's test uses too), whose nodes require a password and which
the tests reach as an ACL user (``redis://crawler:<password>@...``), so that
every command, node client and script pipeline here authenticates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import CLUSTER_PASSWORD as PASSWORD
from conftest import CLUSTER_USER as USER
from crawl_helpers import ROOT, results, seed_urls
from politeness_site import Span, audit
from redis.crc import key_slot
from redis.exceptions import ClusterDownError

from crawler.bench.cluster import LocalCluster
from crawler.bench.sitegen import SiteServer, SiteSpec, expected, free_port
from crawler.config import HostPolicy, Settings
from crawler.errors import RedisUnavailable
from crawler.frontier import Frontier
from crawler.store import keys
from crawler.store.connection import connect
from crawler.store.layout import cluster_tags, crawl_layout
from crawler.worker import Worker


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}


def crawl_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def worker_proc(url: str, crawl: str, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "crawler", "worker", "--redis", url,
                             "--crawl", crawl, "--allow-private", "--delay", "0", "--quiet",
                             *extra], cwd=ROOT, env=env(), stderr=subprocess.PIPE)


def export(url: str, crawl: str, tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / f"{crawl}.jsonl"
    done = crawl_cli("export", "--redis", url, "--crawl", crawl, str(out), "--force")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_shards_spread_evenly_over_the_masters() -> None:
    owners = ["a"] * 5461 + ["b"] * 5461 + ["c"] * 5462
    tags = cluster_tags("demo", 12, owners)
    per_master = Counter(owners[key_slot(tag.encode())] for tag in tags)
    assert per_master == {"a": 4, "b": 4, "c": 4}
    assert len(set(tags)) == 12


async def test_the_client_finds_the_cluster_from_any_node(cluster: LocalCluster) -> None:
    for node in cluster.master_nodes()[1:2] + cluster.nodes[-1:]:  # a master, a replica
        client = await connect(Settings(redis_url=cluster.node_url(node)))
        try:
            settings = await crawl_layout(client, Settings(crawl=f"find{node.port}"))
            assert settings.shards == 12 and len(settings.shard_tags) == 12
        finally:
            await client.aclose()
    forced = await connect(Settings(redis_url=cluster.url.replace("redis://",
                                                                   "redis+cluster://")))
    await forced.aclose()


def seed_list_url(cluster: LocalCluster, ports: list[int], scheme: str = "redis") -> str:
    return f"{scheme}://{USER}:{PASSWORD}@" + ",".join(f"127.0.0.1:{p}" for p in ports) + "/0"


def test_commands_start_when_the_first_of_several_seed_nodes_is_down(
        cluster: LocalCluster, tmp_path: Path) -> None:
    """`--redis` names several nodes, the first one dead (as a master that just
    died would be): seed, a worker, status and export all start and do their job."""
    dead = free_port()  # nothing listens there
    alone = seed_list_url(cluster, [dead])
    refused = crawl_cli("status", "--redis", alone, "--crawl", "seeds")
    assert refused.returncode == 2 and "cannot reach Redis" in refused.stderr  # the old case
    url = seed_list_url(cluster, [dead, *(n.port for n in cluster.nodes[1:3])], "redis+cluster")
    spec = SiteSpec(hosts=2, pages=12, port=free_port())
    with SiteServer(spec):
        (tmp_path / "seeds.txt").write_text("\n".join(spec.seeds()))
        seeded = crawl_cli("seed", "--redis", url, "--crawl", "seeds", str(tmp_path / "seeds.txt"))
        assert seeded.returncode == 0, seeded.stderr
        crawled = worker_proc(url, "seeds")
        assert crawled.wait(120) == 0, crawled.stderr.read() if crawled.stderr else b""
    status = crawl_cli("status", "--redis", url, "--crawl", "seeds")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["done"] == len(expected(spec))
    records = export(seed_list_url(cluster, [dead, cluster.nodes[-1].port]), "seeds", tmp_path)
    assert Counter(r["url"] for r in records) == Counter(list(expected(spec)))


def test_several_seed_nodes_all_down_is_one_line_without_the_password(
        cluster: LocalCluster) -> None:
    url = seed_list_url(cluster, [free_port(), free_port()])
    done = crawl_cli("status", "--redis", url, "--crawl", "seeds")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"cannot reach Redis at redis://{USER}:***@127.0.0.1:" in line, line
    assert PASSWORD not in done.stderr
    bad = crawl_cli("status", "--redis", url.replace("/0", ",127.0.0.1:x/0"))
    assert bad.returncode == 2 and "seed node 3: port 'x'" in bad.stderr, bad.stderr
    assert PASSWORD not in bad.stderr


def test_a_crawl_on_a_cluster_gives_one_correct_record_per_page(
        cluster: LocalCluster, tmp_path: Path) -> None:
    spec = SiteSpec(hosts=6, pages=60, port=free_port())
    with SiteServer(spec):
        (tmp_path / "seeds.txt").write_text("\n".join(spec.seeds()))
        seeded = crawl_cli("seed", "--redis", cluster.url, "--crawl", "e2e",
                           str(tmp_path / "seeds.txt"))
        assert seeded.returncode == 0, seeded.stderr
        workers = [worker_proc(cluster.url, "e2e") for _ in range(2)]
        codes = [w.wait(120) for w in workers]
    assert codes == [0, 0], [w.stderr.read() if w.stderr else b"" for w in workers]
    records = export(cluster.url, "e2e", tmp_path)
    truth = expected(spec)
    assert Counter(r["url"] for r in records) == Counter(list(truth))  # each page once
    assert all((r["title"], r["links"]) == truth[r["url"]] for r in records)
    for master in cluster.master_nodes():  # the crawl's keys are on every master
        assert any(True for _ in master.client.scan_iter(match="crawl:{e2e:*", count=1000))
    status = json.loads(crawl_cli("status", "--redis", cluster.url, "--crawl", "e2e").stdout)
    assert len({row["node"] for row in status["by_shard"]}) == 3


async def test_a_script_stops_before_any_write_while_its_slot_migrates(
        cluster: LocalCluster) -> None:
    client = await connect(Settings(redis_url=cluster.url))
    try:
        settings = await crawl_layout(client, Settings(crawl="migrating", max_per_host=9,
                                                       delay=0))
        frontier = Frontier(client, settings)
        await frontier.add([("http://a.test/1", 0)])
        shard = frontier.shards[keys.shard_of("a.test", settings.shards)]
        slot = key_slot(shard.base.encode())
        owner = client.nodes_manager.get_node_from_slot(slot)  # type: ignore[attr-defined]
        source = next(n for n in cluster.nodes if n.port == int(owner.port))
        target = next(n for n in cluster.master_nodes() if n.port != source.port)
        target_id = target.client.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
        source.client.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)  # type: ignore[no-untyped-call]
        before = sorted(source.client.keys(shard.base + "*"))
        try:
            frontier.scripts.retry_window = 1.0  # type: ignore[attr-defined]
            with pytest.raises(ClusterDownError, match="unplaced"):
                await frontier.add([("http://a.test/2", 0)])
            assert sorted(source.client.keys(shard.base + "*")) == before  # nothing written
        finally:
            source.client.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")  # type: ignore[no-untyped-call]
        assert (await frontier.add([("http://a.test/2", 0)])).added == 1
    finally:
        await client.aclose()


def _wait_exit(procs: list[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(max(0.1, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_crawl_list_and_delete_reach_every_master(cluster: LocalCluster, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("".join(f"http://127.0.0.{2 + i}:9/p{i}\n" for i in range(40)))
    for name in ("gone", "kept"):
        done = crawl_cli("seed", "--redis", cluster.url, "--crawl", name, str(seeds))
        assert done.returncode == 0, done.stderr
    listed = crawl_cli("list", "--redis", cluster.url, "--json")
    rows = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines())}
    assert rows["gone"]["queued"] == 40 and rows["gone"]["shards"] == 12

    def keys_of(name: str) -> list[str]:
        return sorted(key for master in cluster.master_nodes()
                      for key in master.client.scan_iter(match=f"crawl:{{{name}*", count=1000))

    kept = keys_of("kept")
    assert len({key.split("}")[0] for key in keys_of("gone")}) == 13  # 12 shards + crawl-wide
    done = crawl_cli("delete", "--redis", cluster.url, "gone", "--yes")
    assert done.returncode == 0, done.stderr
    assert keys_of("gone") == []
    assert keys_of("kept") == kept
    listed = crawl_cli("list", "--redis", cluster.url, "--json")
    assert "gone" not in {r["name"] for r in map(json.loads, listed.stdout.splitlines())}


def test_max_pages_holds_across_the_shards_of_a_cluster(
        cluster: LocalCluster, tmp_path: Path) -> None:
    spec = SiteSpec(hosts=12, pages=50, links=6, page_bytes=600, port=free_port())
    with SiteServer(spec, slow={ip: 0.01 for ip in spec.host_ips()}):
        (tmp_path / "seeds.txt").write_text("\n".join(spec.seeds()))
        assert crawl_cli("seed", "--redis", cluster.url, "--crawl", "capped",
                         str(tmp_path / "seeds.txt")).returncode == 0
        assert crawl_cli("config", "set", "--redis", cluster.url, "--crawl", "capped",
                         "max_pages=100").returncode == 0
        workers = [worker_proc(cluster.url, "capped", "--max-per-host", "4") for _ in range(2)]
        codes = [w.wait(120) for w in workers]
    assert codes == [0, 0]
    records = export(cluster.url, "capped", tmp_path)
    # 12 shards, each claiming within its share of the cap: exactly 100 of 600.
    assert len(records) == len({r["url"] for r in records}) == 100
    status = json.loads(crawl_cli("status", "--redis", cluster.url, "--crawl", "capped").stdout)
    assert status["crawl"]["reason"] == "max_pages" and status["shards"] == 12


def _set_slots(cluster: LocalCluster, client: Any, slots: set[int], state: str) -> None:
    """Mark each slot MIGRATING (to another master) on its owner, or STABLE again."""
    for slot in slots:
        port = int(client.nodes_manager.get_node_from_slot(slot).port)
        owner = next(n for n in cluster.nodes if n.port == port)
        args: tuple[Any, ...] = ("STABLE",)
        if state == "MIGRATING":
            target = next(m for m in cluster.master_nodes() if m.port != port)
            args = ("MIGRATING", target.client.execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]
        owner.client.execute_command("CLUSTER", "SETSLOT", slot, *args)  # type: ignore[no-untyped-call]


async def test_a_migration_longer_than_the_retry_window_does_not_end_a_worker(
        cluster: LocalCluster, caplog: pytest.LogCaptureFixture) -> None:
    """Past its retry window the runner raises ClusterDownError; the worker rides
    that out like any Redis outage, with a warning, and the crawl completes."""
    spec = SiteSpec(hosts=3, pages=30, links=4, page_bytes=600, port=free_port())
    client = await connect(Settings(redis_url=cluster.url))
    slots: set[int] = set()
    try:
        settings = await crawl_layout(client, Settings(
            crawl="longmove", allow_private=True, delay=0, max_per_host=2))
        with SiteServer(spec, slow={ip: 0.03 for ip in spec.host_ips()}) as site, \
                caplog.at_level(logging.WARNING, "crawler.worker"):
            await seed_urls(client, settings, spec.seeds())
            worker = Worker(client, settings)
            worker.frontier.scripts.retry_window = 0.3  # type: ignore[attr-defined]
            running = asyncio.create_task(worker.run())
            # Once every host's robots.txt is in and pages flow, every shard's slot moves.
            await _until(lambda: len(site.log.entries) >= 12 or running.done(), 60)
            assert not running.done()
            slots = {key_slot(shard.base.encode()) for shard in worker.frontier.shards}
            _set_slots(cluster, client, slots, "MIGRATING")
            await _until(lambda: "redis unavailable" in caplog.text or running.done(), 60)
            await asyncio.sleep(0.5)
            assert not running.done(), running.exception()  # ClusterDownError ended it before
            _set_slots(cluster, client, slots, "STABLE")
            slots = set()
            async with asyncio.timeout(90):
                await running
        assert "ClusterDownError" in caplog.text or "unplaced" in caplog.text
        records = await results(client, settings)
        assert sorted(r["url"] for r in records) == sorted(expected(spec))  # each page once
    finally:
        if slots:
            _set_slots(cluster, client, slots, "STABLE")
        await client.aclose()


async def _until(condition: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)



async def test_a_wrong_or_missing_password_is_one_line_without_the_password(
        cluster: LocalCluster) -> None:
    assert cluster.url.startswith(f"redis://{USER}:{PASSWORD}@127.0.0.1:")
    port = cluster.nodes[0].port
    for bad in (cluster.url.replace(PASSWORD, "wrong-pw"),
                cluster.url.replace("redis://", "redis+cluster://").replace(PASSWORD, "wrong")):
        done = crawl_cli("status", "--redis", bad, "--crawl", "e2e")
        assert done.returncode == 2, (bad, done.stderr)
        [line] = done.stderr.strip().splitlines()
        assert f"cannot reach Redis at {bad.split(':', 1)[0]}://{USER}:***@" in line, line
        assert "invalid username-password pair" in line
        assert PASSWORD not in done.stderr and "wrong" not in done.stderr
    with pytest.raises(RedisUnavailable, match="requires a password"):
        await connect(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))


# -- politeness across the masters: the server's own log, 2 worker processes -----------

POLITE = SiteSpec(hosts=8, pages=12, links=6)
SLOW = {"127.0.0.2": 0.15, "127.0.0.3": 0.15, "127.0.0.4": 0.08, "127.0.0.5": 0.08}
OVERRIDES = {"127.0.0.2": HostPolicy(2, 0.1), "127.0.0.3": HostPolicy(2, 0.1),
             "127.0.0.4": HostPolicy(1, 0.2)}
DEFAULT_DELAY = 0.05
TOLERANCE = 0.005  # as in test_politeness: the server's own read lag, not the crawler's
# (a longer stall of the server's loop is measured: SiteServer(watch_stalls=True))


def polite_crawl(cluster: LocalCluster, tmp_path: Path, crawl: str, flags: list[str],
                 ) -> tuple[dict[str, list[Span]], set[str], set[int], Callable[[float], float]]:
    """Crawl with 2 `crawl worker` processes: the server's spans by host, the
    workers that crawled, the masters (ports) holding the hosts' shards, and
    how long the server's loop may have stalled before a start."""
    spec = SiteSpec(hosts=POLITE.hosts, pages=POLITE.pages, links=POLITE.links,
                    port=free_port())
    with SiteServer(spec, slow=SLOW, watch_stalls=True) as site:
        (tmp_path / "seeds.txt").write_text("\n".join(spec.seeds()))
        seeded = crawl_cli("seed", "--redis", cluster.url, "--crawl", crawl,
                           str(tmp_path / "seeds.txt"))
        assert seeded.returncode == 0, seeded.stderr
        workers = [subprocess.Popen(
            [sys.executable, "-m", "crawler", "worker", "--redis", cluster.url, "--crawl", crawl,
             "--allow-private", "--quiet", *flags],
            cwd=ROOT, env=env(), stderr=subprocess.PIPE) for _ in range(2)]
        codes = _wait_exit(workers, 90)
        log = site.log.by_host()
    assert codes == [0, 0], [w.stderr.read() if w.stderr else b"" for w in workers]
    records = export(cluster.url, crawl, tmp_path)
    assert Counter(r["url"] for r in records) == Counter(list(expected(spec)))
    status = json.loads(crawl_cli("status", "--redis", cluster.url, "--crawl", crawl).stdout)
    spans = {ip: [(s, e) for s, e, _ in hits] for ip, hits in log.items()}
    return (spans, {r["worker"] for r in records},
            {row["node"] for row in status["by_shard"] if row["done"]}, site.log.stall_at)


def polite_limits() -> dict[str, tuple[int, float]]:
    settings = Settings(delay=DEFAULT_DELAY, max_per_host=1, host_overrides=OVERRIDES)
    return {ip: (settings.policy_for(ip).max_per_host, settings.policy_for(ip).delay)
            for ip in POLITE.host_ips()}


def test_politeness_holds_across_masters_and_worker_processes_in_the_server_log(
        cluster: LocalCluster, tmp_path: Path) -> None:
    config = tmp_path / "limits.toml"
    config.write_text("\n".join(["[hosts]"] + [
        f'"{ip}" = {{ max_per_host = {p.max_per_host}, delay = {p.delay} }}'
        for ip, p in OVERRIDES.items()]))
    spans, workers, masters, stall_at = polite_crawl(
        cluster, tmp_path, "polite",
        ["--delay", str(DEFAULT_DELAY), "--max-per-host", "1", "--config", str(config)])
    assert len(workers) == 2 and len(masters) >= 2, (workers, masters)
    problems, figures = audit(spans, polite_limits().__getitem__, TOLERANCE, stall_at)
    print({h: (f.requests, f.max_in_flight, round(f.min_gap * 1000, 1))
           for h, f in figures.items()})
    assert problems == []
    assert figures["127.0.0.2"].max_in_flight == 2  # the limit of 2 was used, not just kept


def test_the_cluster_politeness_check_finds_violations_with_the_limits_lifted(
        cluster: LocalCluster, tmp_path: Path) -> None:
    spans, _, _, stall_at = polite_crawl(cluster, tmp_path, "rude",
                                         ["--delay", "0", "--max-per-host", "50"])
    problems, figures = audit(spans, polite_limits().__getitem__, TOLERANCE, stall_at)
    assert any("in flight" in p for p in problems), figures
    assert any("apart" in p for p in problems), figures
    assert figures["127.0.0.2"].max_in_flight > 2


def test_no_node_of_a_local_cluster_gets_another_ones_bus_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The picker once gave 39207 and 49207: the first node's bus port was the second's
    client port, and that node could not start (seen once in the suite)."""
    from crawler.bench import cluster as cluster_module

    offered = iter([39207, 49207, 39207, 41000, 42000])

    class Picked:
        def __init__(self, *_: object) -> None:
            self.port = 0

        def __enter__(self) -> Picked:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def bind(self, address: tuple[str, int]) -> None:
            self.port = next(offered) if address[1] == 0 else address[1]

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(cluster_module.socket, "socket", Picked)
    ports = cluster_module._free_ports(3)
    assert ports == [39207, 41000, 42000]


async def test_a_stopped_crawl_ends_a_follow_on_a_cluster_too(cluster: LocalCluster) -> None:
    """crawl_end reads every shard's leases and waiting URLs in one pipeline, whose
    keys lie on all three masters."""
    import io

    from crawler.discovery.seeds import seed
    from crawler.frontier.workers import crawl_end
    from crawler.observe import control

    client = await connect(Settings(redis_url=cluster.url))
    try:
        s = await crawl_layout(client, Settings(redis_url=cluster.url, crawl="ended"))
        await seed(client, s, io.BytesIO(b"http://a.test/1\nhttp://b.test/2\nhttp://c.test/3\n"))
        assert await crawl_end(client, s) == ""  # running, URLs queued
        await control.stop(client, s, "max_pages")
        assert await crawl_end(client, s) == "stopped (max_pages)"
    finally:
        await client.aclose()
