"""The commands that steer a crawl as a whole: config set/show, pause, resume, stop.

They act through Redis on every worker of the crawl, on every node, within
about a second (crawler.control, crawler.crawl_settings): no signals.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

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
from crawler.config import Settings
from crawler.config.settings import displayed

if TYPE_CHECKING:
    from redis.asyncio import Redis

DROP_WAIT = 60.0
"""Seconds ``crawl stop --drop`` waits for the fetches in flight before dropping."""

config_app = typer.Typer(help="The crawl's own settings, stored with it in Redis.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command()(pause)
    app.command()(resume)
    app.command()(stop)


def _with_crawl(ctx: typer.Context, redis: str | None, crawl: str | None,
                config: Any, home: str | None,
                action: Callable[[Redis, Settings], Awaitable[Any]]) -> Any:
    settings = settings_for(ctx, redis=redis, crawl=crawl, config=config, home=home)

    async def main() -> Any:
        client, s = await open_crawl(settings)
        try:
            return await action(client, s)
        finally:
            await client.aclose()

    return run_async(main)


@config_app.command("set")
def config_set(
    ctx: typer.Context,
    assignments: Annotated[list[str], typer.Argument(
        metavar="KEY=VALUE...", help="Crawl-wide settings, e.g. delay=2 scope=domain.")],
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Change crawl-wide settings; every running worker picks them up within seconds."""
    from crawler.frontier.politeness import publish_policy
    from crawler.store.crawl_settings import (
        ROBOTS_SHAPING,
        crawl_values,
        parse_assignments,
        set_values,
    )

    changes = parse_assignments(assignments)
    if changes.get("extract"):  # a hook that does not import: refused, not stored
        from crawler.cli.hooks import check_hook

        check_hook(changes["extract"])
    forgotten = [0]
    warnings: list[str] = []

    async def action(client: Redis, settings: Settings) -> dict[str, Any]:
        from crawler.cli.recrawl import refuse_late_recrawl

        await refuse_late_recrawl(client, settings, changes)  # before anything is stored
        before = crawl_values(settings)
        updated = await set_values(client, settings, changes)
        await publish_policy(client, updated)  # politeness is decided at claim time
        from crawler.observe.control import enforce_caps, forget_robots, still_old

        await enforce_caps(client, updated, lifted=True)
        after = crawl_values(updated)
        warnings.extend(await still_old(client, updated.crawl,
                                        {n for n in changes if before[n] != after[n]}))
        if any(before[name] != after[name] for name in ROBOTS_SHAPING):
            # Verdicts read for the old product token, or blocked by the old policy.
            forgotten[0] = await forget_robots(client, updated)
        return {k: v for k, v in after.items() if k in changes}

    for name, value in _with_crawl(ctx, redis, crawl, config, home, action).items():
        typer.echo(f"{name} = {json.dumps(displayed(name, value))}")
    for warning in warnings:
        typer.echo(f"crawl: warning: {warning}", err=True)
    if forgotten[0]:
        typer.echo(f"forgot {forgotten[0]} stored robots.txt verdicts: each is read again "
                   "under the new value")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    redis: RedisOpt = None, crawl: CrawlOpt = None, config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="As one JSON object.")] = False,
) -> None:
    """Print the crawl's stored settings (and its layout, fixed at creation)."""
    from crawler.store.crawl_settings import crawl_values, version

    async def action(client: Redis, settings: Settings) -> dict[str, Any]:
        values = crawl_values(settings)
        values["_version"] = await version(client, settings.crawl)
        values["_layout"] = {"shards": settings.shards,
                             "expected_urls": settings.expected_urls,
                             "dedup_bucket_bits": settings.dedup_bucket_bits}
        return values

    values = {name: displayed(name, value)
              for name, value in _with_crawl(ctx, redis, crawl, config, home, action).items()}
    if as_json:
        typer.echo(json.dumps(values, indent=2, sort_keys=True))
        return
    for name, value in values.items():
        typer.echo(f"{name} = {json.dumps(value)}")


def pause(ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
          config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Stop claiming on every worker; fetches in flight finish. `crawl resume` goes on."""
    from crawler.observe import control

    _with_crawl(ctx, redis, crawl, config, home, control.pause)
    typer.echo("paused: workers claim nothing until `crawl resume`")


def resume(ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
           config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Let a paused (or stopped) crawl claim again."""
    from crawler.observe import control

    async def action(client: Redis, settings: Settings) -> tuple[str, Settings]:
        return await control.resume(client, settings), settings

    cap, settings = _with_crawl(ctx, redis, crawl, config, home, action)
    if cap:
        typer.echo(f"crawl: not resumed: crawl {settings.crawl!r} has reached its {cap} "
                   f"({cap} = {getattr(settings, cap)}); {control.raise_cap_hint(cap)}",
                   err=True)
        raise typer.Exit(1)
    typer.echo("resumed")


def stop(
    ctx: typer.Context, redis: RedisOpt = None, crawl: CrawlOpt = None,
    config: ConfigOpt = None, home: HomeOpt = None,
    drop: Annotated[bool, typer.Option(help="Also discard every queued URL.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before --drop.")] = False,
) -> None:
    """Stop the crawl on every node: workers finish their fetches and exit."""
    from crawler.observe import control

    if drop and not yes:
        typer.confirm("Discard every queued URL of this crawl? It cannot be undone",
                      abort=True)

    async def action(client: Redis, settings: Settings) -> int:
        await control.stop(client, settings)
        if not drop:
            return 0
        # Fetches in flight finish and queue their links: drop after them.
        if not await control.wait_for_leases(client, settings, DROP_WAIT):
            typer.echo(f"crawl: URLs still leased after {DROP_WAIT:.0f}s; dropping the "
                       "queue now (links of pages finishing later are queued)", err=True)
        return await control.drop_queue(client, settings)

    dropped = _with_crawl(ctx, redis, crawl, config, home, action)
    typer.echo("stopped: workers finish their fetches and exit"
               + (f"; dropped {dropped} queued URLs" if drop else ""))
