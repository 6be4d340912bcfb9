"""The state a crawl is shown in: the stored one (running, paused, stopped), or finished.

``finished`` is not stored: a running crawl is finished while nothing is
queued (delayed retries count as queued), nothing is leased, no worker is
alive and at least one URL has a result. ``crawl status``, the dashboard's
badge, ``crawl_state{state=...}`` and ``crawl list`` all show it; seeding
more URLs or ``crawl retry`` / ``crawl recrawl`` make it running again.
"""

from __future__ import annotations

from typing import Any

from crawler.observe.control import PAUSED, RUNNING, STOPPED

FINISHED = "finished"
STATES = (RUNNING, PAUSED, STOPPED, FINISHED)
"""Every state a crawl is shown in (the ``crawl_state`` gauge has one series each)."""


def shown_state(stored: str, *, queued: int, leased: int, workers: int, done: int) -> str:
    """The stored state, or ``finished`` for a running crawl with nothing left to do."""
    if stored == RUNNING and queued == 0 and leased == 0 and workers == 0 and done > 0:
        return FINISHED
    return stored


def with_shown_state(crawl: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """``crawl status``'s ``crawl`` part, its state the one shown."""
    state = shown_state(crawl.get("state", RUNNING), queued=int(status.get("queued", 0)),
                        leased=int(status.get("leased", 0)),
                        workers=int(status.get("workers", 0)), done=int(status.get("done", 0)))
    return {**crawl, "state": state}
