"""A local Valkey Cluster from the bundled binary: N masters, each with replicas, on loopback.

For the tests and ``crawl bench --cluster N``; ``docker/compose-cluster.yaml``
runs the same shape with the same settings. Built the way any cluster is:
each node starts with ``cluster-enabled``, the masters take equal slot ranges,
the nodes MEET, and each replica REPLICATEs its master. ``cluster-node-timeout``
is short (2 s) so that a killed master fails over within seconds.

With ``password``, every node requires it (``requirepass``) and replicas
authenticate to their master with it (``masterauth``); with ``username`` too,
an ACL user of that name and password may run everything, and the replicas
use it. ``url`` then carries the credentials.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis as sync_redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from crawler.store.server import server_args

NODE_TIMEOUT_MS = 2000
SLOTS = 16384
READY_TIMEOUT = 60.0


def _cmd(client: sync_redis.Redis, *args: Any) -> Any:
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


def _free_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free too.

    Nor may one node's bus port be another's client port: both were free when
    picked, and the first node to start would take the other's.
    """
    ports: list[int] = []
    taken: set[int] = set()  # client and bus ports of the nodes picked so far
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 10000 > 65535 or port in taken or port + 10000 in taken:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
        taken |= {port, port + 10000}
    return ports


def auth_args(password: str, username: str = "") -> list[str]:
    """Server arguments: require ``password``; an ACL user ``username`` allowed everything."""
    if not password:
        return []
    args = ["--requirepass", password, "--masterauth", password]
    if username:
        args += ["--user", username, "on", f">{password}", "~*", "&*", "+@all",
                 "--masteruser", username]
    return args


@dataclass
class Node:
    port: int
    home: Path
    proc: subprocess.Popen[bytes] | None = None
    password: str = ""
    username: str = ""

    @property
    def client(self) -> sync_redis.Redis:
        # No retries: this client checks a node's health, and redis-py 8's default
        # (3 retries with backoff) made each ping of a killed node take ~4.5 s.
        return sync_redis.Redis(port=self.port, decode_responses=True, socket_timeout=5,
                                username=self.username or None,
                                password=self.password or None,
                                retry=Retry(NoBackoff(), 0))

    def start(self, *, persist: bool, detach: bool = False) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        args = server_args(self.home, port=self.port, unix=False, persist=persist)
        args += auth_args(self.password, self.username)
        args += ["--cluster-enabled", "yes", "--cluster-config-file",
                 str(self.home / "nodes.conf"), "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                 "--cluster-port", str(self.port + 10000),
                 "--cluster-replica-validity-factor", "0",
                 # Sync a replica at once: the default waits 5 s for more replicas
                 # to share one transfer, which only delays a cluster's start.
                 "--repl-diskless-sync-delay", "0"]
        # detach: a session of its own, so the node outlives the command that started it
        # (crawl server start --cluster) and no Ctrl-C in that terminal reaches it.
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     start_new_session=detach)

    def alive(self) -> bool:
        try:
            return bool(self.client.ping())
        except sync_redis.RedisError:
            return False


@dataclass
class LocalCluster:
    home: Path
    masters: int = 3
    replicas: int = 1
    persist: bool = False
    password: str = ""
    username: str = ""
    nodes: list[Node] = field(default_factory=list)
    detach: bool = False  # nodes outlive this process (crawl server start --cluster)

    @property
    def url(self) -> str:
        """Any node serves as the seed node; this is the first master's."""
        return self.node_url(self.nodes[0])

    def node_url(self, node: Node) -> str:
        auth = f"{quote(self.username)}:{quote(self.password)}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{node.port}/0"

    def start(self) -> LocalCluster:
        ports = _free_ports(self.masters * (1 + self.replicas))
        self.nodes = [Node(port, self.home / str(port), password=self.password,
                           username=self.username) for port in ports]
        for node in self.nodes:
            node.start(persist=self.persist, detach=self.detach)
        try:
            self._wait(lambda: all(n.alive() for n in self.nodes), "every node to answer")
            masters = self.nodes[:self.masters]
            step = SLOTS // self.masters
            for i, node in enumerate(masters):
                end = SLOTS - 1 if i == self.masters - 1 else (i + 1) * step - 1
                _cmd(node.client, "CLUSTER", "ADDSLOTSRANGE", i * step, end)
            first = self.nodes[0]
            for node in self.nodes[1:]:
                _cmd(node.client, "CLUSTER", "MEET", "127.0.0.1", node.port)
                _cmd(first.client, "CLUSTER", "MEET", "127.0.0.1", node.port)
            self._wait(lambda: all(len(self._known(n)) == len(self.nodes) for n in self.nodes),
                       "the nodes to know each other")
            for r, node in enumerate(self.nodes[self.masters:]):
                master_id = _cmd(masters[r % self.masters].client, "CLUSTER", "MYID")
                self._wait(lambda node=node, mid=master_id: self._replicate(node, mid),
                           "a replica to follow its master")
            self._wait(self.ready, "the cluster to be ok with every replica in sync")
        except BaseException:
            self.stop()
            raise
        return self

    def _known(self, node: Node) -> list[str]:
        try:
            return str(_cmd(node.client, "CLUSTER", "NODES")).strip().splitlines()
        except sync_redis.RedisError:
            return []

    @staticmethod
    def _replicate(node: Node, master_id: str) -> bool:
        try:
            _cmd(node.client, "CLUSTER", "REPLICATE", master_id)
            return True
        except sync_redis.ResponseError:
            return False  # the master is not known to it yet

    def ready(self) -> bool:
        """Every live node says ok, and every live replica's link to its master is up."""
        for node in self.nodes:
            if not node.alive():
                continue
            info = _cmd(node.client, "CLUSTER", "INFO")
            if "cluster_state:ok" not in str(info):
                return False
            repl = node.client.info("replication")
            if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                return False
        return True

    @staticmethod
    def _wait(condition: object, what: str, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(sync_redis.RedisError):
                if callable(condition) and condition():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"local cluster: timed out waiting for {what}")
            time.sleep(0.1)

    def master_nodes(self) -> list[Node]:
        """The nodes that are masters now (a failover changes which)."""
        out = []
        for node in self.nodes:
            with contextlib.suppress(sync_redis.RedisError):
                if node.alive() and node.client.info("replication").get("role") == "master":
                    out.append(node)
        return out

    def kill(self, node: Node) -> None:
        """SIGKILL: no shutdown, no last replication."""
        if node.proc is not None and node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()

    def wait_failover(self, timeout: float = 30.0) -> None:
        """Until every slot is served again (a replica took a dead master's place)."""
        self._wait(lambda: len(self.master_nodes()) >= self.masters and all(
            "cluster_state:ok" in str(_cmd(n.client, "CLUSTER", "INFO"))
            for n in self.nodes if n.alive()), "a failover", timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
