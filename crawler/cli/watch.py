"""``crawl status --watch``: a live terminal view of the whole crawl, and ``crawl metrics``.

Both read ``crawl_status`` (crawler.status), the numbers ``crawl status
--json`` prints, once a second (the watch) or at each scrape (metrics).
Redis memory by kind (a SCAN of the crawl's keys) is read every
``MEMORY_EVERY`` seconds only; used memory per node comes from INFO.
"""

from __future__ import annotations

import contextlib
import signal
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

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

if TYPE_CHECKING:
    from redis.asyncio import Redis

MEMORY_EVERY = 30.0
"""Seconds between two readings of memory by kind in the watch."""


def register(app: typer.Typer) -> None:
    app.command()(metrics)


async def used_memory(redis: Redis) -> dict[str, int]:
    """INFO used_memory of each server (each master on a cluster)."""
    from crawler.store.connection import is_cluster, primaries

    out = {}
    nodes = await primaries(redis)
    try:
        for node in nodes:
            info: dict[str, Any] = await node.info("memory")
            name = "this server"
            if is_cluster(redis):
                kwargs = node.connection_pool.connection_kwargs
                name = f"{kwargs.get('host')}:{kwargs.get('port')}"
            out[name] = int(info.get("used_memory", 0))
    finally:
        if nodes[0] is not redis:
            for node in nodes:
                await node.aclose()
    return out


def _fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}/s"


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render(status: dict[str, Any], memory: dict[str, int], crawl: str) -> Group:
    """The watch's screen: one table a part, from one ``crawl status`` reading."""
    state = status.get("crawl", {})
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]crawl {crawl}[/]", f"state: {state.get('state', 'running')}"
                 + (f" ({state['reason']})" if state.get("reason") else ""))
    counts = Table(title="frontier", title_justify="left")
    for column in ("queued", "leased", "done", "errors", "pages/s 10s", "pages/s 5m", "ETA"):
        counts.add_column(column, justify="right")
    rate = status.get("rate", {})
    counts.add_row(*(str(status.get(k, 0)) for k in ("queued", "leased", "done", "errors")),
                   _fmt_rate(rate.get("last_10s")), _fmt_rate(rate.get("last_5m")),
                   _fmt_eta(status.get("eta_s")))
    workers = Table(title="workers", title_justify="left")
    for column in ("node", "pid", "pages", "rate", "errors", "in flight", "heartbeat"):
        workers.add_column(column, justify="right" if column != "node" else "left")
    for w in status.get("worker_list", []):
        beat = f"{w['last_seen_s']:.0f}s ago" + ("" if w["alive"] else " [red]dead[/]")
        workers.add_row(w["node"], str(w["pid"]), str(w["pages"]), f"{w['rate']:.1f}/s",
                        str(w["errors"]), str(w["in_flight"]), beat)
    outcomes = Table(title="results", title_justify="left")
    outcomes.add_column("by status class / error type")
    outcomes.add_column("count", justify="right")
    for name, n in sorted(status.get("status_classes", {}).items()):
        outcomes.add_row(name, str(n))
    for name, n in sorted(status.get("errors_by_type", {}).items(), key=lambda kv: -kv[1]):
        outcomes.add_row(f"[red]{name}[/]", str(n))
    hosts = Table(title="busiest hosts", title_justify="left")
    for column in ("host", "queued", "next in", "held"):
        hosts.add_column(column, justify="left" if column == "host" else "right")
    for h in status.get("top_hosts", []):
        hosts.add_row(h["host"], str(h["queued"]), f"{h['next_in_s']:.1f}s", h["held"] or "")
    mem = Table(title="Redis memory", title_justify="left")
    mem.add_column("node")
    mem.add_column("used", justify="right")
    for node, used in memory.items():
        mem.add_row(node, f"{used / 1e6:.1f} MB")
    by_kind = (status.get("memory") or {}).get("bytes")
    if by_kind:
        mem.add_row("crawl's keys", ", ".join(f"{k} {v / 1e6:.1f} MB"
                                             for k, v in by_kind.items() if v))
    return Group(head, counts, workers, outcomes, hosts, mem)


async def watch(redis: Redis, settings: Settings, every: float = 1.0,
                rounds: int | None = None) -> None:
    """Redraw the view every ``every`` seconds (``rounds`` times, or until Ctrl-C).

    Ctrl-C (or SIGTERM) ends the view between frames: the frame in progress
    finishes and the loop stops, rather than the run cancelling a Redis call
    halfway (a cancelled call's connection cleanup once kept the process
    alive after Ctrl-C on a loaded machine). A second Ctrl-C does not wait."""
    import asyncio

    from crawler.observe.status import crawl_status

    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()

    def on_signal() -> None:
        if stopped.is_set() and current is not None:
            current.cancel()
        stopped.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)

    last_memory = -MEMORY_EVERY
    kinds: dict[str, Any] | None = None
    console = Console()
    # A file or a pipe (crawl status --watch > log): Live would draw only when it
    # stops, so nothing reached the file until Ctrl-C. There a frame follows the
    # last, with the time, as top -b prints them.
    live = Live(console=console, refresh_per_second=4, screen=False) \
        if console.is_terminal else None
    if live is not None:
        live.start()
    try:
        done = 0
        while (rounds is None or done < rounds) and not stopped.is_set():
            with_memory = time.monotonic() - last_memory >= MEMORY_EVERY
            status = await crawl_status(redis, settings, memory=with_memory)
            if with_memory:
                kinds, last_memory = status.get("memory"), time.monotonic()
            status["memory"] = kinds
            frame = render(status, await used_memory(redis), settings.crawl)
            if live is not None:
                live.update(frame)
            else:
                console.rule(time.strftime("%Y-%m-%d %H:%M:%S"))
                console.print(frame)
                console.file.flush()
            done += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), every)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if live is not None:
            live.stop()


def metrics(
    ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
    config: ConfigOpt = None, home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="Port for /metrics.")] = 9464,
    host: Annotated[str, typer.Option(
        help="Address to bind. Anything but loopback requires a token.")] = "127.0.0.1",
    token: Annotated[str | None, typer.Option(
        help="Bearer token every scrape must send (Authorization: Bearer TOKEN). "
             "[default: none on loopback; required elsewhere; env CRAWL_METRICS_TOKEN]",
        show_default=False)] = None,
) -> None:
    """Serve the crawl-wide gauges (queued, leased, done, shards, Redis memory) for Prometheus."""
    from crawler.observe import metrics as prom
    from crawler.observe.status import crawl_status

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)
    required = prom.required_token(host, token or settings.metrics_token, "crawl metrics")

    async def main() -> None:
        import asyncio

        client, s = await open_crawl(settings)

        async def render_metrics() -> bytes:
            status = await crawl_status(client, s, memory=False)
            return prom.exposition(prom.crawl_families(status, await used_memory(client)))

        runner = await prom.serve(render_metrics, host, port, required)
        typer.echo(f"serving http://{host}:{port}/metrics for crawl {s.crawl!r}", err=True)
        try:
            # SIGTERM handled, not left to its default: as a container's PID 1
            # (docker/compose.yaml) the default is to ignore it, and `docker
            # stop` waited out its grace period and killed the process.
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stopped.set)
            await stopped.wait()
        finally:
            await runner.cleanup()
            await client.aclose()

    try:
        run_async(main)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
