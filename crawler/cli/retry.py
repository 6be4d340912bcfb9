"""``crawl retry --errors TYPE,...``: queue again the done URLs that failed with those errors."""

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
from crawler.cli.markup import escape
from crawler.errors import CrawlError


def register(app: typer.Typer) -> None:
    app.command()(retry)


def retry(
    ctx: typer.Context,
    errors: Annotated[str | None, typer.Option(
        "--errors", show_default=False,
        help=escape("Error types, comma-separated: blocked_address, dns_error, timeout, "
                    "tls_error, connect_error, robots_disallowed, ... (crawl status lists "
                    "them under errors_by_type). [default: none; required]"))] = None,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Queue again the done URLs whose last result was one of these errors.

    Fix the cause first (e.g. --allow-private for a loopback site), then run
    workers: each URL is fetched again and gets a new record, carrying
    "retry": n; its old record stays in the results. Works with or without
    recrawl = true.
    """
    from crawler.cli.seed_checks import state_warning
    from crawler.discovery.retry import failed_by_type, requeue_errors

    types = [t.strip() for t in (errors or "").split(",") if t.strip()]
    if not types:
        raise CrawlError("--errors: give error types, e.g. --errors blocked_address,timeout")
    if "trap" in types:
        # crawl status counts them with the errors; they are not failed fetches.
        raise CrawlError("--errors trap: a trap record's URL was never queued (its path "
                         "was past trap_query_budget), so there is nothing to queue again. "
                         "The path's later URLs were not marked seen: crawl seed queues "
                         "them (seeds do not count toward the budget), and so do links "
                         "found after crawl config set trap_query_budget=N; the URL the "
                         "record names stays marked seen")
    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)

    async def main() -> tuple[int, dict[str, int], str | None]:
        client, s = await open_crawl(settings)
        try:
            queued = await requeue_errors(client, s, types)
            left = await failed_by_type(client, s) if not queued else {}
            return queued, left, await state_warning(client, s) if queued else None
        finally:
            await client.aclose()

    queued, left, warning = run_async(main)
    typer.echo(f"queued {queued} URLs again (errors: {', '.join(types)})")
    if not queued:
        there = ", ".join(f"{kind} {n}" for kind, n in sorted(left.items()))
        typer.echo("no done URL failed with " + " or ".join(types)
                   + (f"; the failed ones here: {there}" if there else "; none failed here"),
                   err=True)
        raise typer.Exit(1)
    if warning:
        typer.echo(f"crawl: warning: {warning}", err=True)
