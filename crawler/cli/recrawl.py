"""``crawl recrawl``: queue done URLs again, to be revisited with conditional requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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
from crawler.cli.markup import escape
from crawler.config import Settings
from crawler.errors import CrawlError

if TYPE_CHECKING:
    from redis.asyncio import Redis


NEW_CRAWL_HINT = ("Recrawling needs a new crawl made with it: CRAWL_RECRAWL=true crawl "
                  "--crawl NEW seed FILE (or recrawl = true in crawl.toml); crawl retry "
                  "--errors TYPE queues failed URLs again without it")
TRUE_WORDS = ("true", "1", "yes", "on")


def register(app: typer.Typer) -> None:
    app.command()(recrawl)


async def refuse_late_recrawl(client: Redis, settings: Settings, changes: dict[str, str]
                              ) -> None:
    """``config set recrawl=true`` on a crawl with done URLs, made without it: refused.

    It would keep fetch times only for the URLs fetched from then on; the
    ones done have none, and ``crawl recrawl`` could never queue them, which
    looks like it works and does nothing. On a crawl with no result yet it is
    accepted: every URL then keeps its state.
    """
    value = changes.get("recrawl")
    if value is None or settings.recrawl or value.strip().lower() not in TRUE_WORDS:
        return
    from crawler.frontier import Frontier

    done = (await Frontier(client, settings, local_dedup=False).stats())["done"]
    if done:
        raise CrawlError(f"recrawl = true refused: crawl {settings.crawl!r} was made without "
                         f"it and kept no fetch times for its {done} done URLs, which no "
                         f"recrawl could ever revisit. {NEW_CRAWL_HINT}")


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
            if not s.recrawl:
                raise CrawlError(f"crawl {s.crawl!r} was made without recrawl = true: it kept "
                                 "no fetch times, so there is nothing to revisit. "
                                 f"{NEW_CRAWL_HINT}")
            # An age counts back from now on Redis's clock, the one fetch times are on.
            when = since if changed_since is None else parse_since(
                changed_since, now=await server_time(client))
            return await requeue(client, s, age, changed_since=when)
        finally:
            await client.aclose()

    typer.echo(f"queued {run_async(main)} URLs for a revisit")
