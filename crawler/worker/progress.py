"""What a worker counts, and the progress line it prints to stderr.

The line answers "how long is left": pages a second over the last
``RATE_WINDOW`` seconds (an average since the start would decay forever
during a stall, and hide it), the crawl's URLs done out of those known so
far, an ETA for those, and when the hosts' politeness and not this worker
is the limit, how many hosts there are and how fast each may go.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crawler.config import Settings
from crawler.observe.status import held_hosts, held_summary
from crawler.worker.backoff import REDIS_ERRORS
from crawler.worker.hints import ErrorTally

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from crawler.frontier import Frontier
    from crawler.worker.watch import InFlight

PROGRESS_EVERY = 2.0
"""Seconds between two progress lines."""
RATE_WINDOW = 10.0
"""Seconds the pages/s figure looks back over."""
FINAL_COUNTS = "CRAWLER_FINAL_COUNTS"
"""Set by ``crawl worker --processes N`` for each process: the file its final counts go
to, instead of its own ``done:`` line; the parent prints one total."""


@dataclass
class Counters:
    pages: int = 0
    errors: int = 0
    client_errors: int = 0  # pages answered with a 4xx status: done, not failed
    retries: int = 0
    missed_slots: int = 0  # leases given back unfetched: too late for the host's spacing
    by_error: ErrorTally = field(default_factory=ErrorTally)  # for the cause-and-fix hint
    started: float = field(default_factory=time.monotonic)


class RateWindow:
    """A count's rate of change over the last ``window`` seconds, from samples of it."""

    def __init__(self, window: float = RATE_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, count: int) -> None:
        now = self.clock()
        self.samples.append((now, count))
        # Keep one sample at or before the window's start, to measure from.
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    def rate(self) -> float | None:
        """Per second over the window (or since the first sample); None before two samples."""
        if len(self.samples) < 2:
            return None
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else None


@dataclass(frozen=True, slots=True)
class CrawlProgress:
    """The crawl as a whole (every shard, every worker), read for the progress line."""

    done: int
    queued: int  # retries waiting for their time count as queued
    leased: int
    ready_hosts: int  # hosts with queued URLs and a free slot

    @property
    def known(self) -> int:
        return self.done + self.queued + self.leased


async def read_progress(frontier: Frontier) -> CrawlProgress:
    """One pipeline, through the frontier: each shard's counters and its hosts ready to go."""
    counts = await frontier.stats(ready_hosts=True)
    return CrawlProgress(counts["done"], counts["queued"], counts["leased"],
                         counts.get("ready_hosts", 0))


