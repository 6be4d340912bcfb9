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

from crawler.bench.config import BenchConfig

bench_app = typer.Typer(help="Benchmark on a generated local site, beside a minimal-loop "
                             "ceiling (see bench/README.md).", invoke_without_command=True)

_D = BenchConfig()
CLUSTER_HOSTS = 200
"""The cluster bench's default hosts: the work splits by host (a host lives in
one shard), and ~200 hosts split within ±20% over 3 masters; 20 do not."""
CLUSTER_PAGES = _D.hosts * _D.pages // CLUSTER_HOSTS
WEB_HOSTS, WEB_PAGES, WEB_PAGE_BYTES = 100, 60, 80_000
"""``--web``'s default site: the issue's 6,000 pages of ~80 KB on at least 100 hosts."""


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


def site_size(hosts: int | None, pages: int | None, cluster: int) -> tuple[int, int]:
    """(hosts, pages per host): the defaults, or a cluster's many-host default site."""
    if hosts is None and cluster:
        return CLUSTER_HOSTS, CLUSTER_PAGES if pages is None else pages
    return _D.hosts if hosts is None else hosts, _D.pages if pages is None else pages


class ServerKind(StrEnum):
    auto = "auto"
    nginx = "nginx"
    python = "python"


def _interrupt_on_sigterm() -> None:
    def raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, raise_interrupt)


def _counts(text: str, low: int = 1) -> tuple[int, ...]:
    try:
        counts = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise typer.BadParameter("comma-separated whole numbers, e.g. 1,2") from None
    if not counts or min(counts) < low:
        raise typer.BadParameter(f"comma-separated whole numbers >= {low}, e.g. 1,2")
    return counts


@bench_app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    hosts: Annotated[int | None, typer.Option(
        min=1, show_default=False, help=f"Hosts of the site: 127.0.0.2, ... (default: "
        f"{_D.hosts}; with --cluster {CLUSTER_HOSTS}, so that hosts split evenly over the "
        f"masters).")] = None,
    pages: Annotated[int | None, typer.Option(
        min=1, show_default=False, help=f"Pages per host (default: {_D.pages}; with --cluster "
        f"and no --hosts {CLUSTER_PAGES}: the same {_D.hosts * _D.pages} pages).")] = None,
    links: Annotated[int, typer.Option(min=1, help="<a href> per page.")] = _D.links,
    page_bytes: Annotated[int | None, typer.Option(
        min=500, show_default=False, help=f"Bytes per page (default: {_D.page_bytes}; "
        f"with --web {WEB_PAGE_BYTES}).")] = None,
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
    shards: Annotated[str, typer.Option(
        help="Comma-separated shard counts to run on the single server, e.g. 1,256.")] = "1",
    cluster: Annotated[int, typer.Option(
        metavar="MASTERS", min=0, help="Also run on a local cluster of this many masters "
                                       "(no replicas), next to the single server.")] = 0,
    replicas: Annotated[int, typer.Option(min=0, help="Replicas per master of that cluster.")
                        ] = 0,
    wait_replicas: Annotated[str, typer.Option(
        help="Comma-separated wait_replicas settings to run the cluster with, e.g. 0,1.")
                             ] = "0",
    dedup: Annotated[int, typer.Option(
        metavar="N", min=0, help="Instead: Valkey memory for N fingerprints (e.g. 1000000).")
                     ] = 0,
    extract: Annotated[str, typer.Option(
        help="An extraction hook (module.path:function) the workers run on every page.")
                       ] = "",
    extract_in_thread: Annotated[bool, typer.Option(
        "--extract-in-thread", help="Run that hook in a thread pool.")] = False,
    warc: Annotated[bool, typer.Option(help="Workers write WARC files too.")] = False,
    recrawl: Annotated[bool, typer.Option(
        help="Crawl with recrawl = true (each done URL keeps its revisit state).")] = False,
    web: Annotated[bool, typer.Option(
        "--web", help=f"The real web's shape: HTTPS from a throwaway CA, gzip pages of ~80 KB, "
        f"keep-alive 100; {WEB_HOSTS} hosts x {WEB_PAGES} pages unless told; a cProfile "
        f"split of 1 worker's CPU; the issue's goals.")] = False,
    setting: Annotated[list[str] | None, typer.Option(
        metavar="NAME=JSON", help="With --web: a crawler setting for the workers, e.g. "
        "html_parser='\"lexbor\"' (repeatable).")] = None,
    profile_run: Annotated[bool, typer.Option(
        help="With --web: one more 1-process crawl under cProfile.")] = True,
    inflate: Annotated[str, typer.Option(
        help="With --web: 'zlib' makes the workers inflate with the standard zlib instead "
             "of zlib-ng (to measure what it saves).")] = "auto",
) -> None:
    """Crawl a generated site with 1 and 2 worker processes and print pages/s and costs."""
    if ctx.invoked_subcommand is not None:
        return
    _interrupt_on_sigterm()
    try:
        if dedup:
            from crawler.bench.dedup import run_dedup

            report = run_dedup(dedup, out=out.replace("latest", "dedup") or None)
            raise typer.Exit(0 if report["ok"] else 1)
        if web:
            raise typer.Exit(_run_web(hosts, pages, links, page_bytes, processes, concurrency,
                                      max_per_host, server.value, ceiling, repeat, out,
                                      profile, setting or [], profile_run, inflate))
        from crawler.bench.run import run_bench

        hosts, pages = site_size(hosts, pages, cluster)
        page_bytes = _D.page_bytes if page_bytes is None else page_bytes
        cfg = replace(_D, hosts=hosts, pages=pages, links=links, page_bytes=page_bytes,
                      processes=_counts(processes), concurrency=concurrency,
                      max_per_host=max_per_host, server=server.value, ceiling=ceiling,
                      ceiling_our_urls=ceiling_our_urls, repeat=repeat, out=out or None,
                      profile=profile, shards=_counts(shards), cluster=cluster,
                      replicas=replicas, wait_replicas=_counts(wait_replicas, low=0),
                      extract=extract, extract_in_thread=extract_in_thread, warc=warc,
                      recrawl=recrawl)
        raise typer.Exit(0 if run_bench(cfg)["complete"] else 1)
    except KeyboardInterrupt:
        typer.echo("crawl bench: interrupted; stopped the servers and workers it started",
                   err=True)
        raise typer.Exit(130) from None


