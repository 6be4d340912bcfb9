"""Running the frontier's scripts on a Redis / Valkey Cluster: one pipeline a node.

Every shard's keys share one hash tag, so each script call belongs to one
slot and runs on the master that owns it. Calls are grouped by that master
and each group goes as one pipeline, all masters at once; a group commit is
thus one round trip per node, not per crawl. Topology comes from redis-py's
``RedisCluster`` (its slot map); the pipelines go over a plain client per
node, with the same password, TLS and bounds.

What a call's reply may say, and what then happens:

- MOVED: the slot has a new owner (resharding, failover); the slot map is
  updated and the call goes there.
- ASK, TRYAGAIN, or the scripts' own "slot is migrating" (see ``_lib.lua``):
  the slot is moving right now. The call waits and is sent again to the
  slot's owner until the move is over. It is never sent to the target with
  ASKING: there, keys not moved yet read as missing, and a script would
  write a second copy of a shard (tested: a seen set re-created on the
  target blocks its own migration).
- NOSCRIPT: a master without our scripts (a promoted replica, a new node);
  they are loaded there and the call sent again.
- a dropped connection (a master died): the slot map is read again and the
  calls retried with backoff while a replica takes over.

Every script is safe to send twice (see ``crawler.frontier.scripts``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawler.frontier.scripts import Call, ScriptRunner

log = logging.getLogger("crawler.frontier")

RETRY_WINDOW = 60.0
"""Seconds a call keeps being retried through a migration or a failover; then it
raises ClusterDownError, which a worker rides out like any Redis outage
(``crawler.worker.backoff.REDIS_ERRORS``), warning as it waits."""
MIGRATING = "slot is migrating"
LOG_EVERY = 10.0
"""Seconds between two warnings about the same unreachable node."""


def _moving(reply: Any) -> bool:
    return isinstance(reply, AskError | TryAgainError | ClusterDownError) or (
        isinstance(reply, ResponseError) and MIGRATING in str(reply))


class ClusterScriptRunner(ScriptRunner):
    """``ScriptRunner`` for a cluster: calls grouped by the master of their slot."""

    def __init__(self, cluster: RedisCluster, on_failure: Any = lambda: None,
                 **wait: Any) -> None:
        super().__init__(cluster, on_failure, **wait)  # type: ignore[arg-type]
        self.cluster = cluster
        self._nodes: dict[str, Redis] = {}
        self.retry_window = RETRY_WINDOW
        self._warned = -LOG_EVERY

    def _client(self, host: str, port: int) -> Redis:
        from crawler.store.connection import make_node_client

        name = f"{host}:{port}"
        if name not in self._nodes:
            # The cluster client's own connection settings: password, ACL user, TLS.
            self._nodes[name] = make_node_client(host, port,
                                                 self.cluster.nodes_manager.connection_kwargs)
        return self._nodes[name]

    def _owner(self, call: Call) -> tuple[str, int]:
        node = self.cluster.nodes_manager.get_node_from_slot(key_slot(call[1][0].encode()))
        return node.host, int(node.port)

    async def _send(self, calls: list[Call]) -> list[Any]:
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_window
        delay = 0.05
        while True:
            groups: dict[tuple[str, int], list[int]] = defaultdict(list)
            for i in pending:
                groups[self._owner(calls[i])].append(i)
            owners = list(groups)
            replies = await asyncio.gather(
                *(self._pipeline(owner, [calls[i] for i in groups[owner]]) for owner in owners),
                return_exceptions=True)
            retry: list[int] = []
            refresh = False
            for owner, reply in zip(owners, replies, strict=True):
                indexes = groups[owner]
                if isinstance(reply, RedisConnectionError | RedisTimeoutError | OSError):
                    retry += indexes  # the master is gone: a replica will take over
                    refresh = True
                    continue
                if isinstance(reply, BaseException):
                    raise reply
                missing_scripts = False
                for i, answer in zip(indexes, reply, strict=True):
                    if isinstance(answer, MovedError):
                        await self.cluster.nodes_manager.move_slot(answer)
                        retry.append(i)
                    elif _moving(answer):
                        retry.append(i)
                    elif isinstance(answer, NoScriptError):
                        missing_scripts = True
                        retry.append(i)
                    else:
                        results[i] = answer
                if missing_scripts:
                    await self._load(*owner)
            if not retry:
                return results
            if loop.time() > deadline:
                raise ClusterDownError(f"{len(retry)} script calls still unplaced after "
                                       f"{self.retry_window:.0f}s of migration or failover")
            pending = retry
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            if refresh:
                if loop.time() - self._warned > LOG_EVERY:
                    self._warned = loop.time()
                    log.warning("a cluster node is unreachable; waiting for a replica to "
                                "take over (reading the slot map again)")
                await self.cluster.nodes_manager.initialize()

    async def _pipeline(self, owner: tuple[str, int], calls: list[Call]) -> list[Any]:
        pipe = self._client(*owner).pipeline(transaction=False)
        server = f"{owner[0]}:{owner[1]}"
        waited = self._add_calls(pipe, calls, server)
        self.round_trips += 1
        return self._replies(list(await pipe.execute(raise_on_error=False)), waited, server)

    async def _load(self, host: str, port: int) -> None:
        client = self._client(host, port)
        for source in self.sources.values():
            await client.script_load(source)

    async def close(self) -> None:
        for client in self._nodes.values():
            await client.aclose()
        self._nodes.clear()


def runner_for(redis: Redis, on_failure: Any = lambda: None, *, wait_replicas: int = 0,
               wait_timeout: float = 1.0) -> ScriptRunner:
    """The script runner for this client: one pipeline a node on a cluster."""
    if isinstance(redis, RedisCluster):
        return ClusterScriptRunner(redis, on_failure, wait_replicas=wait_replicas,
                                   wait_timeout=wait_timeout)
    return ScriptRunner(redis, on_failure, wait_replicas=wait_replicas,
                        wait_timeout=wait_timeout)
