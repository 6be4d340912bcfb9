"""What ``crawl seed`` checks around the seeding: only it creates a crawl, and only
with a URL in it; and a crawl that will not run is said to be so at once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from crawler.config import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def crawl_is_new(settings: Settings) -> bool:
    """The crawl is not there yet: this seed creates it."""
    from crawler.observe.catalog import crawl_exists
    from crawler.store.connection import connect

    client = await connect(settings)
    try:
        return not await crawl_exists(client, settings.crawl)
    finally:
        await client.aclose()


async def forget_if_empty(redis: Redis, settings: Settings, new: bool, report: Any) -> bool:
    """A crawl this seed created but gave no valid URL is deleted again: a file of
    only bad lines (or an unreadable one) leaves no empty crawl in ``crawl list``.
    True if it was."""
    if new and (report is None or getattr(report, "valid", 0) == 0):
        from crawler.frontier import Frontier
        from crawler.observe.catalog import delete_crawl

        stats = await Frontier(redis, settings, local_dedup=False).stats()
        if stats["seen"] or stats["queued"]:
            return False  # another seed filled it meanwhile: its crawl now
        await delete_crawl(redis, settings.crawl)
        return True
    return False


async def state_warning(redis: Redis, settings: Settings) -> str | None:
    """A stopped or paused crawl takes the URLs, but no worker will fetch them yet."""
    from crawler.observe.control import PAUSED, STOPPED, crawl_state, raise_cap_hint

    state = await crawl_state(redis, settings)
    name = settings.crawl
    if state.state == STOPPED and state.reason not in ("", "operator"):
        return (f"crawl {name!r} is stopped ({state.reason}): workers refuse it; "
                f"{raise_cap_hint(state.reason)}")
    if state.state == STOPPED:
        return (f"crawl {name!r} is stopped (operator): workers refuse it until "
                f"`crawl --crawl {name} resume`")
    if state.state == PAUSED:
        return (f"crawl {name!r} is paused: workers claim nothing until "
                f"`crawl --crawl {name} resume`")
    return None
