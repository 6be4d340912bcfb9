"""The frontier on a real Valkey Cluster: 3 masters and 3 replicas from the bundled binary.

Each test that breaks the cluster (a killed master, a resharding) starts its
own; the others share one (the `cluster` fixture of conftest.py, which the
consumer example's test uses too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from crawl_helpers import ROOT
from redis.crc import key_slot
from redis.exceptions import ClusterDownError

from crawler import keys
from crawler.bench.cluster import LocalCluster
from crawler.bench.sitegen import SiteServer, SiteSpec, expected, free_port
from crawler.config import Settings
from crawler.connection import connect
from crawler.crawls import cluster_tags, crawl_layout
from crawler.frontier import Frontier


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
        client = await connect(Settings(redis_url=f"redis://127.0.0.1:{node.port}/0"))
        try:
            settings = await crawl_layout(client, Settings(crawl=f"find{node.port}"))
            assert settings.shards == 12 and len(settings.shard_tags) == 12
        finally:
            await client.aclose()
    forced = await connect(Settings(redis_url=cluster.url.replace("redis://",
                                                                   "redis+cluster://")))
    await forced.aclose()


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
