"""The ``crawl`` typer application: its callback, and every command group registered."""

from __future__ import annotations

from typing import Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer.core import TyperGroup

from crawler.bench.cli import bench_app
from crawler.cli import control, crawl, server
from crawler.cli.common import Common, ConfigOpt, CrawlOpt, HomeOpt, RedisOpt, setup_logging
from crawler.errors import CrawlError


class CrawlGroup(TyperGroup):
    """The root command group: every command's CrawlError becomes one line and exit 2."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except CrawlError as exc:
            typer.echo(f"crawl: error: {exc}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(cls=CrawlGroup, add_completion=False, no_args_is_help=True,
                  help="An asyncio-native, distributed web crawler on a shared Redis frontier.")


@app.callback()
def common_options(ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
                   config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Options before the command apply to it, as if given after it."""
    setup_logging()
    ctx.obj = Common(redis=redis, crawl=crawl, config=config, home=home)


crawl.register(app)
control.register(app)
server.register(app)
app.add_typer(bench_app, name="bench")