def _run_web(hosts: int | None, pages: int | None, links: int, page_bytes: int | None,
             processes: str, concurrency: int, max_per_host: int, server: str, ceiling: bool,
             repeat: int, out: str, profile: str | None, settings: list[str],
             profile_run: bool, inflate: str) -> int:
    import json

    from crawler.bench.web import WebBench, run_web

    extra = {}
    for item in settings:
        name, _, value = item.partition("=")
        try:
            extra[name.strip()] = json.loads(value)
        except ValueError:
            raise typer.BadParameter(f"{item!r}: NAME=JSON, e.g. html_parser='\"lexbor\"'") \
                from None
    cfg = replace(_D, hosts=WEB_HOSTS if hosts is None else hosts,
                  pages=WEB_PAGES if pages is None else pages, links=links,
                  page_bytes=WEB_PAGE_BYTES if page_bytes is None else page_bytes,
                  processes=_counts(processes), concurrency=concurrency,
                  max_per_host=max_per_host, server=server, ceiling=ceiling, repeat=repeat,
                  out=(out.replace("latest.json", "web-latest.json") if out else None),
                  profile=profile)
    report = run_web(WebBench(cfg=cfg, profile_run=profile_run, settings=extra, inflate=inflate))
    return 0 if report["complete"] else 1


@bench_app.command("memory")
def memory(
    urls: Annotated[int, typer.Option(min=1000, help="76-character URLs to seed.")
                    ] = 1_000_000,
    hosts: Annotated[int, typer.Option(min=1, help="Hosts they spread over.")] = 1000,
    out: Annotated[str, typer.Option(help="JSON report path ('' for none).")
                   ] = "bench/results/memory-latest.json",
    shape: Annotated[list[str] | None, typer.Option(
        help="URL shape(s) to measure instead, by key kind: news, own-directory, shop, query, "
             "wiki, forum, paged, broad, or all (--urls of them, --per-host each but "
             "broad).")] = None,
    per_host: Annotated[int, typer.Option(min=1, help="URLs a host in --shape runs.")] = 100,
    small_hosts: Annotated[bool, typer.Option(
        help="Instead: a host with one queued URL in other key layouts.")] = False,
) -> None:
    """Bytes per queued URL, seen URL, live host and result; seeding speed from one process."""
    _interrupt_on_sigterm()
    try:
        if small_hosts:
            from crawler.bench.small_hosts import run_small_hosts

            run_small_hosts(out or None)
            return
        if shape:
            from crawler.bench.memory_shapes import run_shapes
            from crawler.bench.shapes import SHAPES

            named = list(SHAPES) if "all" in shape else shape
            run_shapes(named, urls, per_host, out or None)
            return
        from crawler.bench.memory import run_memory

        run_memory(urls, hosts, out or None)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None




