"""The embedded Valkey server and the demo site: ``crawl server``, ``crawl demo-site``."""

from __future__ import annotations

import typer

from crawler.cli.common import HomeOpt, home_for

server_app = typer.Typer(no_args_is_help=True, help="The embedded Valkey server.")
demo_app = typer.Typer(no_args_is_help=True,
                       help="A generated site on 127.0.0.2-4:8765 to try the crawler on.")


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")
    app.add_typer(demo_app, name="demo-site")


@server_app.command("start")
def server_start(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Start the embedded Valkey (commands start it by themselves when needed)."""
    from crawler.server import ensure_server

    typer.echo(ensure_server(home_for(ctx, home)))


@server_app.command("stop")
def server_stop(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Stop the embedded Valkey; its append-only file keeps the crawl."""
    from crawler.server import stop_server

    stopped = stop_server(home_for(ctx, home))
    typer.echo("stopped" if stopped else "not running")


@demo_app.command("start")
def demo_start(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Serve the demo site in the background and print its seed URLs."""
    from crawler.bench.demo import start_demo_site

    for url in start_demo_site(home_for(ctx, home)):
        typer.echo(url)


@demo_app.command("stop")
def demo_stop(ctx: typer.Context, home: HomeOpt = None) -> None:
    """Stop the demo site."""
    from crawler.bench.demo import stop_demo_site

    typer.echo("stopped" if stop_demo_site(home_for(ctx, home)) else "not running")
