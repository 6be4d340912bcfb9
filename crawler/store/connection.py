"""Connecting to the frontier's Redis: a URL (one server or a cluster), or the embedded Valkey.

A cluster is found by asking the server (``INFO cluster``: ``cluster_enabled:1``),
or forced by ``redis+cluster://`` and ``rediss+cluster://``; any node serves as
the seed node. A URL naming several nodes (``redis+cluster://n1:7000,n2:7000``)
is a cluster's: they are redis-py's ``startup_nodes``, tried in turn until one
answers, so a client still starts when a named node is down. The client is
then redis-py's ``RedisCluster`` with the same password, ACL user, TLS and
bounds. It is returned typed as ``Redis``: the commands the crawler sends are
the same, and where they differ (script pipelines, multi-stream reads, SCAN)
the code asks ``is_cluster``.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisClusterException, RedisError

from crawler.config import Settings
from crawler.config.redis_urls import (
    names_several_nodes,
    node_urls,
    redact,
    seed_nodes,
    url_problem,
)
from crawler.errors import ConfigError, RedisUnavailable
from crawler.store.server import ensure_server

# Short reconnect attempts inside one command; longer outages are ridden out
# by the worker loop with its own capped backoff.
COMMAND_RETRIES = 3
SOCKET_TIMEOUT = 10.0
"""Seconds any one Redis read, write or wait for a pooled connection may take."""


def redis_url(settings: Settings) -> str:
    """The URL to use: the configured one, else the embedded server (started if needed)."""
    return settings.redis_url or ensure_server(settings.home)


class _HiredisPacking:
    """Packs commands with hiredis (C) instead of redis-py's asyncio packer (Python).

    The Python packer joins each argument onto the growing buffer, so a
    script call with 1500 arguments (an add of 250 URLs) costs milliseconds
    of copying: it was a third of the CPU of ``crawl seed``.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "SCRIPT LOAD", "CLIENT LIST"...
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


_PACKING: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def _with_hiredis_packing(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    if cls not in _PACKING:
        _PACKING[cls] = type(cls.__name__, (_HiredisPacking, cls), {})
    return _PACKING[cls]


def make_client(url: str, *, timeout: float = SOCKET_TIMEOUT,
                max_connections: int = 64) -> Redis:
    """A client whose every wait on Redis is bounded, and whose pool waits for a connection.

    - ``socket_timeout`` bounds each read and write; a command that times out
      or is interrupted mid-reply closes its connection (redis-py disconnects
      on any error or cancellation during a command), so a connection out of
      step with its replies never goes back to the pool.
    - A connection idle for ``health_check_interval`` is PINGed before use,
      and TCP keepalive notices a peer that vanished.
    - redis-py's default pool raises "Too many connections" past its size; a
      worker with hundreds of fetches in flight must queue for a connection
      (completions share pipelines, so few are needed) rather than error, for
      at most ``timeout`` seconds.
    """
    # TCP keepalive: only TCP connections take the option.
    tcp = {} if url.startswith("unix://") else {"socket_keepalive": True}
    pool = BlockingConnectionPool.from_url(
        url,
        **tcp,
        max_connections=max_connections,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), COMMAND_RETRIES),
    )
    pool.connection_class = _with_hiredis_packing(pool.connection_class)
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


CLUSTER_SCHEMES = {"redis+cluster://": "redis://", "rediss+cluster://": "rediss://"}


def is_cluster(redis: Any) -> bool:
    return isinstance(redis, RedisCluster)


def unix_socket_of(redis: Any) -> str | None:
    """The unix socket path a (non-cluster) client connects to, or None (TCP, a cluster)."""
    if is_cluster(redis):
        return None
    pool = getattr(redis, "connection_pool", None)
    path = getattr(pool, "connection_kwargs", {}).get("path")
    return str(path) if path else None


def plain_url(url: str) -> str:
    """``redis+cluster://`` and ``rediss+cluster://`` as redis-py spells them."""
    for forced, plain in CLUSTER_SCHEMES.items():
        if url.startswith(forced):
            return plain + url[len(forced):]
    return url


