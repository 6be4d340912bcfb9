"""The worker loop: claim a batch, fetch, parse, complete; until the crawl is done.

One event loop a process. The loop reads as: while running, top up the
in-flight fetches with one batched claim, then wait for a slot or for the
frontier's wait hint. Each fetch task ends in exactly one frontier write
(complete or retry), shielded so cancellation cannot cut it in half
(``crawler.worker.lease``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from crawler.aio import cancel_and_wait, wait_event
from crawler.config import Settings
from crawler.discovery.revisit_schedule import DUE_POLL, adaptive, requeue_due
from crawler.errors import CrawlError
from crawler.frontier import ClaimResult, Frontier
from crawler.frontier.politeness import publish_policy, start_deadline
from crawler.frontier.scope_anchors import ScopeStore
from crawler.frontier.workers import HEARTBEAT_EVERY, Heartbeat
from crawler.net.fetch import Fetcher
from crawler.net.proxies import shared_ledger
from crawler.net.robots import RobotsCache
from crawler.pages.scope import Scope, anchors_for
from crawler.worker.backoff import REDIS_ERRORS, ride_out_redis
from crawler.worker.lease import LeaseRunner
from crawler.worker.meter import FetchMeter, NoMeter
from crawler.worker.progress import Counters, ProgressLine
from crawler.worker.steering import Steering
from crawler.worker.watch import InFlight, StallWatch

if TYPE_CHECKING:
    from crawler.observe.metrics import ScrapeCounts

log = logging.getLogger("crawler.worker")

IDLE_WAIT_MIN = 0.02
IDLE_WAIT_MAX = 2.0
"""Bounds on how long an idle worker sleeps between claims, in seconds."""
PROCESS_INDEX = "CRAWLER_PROCESS_INDEX"
"""Set by ``crawl worker --processes N`` for each process: 0 .. N-1."""
STOP_BOUND = 5.0
"""Seconds shutdown waits for cancelled tasks, or for writes still on the wire."""


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(24):06x}"


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
        self.scope_store = ScopeStore(redis, settings)
        self.tasks: dict[asyncio.Task[None], InFlight] = {}
        self.slot_freed = asyncio.Event()
        self.stopping = False
        self.last_claim: ClaimResult | None = None
        self._claims = 0  # claims sent: each one's request id
        self.fetcher: Fetcher | None = None
        self.robots: RobotsCache | None = None
        self.watch = StallWatch(settings.stall_warning)
        self.heartbeat = Heartbeat(self.frontier.scripts, settings.crawl, self.id)
        self.started_at = time.time()
        self.aborted = False  # stopped at once (second signal): exit code 130
        self._aborted = asyncio.Event()
        self._writes: set[asyncio.Future[object]] = set()  # shielded writes in progress
        self.steering = Steering(self)
        self.progress = ProgressLine(self.counters, self.frontier, redis, lambda: self.settings,
                                     self.tasks, self._paused_because)
        self.metrics: FetchMeter = NoMeter()
        if settings.metrics_port:
            from crawler.observe.metrics import WorkerMetrics

            self.metrics = WorkerMetrics(self)
        # Refused here, before anything runs, if /metrics would be open beyond loopback.
        self._metrics_token: str | None = None
        if settings.metrics_port:
            from crawler.observe.metrics import required_token

            self._metrics_token = required_token(settings.metrics_host, settings.metrics_token,
                                                 "--metrics-port")
        self._rate_mark = (time.monotonic(), 0)  # (when, pages) at the last heartbeat

    # -- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Crawl until the crawl is finished (or forever), then shut down cleanly.

        The crawl runs in its own task so that an abort (``abort``: a second
        signal) can stop it with ``cancel_and_wait``, which cancels again if a
        cancellation is lost (crawler.aio), instead of cancelling this task once.
        """
        self.fetcher = Fetcher(self.settings, proxy_ledger=shared_ledger(
            self.frontier.scripts, self.settings.crawl, self.id))
        if self.fetcher.dns is not None:  # politeness_key = ip asks the fetches' resolver
            self.frontier.keyer.resolve = self.fetcher.dns.first_address
        self.robots = RobotsCache(self.frontier, self.fetcher, self.settings)
        try:
            runner = LeaseRunner(self)  # loads the hook, which may fail
        except BaseException:
            await self.fetcher.close()  # no "Unclosed client session" after the error
            raise
        self.steering.runner = runner
        background = [asyncio.create_task(self._housekeeping(), name="housekeeping"),
                      asyncio.create_task(self.steering.follow(), name="steering"),
                      asyncio.create_task(self._watch_for_stalls(), name="stall-watch")]
        if not self.quiet:
            background.append(asyncio.create_task(self.progress.run(), name="progress"))
        if self.forever:
            background.append(asyncio.create_task(self._queue_due_revisits(), name="revisits"))
        crawl = asyncio.create_task(self._crawl(runner), name="crawl")
        aborted = asyncio.create_task(self._aborted.wait(), name="abort-signal")
        metrics = await self._serve_metrics()
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
            with contextlib.suppress(Exception):  # a browser that will not close: not ours
                await runner.close_browser()
            await self.fetcher.close()
            runner.close()
            if metrics is not None:
                await metrics.cleanup()
            with contextlib.suppress(*REDIS_ERRORS, TimeoutError):
                async with asyncio.timeout(STOP_BOUND):
                    await self.heartbeat.leave()
            if not self.quiet:
                self.progress.print(final=True)
        failure = crawl.exception() if crawl.done() and not crawl.cancelled() else None
        if failure is not None:
            raise failure

    async def _serve_metrics(self) -> Any:
        """Prometheus /metrics, if asked for; process i of --processes N takes port + i."""
        if not self.settings.metrics_port:
            return None
        port = self.settings.metrics_port + int(os.environ.get(PROCESS_INDEX, "0"))

        from crawler.observe.metrics import serve

        async def render() -> bytes:
            return self.metrics.exposition()

        return await serve(render, self.settings.metrics_host, port, self._metrics_token)

    def scrape_counts(self) -> ScrapeCounts:
        """What /metrics reads of this worker when scraped."""
        from crawler.observe.metrics import ScrapeCounts

        return ScrapeCounts(len(self.tasks), self.frontier.scripts.round_trips,
                            self.counters.retries,
                            self.robots.fetches if self.robots is not None else 0,
                            self.counters.pages)

    async def _crawl(self, runner: LeaseRunner) -> None:
        # This worker's limits, delays and overrides become the crawl's,
        # also for hosts already known (crawler.politeness).
        self.watch.waiting_on = "publishing the politeness policy"
        await publish_policy(self.redis, self.settings)
        await self.steering.start()
        if self.steering.stopped:
            log.warning("crawl %r is %s", self.settings.crawl, self.steering.stopped_note())
            return
        while not self.stopping:
            if not await self._step(runner):
                # Finished: compact the hosts that just went idle, so a finished
                # crawl leaves what its seen URLs need, not its hosts' state.
                with contextlib.suppress(*REDIS_ERRORS):
                    await self.frontier.reclaim()
                break
        self.watch.waiting_on = "fetches in flight to finish (stopping)"
        await self._drain()

    async def _step(self, runner: LeaseRunner) -> bool:
        """One iteration: claim if there is room, else wait. False when the crawl is done."""
        free = self.settings.concurrency - len(self.tasks)
        # Claim when at least a quarter batch of slots is free: fewer, fuller claims.
        want = min(free, self.settings.claim_batch)
        if want <= 0 or (self.tasks and want < max(1, self.settings.claim_batch // 4)
                         and free < self.settings.concurrency // 4):
            await self._wait_for_slot(IDLE_WAIT_MAX, "a free fetch slot")
            return True
        sent = time.monotonic()  # the claim ran after this: each slot's start counts from here
        self.watch.waiting_on = "a claim reply from Redis"
        self._claims += 1
        request = str(self._claims)  # one id for this claim however often it is resent
        result = await ride_out_redis(
            lambda: self.frontier.claim(want, self.id, slack=self.settings.politeness_slack,
                                        request_id=request),
            "claim", give_up=lambda: self.stopping,
            wait=lambda s: self._wait_for_slot(s, "Redis to come back"),
            revive=self.revive_server)
        if result is None:
            return True
        self.watch.progress()
        self.last_claim = result
        self.metrics.claimed(len(result.leases))
        for lease in result.leases:
            item = InFlight(lease)
            deadline = start_deadline(self.settings, sent, lease.spaced)
            task = asyncio.create_task(runner.run(item, deadline))
            self.tasks[task] = item
            task.add_done_callback(self._task_done)
        self.watch.idle = result.finished and not self.tasks
        if result.leases:
            return True
        if result.finished and not self.tasks and not self.forever:
            return False
        wait = IDLE_WAIT_MAX if result.wait < 0 else result.wait
        await self._wait_for_slot(min(max(wait, IDLE_WAIT_MIN), IDLE_WAIT_MAX),
                                  "claimable work (the frontier's wait hint)")
        return True

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.pop(task, None)
        self.slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("fetch task failed", exc_info=task.exception())

    async def _wait_for_slot(self, seconds: float, what: str) -> None:
        self.watch.waiting_on = what
        self.slot_freed.clear()
        await wait_event(self.slot_freed, seconds)

    async def write(self, call: Callable[[], Awaitable[object]]) -> None:
        """Run one frontier write to the end, riding out a Redis outage.

        Shielded: cancelling the task must not abandon a script call half-read,
        and shutdown waits for the writes still on the wire. If the outage
        outlasts the lease, the write turns stale (a no-op) and the URL is
        crawled again: at least once, never lost.
        """
        async def shielded() -> None:
            write = asyncio.ensure_future(call())
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            await asyncio.shield(write)

        await ride_out_redis(shielded, "a frontier write", revive=self.revive_server)

    async def revive_server(self) -> None:
        """On the embedded default, start the server again if it is gone.

        ``crawl server stop --force`` (or a crash) under a running crawl leaves
        the socket dead; the server's append-only file still holds the crawl.
        A file lock makes one worker process start it; the others reuse it.
        """
        if self.settings.redis_url is not None:
            return
        from crawler.store.connection import unix_socket_of
        from crawler.store.server import ensure_server, home_dir, is_running, socket_path

        # Only a client of that very server: a library caller's own client
        # (a cluster, a TCP server) with settings naming no redis_url once got
        # an embedded Valkey started in ./.crawl on its first outage.
        if unix_socket_of(self.redis) != str(socket_path(home_dir(self.settings.home))):
            return

        def revive() -> bool:
            if is_running(socket_path(home_dir(self.settings.home))):
                return False
            ensure_server(self.settings.home)
            return True

        try:
            if await asyncio.to_thread(revive):
                log.warning("the embedded Valkey in %s was gone: started it again",
                            home_dir(self.settings.home))
        except CrawlError as exc:
            log.warning("could not start the embedded Valkey again: %s", exc)

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
        leases = [self.tasks[t].lease for t in still if t in self.tasks]
        await cancel_and_wait(still, within=STOP_BOUND)
        # Give the unfinished URLs straight back, without counting an attempt.
        for lease in leases:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.frontier.retry(lease, 0.0, count_attempt=False)
        log.info("gave back %d unfinished URLs", len(leases))

    async def _housekeeping(self) -> None:
        """Heartbeat, scope refresh and reclaiming expired leases, now and then."""
        while True:
            with contextlib.suppress(*REDIS_ERRORS):
                await self.heartbeat.beat(self.report())
                await self.frontier.reclaim()
            await asyncio.sleep(self.heartbeat_every * random.uniform(0.8, 1.2))

    async def _queue_due_revisits(self) -> None:
        """--forever: queue the URLs whose adaptive revisit is due (crawler.revisit_schedule)."""
        warned = False
        while True:
            await asyncio.sleep(DUE_POLL * random.uniform(0.8, 1.2))
            if self.settings.revisit_adaptive and not self.settings.recrawl and not warned:
                log.warning("revisit_adaptive = true does nothing without recrawl = true")
            warned = warned or self.settings.revisit_adaptive
            if self.stopping or not adaptive(self.settings):
                continue
            with contextlib.suppress(*REDIS_ERRORS):
                if await requeue_due(self.frontier):
                    self.slot_freed.set()  # claim now, not after the idle wait

    @property
    def heartbeat_every(self) -> float:
        """Seconds between heartbeats: often enough to reclaim within a quarter lease."""
        return max(1.0, min(HEARTBEAT_EVERY, self.settings.lease_time / 4))

    def report(self) -> dict[str, Any]:
        """What this worker's heartbeat says about it."""
        c = self.counters
        now = time.monotonic()
        then, pages_then = self._rate_mark
        rate = (c.pages - pages_then) / (now - then) if now - then >= 0.5 else 0.0
        self._rate_mark = (now, c.pages)
        return {"node": socket.gethostname(), "pid": os.getpid(), "pages": c.pages,
                "rate": round(rate, 2),
                "errors": c.errors, "4xx": c.client_errors, "retries": c.retries,
                "in_flight": len(self.tasks),
                "started": round(self.started_at, 3),
                "every_ms": int(self.heartbeat_every * 1200)}  # the longest jittered gap

    async def extend_scope(self, urls: list[str]) -> None:
        """Make these URLs' hosts (and domains) part of the crawl's scope, for every worker."""
        anchors = anchors_for(urls)
        await self.scope_store.add(anchors)
        self.scope.remember(dict.fromkeys(anchors, True))

    async def learn_anchors(self, anchors: set[str]) -> None:
        """Look up whether these scope anchors are in scope, and remember the answers."""
        self.scope.remember(await self.scope_store.lookup(anchors))

    async def _watch_for_stalls(self) -> None:
        """Log once, with what the worker waits on, when the crawl loop stops progressing."""
        every = max(0.05, min(5.0, self.settings.stall_warning / 4))
        while True:
            await asyncio.sleep(every)
            if self.stopping:
                continue
            message = self.watch.check(self.tasks.values(), len(self._writes), self._claimed())
            if message:
                log.warning("worker stalled: %s", message)

    def describe(self) -> str:
        """What the worker is doing now, for SIGUSR1 and the stall warning."""
        return (f"crawl loop waiting on {self.watch.waiting_on}; {len(self.tasks)} URLs in "
                f"flight, {len(self._writes)} frontier writes pending; {self._claimed()}")

    def _paused_because(self) -> str:
        return (self.steering.state.reason or "operator") if self.steering.paused else ""

    def _claimed(self) -> str:
        c = self.last_claim
        return "no claim yet" if c is None else \
            f"last claim: {len(c.leases)} leases, queued {c.queued}, leased {c.leased}"
