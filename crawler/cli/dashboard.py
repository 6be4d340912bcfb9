"""``crawl dashboard``: serve the crawl's live web page (crawler.dashboard) until Ctrl-C."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

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
from crawler.errors import CrawlError


def register(app: typer.Typer) -> None:
    app.command()(dashboard)


def dashboard(
    ctx: typer.Context,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    port: Annotated[int, typer.Option(help="TCP port to serve on.")] = 8080,
    host: Annotated[str, typer.Option(
        help="Address to bind. Anything but loopback requires a token.")] = "127.0.0.1",
    token: Annotated[str | None, typer.Option(
        help="Required of every request. [default: none on loopback; elsewhere one is "
             "generated and printed]", envvar="CRAWL_DASHBOARD_TOKEN")] = None,
) -> None:
    """Serve a live web page of the crawl (counters, pages/s, workers, hosts, results)
    with pause, resume and stop buttons."""
    from aiohttp import web

    from crawler.dashboard import make_app
    from crawler.observe.access import token_for

    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)
    required, generated = token_for(host, token)

    async def main() -> None:
        import asyncio

        client, s = await open_crawl(settings)
        runner = web.AppRunner(make_app(client, s, required), access_log=None,
                               handler_cancellation=True)
        try:
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                raise CrawlError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{port}/" + (f"?token={required}" if required else "")
            typer.echo(f"dashboard of crawl {s.crawl}: {url}"
                       + ("  (token generated: binding beyond loopback needs one)"
                          if generated else ""))
            sys.stdout.flush()  # seen at once even when stdout is a file or a pipe
            stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stopped.set)
            await stopped.wait()
        finally:
            await runner.cleanup()
            await client.aclose()

    run_async(main)
