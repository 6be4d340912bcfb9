"""Result records: how they are built, and exporting the results streams as JSON lines."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import IO, Any

from redis.asyncio import Redis

from crawler import keys
from crawler.config import Settings

EXPORT_PAGE = 1000
FOLLOW_BLOCK_MS = 2000

# The fields of every record, in this order.
FIELDS = ("url", "final_url", "status", "title", "links", "content_type", "bytes", "depth",
          "attempts", "elapsed_ms", "fetched_at", "worker", "noindex", "redirect_to", "error")


def make_record(*, url: str, depth: int, attempts: int, worker: str, final_url: str | None = None,
                status: int | None = None, title: str | None = None, links: int = 0,
                content_type: str | None = None, size: int = 0, elapsed: float = 0.0,
                noindex: bool = False, redirect_to: str | None = None,
                error: tuple[str, str] | None = None) -> dict[str, Any]:
    """One result record. ``error`` is (type, message) or None; ``redirect_to`` a 3xx's target."""
    return {
        "url": url,
        "final_url": final_url,
        "status": status,
        "title": title,
        "links": links,
        "content_type": content_type,
        "bytes": size,
        "depth": depth,
        "attempts": attempts,
        "elapsed_ms": round(elapsed * 1000, 1),
        "fetched_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "worker": worker,
        "noindex": noindex,
        "redirect_to": redirect_to,
        "error": None if error is None else {"type": error[0], "message": error[1]},
    }


def dumps(record: dict[str, Any]) -> str:
    """JSON text of a record: ASCII-only, so any title survives any terminal or pipe."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))


async def count_results(redis: Redis, settings: Settings) -> int:
    pipe = redis.pipeline(transaction=False)
    for shard in keys.all_shards(settings.crawl, settings.shards):
        pipe.xlen(shard.results)
    return sum(int(n) for n in await pipe.execute())


async def iter_results(redis: Redis, settings: Settings, *, follow: bool = False
                       ) -> AsyncIterator[str]:
    """Yield every result's JSON text, a page at a time, shard after shard.

    With ``follow``, keep waiting for new results (blocking reads, no polling).
    """
    shards = keys.all_shards(settings.crawl, settings.shards)
    last: dict[str, Any] = {s.results: "-" for s in shards}
    for shard in shards:
        start = "-"
        while True:
            page: Any = await redis.xrange(shard.results, min=start, max="+", count=EXPORT_PAGE)
            for entry_id, fields in page:
                yield _record_text(fields)
                last[shard.results] = entry_id
            if len(page) < EXPORT_PAGE:
                break
            start = "(" + _s(page[-1][0])
    if not follow:
        return
    streams: dict[str, str] = {k: ("0-0" if v == "-" else _s(v)) for k, v in last.items()}
    while True:
        reply: Any = await redis.xread(streams, count=EXPORT_PAGE,  # type: ignore[arg-type]
                                       block=FOLLOW_BLOCK_MS)
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                yield _record_text(fields)
                streams[_s(stream)] = _s(entry_id)


def _record_text(fields: dict[Any, Any]) -> str:
    raw = fields.get("r") or fields.get(b"r") or "{}"
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def export(redis: Redis, settings: Settings, out: IO[str], *, follow: bool = False,
                 progress: bool | None = None) -> int:
    """Write every result as one JSON line. Returns how many were written."""
    if progress is None:
        progress = out is not sys.stdout and sys.stderr.isatty()
    total = await count_results(redis, settings)
    written = 0
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("exporting", total=total or None)
    try:
        async for text in iter_results(redis, settings, follow=follow):
            out.write(text)
            out.write("\n")
            written += 1
            if bar is not None and written % 500 == 0:
                bar.update(task, completed=written)
            if follow:
                out.flush()
    finally:
        if bar is not None:
            bar.stop()
    return written
