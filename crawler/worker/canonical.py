"""rel=canonical: what a page says its URL is, and what ``canonical = "follow"`` does with it.

A page names its canonical URL in ``<link rel=canonical>`` (``crawler.pages.parse``)
or in a ``Link: <...>; rel="canonical"`` header (``crawler.pages.link_header``);
the element wins when both are there (it is the page's own word; the header is
often a server-wide rule). Every mode but ``off`` records it. With ``follow``,
a page whose canonical is another in-scope URL (another dedup key than the
URL found and the URL fetched) is a duplicate of it: recorded with
``duplicate_of``, its canonical queued (the frontier's dedup drops it if it
was queued or fetched already), and its own links followed or not as
``canonical_links`` says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.config import Settings
    from crawler.frontier import Frontier, Lease
    from crawler.net.fetch import Response
    from crawler.pages.scope import Scope
    from crawler.worker.parts import RunnerParts


async def duplicate_of(canonical: str, urls: tuple[str, ...], depth: int, *,
                       frontier: Frontier, scope: Scope,
                       learn: Callable[[set[str]], Awaitable[object]]) -> str | None:
    """``canonical`` if it is another in-scope URL than ``urls`` (found, fetched, final).

    ``learn``: stores scope anchors this process does not know yet (as for links).
    """
    key = frontier.dedup_key(canonical)
    if any(frontier.dedup_key(url) == key for url in urls):
        return None  # the page names itself: the common case
    unknown = scope.unknown_anchors([canonical])
    if unknown:
        await learn(unknown)
    return canonical if scope.allows(canonical, depth) else None


def drops_links(settings: Settings, duplicate: str | None) -> bool:
    """True if a page's links are not followed because it is a duplicate of its canonical."""
    return duplicate is not None and settings.canonical_links == "drop"


async def page_canonical(runner: RunnerParts, lease: Lease, resp: Response,
                         canonical: str | None) -> tuple[str | None, str | None]:
    """The page's canonical to record, and the URL it duplicates, as ``canonical`` says."""
    mode = runner.settings.canonical
    if canonical is None or mode == "off":
        return None, None
    if mode == "record":
        return canonical, None
    return canonical, await duplicate_of(
        canonical, (lease.url, resp.url, resp.final_url), lease.depth,
        frontier=runner.frontier, scope=runner.scope,
        learn=lambda anchors: runner.write(lambda: runner.worker.learn_anchors(anchors)))
