"""The commands that drive a crawl: seed, worker, export, status."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from crawler.cli.common import (
    ConfigOpt,
    CrawlOpt,
    HomeOpt,
    RedisOpt,
    open_crawl,
    run_async,
    settings_for,
)
from crawler.config import Settings
from crawler.errors import CrawlError


def register(app: typer.Typer) -> None:
    app.command()(seed)
    app.command()(worker)
    app.command()(export)
    app.command()(status)


def seed(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="File of URLs, one a line; - for stdin.")],
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    shards: Annotated[int | None, typer.Option(help="Shards, for a new crawl.")] = None,
) -> None:
    """Add URLs to the frontier. Bad lines are reported by number; the rest are seeded."""
    from crawler.seeds import seed as seed_urls

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home,
                            shards=shards)

    def problem(number: int, text: str) -> None:
        typer.echo(f"line {number}: {text}", err=True)

    async def main() -> Any:
        client, s = await open_crawl(settings)
        try:
            if file == "-":
                return await seed_urls(client, s, sys.stdin.buffer, problem)
            try:
                with open(file, "rb") as fh:  # noqa: ASYNC230 - streamed by lines
                    return await seed_urls(client, s, fh, problem)
            except OSError as exc:
                raise CrawlError(f"cannot read {file}: {exc.strerror}") from None
        finally:
            await client.aclose()

    report = run_async(main)
    typer.echo(f"added {report.added}, already seen {report.seen}, invalid {report.invalid}"
               + (f", over host cap {report.capped}" if report.capped else ""))
    if report.valid == 0:
        raise typer.Exit(1)


def worker(
    ctx: typer.Context,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    concurrency: Annotated[int | None, typer.Option(help="Fetches in flight per process.")] = None,
    processes: Annotated[int | None, typer.Option(help="Event loops (processes) on this node.")
                         ] = None,
    forever: Annotated[bool, typer.Option(help="Keep waiting for new URLs when done.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress line.")] = False,
    scope: Annotated[str | None, typer.Option(help="host, domain or any.")] = None,
    max_depth: Annotated[int | None, typer.Option(help="0 = unlimited.")] = None,
    delay: Annotated[float | None, typer.Option(help="Seconds between request starts per host.")
                     ] = None,
    max_per_host: Annotated[int | None, typer.Option(help="Requests in flight per host.")] = None,
    lease_time: Annotated[float | None, typer.Option(help="Seconds before a lease expires.")
                          ] = None,
    user_agent: Annotated[str | None, typer.Option(help="Product token, e.g. mybot/1.0.")] = None,
    allow_private: Annotated[bool | None, typer.Option(
        "--allow-private", help="Allow fetching private and loopback addresses.")] = None,
    obey_robots: Annotated[bool | None, typer.Option(
        "--obey-robots/--ignore-robots", help="Obey robots.txt (default: obey).")] = None,
    extract: Annotated[str | None, typer.Option(
        help="Extraction hook run on every page, module.path:function.")] = None,
    extract_in_thread: Annotated[bool | None, typer.Option(
        "--extract-in-thread", help="Run a sync extraction hook in a thread pool.")] = None,
    warc: Annotated[str | None, typer.Option(
        help="Write every response and its request as WARC/1.1 into this directory.")
                    ] = None,
) -> None:
    """Crawl until nothing is queued or leased anywhere (or forever)."""
    settings = settings_for(
        ctx, redis=redis, crawl=crawl, config=config, home=home, concurrency=concurrency,
        processes=processes, scope=scope, max_depth=max_depth, delay=delay,
        max_per_host=max_per_host, lease_time=lease_time, user_agent=user_agent,
        allow_private=allow_private, obey_robots=obey_robots, extract=extract,
        extract_in_thread=extract_in_thread, warc_dir=warc)
    if settings.extract:  # a hook that does not import: one line now, not at every worker
        from crawler.extract import load_hook

        load_hook(settings.extract)
    if settings.processes > 1:
        raise typer.Exit(_run_processes(settings))

    async def main() -> None:
        from crawler.worker import Worker, install_signal_handlers

        client, s = await open_crawl(settings)
        w = Worker(client, s, forever=forever, quiet=quiet)
        install_signal_handlers(w)
        try:
            await w.run()
        finally:
            await client.aclose()
        if w.aborted:
            raise typer.Exit(130)

    run_async(main)


def _run_processes(settings: Settings) -> int:
    """Run single-process workers with the same arguments; pass signals on.

    Exits 0 only if every worker did; a worker killed by signal N counts as 128+N.
    """
    from crawler.server import ensure_server

    if settings.redis_url is None:
        ensure_server(settings.home)  # start it once, not n times in a race
    argv = [sys.executable, "-m", "crawler", *sys.argv[1:], "--processes", "1"]
    # Own process groups: Ctrl-C in a terminal signals the whole foreground
    # group, and a worker that got it twice (from there and from forward())
    # would stop at once instead of finishing its fetches.
    children = [subprocess.Popen(argv, process_group=0) for _ in range(settings.processes)]

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
    return next((code if code > 0 else 128 - code for code in codes if code), 0)


def export(
    ctx: typer.Context,
    out: Annotated[str, typer.Argument(
        help="Output file: .jsonl, .jsonl.gz, .csv or .parquet; - for JSON lines on stdout.")],
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    follow: Annotated[bool, typer.Option(
        help="Keep exporting as results arrive; end when the crawl is done.")] = False,
    forever: Annotated[bool, typer.Option(
        help="With --follow: never end, wait for new results.")] = False,
    drain: Annotated[bool, typer.Option(
        help="Take the results out of Redis once the file holds them (appends to FILE).")
                     ] = False,
    force: Annotated[bool, typer.Option(help="Overwrite FILE if it exists.")] = False,
    append: Annotated[bool, typer.Option(help="Add to FILE if it exists.")] = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="jsonl, jsonl.gz, csv or parquet (default: by FILE's extension).")
                   ] = None,
) -> None:
    """Write every result to FILE, in the format its extension names (read-only, unless --drain)."""
    from crawler.results.export import drain as drain_results
    from crawler.results.export import export as export_results
    from crawler.results.export import export_to
    from crawler.results.formats import check_options, format_for, open_writer

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)
    path = Path(out)
    if drain and out == "-":
        raise CrawlError("--drain needs a file: standard output cannot be fsynced, so "
                         "results would leave Redis before they are safe")
    kind = format_for(out, fmt) if out != "-" or fmt else "jsonl"
    check_options(kind, stdout=out == "-", drain=drain, append=append)
    if out != "-" and not drain and not (force or append) and path.exists() \
            and path.stat().st_size > 0:
        raise CrawlError(f"{out} exists: --force to overwrite it, --append to add to it")
    written = [0]

    async def main() -> None:
        client, s = await open_crawl(settings)
        try:
            if drain:
                written[0] = await drain_results(
                    client, s, path, follow=follow, forever=forever,
                    on_batch=lambda n: written.__setitem__(0, n))
            elif out == "-":
                written[0] = await export_results(client, s, sys.stdout, follow=follow,
                                                  forever=forever)
            else:
                writer = open_writer(out, kind, append=append)
                try:
                    written[0] = await export_to(client, s, writer, follow=follow,
                                                 forever=forever,
                                                 progress=sys.stderr.isatty())
                finally:
                    writer.close()  # a Parquet file is readable once its footer is written
        finally:
            await client.aclose()

    try:
        run_async(main)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {'drained' if drain else 'exported'} {written[0]} results"
                   + ("" if out == "-" else f" to {out}"), err=True)
        raise typer.Exit(130) from None
    if out != "-":
        typer.echo(f"{'drained' if drain else 'exported'} {written[0]} results to {out}",
                   err=True)


def status(ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
           config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Print the crawl's counters, workers and held hosts as JSON."""
    from crawler.status import crawl_status

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)

    async def main() -> dict[str, Any]:
        client, s = await open_crawl(settings)
        try:
            return await crawl_status(client, s)
        finally:
            await client.aclose()

    typer.echo(json.dumps(run_async(main), indent=2, sort_keys=True))
