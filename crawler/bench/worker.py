"""One benchmark worker process: ``crawl worker`` plus counters written on exit.

The benchmark runs N of these instead of ``crawl worker --processes N`` so each
process can report what only it knows: its frontier round trips, the CPU time
and wall time of the crawl itself (not of Python's start-up), and its memory
over time. Usage: ``python -m crawler.bench.worker SETTINGS_JSON OUT_JSON``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

RSS_SAMPLE_EVERY = 1.0
"""Seconds between samples of the process's resident memory."""


def cpu_seconds(pid: int | str = "self") -> float:
    """utime + stime of a process, in seconds.

    This process's from getrusage (to the microsecond); another's from
    /proc/<pid>/stat, which counts whole 10 ms clock ticks.
    """
    if pid == "self":
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(field: str, pid: int | str = "self") -> int:
    """A ``kB`` line of /proc/<pid>/status, e.g. VmHWM (peak RSS) or VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def _sample_rss(samples: list[tuple[float, int]], started: float) -> None:
    while True:
        samples.append((round(time.monotonic() - started, 2), status_kb("VmRSS")))
        await asyncio.sleep(RSS_SAMPLE_EVERY)


def count_sends() -> list[int]:
    """Count every request this process's Redis connections send (a pipeline is one):
    the round trips of the frontier's scripts and of any command sent outside them."""
    from redis.asyncio.connection import AbstractConnection

    sent = [0]
    send = AbstractConnection.send_packed_command

    async def counted(self: AbstractConnection, command: Any, check_health: bool = True
                      ) -> None:
        sent[0] += 1
        await send(self, command, check_health)

    AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    return sent


async def run(overrides: dict[str, Any]) -> dict[str, Any]:
    from crawler.config import Settings, load_settings
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout
    from crawler.worker import Worker
    from crawler.worker.gc_tuning import tune_gc_for_crawling

    if os.environ.get("BENCH_INFLATE") == "zlib":  # the "before" of crawl bench --web
        from crawler.net import inflate

        inflate.fast_zlib = lambda: None
    # base= skips crawl.toml and CRAWL_* variables: the benchmark says everything.
    settings = load_settings(base=Settings(), overrides=overrides)
    redis = await connect(settings)
    settings = await crawl_layout(redis, settings)
    worker = Worker(redis, settings, quiet=True)
    tune_gc_for_crawling()  # as crawl worker does
    sent = count_sends()
    samples: list[tuple[float, int]] = []
    wall0, mono0, cpu0 = time.time(), time.monotonic(), cpu_seconds()
    sampler = asyncio.create_task(_sample_rss(samples, mono0))
    try:
        await worker.run()
    finally:
        sampler.cancel()
        await redis.aclose()
    wall1, cpu1 = time.time(), cpu_seconds()
    robots = worker.robots
    return {
        "pid": os.getpid(),
        "pages": worker.counters.pages,
        "errors": worker.counters.errors,
        "retries": worker.counters.retries,
        "round_trips": worker.frontier.round_trips,
        "client_round_trips": sent[0],
        "robots_fetches": robots.fetches if robots is not None else 0,
        "start": wall0,
        "end": wall1,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_kb": status_kb("VmHWM"),
        "rss_samples": samples,
    }


def main() -> None:
    import uvloop

    overrides = json.loads(sys.argv[1])
    report = uvloop.run(run(overrides))
    Path(sys.argv[2]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
