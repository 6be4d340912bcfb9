"""``crawl worker --processes N``: N single-process workers, signals passed on, and one
``done:`` line for them all.

Each process writes its final counts to a file of its own (FINAL_COUNTS)
instead of printing its line; the parent adds them up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crawler.config import Settings
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


def run_processes(settings: Settings) -> int:
    """Run single-process workers with the same arguments; pass signals on.

    Exits 0 only if every worker did; a worker killed by signal N counts as 128+N.
    """
    from crawler.store.server import ensure_server

    if settings.redis_url is None:
        ensure_server(settings.home)  # start it once, not n times in a race
    argv = [sys.executable, "-m", "crawler", *sys.argv[1:], "--processes", "1"]
    # Own process groups: Ctrl-C in a terminal signals the whole foreground
    # group, and a worker that got it twice (from there and from forward())
    # would stop at once instead of finishing its fetches.
    from crawler.worker.loop import PROCESS_INDEX

    totals = FinalCounts(settings.processes)
    children = [subprocess.Popen(argv, process_group=0,
                                 env={**os.environ, PROCESS_INDEX: str(i), **totals.env(i)})
                for i in range(settings.processes)]

    def forward(signum: int, _frame: object) -> None:
        # A closed terminal (SIGHUP) no longer reaches the workers: drain them.
        # SIGUSR1 asks each worker for its task dump.
        signum = signal.SIGTERM if signum == signal.SIGHUP else signum
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, forward)
    codes = [child.wait() for child in children]
    totals.report()  # one done: line for them all
    return next((code if code > 0 else 128 - code for code in codes if code), 0)
