"""What the parts of a worker see of each other, as protocols.

``Worker`` (``loop``) builds a ``LeaseRunner`` (``lease``), which builds a
``SitemapReader`` (``sitemap``), and ``Steering`` (``steering``) updates both
when the crawl's settings change. Each part is handed the one above it; these
protocols say what it may use of it, so ``loop`` imports ``lease`` and
``steering`` and neither imports ``loop`` back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from crawler.config import Settings
    from crawler.frontier import Frontier
    from crawler.net.fetch import Fetcher
    from crawler.net.robots import RobotsCache
    from crawler.pages.scope import Scope
    from crawler.pages.warc import WarcCapture
    from crawler.worker.meter import FetchMeter
    from crawler.worker.progress import Counters
    from crawler.worker.watch import StallWatch

Write = Callable[[Callable[[], Awaitable[object]]], Awaitable[None]]
"""Runs a frontier write to completion, shielded from cancellation, riding out outages."""


class WorkerParts(Protocol):
    """What a worker's lease runner, sitemap reader and steering use of it."""

    settings: Settings
    redis: Redis
    frontier: Frontier
    fetcher: Fetcher | None
    robots: RobotsCache | None
    scope: Scope
    counters: Counters
    metrics: FetchMeter
    watch: StallWatch
    stopping: bool
    id: str

    async def write(self, call: Callable[[], Awaitable[object]]) -> None: ...

    async def learn_anchors(self, anchors: set[str]) -> None: ...

    async def extend_scope(self, urls: list[str]) -> None: ...

    def request_stop(self) -> None: ...


class RunnerParts(Protocol):
    """What the sitemap reader, steering and crawler.worker.links/canonical use of a
    worker's lease runner."""

    worker: WorkerParts
    settings: Settings
    frontier: Frontier
    fetcher: Fetcher
    scope: Scope
    counters: Counters
    agent: str
    write: Write
    warc: WarcCapture | None

    def set_hook(self, settings: Settings) -> None: ...

    def use(self, settings: Settings, scope: Scope) -> None: ...