NODE_KWARGS_KEPT = ("username", "password", "credential_provider", "db", "socket_timeout",
                    "socket_connect_timeout", "socket_keepalive", "socket_keepalive_options",
                    "health_check_interval", "retry", "decode_responses", "encoding",
                    "encoding_errors", "client_name", "protocol")
"""Connection settings a node client takes from the cluster client (and every ssl_*)."""


def make_node_client(host: str, port: int, cluster_kwargs: dict[str, Any],
                     max_connections: int = 16) -> Redis:
    """A client of one cluster node with the cluster client's connection settings."""
    from redis.asyncio.connection import Connection

    kwargs = {k: v for k, v in cluster_kwargs.items()
              if k in NODE_KWARGS_KEPT or k.startswith("ssl_")}
    cls = cluster_kwargs.get("connection_class", Connection)
    pool = BlockingConnectionPool(connection_class=_with_hiredis_packing(cls),
                                  max_connections=max_connections, timeout=SOCKET_TIMEOUT,
                                  host=host, port=port, **kwargs)
    return Redis.from_pool(pool)


def make_cluster_client(url: str, *, max_connections: int = 64) -> Redis:
    """A RedisCluster client with the bounds of ``make_client``, typed as Redis.

    Every node ``url`` names is a startup node: the slot map is read from the
    first of them that answers (redis-py tries them in turn, in random order).
    """
    from redis.asyncio.cluster import ClusterNode

    first, *others = node_urls(plain_url(url))
    cluster = RedisCluster.from_url(
        first, startup_nodes=[ClusterNode(host, port) for host, port in seed_nodes(url)[1:]]
        if others else None,
        decode_responses=True, max_connections=max_connections,
        socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=5.0, health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), COMMAND_RETRIES))
    return cluster  # type: ignore[return-value]


async def primaries(redis: Redis) -> list[Redis]:
    """The client itself on one server; on a cluster, a client of each master (close them)."""
    if not isinstance(redis, RedisCluster):
        return [redis]
    kwargs = redis.nodes_manager.connection_kwargs
    return [make_node_client(node.host, int(node.port), kwargs, max_connections=2)
            for node in redis.get_primaries()]


async def connect(settings: Settings) -> Redis:
    """A checked client for the crawl's Redis (one server or a cluster), or RedisUnavailable."""
    url = redis_url(settings)
    size = settings.concurrency + 32
    forced = plain_url(url) != url or names_several_nodes(url)
    problem = url_problem(url)
    if problem:
        raise ConfigError("redis_url", f"bad Redis URL {redact(url)}: {problem}", show_key=False)
    try:
        client = make_cluster_client(url, max_connections=size) if forced else \
            make_client(url, max_connections=size)
    except (ValueError, RedisClusterException) as exc:  # what url_problem did not foresee
        raise ConfigError("redis_url", f"bad Redis URL {redact(url)}: {exc}",
                          show_key=False) from None
    try:
        await client.ping()
        if not forced and not url.startswith("unix://"):
            info = await client.info("cluster")
            if int(info.get("cluster_enabled", 0)) == 1:
                await client.aclose()
                client = make_cluster_client(url, max_connections=size)
                await client.ping()
    except (RedisError, RedisClusterException, OSError) as exc:
        await client.aclose()
        raise RedisUnavailable(f"cannot reach Redis at {redact(url)}: {_explain(exc)}") from None
    return client


NO_AUTH = ("NOAUTH", "Authentication required", "HELLO must be called with the client already "
           "authenticated")
"""What a server that requires a password answers a client that gave none."""


def _explain(exc: BaseException) -> str:
    if any(text in str(exc) for text in NO_AUTH):
        return ("the server requires a password: give it in the URL, "
                "redis://user:password@host:port (or redis://:password@host:port)")
    return str(exc)


async def server_ms(redis: Redis) -> int:
    """The server's clock in milliseconds: every crawl-level time is read from it."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000
