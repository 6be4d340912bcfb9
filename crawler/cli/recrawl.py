"""``crawl recrawl``: queue done URLs again, to be revisited with conditional requests."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

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
    older_than: Annotated[str | None, typer.Option(
        "--older-than", help=escape("Revisit URLs last fetched longer ago than this: 90s, 30m, "
                                    "12h, 7d, 2w. [default: none]"))] = None,
    changed_since: Annotated[str | None, typer.Option(
        "--changed-since", help=escape(
            "Revisit URLs whose sitemap <lastmod> is at or after this time and later than "
            "their last fetch: 2026-11-01, 2026-11-01T08:00:00Z (no zone: UTC), or an age "
            "such as 7d. [default: none]"))] = None,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Queue done URLs again for a revisit (the crawl needs recrawl = true).

    Give --older-than, --changed-since or both: with both, a URL that meets
    either is queued (once). --changed-since needs the sitemaps' lastmod, kept
    for the pages they list while recrawl = true. Run workers afterwards: each
    revisit sends If-None-Match / If-Modified-Since, and its record says
    not_modified or changed. With revisit_adaptive = true, crawl worker
    --forever revisits each URL by itself when its own interval has passed.
    """
    from crawler.discovery.lastmod import parse_since
    from crawler.discovery.recrawl import parse_age, requeue

    if older_than is None and changed_since is None:
        raise CrawlError("give --older-than AGE, --changed-since WHEN, or both")
    try:
        age = None if older_than is None else parse_age(older_than)
    except ValueError as exc:
        raise CrawlError(f"--older-than: {exc}") from None
    try:
        since = None if changed_since is None else parse_since(changed_since)
    except ValueError as exc:
        raise CrawlError(f"--changed-since: {exc}") from None
    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)

    async def main() -> int:
        from crawler.observe.control import server_time

        client, s = await open_crawl(settings)
        try:
            # An age counts back from now on Redis's clock, the one fetch times are on.
            when = since if changed_since is None else parse_since(
                changed_since, now=await server_time(client))
            return await requeue(client, s, age, changed_since=when)
        finally:
            await client.aclose()

    typer.echo(f"queued {run_async(main)} URLs for a revisit")
