"""Result records: the fields every fetched URL ends with, and their JSON text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# The fields of every record, in this order.
FIELDS = ("url", "final_url", "status", "title", "links", "content_type", "bytes", "depth",
          "attempts", "elapsed_ms", "total_elapsed_ms", "fetched_at", "worker", "noindex",
          "redirect_to", "error",
          "dedup_url", "canonical", "duplicate_of",  # Fewer wasted fetches (README)
          "simhash", "near_duplicate_of")


def make_record(*, url: str, depth: int, attempts: int, worker: str, final_url: str | None = None,
                status: int | None = None, title: str | None = None, links: int = 0,
                content_type: str | None = None, size: int = 0, elapsed: float = 0.0,
                noindex: bool = False, redirect_to: str | None = None,
                error: tuple[str, str] | None = None,
                total_elapsed: float | None = None,
                warc: tuple[str, int] | None = None, dedup_url: str | None = None,
                canonical: str | None = None, duplicate_of: str | None = None,
                simhash: str | None = None) -> dict[str, Any]:
    """One result record. ``error`` is (type, message) or None; ``redirect_to`` a 3xx's target.

    ``elapsed``: the last attempt's seconds; ``total_elapsed``: every attempt's
    (not the waits between them), the same as ``elapsed`` for one attempt.
    ``warc``: the WARC file and offset of the response, when captured (then
    the record ends with ``warc_file`` and ``warc_offset``). ``dedup_url``: the
    key ``url`` was deduplicated under, when not ``url`` itself (query cleaning);
    ``canonical``: the page's rel=canonical; ``duplicate_of``: that canonical,
    when ``canonical = "follow"`` found it to be another in-scope URL.
    ``simhash``: an HTML page's SimHash, 16 hex digits (crawler.pages.simhash);
    ``near_duplicate_of`` stays null here: complete.lua fills it in from the
    host's SimHash index, in the same script that records the result.
    """
    record = {
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
        "total_elapsed_ms": round((elapsed if total_elapsed is None else total_elapsed) * 1000,
                                  1),
        "fetched_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "worker": worker,
        "noindex": noindex,
        "redirect_to": redirect_to,
        "error": None if error is None else {"type": error[0], "message": error[1]},
        "dedup_url": dedup_url,
        "canonical": canonical,
        "duplicate_of": duplicate_of,
        "simhash": simhash,
        "near_duplicate_of": None,
    }
    if warc is not None:
        record["warc_file"], record["warc_offset"] = warc
    return record


def dumps(record: dict[str, Any]) -> str:
    """JSON text of a record: ASCII-only, so any title survives any terminal or pipe."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))
