"""What every ``crawl`` command shares: its common options, settings, and running async code.

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
from typing import Annotated, Any, TypeVar

import typer
from redis.asyncio import Redis

from crawler.config import Settings, load_with_origins

T = TypeVar("T")

ORIGINS = "crawler.origins"
STRICT_COMMANDS = ("seed", "worker")
"""Commands refused when a crawl-wide value they were given disagrees with the crawl's."""

RedisOpt = Annotated[str | None, typer.Option(
    "--redis", help="Redis URL (redis://, rediss://, redis+cluster://, unix://). "
                    "Default: the embedded Valkey.")]
CrawlOpt = Annotated[str | None, typer.Option("--crawl", help="Crawl name (default: default).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
HomeOpt = Annotated[str | None, typer.Option(
    "--home", help="Embedded server directory (default ./.crawl or $CRAWL_HOME).")]


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


def setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="crawl: %(message)s")


async def open_crawl(settings: Settings) -> tuple[Redis, Settings]:
    """A checked client for the crawl's Redis, and the settings with the crawl's layout
    and its stored crawl-wide settings (crawler.crawl_settings)."""
    from typer._click.globals import get_current_context  # typer vendors click

    from crawler.connection import connect
    from crawler.crawl_settings import adopt
    from crawler.crawls import crawl_layout

    ctx = get_current_context(silent=True)
    origins = ctx.meta.get(ORIGINS, {}) if ctx is not None else {}
    strict = ctx is not None and ctx.info_name in STRICT_COMMANDS
    redis = await connect(settings)
    try:
        settings = await crawl_layout(redis, settings)
        return redis, await adopt(redis, settings, origins, strict)
    except BaseException:
        await redis.aclose()
        raise
