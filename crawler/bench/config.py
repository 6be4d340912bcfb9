"""What one ``crawl bench`` run does: the site, the runs, the servers. Kept apart from
``run`` so that ``crawl --help`` can show its defaults without importing the benchmark."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    hosts: int = 20
    pages: int = 500
    links: int = 60
    page_bytes: int = 27_000
    processes: tuple[int, ...] = (1, 2)
    concurrency: int = 200
    max_per_host: int = 10
    server: str = "auto"  # nginx, python or auto (nginx if installed)
    ceiling: bool = True
    ceiling_our_urls: bool = False  # also time the minimal loop with our URL code
    repeat: int = 1
    out: str | None = "bench/results/latest.json"
    profile: str | None = None  # directory for py-spy profiles of every process
    shards: tuple[int, ...] = (1,)  # shard counts to run on the single server
    cluster: int = 0  # also run on a local cluster of this many masters
    replicas: int = 0  # replicas per master of that cluster
    wait_replicas: tuple[int, ...] = (0,)  # the wait_replicas settings to run it with
    extract: str = ""  # an extraction hook the workers run on every page
    extract_in_thread: bool = False
    warc: bool = False  # workers write WARC files (under the run's work directory)
    recrawl: bool = False  # recrawl = true: workers keep each done URL's revisit state