def duration_text(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h20m``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def held_text(summary: dict[str, Any] | None) -> str:
    """``held 12 (robots 10, backoff 2)``: queued URLs whose host is held, and why."""
    if not summary or not summary["urls"]:
        return ""
    reasons = ", ".join(f"{reason} {n}" for reason, n in
                        sorted(summary["urls_by_reason"].items(), key=lambda kv: -kv[1]) if n)
    return f"  held {summary['urls']} ({reasons})"


def crawl_text(crawl: CrawlProgress | None, crawl_rate: float | None) -> str:
    """``done 130 of 480 known  eta 1m28s``."""
    if crawl is None:
        return ""
    text = f"  done {crawl.done} of {crawl.known} known"
    left = crawl.known - crawl.done
    if left > 0 and crawl_rate:
        text += f"  eta {duration_text(left / crawl_rate)}"
    return text


def politeness_text(crawl: CrawlProgress | None, settings: Settings, in_flight: int,
                    hosts_in_flight: int) -> str:
    """``3 hosts at 1.0/s: politeness-bound``, when free fetch slots wait on hosts' delays.

    The worker is politeness-bound when it has URLs left to crawl but uses
    less than half its fetch slots: the hosts' delays, not this process,
    set the pace. The per-host rate is the default policy's.
    """
    if crawl is None or settings.delay <= 0 or crawl.queued == 0:
        return ""
    if in_flight >= settings.concurrency / 2:
        return ""
    hosts = max(crawl.ready_hosts, hosts_in_flight, 1)
    per_host = settings.max_per_host / settings.delay
    return f"  {hosts} host{'s' if hosts != 1 else ''} at {per_host:.1f}/s: politeness-bound"


def progress_line(c: Counters, rate: float | None, in_flight: int, *,
                  crawl: CrawlProgress | None = None, crawl_rate: float | None = None,
                  held: dict[str, Any] | None = None, politeness: str = "",
                  paused: str = "", with_hint: bool = True) -> str:
    """``paused``: why the crawl claims nothing (``operator``): said instead of a rate
    of 0.0 pages/s, an ETA and the politeness that are not what holds it."""
    rate_text = "-" if rate is None else f"{rate:.1f}"
    if paused:
        rate_text, crawl_rate, politeness = f"paused ({paused})", None, ""
    else:
        rate_text += " pages/s"
    return (f"pages {c.pages}  {rate_text}  4xx: {c.client_errors}  "
            f"errors {c.errors}  retries {c.retries}  in flight {in_flight}"
            + crawl_text(crawl, crawl_rate) + held_text(held) + politeness
            + (f"  | {hint}" if with_hint and (hint := c.by_error.hint(c.pages)) else ""))


def print_progress(c: Counters, rate: float | None, in_flight: int, final: bool = False,
                   **parts: Any) -> None:
    if final and os.environ.get(FINAL_COUNTS):  # one of --processes N: the parent sums
        with open(os.environ[FINAL_COUNTS], "w", encoding="utf-8") as fh:
            json.dump({"pages": c.pages, "errors": c.errors,
                       "client_errors": c.client_errors, "retries": c.retries}, fh)
        return
    if final:  # the whole run's average: the window says little about a finished crawl
        elapsed = max(1e-9, time.monotonic() - c.started)
        rate = c.pages / elapsed
    line = progress_line(c, rate, in_flight, with_hint=not final, **parts)
    if final:  # the hint on a line of its own: the last thing the user reads
        hint = c.by_error.hint(c.pages)
        line = "done: " + line + (f"\ncrawl: {hint}" if hint else "")
    print(line, file=sys.stderr, flush=True)


class ProgressLine:
    """A worker's progress line: printed every PROGRESS_EVERY seconds, and once at the end.

    Its rates come from samples taken here; the crawl's counts and held hosts are
    read with each line, so the final line leaves them out (up to PROGRESS_EVERY
    stale). ``settings``: the worker's current ones (``crawl config set`` replaces
    them while it runs). ``in_flight``: the worker's fetches (its live map, not a
    copy). ``paused``: why the crawl claims nothing, or "".
    """

    def __init__(self, counters: Counters, frontier: Frontier, redis: Redis,
                 settings: Callable[[], Settings], in_flight: Mapping[Any, InFlight],
                 paused: Callable[[], str]) -> None:
        self.counters, self.frontier, self.redis = counters, frontier, redis
        self.settings, self.in_flight, self.paused = settings, in_flight, paused
        self.held: dict[str, Any] | None = None
        self.crawl: CrawlProgress | None = None
        self.rate: float | None = None  # this worker's pages/s over the last RATE_WINDOW
        self.crawl_rate: float | None = None  # the crawl's URLs done a second, the same

    async def run(self) -> None:
        """Sample and print until cancelled; a Redis outage only leaves the crawl's part stale."""
        pages, crawl_done = RateWindow(), RateWindow()
        while True:
            pages.add(self.counters.pages)
            with contextlib.suppress(*REDIS_ERRORS):
                self.held = held_summary(await held_hosts(self.redis, self.settings()))
                self.crawl = await read_progress(self.frontier)
                crawl_done.add(self.crawl.done)
            self.rate, self.crawl_rate = pages.rate(), crawl_done.rate()
            if self.rate is not None:
                self.print()
            await asyncio.sleep(PROGRESS_EVERY)

    def print(self, final: bool = False) -> None:
        in_flight = len(self.in_flight)
        hosts = len({item.lease.host for item in self.in_flight.values()})
        crawl = None if final else self.crawl  # read up to 2 s ago: stale at the end
        politeness = "" if final else politeness_text(crawl, self.settings(), in_flight, hosts)
        paused = "" if final else self.paused()
        print_progress(self.counters, self.rate, in_flight, final=final, crawl=crawl,
                       crawl_rate=None if final else self.crawl_rate,
                       held=None if final else self.held, politeness=politeness,
                       paused=paused)
