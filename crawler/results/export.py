"""``crawl export``: every result to a file, read-only or draining.

Plain export reads the streams and changes nothing. ``--drain`` takes
results out of Redis (``crawler.results.drain``): each batch is written,
flushed and fsynced before it is acknowledged and deleted. ``--follow``
keeps going as results arrive and ends by itself when the crawl is done
(nothing queued, leased or waiting, and no live worker) or stopped (by an
operator or a cap, with nothing leased and no live worker), unless ``forever``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.frontier.workers import crawl_end
from crawler.results.drain import Drain, consumer_name
from crawler.results.drain_file import DrainFile, kill_point
from crawler.results.formats import JsonLinesWriter, RecordWriter, format_for
from crawler.results.stream import count_results, iter_entries

DONE_CHECK_EVERY = 2.0
"""Seconds between checks that a followed crawl is done, while no results arrive."""


class Progress:
    """A rich progress bar on a terminal, nothing otherwise."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar = None
        if enabled:
            from rich.progress import Progress as RichProgress

            self.bar = RichProgress(transient=True)
            self.bar.start()
            self.task = self.bar.add_task("exporting", total=total or None)

    def update(self, written: int) -> None:
        if self.bar is not None and written % 500 == 0:
            self.bar.update(self.task, completed=written)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _done_checker(redis: Redis, settings: Settings, on_end: Callable[[str], None] | None
                  ) -> Callable[[], Awaitable[bool]]:
    last = 0.0

    async def done() -> bool:
        nonlocal last
        if time.monotonic() - last < DONE_CHECK_EVERY:
            return False
        last = time.monotonic()
        end = await crawl_end(redis, settings)
        if end and on_end is not None:
            on_end(end)
        return bool(end)

    return done


async def export(redis: Redis, settings: Settings, out: IO[str], *, follow: bool = False,
                 forever: bool = False, progress: bool | None = None,
                 on_end: Callable[[str], None] | None = None) -> int:
    """Write every result as one JSON line (read-only). Returns how many were written."""
    if progress is None:
        progress = out is not sys.stdout and sys.stderr.isatty()
    return await export_to(redis, settings, JsonLinesWriter(out), follow=follow,
                           forever=forever, progress=progress, on_end=on_end)


async def export_to(redis: Redis, settings: Settings, writer: RecordWriter, *,
                    follow: bool = False, forever: bool = False, progress: bool = False,
                    on_end: Callable[[str], None] | None = None) -> int:
    """Write every result through ``writer`` (read-only); the caller closes it.
    ``on_end``: told why a followed crawl ended (``crawler.frontier.workers.crawl_end``)."""
    bar = Progress(progress, await count_results(redis, settings))
    written = 0
    until_done = None if forever else _done_checker(redis, settings, on_end)
    try:
        async for entry in iter_entries(redis, settings, follow=follow, until_done=until_done,
                                        on_idle=writer.flush if follow else None):
            writer.write(entry)
            written += 1
            bar.update(written)
    finally:
        bar.stop()
    return written


async def drain(redis: Redis, settings: Settings, path: Path, *, follow: bool = False,
                forever: bool = False, on_batch: Callable[[int], None] | None = None,
                compress: bool | None = None,
                on_end: Callable[[str], None] | None = None) -> int:
    """Move results from Redis to ``path`` (appended). Returns how many were written.

    Each batch is written and fsynced, then recorded in ``path.drain``, then
    acknowledged (``crawler.results.drain_file`` says why that order).
    ``compress``: gzip JSON lines (default: if ``path`` names ``.jsonl.gz``).
    """
    if compress is None:
        compress = format_for(str(path)) == "jsonl.gz"
    worker = Drain(redis, settings, consumer_name(str(path)))
    pending = await worker.start()
    out = DrainFile(path, settings.crawl, compress=compress)
    done = None if forever else _done_checker(redis, settings, on_end)
    written = 0
    ending = False  # the crawl ended: one more read (a result completed meanwhile)
    try:
        await worker.acknowledge_ids(out.recover(pending, worker.delivered))
        while True:
            batch = await worker.read(block=follow and not ending)
            if not batch:
                await worker.trim()
                if not follow or ending:
                    return written
                ending = done is not None and await done()
                continue
            out.append(batch)  # on disk and recorded before Redis lets go of it
            await worker.acknowledge(batch)
            kill_point("acked", out.batches)
            written += len(batch)
            if on_batch:
                on_batch(written)
    finally:
        out.close()
