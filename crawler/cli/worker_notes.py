"""What ``crawl worker`` says when it had nothing to do: the crawl was already finished."""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.config import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis


async def finished_note(redis: Redis, settings: Settings) -> str | None:
    """``crawl 'x' is finished: 528 pages done (3 errors) ...`` when nothing is queued or
    leased and URLs are done; None otherwise (an empty crawl, or work left)."""
    from crawler.frontier import Frontier

    stats = await Frontier(redis, settings, local_dedup=False).stats()
    if stats["queued"] or stats["leased"] or not stats["done"]:
        return None
    errors = f" ({stats['errors']} errors)" if stats["errors"] else ""
    name = settings.crawl
    return (f"crawl {name!r} is finished: {stats['done']} pages done{errors}, nothing queued. "
            f"More: crawl --crawl {name} seed FILE, crawl --crawl {name} retry --errors TYPE, "
            f"or crawl --crawl {name} recrawl --older-than AGE (with recrawl = true)")