@bench_app.command("dns")
def dns(
    hosts: Annotated[int, typer.Option(min=1, help="Names served, and hosts crawled.")
                     ] = 10_000,
    concurrency: Annotated[int, typer.Option(min=1, help="Fetches in flight in the crawl.")
                           ] = 200,
    dns_concurrency: Annotated[int, typer.Option(min=1, help="Lookups in flight.")] = 256,
    crawl: Annotated[bool, typer.Option(help="Crawl the hosts too, not only look them up.")
                     ] = True,
    out: Annotated[str, typer.Option(help="JSON report path ('' for none).")
                   ] = "bench/results/dns-latest.json",
) -> None:
    """Lookups/s, cache hit rate and pages/s of a crawl of N hosts against a local DNS server."""
    from crawler.bench.dns import run_dns_bench

    _interrupt_on_sigterm()
    try:
        report = run_dns_bench(hosts, concurrency, dns_concurrency, crawl, out or None)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(1 if report.get("dns_bound") else 0)


@bench_app.command("waste")
def waste(
    pages: Annotated[int, typer.Option(min=10, help="Distinct pages of the waste site.")] = 200,
    cost_hosts: Annotated[int, typer.Option(min=1, help="Hosts of the normal site.")] = 5,
    cost_pages: Annotated[int, typer.Option(min=10, help="Pages a host of the normal site.")
                          ] = 200,
    repeat: Annotated[int, typer.Option(min=1, help="Normal-site runs, each on and off.")] = 3,
    out: Annotated[str, typer.Option(help="JSON report path ('' for none).")
                   ] = "bench/results/waste-latest.json",
    instructions: Annotated[bool, typer.Option(
        "--instructions", help="Also count the worker's instructions a page, near-duplicates "
        "off and on, under valgrind (a few minutes; apt-get install valgrind).")] = False,
    recall_pages: Annotated[int, typer.Option(
        min=100, help="Pages of the site whose copies the SimHash alone is scored on "
        "(30% are copies; 10 unrelated pairs a page).")] = 10_000,
) -> None:
    """Fetches wasted on copies and traps (near-duplicates found, the calendar stopped),
    and the CPU and bytes a page it costs on the normal site."""
    from crawler.bench.waste import run_waste

    _interrupt_on_sigterm()
    try:
        run_waste(pages, cost_hosts, cost_pages, repeat, out or None, instructions,
                  recall_pages)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@bench_app.command("render")
def render(
    hosts: Annotated[int, typer.Option(min=1, max=16, help="Hosts of the site.")] = 4,
    pages: Annotated[int, typer.Option(min=1, help="Pages a host.")] = 20,
    render_concurrency: Annotated[int, typer.Option(min=1, help="Pages rendered at once.")
                                  ] = 2,
    browser: Annotated[str, typer.Option(help="The Chromium to drive ('': on PATH).")] = "",
    out: Annotated[str, typer.Option(help="JSON report path ('' for none).")
                   ] = "bench/results/render-latest.json",
) -> None:
    """Pages/s and memory of rendered pages beside plain fetching (pip install
    'crawler[browser]')."""
    from crawler.bench.render import run_render_bench

    _interrupt_on_sigterm()
    try:
        run_render_bench(hosts, pages, render_concurrency, browser, out or None)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@bench_app.command("export")
def export(
    results: Annotated[int, typer.Option(min=1, help="Synthetic results to export.")
                       ] = 1_000_000,
    out: Annotated[str, typer.Option(help="JSON report path ('' for none).")
                   ] = "bench/results/export-latest.json",
) -> None:
    """Peak RSS and speed of `crawl export` in every format, over N results in the stream."""
    from crawler.bench.export import run_export_bench

    _interrupt_on_sigterm()
    try:
        run_export_bench(results, out=out or None)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@bench_app.command("soak")
def soak(
    urls: Annotated[int, typer.Option(min=1, help="URLs to seed (site pages, then "
                                                  "robots-disallowed ones).")] = 1_000_000,
    hosts: Annotated[int, typer.Option(min=1, max=200, help="Site hosts.")] = 100,
    pages: Annotated[int, typer.Option(min=1, help="Pages a host.")] = 2000,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    kill_drain: Annotated[int, typer.Option(min=0, help="kill -9s of the drain.")] = 2,
    kill_workers: Annotated[int, typer.Option(min=0, help="kill -9s of a worker.")] = 1,
    report_every: Annotated[float, typer.Option(min=1, help="Seconds between reports.")
                            ] = 10.0,
    server: Annotated[ServerKind, typer.Option(help="Web server.")] = ServerKind.auto,
) -> None:
    """A long crawl with a draining export and kills; checks results and memory at the end."""
    from crawler.bench.soak import run_soak

    _interrupt_on_sigterm()
    try:
        report = run_soak(urls, hosts, pages, processes, kill_drain, kill_workers, report_every,
                          server.value)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(0 if report["ok"] else 1)
