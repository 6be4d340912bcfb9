"""``crawl server start --cluster N``: a local Valkey Cluster from the bundled binary.

For trying and testing the cluster mode on one machine, without Docker:
N masters (and ``--replicas`` replicas each) on 127.0.0.1, built as
crawler.bench.cluster builds the test suite's (``docker/compose-cluster.yaml``
is the deployment's shape). Its nodes keep their files in ``<home>/cluster``,
and ``cluster.json`` there lists their ports, so ``crawl server stop
--cluster`` finds them. Not persistent: the nodes keep no append-only file,
and stopping the cluster removes its directory with every crawl on it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

from crawler.errors import CrawlError
from crawler.store.server import home_dir

STATE = "cluster.json"
STOP_TIMEOUT = 15.0


def cluster_dir(home: str | None) -> Path:
    return home_dir(home) / "cluster"


def cluster_url(ports: list[int]) -> str:
    """``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...``: every master a seed node."""
    return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


def _client(port: int) -> Any:
    """A client that tries once: redis-py's default retries (with backoff) would spend
    seconds on every node that is, as wanted, gone."""
    import redis as sync_redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return sync_redis.Redis(host="127.0.0.1", port=port, socket_timeout=5,
                            retry=Retry(NoBackoff(), 0))


def _answers(port: int) -> bool:
    import redis as sync_redis

    try:
        return bool(_client(port).ping())
    except sync_redis.RedisError:
        return False


def _state(where: Path) -> dict[str, list[int]] | None:
    try:
        state = json.loads((where / STATE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def start_cluster(home: str | None, masters: int, replicas: int) -> tuple[str, bool]:
    """(the cluster's URL, whether it was started now); one already running is reused."""
    from crawler.bench.cluster import LocalCluster

    if masters < 3:
        raise CrawlError(f"--cluster: a Valkey Cluster needs 3 masters at least, got {masters}")
    if not 0 <= replicas <= 5:
        raise CrawlError(f"--replicas: expected 0 to 5 replicas a master, got {replicas}")
    where = cluster_dir(home)
    state = _state(where)
    if state is not None and all(_answers(p) for p in state["nodes"]):
        if len(state["masters"]) != masters or len(state["nodes"]) != masters * (1 + replicas):
            raise CrawlError(f"a local cluster runs in {where} with {len(state['masters'])} "
                             "masters and a different shape: crawl server stop --cluster first")
        return cluster_url(state["masters"]), False
    if state is not None:  # left over from a machine restart, or killed: start afresh
        stop_cluster(home)
    where.mkdir(parents=True, exist_ok=True)
    cluster = LocalCluster(where, masters=masters, replicas=replicas, detach=True)
    try:
        cluster.start()
    except RuntimeError as exc:
        raise CrawlError(f"the local cluster did not come up: {exc} (logs in {where})"
                         ) from None
    ports = [node.port for node in cluster.nodes]
    (where / STATE).write_text(json.dumps({"masters": ports[:masters], "nodes": ports}))
    return cluster_url(ports[:masters]), True


def stop_cluster(home: str | None) -> bool:
    """Shut every node down and remove the cluster's directory; False if there was none."""
    import redis as sync_redis

    where = cluster_dir(home)
    state = _state(where)
    if state is None:
        return False
    for port in reversed(state["nodes"]):  # replicas first: no master waits on them
        with contextlib.suppress(sync_redis.RedisError):  # the connection ends with it
            # NOW: no waiting for lagging replicas (the data goes anyway)
            _client(port).execute_command("SHUTDOWN", "NOSAVE", "NOW", "FORCE")
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(_answers(p) for p in state["nodes"]):
        if time.monotonic() > deadline:
            raise CrawlError(f"local cluster nodes still answer after {STOP_TIMEOUT:.0f}s: "
                             f"ports {state['nodes']}")
        time.sleep(0.2)
    shutil.rmtree(where, ignore_errors=True)
    return True
