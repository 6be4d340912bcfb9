"""Faults on a real Valkey cluster: workers killed, a master killed, slots moved mid-crawl.

The outcomes asserted here are the ones the README's Guarantees state:

- worker kill -9s: every page exactly one good result (as on one server);
- a master kill -9: a replica takes over, the workers ride it out, the crawl
  ends, no page has two results; without ``wait_replicas`` the writes of the
  last moments before the crash may be lost (a page fetched again, or at
  worst a link never queued), so a few pages may be missing; with
  ``wait_replicas = 1`` none is;
- a live ``redis-cli --cluster reshard`` of every slot of a master: every
  page exactly one good result.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from fault_helpers import (
    assert_exactly_one_ok_result_per_page,
    client,
    kill_workers_mid_crawl,
    read_results,
    seed_sync,
    shards,
    start_worker,
    stats,
    wait_exit,
    wait_for,
)
from redis.crc import key_slot

from crawler.bench.cluster import LocalCluster, Node
from crawler.bench.sitegen import SiteServer, SiteSpec, expected, free_port, make_app
from crawler.store import keys
from crawler.store.keys import shard_of
from crawler.store.layout import SHARDS_PER_MASTER, cluster_tags
from crawler.urls import host_key

REDIS_CLI = shutil.which("valkey-cli") or shutil.which("redis-cli")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


def test_kill_9_of_random_workers_on_a_cluster_loses_and_duplicates_nothing(
        cluster: LocalCluster, tmp_path: Path) -> None:
    spec = SiteSpec(hosts=3, pages=60, links=6, page_bytes=600, port=free_port())
    with SiteServer(spec, slow={ip: 0.08 for ip in spec.host_ips()}):
        kill_workers_mid_crawl(cluster.url, spec, tmp_path / "workers.log")


@pytest.mark.skipif(REDIS_CLI is None, reason="redis-cli (Debian redis-tools) is not installed")
def test_a_crawl_across_a_live_reshard_gives_one_good_result_per_page(
        cluster: LocalCluster, tmp_path: Path) -> None:
    assert REDIS_CLI is not None
    log = tmp_path / "workers.log"
    spec = SiteSpec(hosts=12, pages=60, links=6, page_bytes=600, port=free_port())
    # redis-cli moves a master's slots from its lowest up, some 80 a second: a shard
    # whose slot lies deep in its master's range costs seconds of moves for
    # nothing. Pick the crawl name and the held host (below) whose shard's slot
    # lies lowest, so that few slots move; which ones is the cluster's (random ports).
    crawl = min((f"reshard{i}" for i in range(40)),
                key=lambda name: min(_depths(cluster, name).values()))
    depths = _depths(cluster, crawl)
    # That host answers nothing until the reshard is over: the crawl cannot end
    # before it, however slow the machine (fetches wait, up to 120 s), and its
    # shard holds a URL throughout (leased, or queued).
    reshard_over = threading.Event()
    held_ip = spec.host_ips()[min(range(spec.hosts), key=lambda h: depths[
        shard_of(host_key(spec.origin(h) + "/"), len(depths))])]

    @web.middleware
    async def hold(request: web.Request, handler: Any) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        while sockname and sockname[0] == held_ip and not reshard_over.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        response: web.StreamResponse = await handler(request)
        return response

    app = make_app(spec, None, {ip: 0.02 for ip in spec.host_ips()})
    app.middlewares.insert(0, hold)
    with SiteServer(spec, app=app):
        seed_sync(cluster.url, crawl, spec.seeds())
        workers = [start_worker(cluster.url, crawl, "--max-per-host", "1", log=log,
                                env={"CRAWL_TOTAL_TIMEOUT": "120", "CRAWL_READ_TIMEOUT": "120"})
                   for _ in range(2)]
        wait_for(lambda: stats(cluster.url, crawl).get("done", 0) >= 30, 60, "30 results")
        # redis-cli takes a source's slots from the lowest up: move the fewest
        # that carry one shard holding URLs (never all of a master's slots: a
        # master left with none turns replica, and Valkey refuses the last move).
        redis = client(cluster.url)
        busy = {key_slot(s.base.encode()) for s in shards(cluster.url, crawl)
                if any(int(n or 0) > 0 for n in redis.hmget(s.stats, "queued", "leased"))}
        masters = cluster.master_nodes()
        count, source, slot = min((sorted(_slots(m)).index(slot) + 1, m, slot)
                                  for m in masters for slot in busy & _slots(m))
        target = next(m for m in masters if m is not source)
        ids = [str(n.client.execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]
               for n in (source, target)]
        began = time.monotonic()
        moved = subprocess.run(
            [REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{source.port}",
             "--cluster-from", ids[0], "--cluster-to", ids[1], "--cluster-slots", str(count),
             "--cluster-yes", "--cluster-pipeline", "100"],
            capture_output=True, text=True, timeout=300)
        reshard_over.set()
        assert moved.returncode == 0, moved.stdout[-2000:] + moved.stderr[-2000:]
        done_during = stats(cluster.url, crawl).get("done", 0)
        print(f"reshard of {count} slots took {time.monotonic() - began:.1f}s")
        codes = wait_exit(workers, timeout=120)
    assert slot not in _slots(source) and slot in _slots(target)  # a shard moved mid-crawl
    assert codes == [0, 0], log.read_text()[-2000:]
    assert done_during < len(expected(spec)), "the crawl ended before the reshard did"
    assert_exactly_one_ok_result_per_page(read_results(cluster.url, crawl), spec)


def _depths(cluster: LocalCluster, crawl: str) -> dict[int, int]:
    """Shard -> how many of its master's slots lie below its own, for a new crawl
    named ``crawl`` (its shards spread over the masters as ``crawl_layout`` does)."""
    ranges = {f"127.0.0.1:{m.port}": sorted(_slots(m)) for m in cluster.master_nodes()}
    owners = [""] * 16384
    for name, slots in ranges.items():
        for slot in slots:
            owners[slot] = name
    n = SHARDS_PER_MASTER * len(ranges)
    out = {}
    for s in keys.all_shards(crawl, n, tuple(cluster_tags(crawl, n, owners))):
        slot = key_slot(s.base.encode())
        out[s.shard] = ranges[owners[slot]].index(slot)
    return out


def _slots(node: Node) -> set[int]:
    """The slots a master serves now, from its own CLUSTER NODES line."""
    myid = node.client.execute_command("CLUSTER", "MYID")  # type: ignore[no-untyped-call]
    nodes = node.client.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
    for line in str(nodes).splitlines():
        fields = line.split()
        if fields[0] == myid:
            slots: set[int] = set()
            for part in fields[8:]:
                if not part.startswith("["):  # "[slot->-id]": being imported or migrated
                    low, _, high = part.partition("-")
                    slots.update(range(int(low), int(high or low) + 1))
            return slots
    return set()


@pytest.mark.parametrize("wait_replicas", [0, 1])
def test_a_master_killed_mid_crawl_fails_over_and_the_crawl_completes(
        tmp_path: Path, wait_replicas: int) -> None:
    crawl, log = "failover", tmp_path / "workers.log"
    spec = SiteSpec(hosts=6, pages=250, port=free_port())
    env = {"CRAWL_WAIT_REPLICAS": str(wait_replicas), "CRAWL_WAIT_TIMEOUT": "0.5"}
    with LocalCluster(tmp_path / "cluster") as cluster, \
            SiteServer(spec, slow={ip: 0.003 for ip in spec.host_ips()}) as site:
        seed_sync(cluster.url, crawl, spec.seeds())
        workers = [start_worker(cluster.url, crawl, "--lease-time", "10", log=log, env=env)
                   for _ in range(2)]
        wait_for(lambda: len(site.log.entries) >= 400, 60, "400 fetches")
        victim = cluster.master_nodes()[1]
        assert any(True for _ in victim.client.scan_iter(match=f"crawl:{{{crawl}:*"))
        cluster.kill(victim)
        # Forget the dead node: every ping of it waits out redis-py's retries (about
        # 4 s), which only slowed wait_failover's polls; the others still must agree.
        cluster.nodes.remove(victim)
        killed_at = len(site.log.entries)
        cluster.wait_failover(60)
        codes = wait_exit(workers, timeout=180)
        records = read_results(cluster.url, crawl)
        fetches = Counter((host, path) for host, path, _, _ in site.log.entries if "/p/" in path)
    assert codes == [0, 0], log.read_text()[-3000:]
    assert killed_at < len(expected(spec)), "the crawl ended before the kill"
    assert "unreachable" in log.read_text()  # the workers did ride a failover out
    urls = Counter(r["url"] for r in records)
    assert max(urls.values()) == 1, [u for u, n in urls.items() if n > 1][:3]  # never twice
    assert all(r["error"] is None for r in records), [r for r in records if r["error"]][:3]
    missing = set(expected(spec)) - set(urls)
    figures = {"wait_replicas": wait_replicas, "pages": len(expected(spec)),
               "missing": len(missing), "refetched": sum(n > 1 for n in fetches.values())}
    print(json.dumps(figures))
    if wait_replicas:
        assert not missing, figures
    else:
        assert len(missing) <= len(expected(spec)) // 100, figures
