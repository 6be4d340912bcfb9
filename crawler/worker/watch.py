"""Noticing a worker that stopped making progress, and saying what it waits on.

A worker makes progress when its crawl loop gets a claim reply, or a fetch
task finishes its frontier write. Replies to housekeeping (heartbeats,
reclaim) do not count: a worker whose crawl loop is stuck while housekeeping
still talks to Redis is exactly the hang this must reveal. After ``after``
seconds without progress, while the worker believes the crawl is running,
``check`` returns one description (once per stall) for the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crawler.discovery.recrawl import RevisitState
from crawler.frontier import Lease

if TYPE_CHECKING:
    from crawler.net.fetch import Response
    from crawler.pages.needs_js import RenderNote


@dataclass(slots=True)
class InFlight:
    """One claimed URL being worked on, and which step it is at."""

    lease: Lease
    stage: str = "starting"  # robots, fetch, render, parse, write
    since: float = field(default_factory=time.monotonic)
    previous: RevisitState | None = None  # recrawl = true: its last visit's state
    capture: str = ""  # its WARC record holding a 200's payload, packed (crawler.warc)
    cookies_sent: int = 0  # cookies = true: cookies its request carried
    cookie_updates: list[Any] = field(default_factory=list)  # what its response set
    render: RenderNote | None = None  # render != never: the decision, for the record
    plain: Response | None = None  # a rendered page's response as fetched (for WARC)

    def at(self, stage: str) -> None:
        self.stage = stage


class StallWatch:
    """Tracks the crawl loop's last progress; describes a stall once."""

    def __init__(self, after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self.clock = clock
        self.last_progress = clock()
        self.waiting_on = "starting"  # what the crawl loop awaits right now
        self.idle = False  # the crawl looked finished (--forever waits): not a stall
        self._warned = False

    def progress(self) -> None:
        self.last_progress = self.clock()
        self._warned = False

    def check(self, in_flight: Iterable[InFlight], writes: int, extra: str = "") -> str | None:
        """A one-line description of the stall, the first time one is seen; else None."""
        quiet_for = self.clock() - self.last_progress
        if self.after <= 0 or self.idle or self._warned or quiet_for < self.after:
            return None
        self._warned = True
        fetches = list(in_flight)
        line = (f"no claim or completion for {quiet_for:.0f}s; the crawl loop is waiting on "
                f"{self.waiting_on}; {len(fetches)} URLs in flight, {writes} frontier writes "
                "pending")
        if fetches:
            oldest = min(fetches, key=lambda f: f.since)
            line += (f"; oldest {self.clock() - oldest.since:.0f}s at {oldest.stage}: "
                     f"{oldest.lease.url}")
        return line + (f"; {extra}" if extra else "")
