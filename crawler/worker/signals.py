"""Signals a worker process answers.

- SIGINT / SIGTERM: the first stops claiming and lets fetches in flight
  finish within ``shutdown_grace``; a second stops at once (exit 130), and
  the leases still out come back to the crawl through reclaim.
- SIGUSR1: print every asyncio task's stack and what the crawl loop waits on
  to stderr, and carry on (``kill -USR1 <pid>`` on a worker that seems stuck).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from crawler.aio import dump_tasks

if TYPE_CHECKING:
    from crawler.worker.loop import Worker

log = logging.getLogger("crawler.worker")


def install_signal_handlers(worker: Worker) -> None:
    loop = asyncio.get_running_loop()

    def on_stop_signal(signum: int) -> None:
        if worker.stopping:
            log.warning("second signal: stopping now; leases come back through reclaim")
            worker.abort()
            return
        log.warning("signal %d: finishing fetches in flight (grace %.0fs)", signum,
                    worker.settings.shutdown_grace)
        worker.request_stop()

    def on_dump_signal() -> None:
        print(f"worker {worker.id}: {worker.describe()}", file=sys.stderr)
        dump_tasks(sys.stderr)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop_signal, sig)
    loop.add_signal_handler(signal.SIGUSR1, on_dump_signal)
