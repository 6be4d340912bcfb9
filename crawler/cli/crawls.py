"""The crawls on a server as a whole: ``crawl list`` and ``crawl delete NAME``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from crawler.cli.common import (
    ConfigOpt,
    CrawlOpt,
    HomeOpt,
    RedisOpt,
    common,
    run_async,
    settings_for,
)
from crawler.errors import CrawlError


def register(app: typer.Typer) -> None:
    app.command("list")(list_crawls)
    app.command("delete")(delete)


def list_crawls(
    ctx: typer.Context,
    redis: RedisOpt = None, config: ConfigOpt = None, home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a crawl.")] = False,
) -> None:
    """List the crawls on this Redis: name, URLs queued, leased, done, errors, workers, age
    and state (running, paused, stopped or finished)."""
    from crawler.observe.catalog import CrawlSummary, age_text, crawl_names, summarize
    from crawler.store.connection import connect, server_ms
    from crawler.store.where import require_store, where

    settings = settings_for(ctx, redis=redis, config=config, home=home)
    require_store(settings)  # no server started, no directory made, to list nothing

    async def main() -> tuple[int, list[CrawlSummary]]:
        client = await connect(settings)
        try:
            now = await server_ms(client)
            return now, [await summarize(client, name, now)
                         for name in await crawl_names(client)]
        finally:
            await client.aclose()

    now_ms, summaries = run_async(main)
    if as_json:
        for c in summaries:
            typer.echo(json.dumps({"name": c.name, "shards": c.shards, "queued": c.queued,
                                   "leased": c.leased, "done": c.done, "errors": c.errors,
                                   "workers": c.workers, "created": c.created,
                                   "state": c.state}))
        return
    if not summaries:
        typer.echo(f"no crawls yet in {where(settings)} (crawl seed FILE creates one)",
                   err=True)
        return
    if settings.redis_url is None:
        typer.echo(f"crawls in {where(settings)}:", err=True)
    rows = [("NAME", "QUEUED", "LEASED", "DONE", "ERRORS", "WORKERS", "AGE", "STATE")]
    rows += [(c.name, str(c.queued), str(c.leased), str(c.done), str(c.errors),
              str(c.workers), age_text(c.created, now_ms / 1000), c.state) for c in summaries]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) if i in (0, 7) else cell.rjust(w)
                             for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
                   .rstrip())


def delete(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(
        help="The crawl to delete (crawl list shows them). [default: --crawl's]",
        show_default=False)] = None,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
    force: Annotated[bool, typer.Option(
        help="Delete even while workers of the crawl are alive.")] = False,
) -> None:
    """Delete a crawl: its queues, seen URLs, results, workers and layout, on every shard."""
    from crawler.observe.catalog import crawl_exists, delete_crawl, no_such_crawl, summarize
    from crawler.store.connection import connect, server_ms

    name = crawl_to_delete(name, crawl or common(ctx).crawl)
    settings = settings_for(ctx, redis=redis, config=config, home=home, crawl=name)

    async def main() -> int | None:
        client = await connect(settings)
        try:
            if not await crawl_exists(client, name):
                raise CrawlError(await no_such_crawl(client, name))
            summary = await summarize(client, name, await server_ms(client))
            if summary.workers and not force:
                raise CrawlError(f"crawl {name!r} has {summary.workers} live worker(s): stop "
                                 "them first, or --force to delete it under them")
            what = (f"crawl {name!r} ({summary.queued} queued, {summary.done} done, "
                    f"{summary.errors} errors) with every key it has, results included")
            if not yes and not typer.confirm(f"Delete {what}?", err=True):
                return None
            return await delete_crawl(client, name)
        finally:
            await client.aclose()

    deleted = run_async(main)
    if deleted is None:
        typer.echo("not deleted", err=True)
        raise typer.Exit(1)
    typer.echo(f"deleted crawl {name!r} ({deleted} keys)")


def crawl_to_delete(name: str | None, crawl: str | None) -> str:
    """``crawl delete NAME`` or ``crawl --crawl NAME delete``: one name, given once.

    Never the default crawl by omission: deleting is only for a crawl named."""
    if name is not None and crawl is not None and name != crawl:
        raise CrawlError(f"delete names crawl {name!r} but --crawl gives {crawl!r}: "
                         "give one name")
    chosen = name or crawl
    if chosen is None:
        raise CrawlError("name the crawl to delete: crawl delete NAME, or crawl --crawl "
                         "NAME delete (crawl list shows them)")
    return chosen
