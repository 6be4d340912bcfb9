"""Retry timing: backoff between attempts, Retry-After, and riding out Redis outages."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawler.config import Settings

log = logging.getLogger("crawler.worker")

T = TypeVar("T")

REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError,
                ClusterDownError, TryAgainError, SlotNotCoveredError)
"""What an unreachable Redis raises: ridden out, never a URL's fault.

On a cluster, also what a slot that is moving or without a master raises once
the retries inside one call are spent: CLUSTERDOWN (and MASTERDOWN), TRYAGAIN,
a slot not covered during a failover, and the script runner's own
ClusterDownError after its retry window (``crawler.frontier.cluster``)."""
REDIS_BACKOFF_FIRST = 0.1
REDIS_BACKOFF_MAX = 10.0
"""First and longest wait between attempts while Redis is down, in seconds."""


def backoff_delay(attempt: int, settings: Settings) -> float:
    """Seconds before attempt ``attempt + 1``: exponential, with equal jitter.

    The exponential step ``backoff_base * 2^(attempt-1)`` is capped at
    ``backoff_max`` first, then half of it is fixed and half random, so the
    delay lies in [step/2, step] and never exceeds ``backoff_max``; workers
    retrying after one outage spread out instead of returning together.
    """
    step = min(settings.backoff_max, settings.backoff_base * 2 ** max(0, attempt - 1))
    return float(step / 2 + random.uniform(0, step / 2))


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), cap)


async def ride_out_redis(call: Callable[[], Awaitable[T]], what: str, *,
                         give_up: Callable[[], bool] = lambda: False,
                         wait: Callable[[float], Awaitable[object]] = asyncio.sleep,
                         revive: Callable[[], Awaitable[object]] | None = None) -> T | None:
    """``call()`` until Redis answers, backing off exponentially up to 10 s.

    Returns None only if ``give_up()`` turns true while Redis is down (the
    worker is stopping). ``wait`` sleeps between attempts; the worker passes
    one that a stop request wakes early. ``revive`` runs after each failure:
    on the embedded default it starts the server again if it is gone.
    """
    delay = REDIS_BACKOFF_FIRST
    while True:
        try:
            return await call()
        except REDIS_ERRORS as exc:
            if give_up():
                return None
            log.warning("redis unavailable during %s (%s); retrying in %.1fs", what, exc, delay)
            if revive is not None:
                await revive()
            await wait(delay)
            delay = min(delay * 2, REDIS_BACKOFF_MAX)
