"""``crawl bench``: the benchmark's command line.

Whatever ends the benchmark (it finishes, fails, Ctrl-C or SIGTERM, e.g.
from ``timeout``), the Valkey servers, sites and worker processes it started
are stopped: SIGTERM is turned into the same exception as Ctrl-C, so every
``finally`` that stops a process runs.
"""

from __future__ import annotations

import signal
from dataclasses import replace
from enum import StrEnum
from types import FrameType
from typing import Annotated

import typer

from crawler.bench.run import BenchConfig

bench_app = typer.Typer(help="Benchmark on a generated local site, beside a minimal-loop "
                             "ceiling (see bench/README.md).")

_D = BenchConfig()


class ServerKind(StrEnum):
    auto = "auto"
    nginx = "nginx"
    python = "python"


def _interrupt_on_sigterm() -> None:
    def raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def _process_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise typer.BadParameter("comma-separated whole numbers, e.g. 1,2") from None
    if not counts or min(counts) < 1:
        raise typer.BadParameter("comma-separated whole numbers >= 1, e.g. 1,2")
    return counts


@bench_app.callback(invoke_without_command=True)
def bench(
    hosts: Annotated[int, typer.Option(min=1, help="Hosts of the site (127.0.0.2, ...).")
                     ] = _D.hosts,
    pages: Annotated[int, typer.Option(min=1, help="Pages per host.")] = _D.pages,
    links: Annotated[int, typer.Option(min=1, help="<a href> per page.")] = _D.links,
    page_bytes: Annotated[int, typer.Option(min=500, help="Bytes per page.")] = _D.page_bytes,
    processes: Annotated[str, typer.Option(
        help="Comma-separated worker process counts to run, e.g. 1,2.")] = "1,2",
    concurrency: Annotated[int, typer.Option(min=1, help="Fetches in flight per process.")
                           ] = _D.concurrency,
    max_per_host: Annotated[int, typer.Option(min=1, help="Requests in flight per host.")
                            ] = _D.max_per_host,
    server: Annotated[ServerKind, typer.Option(
        help="Web server: nginx if installed (auto), or the pre-rendered Python server.")
                      ] = ServerKind.auto,
    ceiling: Annotated[bool, typer.Option(help="Time the minimal-loop ceiling too.")] = True,
    ceiling_our_urls: Annotated[bool, typer.Option(
        help="Also time the minimal loop using our URL code for links.")] = False,
    repeat: Annotated[int, typer.Option(min=1, help="Runs of each; the median is reported.")
                      ] = 1,
    out: Annotated[str, typer.Option(help="JSON report path ('' for none).")
                   ] = "bench/results/latest.json",
    profile: Annotated[str | None, typer.Option(
        metavar="DIR", help="Record py-spy profiles of each process in DIR.")] = None,
    dedup: Annotated[int, typer.Option(
        metavar="N", min=0, help="Instead: Valkey memory for N fingerprints (e.g. 1000000).")
                     ] = 0,
) -> None:
    """Crawl a generated site with 1 and 2 worker processes and print pages/s and costs."""
    _interrupt_on_sigterm()
    try:
        if dedup:
            from crawler.bench.dedup import run_dedup

            report = run_dedup(dedup, out=out.replace("latest", "dedup") or None)
            raise typer.Exit(0 if report["ok"] else 1)
        from crawler.bench.run import run_bench

        cfg = replace(_D, hosts=hosts, pages=pages, links=links, page_bytes=page_bytes,
                      processes=_process_counts(processes), concurrency=concurrency,
                      max_per_host=max_per_host, server=server.value, ceiling=ceiling,
                      ceiling_our_urls=ceiling_our_urls, repeat=repeat, out=out or None,
                      profile=profile)
        raise typer.Exit(0 if run_bench(cfg)["complete"] else 1)
    except KeyboardInterrupt:
        typer.echo("crawl bench: interrupted; stopped the servers and workers it started",
                   err=True)
        raise typer.Exit(130) from None
