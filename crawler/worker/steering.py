"""A worker following its crawl as a whole: pause and stop, caps, and changed settings.

About once a second each worker reads the crawl's state and the version of
its stored settings, and checks the caps (crawler.control). The claim script
already refuses work to a paused, stopped or capped crawl, so this poll is
not what enforces them: it is what lets a worker exit when the crawl is
stopped, say so on its progress line when paused, and pick up
``crawl config set`` without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from crawler.config import Settings
from crawler.observe import control
from crawler.observe.overview import sample_done
from crawler.pages.scope import Scope
from crawler.store.crawl_settings import apply_stored, stored, version
from crawler.worker.backoff import REDIS_ERRORS

if TYPE_CHECKING:
    from crawler.worker.parts import RunnerParts, WorkerParts

log = logging.getLogger("crawler.worker")

POLL_EVERY = 1.0
"""Seconds between two looks at the crawl's state, settings version and caps."""


class Steering:
    """What one worker knows of its crawl's state; ``follow`` keeps it current."""

    def __init__(self, worker: WorkerParts) -> None:
        self.worker = worker
        self.state = control.CrawlState()
        self.version = 0
        self.runner: RunnerParts | None = None

    @property
    def paused(self) -> bool:
        return self.state.state == control.PAUSED

    @property
    def stopped(self) -> bool:
        return self.state.state == control.STOPPED

    def stopped_note(self) -> str:
        """Why the crawl is stopped, and what lets it go on."""
        reason = self.state.reason or "operator"
        return f"stopped ({reason}): nothing to do; " + (
            "`crawl resume` goes on" if reason == "operator" else control.raise_cap_hint(reason))

    async def start(self) -> None:
        """Before the first claim: the caps in place, the state and version known."""
        w = self.worker
        self.version = await version(w.redis, w.settings.crawl)
        await control.enforce_caps(w.redis, w.settings, scripts=w.frontier.scripts)
        self.state = await control.crawl_state(w.redis, w.settings)

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(POLL_EVERY)
            with contextlib.suppress(*REDIS_ERRORS):
                await self.check()

    async def check(self) -> None:
        w = self.worker
        current = await version(w.redis, w.settings.crawl)
        if current != self.version:
            values, current = await stored(w.redis, w.settings.crawl)
            if values is not None:
                self.apply(apply_stored(w.settings, values))
                log.warning("crawl settings changed (version %d): applied", current)
            self.version = current
        await control.enforce_caps(w.redis, w.settings, scripts=w.frontier.scripts)
        await sample_done(w.redis, w.settings, (await w.frontier.stats())["done"])
        self.state = await control.crawl_state(w.redis, w.settings)
        if self.stopped and not w.stopping:
            log.warning("crawl stopped (%s): finishing the fetches in flight",
                        self.state.reason or "operator")
            w.request_stop()

    def apply(self, settings: Settings) -> None:
        """Use new crawl-wide settings from the next URL, request or call on.

        Every part of the worker that keeps settings, or something made from
        them (the address policy, timeouts, compiled patterns, the product
        token, WAIT's replicas), is handed the new ones here; a test walks the
        worker's objects for any left with an old value
        (tests/test_live_settings.py). Politeness limits and delays are
        published to the frontier by ``crawl config set`` itself.
        """
        w = self.worker
        w.settings = settings
        w.frontier.use(settings)
        w.scope = Scope(settings)
        if w.fetcher is not None:
            w.fetcher.use(settings)
        if w.robots is not None:
            w.robots.use(settings)
        if self.runner is not None:
            self.runner.use(settings, w.scope)
