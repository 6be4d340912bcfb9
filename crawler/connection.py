"""Connecting to the frontier's Redis: a given URL, or the embedded Valkey."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from crawler.config import Settings
from crawler.errors import RedisUnavailable
from crawler.server import ensure_server

# Short reconnect attempts inside one command; longer outages are ridden out
# by the worker loop with its own capped backoff.
COMMAND_RETRIES = 3


def redis_url(settings: Settings) -> str:
    """The URL to use: the configured one, else the embedded server (started if needed)."""
    return settings.redis_url or ensure_server(settings.home)


def redact(url: str) -> str:
    """The URL with any password hidden, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0] if ":" in creds else ""
        return f"{scheme}://{user}:***@{host}"
    return url


def make_client(url: str, *, timeout: float = 30.0) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), COMMAND_RETRIES),
    )


async def connect(settings: Settings) -> Redis:
    """A checked client for the crawl's Redis, or RedisUnavailable naming the URL."""
    url = redis_url(settings)
    client = make_client(url)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise RedisUnavailable(f"cannot reach Redis at {redact(url)}: {exc}") from None
    return client
