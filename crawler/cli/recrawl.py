"""``crawl recrawl``: queue done URLs again, to be revisited with conditional requests."""

from __future__ import annotations

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
    app.command()(recrawl)


def recrawl(
    ctx: typer.Context,
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Revisit URLs last fetched longer ago than this: 90s, 30m, 12h, 7d. "
                               "[default: none, required]")],
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Queue again the done URLs fetched before a cutoff (the crawl needs recrawl = true).

    Run workers afterwards: each revisit sends If-None-Match / If-Modified-Since,
    and its record says not_modified or changed.
    """
    from crawler.recrawl import parse_age, requeue

    try:
        age = parse_age(older_than)
    except ValueError as exc:
        raise CrawlError(f"--older-than: {exc}") from None
    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)

    async def main() -> int:
        client, s = await open_crawl(settings)
        try:
            return await requeue(client, s, age)
        finally:
            await client.aclose()

    typer.echo(f"queued {run_async(main)} URLs for a revisit")
