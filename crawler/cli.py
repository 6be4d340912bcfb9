"""The ``crawl`` command: seed, worker, export, status, server, bench."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from crawler.bench.cli import bench_app
from crawler.config import Settings, load_settings
from crawler.errors import CrawlError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="An asyncio-native, distributed web crawler on a shared Redis frontier.")
server_app = typer.Typer(no_args_is_help=True, help="The embedded Valkey server.")
app.add_typer(server_app, name="server")
app.add_typer(bench_app, name="bench")

T = TypeVar("T")

RedisOpt = Annotated[str | None, typer.Option(
    "--redis", help="Redis URL (redis://, rediss://, unix://). Default: embedded Valkey.")]
CrawlOpt = Annotated[str | None, typer.Option("--crawl", help="Crawl name (default: default).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
HomeOpt = Annotated[str | None, typer.Option(
    "--home", help="Embedded server directory (default ./.crawl or $CRAWL_HOME).")]


# Options given before the command (``crawl --redis URL seed f``); the
# command's own options win. Set by the callback on every invocation.
_common: dict[str, Any] = {}


@app.callback()
def common_options(redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
                   home: HomeOpt = None) -> None:
    """Options before the command apply to it, as if given after it."""
    _common.clear()
    _common.update(redis_url=redis, crawl=crawl, config=config, home=home)


def _settings(config: Path | None, **flags: Any) -> Settings:
    """Settings from defaults < file < env < flags; a bad value is one line, exit 2."""
    for key, value in _common.items():
        if key != "config" and flags.get(key) is None:
            flags[key] = value
    try:
        return load_settings(config or _common.get("config"), overrides=flags)
    except CrawlError as exc:
        typer.echo(f"crawl: error: {exc}", err=True)
        raise typer.Exit(2) from None


def _home(home: str | None) -> str | None:
    return home or _common.get("home")


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run on uvloop; turn our errors into one clear line and a non-zero exit."""
    import uvloop

    logging.basicConfig(level=logging.WARNING, format="crawl: %(message)s")
    try:
        return uvloop.run(coro_fn())
    except CrawlError as exc:
        typer.echo(f"crawl: error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _open(settings: Settings) -> tuple[Any, Settings]:
    from crawler.connection import connect
    from crawler.seeds import crawl_shards

    redis = await connect(settings)
    return redis, await crawl_shards(redis, settings)


@app.command()
def seed(
    file: Annotated[str, typer.Argument(help="File of URLs, one a line; - for stdin.")],
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    shards: Annotated[int | None, typer.Option(help="Shards, for a new crawl.")] = None,
) -> None:
    """Add URLs to the frontier. Bad lines are reported by number; the rest are seeded."""
    from crawler.seeds import seed as seed_urls

    settings = _settings(config, redis_url=redis, crawl=crawl, home=home, shards=shards)

    def problem(number: int, text: str) -> None:
        typer.echo(f"line {number}: {text}", err=True)

    async def main() -> Any:
        client, s = await _open(settings)
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

    report = _run(main)
    typer.echo(f"added {report.added}, already seen {report.seen}, invalid {report.invalid}"
               + (f", over host cap {report.capped}" if report.capped else ""))
    if report.valid == 0:
        raise typer.Exit(1)


@app.command()
def worker(
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
) -> None:
    """Crawl until nothing is queued or leased anywhere (or forever)."""
    settings = _settings(
        config, redis_url=redis, crawl=crawl, home=home, concurrency=concurrency,
        processes=processes, scope=scope, max_depth=max_depth, delay=delay,
        max_per_host=max_per_host, lease_time=lease_time, user_agent=user_agent,
        allow_private=allow_private, obey_robots=obey_robots)
    if settings.processes > 1:
        raise typer.Exit(_run_processes(settings))

    async def main() -> None:
        from crawler.worker import Worker, install_signal_handlers

        client, s = await _open(settings)
        w = Worker(client, s, forever=forever, quiet=quiet)
        install_signal_handlers(w)
        try:
            await w.run()
        finally:
            await client.aclose()
        if w.aborted:
            raise typer.Exit(130)

    _run(main)


def _run_processes(settings: Settings) -> int:
    """Run single-process workers with the same arguments; pass signals on.

    Exits 0 only if every worker did; a worker killed by signal N counts as 128+N.
    """
    from crawler.server import ensure_server

    if settings.redis_url is None:
        try:
            ensure_server(settings.home)  # start it once, not n times in a race
        except CrawlError as exc:
            typer.echo(f"crawl: error: {exc}", err=True)
            return 2
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


@app.command()
def export(
    out: Annotated[str, typer.Argument(help="Output file (JSON lines); - for stdout.")],
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    follow: Annotated[bool, typer.Option(help="Keep exporting as results arrive.")] = False,
) -> None:
    """Write every result as one JSON object a line."""
    from crawler.results import export as export_results

    settings = _settings(config, redis_url=redis, crawl=crawl, home=home)

    async def main() -> int:
        client, s = await _open(settings)
        try:
            if out == "-":
                return await export_results(client, s, sys.stdout, follow=follow)
            try:
                fh = open(out, "w", encoding="utf-8")  # noqa: ASYNC230, SIM115 - one writer
            except OSError as exc:
                raise CrawlError(f"cannot write {out}: {exc.strerror}") from None
            with fh:
                return await export_results(client, s, fh, follow=follow)
        finally:
            await client.aclose()

    try:
        count = _run(main)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if out != "-":
        typer.echo(f"exported {count} results to {out}", err=True)


@app.command()
def status(redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
           home: HomeOpt = None) -> None:
    """Print the crawl's counters, workers and held hosts as JSON."""
    from crawler.status import crawl_status

    settings = _settings(config, redis_url=redis, crawl=crawl, home=home)

    async def main() -> dict[str, Any]:
        client, s = await _open(settings)
        try:
            return await crawl_status(client, s)
        finally:
            await client.aclose()

    typer.echo(json.dumps(_run(main), indent=2, sort_keys=True))


@server_app.command("start")
def server_start(home: HomeOpt = None) -> None:
    """Start the embedded Valkey (commands start it by themselves when needed)."""
    from crawler.server import ensure_server

    try:
        typer.echo(ensure_server(_home(home)))
    except CrawlError as exc:
        typer.echo(f"crawl: error: {exc}", err=True)
        raise typer.Exit(2) from None


@server_app.command("stop")
def server_stop(home: HomeOpt = None) -> None:
    """Stop the embedded Valkey; its append-only file keeps the crawl."""
    from crawler.server import stop_server

    try:
        stopped = stop_server(_home(home))
    except CrawlError as exc:
        typer.echo(f"crawl: error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("stopped" if stopped else "not running")


demo_app = typer.Typer(no_args_is_help=True,
                       help="A generated site on 127.0.0.2-4:8765 to try the crawler on.")
app.add_typer(demo_app, name="demo-site")


@demo_app.command("start")
def demo_start(home: HomeOpt = None) -> None:
    """Serve the demo site in the background and print its seed URLs."""
    from crawler.bench.demo import start_demo_site

    try:
        for url in start_demo_site(_home(home)):
            typer.echo(url)
    except CrawlError as exc:
        typer.echo(f"crawl: error: {exc}", err=True)
        raise typer.Exit(2) from None


@demo_app.command("stop")
def demo_stop(home: HomeOpt = None) -> None:
    """Stop the demo site."""
    from crawler.bench.demo import stop_demo_site

    typer.echo("stopped" if stop_demo_site(_home(home)) else "not running")
