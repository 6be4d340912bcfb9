"""Adaptive revisits: each done URL's own interval, and re-queueing URLs when it has passed.

With ``recrawl = true`` and ``revisit_adaptive = true`` every done URL carries
an interval in its revisit state (``crawler.recrawl``): ``revisit_initial``
after its first visit, then halved when a revisit found the page changed,
doubled when it did not (a 304, or a 200 with the same validator), kept after
an error; always within ``revisit_min`` .. ``revisit_max``. ``complete.lua``
schedules the next revisit with the result, and only then (a retried or
reclaimed lease schedules nothing): the URL's path goes in its host's
``due:<host>`` sorted set, scored by the unix second it is due, and the host in
the shard's ``due_hosts``, scored by its earliest.

``crawl worker --forever`` workers then keep a site fresh by themselves:
about once a second each runs ``due.lua`` on every shard, which queues at
most ``DUE_BATCH`` URLs whose time has come, marking them (``*``) as
``crawl recrawl`` does, so a URL is queued once whatever else queues it. A
worker without ``--forever`` schedules but never re-queues: its crawl ends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from crawler.config import Settings
    from crawler.frontier import Frontier


class Revisited(Protocol):
    """What the schedule reads of a URL's revisit state (``crawler.discovery.recrawl``)."""

    @property
    def interval(self) -> int: ...

log = logging.getLogger("crawler.recrawl")

DUE_BATCH = 500
"""URLs one due.lua call re-queues at most (a few µs each)."""
DUE_POLL = 1.0
"""Seconds between a forever worker's looks for revisits that are due."""


def adaptive(settings: Settings) -> bool:
    """True when URLs get an adaptive revisit interval (it needs recrawl = true)."""
    return settings.recrawl and settings.revisit_adaptive


def bounds(settings: Settings) -> tuple[int, int, int]:
    """(min, initial, max) whole seconds; a max below the min counts as the min."""
    low = max(1, round(settings.revisit_min))
    high = max(low, round(settings.revisit_max))
    return low, min(high, max(low, round(settings.revisit_initial))), high


def next_interval(previous: Revisited | None, record: dict[str, Any],
                  settings: Settings) -> int:
    """Seconds to this URL's next revisit after the visit ``record`` describes; 0: none.

    Halved when the page changed, doubled when it did not, kept after an
    error; ``revisit_initial`` after a first visit (or one made before the
    option was on).
    """
    if not adaptive(settings):
        return 0
    low, initial, high = bounds(settings)
    if previous is None or not previous.interval:
        return initial
    interval = previous.interval
    if record.get("changed") is True:
        interval //= 2
    elif record.get("not_modified") or record.get("changed") is False:
        interval *= 2
    return min(high, max(low, interval))


async def requeue_due(frontier: Frontier) -> int:
    """Queue the URLs whose adaptive revisit is due, at most ``DUE_BATCH`` a shard."""
    policy = frontier.settings.policy_for("")
    replies = await frontier.run([("due", shard.script_keys, [
        shard.base, DUE_BATCH, policy.max_per_host, int(policy.delay * 1000)])
        for shard in frontier.shards])
    return sum(int(queued) for queued in replies)
