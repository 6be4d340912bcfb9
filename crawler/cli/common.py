"""What every ``crawl`` command shares: its common and log options, settings, running async code.

Common options (``--redis``, ``--crawl``, ``--config``, ``--home``) may come
before the command (``crawl --crawl demo seed f``) or after it; the app's
callback keeps the first kind in the typer context, and the command's own
win. Errors are not handled here: ``crawler.cli.main`` turns every
CrawlError into one line and exit status 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from crawler.cli.markup import escape
from crawler.errors import CrawlError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from crawler.config import Settings

T = TypeVar("T")

ORIGINS = "crawler.origins"
STRICT_COMMANDS = ("seed", "worker")
"""Commands refused when a crawl-wide value they were given disagrees with the crawl's."""

RedisOpt = Annotated[str | None, typer.Option(
    "--redis", show_default=False,
    help=escape("Redis URL: redis://, rediss://, redis+cluster://, rediss+cluster:// or unix://. "
         "A cluster's URL may name several seed nodes, tried in turn until one answers: "
         "redis+cluster://n1:7000,n2:7000,n3:7000. "
         "[default: the embedded Valkey in --home; setting frontier.redis_url, "
         "env CRAWL_REDIS_URL]"))]
CrawlOpt = Annotated[str | None, typer.Option(
    "--crawl", show_default=False,
    help=escape("Crawl name. [default: default; setting frontier.crawl, env CRAWL_CRAWL]"))]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", show_default=False,
    help=escape("TOML settings file (config/default.toml lists every key). "
                "[default: ./crawl.toml if there is one; env CRAWL_CONFIG]"))]
HomeOpt = Annotated[str | None, typer.Option(
    "--home", show_default=False,
    help=escape("Directory of the embedded Valkey. [default: .crawl; setting frontier.home, "
                "env CRAWL_HOME]"))]


@dataclass
class Common:
    """Options given before the command."""

    redis: str | None = None
    crawl: str | None = None
    config: Path | None = None
    home: str | None = None


def common(ctx: typer.Context) -> Common:
    """The options given before the command (the app callback stored them)."""
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, Common) else Common()


def settings_for(ctx: typer.Context, *, redis: str | None = None, crawl: str | None = None,
                 config: Path | None = None, home: str | None = None, **flags: Any) -> Settings:
    """Settings from defaults < file < env < flags, the command's options over the common ones.

    Where each given value came from is kept in the context: ``open_crawl``
    checks crawl-wide ones against the crawl's stored settings."""
    from crawler.config import load_with_origins  # pydantic: not for crawl --help

    before = common(ctx)
    settings, origins = load_with_origins(config or before.config,
                                          overrides={"redis_url": redis or before.redis,
                                                     "crawl": crawl or before.crawl,
                                                     "home": home or before.home, **flags})
    ctx.meta[ORIGINS] = origins
    return settings


def home_for(ctx: typer.Context, home: str | None) -> str | None:
    return home or common(ctx).home


def run_async(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on uvloop."""
    import uvloop

    return uvloop.run(fn())


LOG_LEVELS = ("debug", "info", "warning", "error")
LogLevelOpt = Annotated[str | None, typer.Option(
    "--log-level", help=escape("debug, info, warning or error. [default: warning]"),
    show_default=False)]
VerboseOpt = Annotated[int, typer.Option(
    "--verbose", "-v", count=True,
    help=escape("More log lines: -v info, -vv debug. [default: warnings and errors only]"),
    show_default=False)]


def log_level(level: str | None, verbose: int) -> int | None:
    """The logging level asked for; None if neither option was given."""
    if level is not None:
        if level.lower() not in LOG_LEVELS:
            raise CrawlError(f"--log-level: expected {', '.join(LOG_LEVELS[:-1])} or "
                             f"{LOG_LEVELS[-1]}, got {level!r}")
        return int(getattr(logging, level.upper()))
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    return None


def setup_logging(level: int | None = None) -> None:
    """Log lines on stderr as ``crawl: message``; WARNING and up unless ``level`` says."""
    logging.basicConfig(level=logging.WARNING, format="crawl: %(message)s")
    if level is not None:
        logging.getLogger().setLevel(level)


async def open_crawl(settings: Settings, *, must_exist: bool = True
                     ) -> tuple[Redis, Settings]:
    """A checked client for the crawl's Redis, and the settings with the crawl's layout
    and its stored crawl-wide settings (crawler.crawl_settings).

    ``must_exist``: only ``crawl seed`` may create a crawl (it passes False);
    for every other command a crawl name that is not there is an error
    listing the ones that are (and where they were looked for), not an
    empty crawl quietly created; and with no embedded store where it looks
    there is no crawl either: said so before any server is started.
    """
    from typer._click.globals import get_current_context  # typer vendors click

    from crawler.observe.catalog import crawl_exists, no_such_crawl
    from crawler.store.connection import connect
    from crawler.store.crawl_settings import ROBOTS_SHAPING, adopt, crawl_values, stored
    from crawler.store.layout import crawl_layout
    from crawler.store.where import require_store, where

    ctx = get_current_context(silent=True)
    origins = ctx.meta.get(ORIGINS, {}) if ctx is not None else {}
    strict = ctx is not None and ctx.info_name in STRICT_COMMANDS
    if must_exist:
        require_store(settings)
    redis = await connect(settings)
    try:
        if must_exist and not await crawl_exists(redis, settings.crawl):
            looked = where(settings) if settings.redis_url is None else None
            raise CrawlError(await no_such_crawl(redis, settings.crawl, looked))
        settings = await crawl_layout(redis, settings)
        before, _ = await stored(redis, settings.crawl)
        adopted = await adopt(redis, settings, origins, strict)
        if before is not None and any(before.get(name) != value for name, value in
                                      crawl_values(adopted).items() if name in ROBOTS_SHAPING):
            # A worker's --allow-private (say) became the crawl's, as config set would:
            # the robots.txt verdicts blocked under the old policy are read again.
            from crawler.observe.control import forget_robots

            await forget_robots(redis, adopted)
        return redis, adopted
    except BaseException:
        await redis.aclose()
        raise


async def check_crawl(settings: Settings) -> None:
    """What ``open_crawl`` refuses, refused once here (``--processes N``: not N times)."""
    client, _ = await open_crawl(settings)
    await client.aclose()
