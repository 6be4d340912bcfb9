"""The commands that drive a crawl: seed, worker, export, status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from crawler.cli.common import (
    ConfigOpt,
    CrawlOpt,
    HomeOpt,
    LogLevelOpt,
    RedisOpt,
    VerboseOpt,
    log_level,
    open_crawl,
    run_async,
    settings_for,
    setup_logging,
)
from crawler.cli.options import (
    AllowPrivateOpt,
    CaFileOpt,
    ConcurrencyOpt,
    ConnectTimeoutOpt,
    ContactUrlOpt,
    CookiesOpt,
    DelayOpt,
    DnsServersOpt,
    ExcludeOpt,
    ExtractInThreadOpt,
    ExtractOpt,
    IncludeOpt,
    LeaseTimeOpt,
    MaxDepthOpt,
    MaxPagesPerHostOpt,
    MaxPerHostOpt,
    MetricsPortOpt,
    MetricsTokenOpt,
    ObeyRobotsOpt,
    ProcessesOpt,
    ReadTimeoutOpt,
    ScopeModeOpt,
    ShardsOpt,
    TotalTimeoutOpt,
    UserAgentOpt,
    WarcDirOpt,
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
    file: Annotated[str | None, typer.Argument(
        help="File of URLs, one a line; - for stdin.")] = None,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    shards: ShardsOpt = None,
    default_scheme: Annotated[str, typer.Option(
        help="Scheme for a line without one: example.com is read as https://example.com/.")
                              ] = "https",
    sitemap: Annotated[list[str] | None, typer.Option(
        "--sitemap", help="A sitemap (index, urlset, .xml.gz or text) whose URLs to crawl; "
                          "repeatable. [default: none]")] = None,
    allow_bare_hosts: Annotated[bool, typer.Option(
        help="Take a line of one word without a dot and without a scheme (intranet) as a "
             "host; refused by default (localhost is always taken).")] = False,
) -> None:
    """Add URLs to the frontier. Bad lines are reported by number; the rest are seeded."""
    from crawler.discovery.seeds import DEFAULT_SCHEMES, seed_sitemaps
    from crawler.discovery.seeds import seed as seed_urls

    if file is None and not sitemap:
        raise CrawlError("give a file of URLs, - for stdin, or --sitemap URL")

    if default_scheme.lower() not in DEFAULT_SCHEMES:
        raise CrawlError(f"--default-scheme: expected https or http, got {default_scheme!r}")
    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home,
                            shards=shards)
    source = "standard input" if file == "-" else file

    def problem(number: int, text: str) -> None:
        typer.echo(f"line {number}: {text}", err=True)

    def assumed(number: int, text: str, url: str) -> None:
        typer.echo(f"assuming {default_scheme.lower()}:// for lines without a scheme: line "
                   f"{number} {text[:80]!r} is {url} (--default-scheme to change)", err=True)

    async def main() -> Any:
        from crawler.cli.seed_checks import crawl_is_new, forget_if_empty, state_warning

        new = await crawl_is_new(settings)
        client, s = await open_crawl(settings, must_exist=False)
        try:
            try:
                report = await seed_into(client, s)
            except BaseException:
                await forget_if_empty(client, s, new, None)
                raise
            forgotten = await forget_if_empty(client, s, new, report)
            warning = await state_warning(client, s)
            if warning:
                typer.echo(f"crawl: warning: {warning}", err=True)
            return report, forgotten
        finally:
            await client.aclose()

    async def seed_into(client: Any, s: Settings) -> Any:
        if sitemap:
            maps = await seed_sitemaps(client, s, sitemap)
            for number, text in maps.problems:
                typer.echo(f"--sitemap {number}: {text}", err=True)
            if file is None:
                return maps
            again = f"read again {maps.reread}, " if maps.reread else ""
            typer.echo(f"sitemaps: added {maps.added}, already seen {maps.seen}, "
                       f"{again}invalid {maps.invalid}")
        if file == "-":
            return await seed_urls(client, s, sys.stdin.buffer, problem,
                                   default_scheme=default_scheme.lower(), on_assumed=assumed,
                                   allow_bare_hosts=allow_bare_hosts)
        try:
            with open(str(file), "rb") as fh:  # noqa: ASYNC230 - streamed by lines
                return await seed_urls(client, s, fh, problem,
                                       default_scheme=default_scheme.lower(),
                                       on_assumed=assumed, allow_bare_hosts=allow_bare_hosts)
        except OSError as exc:
            raise CrawlError(f"cannot read {file}: {exc.strerror}") from None

    report, forgotten = run_async(main)
    if report.valid == 0 and report.invalid == 0:
        typer.echo(f"no URLs in {source}", err=True)
        raise typer.Exit(1)
    typer.echo(f"added {report.added}, already seen {report.seen}, invalid {report.invalid}"
               + (f", over host cap {report.capped}" if report.capped else "")
               + (f", read again {report.reread}" if report.reread else ""))
    if report.valid == 0:
        typer.echo(f"crawl: no valid URL in {source}"
                   + (f": crawl {settings.crawl!r} was not created" if forgotten else ""),
                   err=True)
        raise typer.Exit(1)


def worker(
    ctx: typer.Context,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    concurrency: ConcurrencyOpt = None,
    processes: ProcessesOpt = None,
    forever: Annotated[bool, typer.Option(help="Keep waiting for new URLs when done.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress line.")] = False,
    scope: ScopeModeOpt = None,
    include: IncludeOpt = None,
    exclude: ExcludeOpt = None,
    max_depth: MaxDepthOpt = None,
    max_pages_per_host: MaxPagesPerHostOpt = None,
    delay: DelayOpt = None,
    max_per_host: MaxPerHostOpt = None,
    obey_robots: ObeyRobotsOpt = None,
    user_agent: UserAgentOpt = None,
    contact_url: ContactUrlOpt = None,
    allow_private: AllowPrivateOpt = None,
    cookies: CookiesOpt = None,
    connect_timeout: ConnectTimeoutOpt = None,
    dns_servers: DnsServersOpt = None,
    read_timeout: ReadTimeoutOpt = None,
    total_timeout: TotalTimeoutOpt = None,
    lease_time: LeaseTimeOpt = None,
    metrics_port: MetricsPortOpt = None,
    metrics_token: MetricsTokenOpt = None,
    log_level_name: LogLevelOpt = None,
    verbose: VerboseOpt = 0,
    extract: ExtractOpt = None,
    extract_in_thread: ExtractInThreadOpt = None,
    warc: WarcDirOpt = None,
    ca_file: CaFileOpt = None,
) -> None:
    """Crawl until nothing is queued or leased anywhere (or forever).

    The defaults are polite: one request at a time on a host, 1 s apart, robots.txt
    obeyed, links followed on the seeds' hosts only. Private and loopback
    addresses need --allow-private.
    """
    level = log_level(log_level_name, verbose)
    if level is not None:
        setup_logging(level)
    settings = settings_for(
        ctx, redis=redis, crawl=crawl, config=config, home=home, concurrency=concurrency,
        processes=processes, scope=scope, max_depth=max_depth, delay=delay,
        max_per_host=max_per_host, lease_time=lease_time, user_agent=user_agent,
        allow_private=allow_private, obey_robots=obey_robots, cookies=cookies,
        include=tuple(include) if include else None,
        exclude=tuple(exclude) if exclude else None, max_pages_per_host=max_pages_per_host,
        contact_url=contact_url, connect_timeout=connect_timeout, read_timeout=read_timeout,
        total_timeout=total_timeout, metrics_port=metrics_port, metrics_token=metrics_token,
        extract=extract, extract_in_thread=extract_in_thread, warc_dir=warc, ca_file=ca_file,
        dns_servers=tuple(dns_servers) if dns_servers else None)
    if settings.ca_file:  # an unreadable bundle: one line now, not a TLS error per URL
        from crawler.net.tls import client_context

        client_context(settings.ca_file)
    if settings.metrics_port:  # one line now, not one a process after connecting
        from crawler.observe.metrics import required_token

        required_token(settings.metrics_host, settings.metrics_token, "--metrics-port")
    if settings.extract:  # a hook that does not import: one line now, not at every worker
        from crawler.pages.extract import load_hook

        load_hook(settings.extract)
    if settings.render != "never" or settings.host_render:  # one line before flags are stored
        from crawler.errors import ConfigError
        from crawler.worker.render import lease_too_short, wants_rendering

        short = lease_too_short(settings) if wants_rendering(settings) else None
        if short is not None:
            raise ConfigError("lease_time", short)
    if settings.processes > 1:
        from crawler.cli.common import check_crawl

        run_async(lambda: check_crawl(settings))
        from crawler.cli.processes import run_processes

        raise typer.Exit(run_processes(settings))

    async def main() -> None:
        from crawler.cli.hooks import check_stored_hook
        from crawler.worker import Worker, install_signal_handlers
        from crawler.worker.gc_tuning import tune_gc_for_crawling

        await check_stored_hook(settings)  # before open_crawl stores this worker's flags
        client, s = await open_crawl(settings)
        w = Worker(client, s, forever=forever, quiet=quiet)
        install_signal_handlers(w)
        tune_gc_for_crawling()
        try:
            await w.run()
            if not (w.counters.pages or w.aborted or forever or w.steering.stopped):
                from crawler.cli.worker_notes import finished_note

                note = await finished_note(client, s)
                if note:
                    typer.echo(f"crawl: {note}", err=True)
        finally:
            await client.aclose()
        if w.aborted:
            raise typer.Exit(130)

    run_async(main)


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
    append: Annotated[bool, typer.Option(
        help="Add to FILE the results it does not hold yet (by record id).")] = False,
    fmt: Annotated[str | None, typer.Option(
        "--format", help="jsonl, jsonl.gz, csv or parquet (default: by FILE's extension).")
                   ] = None,
    data_schema: Annotated[Path | None, typer.Option(
        help='Parquet: a JSON file typing the hook\'s data, like {"headings": '
             '"list<string>", "title": "string"}; data becomes a struct column (default: '
             'data is JSON text).')] = None,
) -> None:
    """Write every result to FILE, in the format its extension names (read-only, unless --drain)."""
    from crawler.results.data_schema import DataMismatch, DataSchema
    from crawler.results.export import drain as drain_results
    from crawler.results.export import export as export_results
    from crawler.results.export import export_to
    from crawler.results.formats import check_options, format_for, open_writer

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)
    path = Path(out)
    if drain and out == "-":
        raise CrawlError("--drain needs a file: standard output cannot be fsynced, so "
                         "results would leave Redis before they are safe")
    from crawler.results.export_file import NewOnly, check_extension, last_ids

    check_extension(out, fmt)
    kind = format_for(out, fmt) if out != "-" or fmt else "jsonl"
    check_options(kind, stdout=out == "-", drain=drain, append=append,
                  data_schema=data_schema is not None)
    schema = DataSchema.load(data_schema) if data_schema is not None else None
    if out != "-" and not drain and not (force or append) and path.exists() \
            and path.stat().st_size > 0:
        raise CrawlError(f"{out} exists: --force to overwrite it, --append to add to it")
    written = [0]
    ended: list[str] = []  # why --follow ended, when the crawl was stopped
    known: tuple[dict[int, tuple[int, int]], int] = ({}, 0)
    if append and not drain and path.exists():
        known = last_ids(path, kind)  # one pass; one id a shard kept
    new_only: list[NewOnly] = []

    async def main() -> None:
        client, s = await open_crawl(settings, must_exist=True)
        try:
            if drain:
                written[0] = await drain_results(
                    client, s, path, follow=follow, forever=forever,
                    on_batch=lambda n: written.__setitem__(0, n),
                    compress=kind == "jsonl.gz", on_end=ended.append)
            elif out == "-":
                written[0] = await export_results(client, s, sys.stdout, follow=follow,
                                                  forever=forever, on_end=ended.append)
            else:
                writer = open_writer(out, kind, append=append, data_schema=schema)
                if known[1]:
                    writer = NewOnly(writer, known[0])
                    new_only.append(writer)
                try:
                    written[0] = await export_to(client, s, writer, follow=follow,
                                                 forever=forever, on_end=ended.append,
                                                 progress=sys.stderr.isatty())
                finally:
                    writer.close()  # a Parquet file is readable once its footer is written
        finally:
            await client.aclose()

    try:
        run_async(main)
    except DataMismatch:
        path.unlink(missing_ok=True)  # no Parquet file that looks whole and is not
        raise
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {'drained' if drain else 'exported'} {written[0]} results"
                   + ("" if out == "-" else f" to {out}"), err=True)
        raise typer.Exit(130) from None
    if ended and ended[0].startswith("stopped"):
        typer.echo(f"crawl {settings.crawl!r} is {ended[0]}: --follow ends here "
                   f"(--forever waits for a crawl resume)", err=True)
    if new_only:
        added = written[0] - new_only[0].skipped
        typer.echo(f"appended {added} results to {out}; skipped {new_only[0].skipped} it "
                   f"already holds (by record id: {known[1]} results in it before)", err=True)
    elif out != "-":
        typer.echo(f"{'drained' if drain else 'exported'} {written[0]} results to {out}",
                   err=True)


def status(ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
           config: ConfigOpt = None, home: HomeOpt = None,
           watch: Annotated[bool, typer.Option(
               "--watch", help="A live view, redrawn every second, until Ctrl-C.")] = False,
           as_json: Annotated[bool, typer.Option(
               "--json", help="JSON (the default without --watch).")] = False) -> None:
    """Print the crawl's counters, rates, workers, results and busiest hosts as JSON."""
    from crawler.observe.status import crawl_status

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)

    async def main() -> dict[str, Any]:
        client, s = await open_crawl(settings, must_exist=True)
        try:
            if watch and not as_json:
                from crawler.cli.watch import watch as live_view

                await live_view(client, s)
                return {}
            return await crawl_status(client, s)
        finally:
            await client.aclose()

    try:
        result = run_async(main)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if not watch or as_json:
        typer.echo(json.dumps(result, indent=2, sort_keys=True))
