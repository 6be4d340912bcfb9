"""What a worker counts, and the progress line it prints to stderr."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Counters:
    pages: int = 0
    errors: int = 0
    retries: int = 0
    missed_slots: int = 0  # leases given back unfetched: too late for the host's spacing
    started: float = field(default_factory=time.monotonic)


def held_text(summary: dict[str, Any] | None) -> str:
    """``held 12 (robots 10, backoff 2)``: queued URLs whose host is held, and why."""
    if not summary or not summary["urls"]:
        return ""
    reasons = ", ".join(f"{reason} {n}" for reason, n in
                        sorted(summary["urls_by_reason"].items(), key=lambda kv: -kv[1]) if n)
    return f"  held {summary['urls']} ({reasons})"


def print_progress(c: Counters, queued: int, in_flight: int, final: bool = False,
                   held: dict[str, Any] | None = None) -> None:
    elapsed = max(1e-9, time.monotonic() - c.started)
    line = (f"pages {c.pages}  {c.pages / elapsed:.1f} pages/s  errors {c.errors}  "
            f"retries {c.retries}  queued {queued}  in flight {in_flight}" + held_text(held))
    print(("done: " if final else "") + line, file=sys.stderr, flush=True)
