"""Seeding: stream a file of URLs into the frontier, reporting bad lines by number."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.errors import InvalidURL
from crawler.frontier import Frontier
from crawler.scope import ScopeStore, anchors_for
from crawler.urls import canonicalize

BATCH = 2000
MAX_LINE_BYTES = 16 * 1024
"""Longer seed lines are reported and skipped without being held in memory."""
BOM = b"\xef\xbb\xbf"


@dataclass
class SeedReport:
    added: int = 0
    seen: int = 0
    invalid: int = 0
    capped: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.added + self.seen + self.capped


def read_seed_lines(stream: BinaryIO) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line number, canonical URL or None, problem) for each non-blank, non-comment line.

    Reads bytes a line at a time: a huge file or a huge line never sits in memory.
    """
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                raw = stream.readline(MAX_LINE_BYTES)
            yield number, None, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        if number == 1 and raw.startswith(BOM):  # files saved by some Windows editors
            raw = raw[len(BOM):]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield number, None, "not valid UTF-8"
            continue
        if not text or text.startswith("#"):
            continue
        if not text.isprintable():
            yield number, None, "contains control characters"
            continue
        try:
            yield number, canonicalize(text), ""
        except InvalidURL as exc:
            yield number, None, f"{exc}: {text[:80]!r}"


async def seed(redis: Redis, settings: Settings, stream: BinaryIO,
               on_problem: Callable[[int, str], None] | None = None) -> SeedReport:
    """Add every valid URL in ``stream`` at depth 0; report the rest by line number."""
    frontier = Frontier(redis, settings, local_dedup=False)
    scope = ScopeStore(redis, settings)
    report = SeedReport()
    batch: list[str] = []

    async def flush() -> None:
        # Scope anchors first: a running worker may claim these URLs at once,
        # and must then see their hosts as in scope.
        await scope.add(anchors_for(batch))
        counts = await frontier.add((url, 0) for url in batch)
        report.added += counts.added
        report.seen += counts.seen
        report.capped += counts.capped
        batch.clear()

    for number, url, problem in read_seed_lines(stream):
        if url is None:
            report.invalid += 1
            if len(report.problems) < 1000:
                report.problems.append((number, problem))
            if on_problem:
                on_problem(number, problem)
            continue
        batch.append(url)
        if len(batch) >= BATCH:
            await flush()
    if batch:
        await flush()
    return report
