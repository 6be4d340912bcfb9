"""The worker loop: claim a batch, fetch, parse, complete; until the crawl is done.

One event loop a process. The loop reads as: while running, top up the
in-flight fetches with one batched claim, then wait for a slot or for the
frontier's wait hint. Each fetch task ends in exactly one frontier write
(complete or retry), shielded so cancellation cannot cut it in half.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from crawler import errors, keys
from crawler.aio import cancel_and_wait, wait_event
from crawler.config import Settings
from crawler.fetch import Response, fetch, make_session
from crawler.frontier import ClaimResult, Frontier, Lease
from crawler.parse import parse_html
from crawler.politeness import SlotMissed, adaptive_delay, publish_policy, start_deadline
from crawler.results import dumps, make_record
from crawler.robots import RobotsCache, RobotsFetched, RobotsUnavailable
from crawler.scope import Scope

log = logging.getLogger("crawler.worker")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
HOST_BACKOFF_STATUSES = frozenset({429, 503})
IDLE_WAIT_MIN = 0.02
IDLE_WAIT_MAX = 2.0
"""Bounds on how long an idle worker sleeps between claims, in seconds."""
REDIS_BACKOFF_MAX = 10.0
"""Cap on the wait between reconnect attempts while Redis is down, in seconds."""
PROGRESS_EVERY = 2.0
HEARTBEAT_EVERY = 5.0
STOP_BOUND = 5.0
"""Seconds shutdown waits for cancelled tasks, or for writes still on the wire."""
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"


def backoff_delay(attempt: int, settings: Settings) -> float:
    """Exponential backoff with full jitter: base * 2^(attempt-1), scaled by 0.5-1.5."""
    raw = min(settings.backoff_max, settings.backoff_base * 2 ** max(0, attempt - 1))
    return float(raw * random.uniform(0.5, 1.5))


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), cap)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return min(max(0.0, when.timestamp() - time.time()), cap)


@dataclass
class Counters:
    pages: int = 0
    errors: int = 0
    retries: int = 0
    missed_slots: int = 0  # leases given back unfetched: too late for the host's spacing
    started: float = field(default_factory=time.monotonic)


class Worker:
    """Runs one process's share of a crawl. Use ``await Worker(...).run()``."""

    def __init__(self, redis: Redis, settings: Settings, *, forever: bool = False,
                 quiet: bool = True, name: str | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.frontier = Frontier(redis, settings)
        self.forever = forever
        self.quiet = quiet
        self.id = name or worker_id()
        self.counters = Counters()
        self.scope = Scope(settings)
        self.tasks: dict[asyncio.Task[None], Lease] = {}
        self.slot_freed = asyncio.Event()
        self.stopping = False
        self.last_queued = 0
        self.session: aiohttp.ClientSession | None = None
        self.robots: RobotsCache | None = None
        self.aborted = False  # stopped at once (second signal): exit code 130
        self._aborted = asyncio.Event()
        self._writes: set[asyncio.Future[object]] = set()  # shielded writes in progress

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Crawl until the crawl is finished (or forever), then shut down cleanly.

        The crawl runs in its own task so that an abort (``abort``: a second
        signal) can stop it with ``cancel_and_wait``, which cancels again if a
        cancellation is lost (crawler.aio), instead of cancelling this task once.
        """
        self.session = make_session(self.settings)
        self.robots = RobotsCache(self.redis, self.frontier, self.session, self.settings)
        background = [asyncio.create_task(self._housekeeping(), name="housekeeping")]
        if not self.quiet:
            background.append(asyncio.create_task(self._progress(), name="progress"))
        crawl = asyncio.create_task(self._crawl(), name="crawl")
        aborted = asyncio.create_task(self._aborted.wait(), name="abort-signal")
        try:
            await asyncio.wait([crawl, aborted], return_when=asyncio.FIRST_COMPLETED)
        finally:
            # Stopped at once (abort, or an error): cancel fetches still in flight
            # before closing the session under them, else each would fail with a
            # connection error and record a retry or an error result that no
            # server caused. Their leases come back through reclaim.
            await cancel_and_wait([crawl, aborted, *self.tasks, *background],
                                  within=STOP_BOUND)
            if self._writes:  # shielded frontier writes still on the wire
                await asyncio.wait(list(self._writes), timeout=STOP_BOUND)
            await self.session.close()
            with contextlib.suppress(*REDIS_ERRORS, TimeoutError):
                async with asyncio.timeout(STOP_BOUND):
                    await self.redis.hdel(keys.workers_key(self.settings.crawl), self.id)
            if not self.quiet:
                self._print_progress(final=True)
        failure = crawl.exception() if crawl.done() and not crawl.cancelled() else None
        if failure is not None:
            raise failure

    async def _crawl(self) -> None:
        # This worker's limits, delays and overrides become the crawl's,
        # also for hosts already known (crawler.politeness).
        await publish_policy(self.redis, self.settings)
        await self._refresh_scope()
        while not self.stopping:
            if not await self._step():
                break
        await self._drain()

    async def _step(self) -> bool:
        """One iteration: claim if there is room, else wait. False when the crawl is done."""
        free = self.settings.concurrency - len(self.tasks)
        # Claim when at least a quarter batch of slots is free: fewer, fuller claims.
        want = min(free, self.settings.claim_batch)
        if want <= 0 or (self.tasks and want < max(1, self.settings.claim_batch // 4)
                         and free < self.settings.concurrency // 4):
            await self._wait_for_slot(IDLE_WAIT_MAX)
            return True
        sent = time.monotonic()  # the claim ran after this: each slot's start counts from here
        result = await self._claim(want)
        if result is None:
            return True
        self.last_queued = result.queued
        for lease in result.leases:
            task = asyncio.create_task(
                self._process(lease, start_deadline(self.settings, sent)))
            self.tasks[task] = lease
            task.add_done_callback(self._task_done)
        if result.leases:
            return True
        if result.finished and not self.tasks and not self.forever:
            return False
        wait = IDLE_WAIT_MAX if result.wait < 0 else result.wait
        await self._wait_for_slot(min(max(wait, IDLE_WAIT_MIN), IDLE_WAIT_MAX))
        return True

    async def _claim(self, want: int) -> ClaimResult | None:
        delay = 0.1
        while not self.stopping:
            try:
                return await self.frontier.claim(want, self.id,
                                                 slack=self.settings.politeness_slack)
            except REDIS_ERRORS as exc:
                log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
                await self._wait_for_slot(delay)
                delay = min(delay * 2, REDIS_BACKOFF_MAX)
        return None

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        self.slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("fetch task failed", exc_info=task.exception())

    async def _wait_for_slot(self, seconds: float) -> None:
        self.slot_freed.clear()
        await wait_event(self.slot_freed, seconds)

    # -- one URL ---------------------------------------------------------------

    async def _process(self, lease: Lease, deadline: float = float("inf")) -> None:
        attempt = lease.attempts + 1
        if lease.attempts >= self.settings.max_attempts:
            # Reclaimed after its worker died, too many times: give up on it.
            await self._finish_error(lease, lease.attempts, 0.0, errors.FetchError(
                f"lease expired {lease.attempts} times without a result"), "lease_expired")
            return
        started = time.monotonic()
        try:
            assert self.robots is not None and self.session is not None
            await self.robots.check(lease, deadline)
            if time.monotonic() > deadline:
                raise SlotMissed(lease.url)
            resp = await fetch(self.session, lease.url, self.settings,
                               allow_redirect=lambda u: self.scope.allows(u, lease.depth))
        except SlotMissed:
            # Starting now could put this request closer than the host's delay to
            # the next one: give the slot back unused (crawler.politeness).
            self.counters.missed_slots += 1
            await self._write(lambda: self.frontier.retry(lease, 0.0, count_attempt=False))
            return
        except RobotsFetched:
            # The host's slot went to robots.txt; robots.lua already put the
            # page back in its queue for the next slot.
            return
        except REDIS_ERRORS as exc:
            # The robots.txt verdict lives in Redis, which is down: not the URL's
            # fault. Give it back uncounted once Redis answers (_write waits).
            log.warning("redis unavailable during robots check (%s); giving %s back",
                        exc, lease.url)
            await self._write(lambda: self.frontier.retry(lease, 0.0, count_attempt=False))
            return
        except errors.FetchError as exc:
            if exc.retry and attempt < self.settings.max_attempts:
                # An unreachable robots.txt holds the whole host until it is due again.
                unavailable = isinstance(exc, RobotsUnavailable)
                delay = exc.retry_after if unavailable and exc.retry_after else \
                    backoff_delay(attempt, self.settings)
                await self._retry(lease, delay, host_backoff=unavailable)
            else:
                await self._finish_error(lease, attempt, time.monotonic() - started, exc,
                                         no_request=isinstance(exc, errors.RobotsDisallowed))
            return
        if resp.status in RETRY_STATUSES:
            await self._status_retry(lease, attempt, resp)
            return
        await self._finish_page(lease, attempt, resp)

    async def _status_retry(self, lease: Lease, attempt: int, resp: Response) -> None:
        host_backoff = resp.status in HOST_BACKOFF_STATUSES
        wait = retry_after(resp.headers.get("Retry-After"), self.settings.backoff_max)
        delay = wait if wait is not None else backoff_delay(attempt, self.settings)
        if attempt < self.settings.max_attempts:
            await self._retry(lease, delay, host_backoff=host_backoff)
            return
        exc = errors.HTTPStatusError(f"HTTP {resp.status} after {attempt} attempts",
                                     status=resp.status)
        await self._finish_error(lease, attempt, resp.elapsed, exc, response=resp,
                                 not_before=delay if host_backoff else 0.0)

    async def _finish_page(self, lease: Lease, attempt: int, resp: Response) -> None:
        title, link_count, noindex = None, 0, False
        links: list[tuple[str, int]] = []
        if resp.is_html:
            page = parse_html(resp.body, resp.final_url, resp.charset,
                              follow_nofollow=self.settings.follow_nofollow)
            robots_header = resp.headers.get("X-Robots-Tag", "").lower()
            title, link_count = page.title, page.link_count
            noindex = page.noindex or "noindex" in robots_header or "none" in robots_header
            nofollow = page.nofollow or "nofollow" in robots_header or "none" in robots_header
            if not nofollow:
                if lease.depth == 0 and not self.scope.knows_anchor_of(lease.url):
                    # Seeded after our last refresh. Rides out an outage: a stale
                    # scope would drop the seed's own links as out of scope.
                    await self._write(self._refresh_scope)
                depth = lease.depth + 1
                # Most links were sent to Redis already (add would drop them):
                # skip the scope rules for those.
                links = [(u, depth) for u in page.links
                         if not self.frontier.sent_recently(u) and self.scope.allows(u, depth)]
        record = make_record(
            url=lease.url, depth=lease.depth, attempts=attempt, worker=self.id,
            final_url=resp.final_url, status=resp.status, title=title, links=link_count,
            content_type=resp.content_type, size=len(resp.body), elapsed=resp.elapsed,
            noindex=noindex)
        self.counters.pages += 1
        pause = adaptive_delay(resp.elapsed, self.settings)
        await self._write(lambda: self.frontier.complete(lease, dumps(record), links=links,
                                                         not_before=pause))

    async def _finish_error(self, lease: Lease, attempt: int, elapsed: float,
                            exc: errors.FetchError, error_type: str | None = None, *,
                            response: Response | None = None, not_before: float = 0.0,
                            no_request: bool = False) -> None:
        record = make_record(
            url=lease.url, depth=lease.depth, attempts=attempt, worker=self.id,
            final_url=response.final_url if response else None,
            status=response.status if response else exc.status,
            content_type=response.content_type if response else None,
            size=len(response.body) if response else 0, elapsed=elapsed,
            error=(error_type or exc.type, str(exc)))
        self.counters.pages += 1
        self.counters.errors += 1
        await self._write(lambda: self.frontier.complete(lease, dumps(record), is_error=True,
                                                         not_before=not_before,
                                                         no_request=no_request))

    async def _retry(self, lease: Lease, delay: float, *, host_backoff: bool = False) -> None:
        self.counters.retries += 1
        await self._write(lambda: self.frontier.retry(lease, delay, host_backoff=host_backoff))

    async def _write(self, call: Callable[[], Awaitable[object]]) -> None:
        """Run one frontier write to the end, riding out a Redis outage.

        Shielded: cancelling the task must not abandon a script call half-read.
        If the outage outlasts the lease, the write turns stale (a no-op) and
        the URL is crawled again: at least once, never lost.
        """
        delay = 0.1
        while True:
            write = asyncio.ensure_future(call())
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            try:
                await asyncio.shield(write)
                return
            except REDIS_ERRORS as exc:
                log.warning("redis write failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, REDIS_BACKOFF_MAX)

    # -- shutdown and housekeeping ---------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming; fetches in flight get the grace period to finish."""
        self.stopping = True
        self.slot_freed.set()

    def abort(self) -> None:
        """Stop at once: cancel everything in flight; leases come back through reclaim."""
        self.stopping = True
        self.aborted = True
        self._aborted.set()

    async def _drain(self) -> None:
        if not self.tasks:
            return
        pending = list(self.tasks)
        _, still = await asyncio.wait(pending, timeout=self.settings.shutdown_grace)
        if not still:
            return
        leases = [self.tasks[t] for t in still if t in self.tasks]
        await cancel_and_wait(still, within=STOP_BOUND)
        # Give the unfinished URLs straight back, without counting an attempt.
        for lease in leases:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.frontier.retry(lease, 0.0, count_attempt=False)
        log.info("gave back %d unfinished URLs", len(leases))

    async def _housekeeping(self) -> None:
        """Heartbeat, scope refresh and reclaiming expired leases, now and then."""
        every = max(1.0, min(HEARTBEAT_EVERY, self.settings.lease_time / 4))
        while True:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.redis.hset(keys.workers_key(self.settings.crawl), self.id,
                                      str(int(time.time())))
                await self.frontier.reclaim()
                await self._refresh_scope()
            await asyncio.sleep(every * random.uniform(0.8, 1.2))

    async def _refresh_scope(self) -> None:
        members: set[str] = await self.redis.smembers(  # type: ignore[assignment]
            keys.scope_key(self.settings.crawl))
        self.scope.update(members)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            self._print_progress()

    def _print_progress(self, final: bool = False) -> None:
        c = self.counters
        elapsed = max(1e-9, time.monotonic() - c.started)
        line = (f"pages {c.pages}  {c.pages / elapsed:.1f} pages/s  errors {c.errors}  "
                f"retries {c.retries}  queued {self.last_queued}  in flight {len(self.tasks)}")
        print(("done: " if final else "") + line, file=sys.stderr, flush=True)


def install_signal_handlers(worker: Worker) -> None:
    """First SIGINT/SIGTERM drains; a second one stops at once (reclaim recovers leases)."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if worker.stopping:
            log.warning("second signal: stopping now; leases come back through reclaim")
            worker.abort()
            return
        log.warning("signal %d: finishing fetches in flight (grace %.0fs)", signum,
                    worker.settings.shutdown_grace)
        worker.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
