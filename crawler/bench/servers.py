"""The Valkey a benchmark crawl runs on: one embedded server, or a local cluster.

Either way the run needs the same things from it: a URL for the workers, the
CPU each master used (``INFO cpu``), counters summed over the masters, and the
crawl's results and dedup sets read back from whichever node holds each shard.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as sync_redis
from redis.cluster import RedisCluster

from crawler.bench.cluster import LocalCluster
from crawler.store import keys


@dataclass
class BenchRedis:
    """A fresh Valkey (``masters`` = 0) or a fresh ``masters``-master cluster under ``work``."""

    work: Path
    masters: int = 0
    replicas: int = 0  # replicas per master, on a cluster
    url: str = ""
    pids: list[int] = field(default_factory=list)  # the masters'
    replica_pids: list[int] = field(default_factory=list)
    _home: Path | None = None
    _cluster: LocalCluster | None = None
    _nodes: list[sync_redis.Redis] = field(default_factory=list)  # the masters
    _replica_nodes: list[sync_redis.Redis] = field(default_factory=list)
    _router: Any = None  # a client that sends each key to its node

    def start(self) -> BenchRedis:
        from crawler.store.server import ensure_server

        home = Path(tempfile.mkdtemp(prefix="v", dir=self.work))
        self._home = home
        if self.masters:
            self._cluster = LocalCluster(home, masters=self.masters,
                                         replicas=self.replicas).start()
            self.url = self._cluster.url
            pids = [n.proc.pid for n in self._cluster.nodes if n.proc is not None]
            self.pids, self.replica_pids = pids[:self.masters], pids[self.masters:]
            self._nodes = [sync_redis.Redis(port=n.port)
                           for n in self._cluster.nodes[:self.masters]]
            self._replica_nodes = [sync_redis.Redis(port=n.port)
                                   for n in self._cluster.nodes[self.masters:]]
            self._router = RedisCluster.from_url(self.url)
        else:
            self.url = ensure_server(home)
            self.pids = [int((home / "valkey.pid").read_text())]
            self._nodes = [sync_redis.Redis.from_url(self.url)]
            self._router = self._nodes[0]
        return self

    def stop(self) -> None:
        from crawler.store.server import stop_server

        for client in self._nodes + self._replica_nodes:
            client.close()
        if self._router is not None and self.masters:
            self._router.close()
        if self._cluster is not None:
            self._cluster.stop()
        elif self._home is not None:
            stop_server(self._home)

    def __enter__(self) -> BenchRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- counters -------------------------------------------------------------

    def cpu(self) -> list[float]:
        """CPU seconds used so far by each master.

        From ``INFO cpu`` (the server's getrusage, to the microsecond), not
        /proc/<pid>/stat: that counts in 10 ms clock ticks, and a small crawl
        costs Valkey less than one (90 pages, about 5 ms: it read 0).
        """
        return [_info_cpu(client) for client in self._nodes]

    def replica_cpu(self) -> float:
        """CPU seconds used so far by all the replicas together."""
        return sum(_info_cpu(client) for client in self._replica_nodes)

    def info(self) -> dict[str, int]:
        """The INFO counters the report uses, summed over the masters."""
        total = {"reads": 0, "commands": 0, "evalsha": 0, "used_memory": 0}
        for client in self._nodes:
            info: dict[str, Any] = client.info("all")
            total["reads"] += int(info["total_reads_processed"])
            total["commands"] += int(info["total_commands_processed"])
            stat = info.get("cmdstat_evalsha")
            total["evalsha"] += int(stat["calls"]) if isinstance(stat, dict) else 0
            total["used_memory"] += int(info["used_memory"])
        return total

    # -- the crawl's data -------------------------------------------------------

    def shards(self, crawl: str) -> list[keys.ShardKeys]:
        raw: Any = self._router.hget(keys.meta_key(crawl), "layout")
        layout = json.loads(raw)
        return keys.all_shards(crawl, int(layout["shards"]),
                               tuple(layout.get("shard_tags") or ()))

    def records(self, crawl: str) -> list[dict[str, Any]]:
        """Every record in the results streams, with ``_written``: the server's clock then."""
        records = []
        for shard in self.shards(crawl):
            start = "-"
            while True:
                page: Any = self._router.xrange(shard.results, min=start, max="+", count=1000)
                for entry_id, fields in page:
                    record = json.loads(fields[b"r"])
                    record["_written"] = int(entry_id.split(b"-")[0]) / 1000
                    records.append(record)
                if len(page) < 1000:
                    break
                start = "(" + page[-1][0].decode()
        return records

    def seen(self, crawl: str) -> int:
        return sum(int(self._router.hget(s.stats, "seen") or 0) for s in self.shards(crawl))

    def seen_set_bytes(self) -> tuple[int, int]:
        """(MEMORY USAGE summed over every dedup set on every master, how many sets)."""
        sizes = [seen_set_bytes(client) for client in self._nodes]
        return sum(b for b, _ in sizes), sum(n for _, n in sizes)


def seen_set_bytes(client: sync_redis.Redis) -> tuple[int, int]:
    """(MEMORY USAGE summed over the dedup sets of one server, how many sets)."""
    total = sets = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match="*:seen:*", count=1000):
        batch.append(key)
        if len(batch) == 500:
            total, sets = total + _usage(client, batch), sets + len(batch)
            batch = []
    return total + _usage(client, batch), sets + len(batch)


def _usage(client: sync_redis.Redis, keys_: list[bytes]) -> int:
    pipe = client.pipeline(transaction=False)
    for key in keys_:
        pipe.memory_usage(key, samples=0)
    return sum(int(n or 0) for n in pipe.execute())


def _info_cpu(client: sync_redis.Redis) -> float:
    """used_cpu_sys + used_cpu_user of one server, in seconds."""
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
