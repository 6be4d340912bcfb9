"""One ``done:`` line for ``crawl worker --processes N``: the processes' counts, summed.

Each process writes its final counts to a file of its own (FINAL_COUNTS)
instead of printing its line; the parent adds them up.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from crawler.worker.progress import FINAL_COUNTS

FIELDS = ("pages", "errors", "client_errors", "retries")


class FinalCounts:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.dir = Path(tempfile.mkdtemp(prefix="crawl-counts-"))
        self.started = time.monotonic()

    def env(self, index: int) -> dict[str, str]:
        return {FINAL_COUNTS: str(self.dir / f"{index}.json")}

    def report(self) -> None:
        """``done: pages 90  30.0 pages/s  4xx: 0  errors 0  retries 0  (2 processes)``."""
        try:
            told = [json.loads(p.read_text()) for p in sorted(self.dir.glob("*.json"))]
        except (OSError, ValueError):
            told = []
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        if not told:  # --quiet, or every process killed: no line
            return
        total = {name: sum(int(t.get(name, 0)) for t in told) for name in FIELDS}
        rate = total["pages"] / max(1e-9, time.monotonic() - self.started)
        who = f"{self.processes} processes" if len(told) == self.processes else \
            f"{len(told)} of {self.processes} processes told their counts"
        print(f"done: pages {total['pages']}  {rate:.1f} pages/s  4xx: "
              f"{total['client_errors']}  errors {total['errors']}  retries "
              f"{total['retries']}  ({who})", file=sys.stderr, flush=True)
