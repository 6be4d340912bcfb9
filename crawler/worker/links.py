"""Which of a page's links (or the URLs its hook follows) are queued, and at what depth."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.worker.parts import RunnerParts


async def links_to_queue(runner: RunnerParts, urls: list[str], depth: int
                         ) -> list[tuple[str, int]]:
    """The URLs to queue at ``depth``: in scope, and not sent to Redis recently.

    Most links were sent to Redis already (add would drop them): skip the
    scope rules for those. Scope anchors this process does not know yet are
    learned first (a frontier write).
    """
    frontier, scope = runner.frontier, runner.scope
    fresh = [u for u in urls if not frontier.sent_recently(u)]
    unknown = scope.unknown_anchors(fresh)
    if unknown:
        await runner.write(lambda: runner.worker.learn_anchors(unknown))
    return [(u, depth) for u in fresh if scope.allows(u, depth)]
