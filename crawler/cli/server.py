"""The embedded Valkey server and the demo site: ``crawl server``, ``crawl demo-site``."""

from __future__ import annotations

from typing import Annotated

import typer

from crawler.cli.common import HomeOpt, home_for, run_async
from crawler.cli.markup import escape
from crawler.errors import CrawlError

server_app = typer.Typer(no_args_is_help=True, help="The embedded Valkey server.")
demo_app = typer.Typer(no_args_is_help=True,
                       help="A generated site on 127.0.0.2-4:8765 to try the crawler on.")


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
    app.add_typer(demo_app, name="demo-site")


@server_app.command("start")
def server_start(ctx: typer.Context, home: HomeOpt = None,
                 cluster: Annotated[int | None, typer.Option(
                     "--cluster", metavar="MASTERS", show_default=False,
                     help=escape("Start a local Valkey Cluster of this many masters (3 or "
                                 "more) on 127.0.0.1 instead, for trying and testing; prints "
                                 "its redis+cluster:// URL. [default: none: the embedded "
                                 "single server]"))] = None,
                 replicas: Annotated[int, typer.Option(
                     help="With --cluster: replicas a master.")] = 0) -> None:
    """Start the embedded Valkey (commands start it by themselves when needed)."""
    if cluster is not None:
        from crawler.cli.local_cluster import cluster_dir, start_cluster

        url, started = start_cluster(home_for(ctx, home), cluster, replicas)
        typer.echo(url)
        typer.echo(f"{'started' if started else 'already running:'} a local cluster of "
                   f"{cluster} masters, {replicas} replica(s) each, in "
                   f"{cluster_dir(home_for(ctx, home))}; use it with --redis {url} (or "
                   "CRAWL_REDIS_URL); `crawl server stop --cluster` stops it and deletes "
                   "its data", err=True)
        return
    if replicas:
        raise CrawlError("--replicas goes with --cluster")
    from crawler.store.server import ensure_server

    typer.echo(ensure_server(home_for(ctx, home)))


@server_app.command("stop")
def server_stop(ctx: typer.Context, home: HomeOpt = None,
                force: Annotated[bool, typer.Option(
                    help="Stop it even while workers are crawling (they start it again).")
                                 ] = False,
                cluster: Annotated[bool, typer.Option(
                    "--cluster", help="Stop the local cluster (crawl server start --cluster) "
                                      "instead; its data goes with it.")] = False) -> None:
    """Stop the embedded Valkey; its append-only file keeps the crawl.

    Refused while workers of any crawl hold live heartbeats, unless --force.
    """
    from crawler.store.server import stop_server

    where = home_for(ctx, home)
    if cluster:
        from crawler.cli.local_cluster import stop_cluster

        typer.echo("stopped" if stop_cluster(where) else "no local cluster")
        return
    if not force:
        busy = run_async(lambda: _live_workers(where))
        if busy:
            crawls = ", ".join(f"{name} ({n})" for name, n in sorted(busy.items()))
            raise CrawlError(f"workers are crawling on this server: {crawls}; stop them "
                             "first (Ctrl-C), or --force")
    if stop_server(where):
        typer.echo("stopped")
        return
    from crawler.cli.local_cluster import STATE, cluster_dir

    if (cluster_dir(where) / STATE).exists():  # the user likely meant that one
        typer.echo(f"not running; a local cluster was started in {cluster_dir(where)}: "
                   "`crawl server stop --cluster` stops it")
    else:
        typer.echo("not running")


async def _live_workers(home: str | None) -> dict[str, int]:
    """Live workers by crawl on the embedded server, if it runs (it is not started for this)."""
    from crawler.observe.catalog import live_workers
    from crawler.store.connection import make_client
    from crawler.store.server import home_dir, is_running, socket_path

    sock = socket_path(home_dir(home))
    if not is_running(sock):
        return {}
    client = make_client(f"unix://{sock}", max_connections=2)
    try:
        return await live_workers(client)
    finally:
        await client.aclose()


@demo_app.command("start")
def demo_start() -> None:
    """Serve the demo site in the background and print its seed URLs."""
    from crawler.bench.demo import start_demo_site

    for url in start_demo_site():
        typer.echo(url)


@demo_app.command("stop")
def demo_stop(ctx: typer.Context, home: Annotated[str | None, typer.Option(
        "--home", show_default=False,
        help="Where a demo site started by an earlier version left its pid file "
        "[default: .crawl]. One started now is found from any directory.")] = None
        ) -> None:
    """Stop the demo site (started from any directory)."""
    from crawler.bench.demo import stop_demo_site

    typer.echo("stopped" if stop_demo_site(home_for(ctx, home)) else "not running")
