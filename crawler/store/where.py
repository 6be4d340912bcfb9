"""Where a command looks for its crawls, said in words, and whether a store is there.

With no Redis URL every command uses the embedded Valkey of one directory
(``--home``, ``CRAWL_HOME``, default ``./.crawl``, resolved against the
current directory): run from another directory, a command sees another,
empty world. Messages about a crawl not found say which store was read and
how to point at another; read-only commands that find no store there say so
instead of starting a server (and creating the directory) to read nothing.
"""

from __future__ import annotations

from pathlib import Path

from crawler.config import Settings
from crawler.config.redis_urls import redact
from crawler.errors import CrawlError
from crawler.store.server import home_dir, is_running, socket_path

DATA_DIR = "appendonlydir"
"""What the embedded Valkey writes into its home once it has run (append-only files)."""


def store_exists(home: Path) -> bool:
    """An embedded store has run in ``home``: its server answers, or its data is there."""
    return is_running(socket_path(home)) or (home / DATA_DIR).is_dir()


def where(settings: Settings) -> str:
    """``the embedded store in /abs/.crawl (--home DIR or CRAWL_HOME for another)``."""
    if settings.redis_url is not None:
        return f"Redis at {redact(settings.redis_url)}"
    return (f"the embedded store in {home_dir(settings.home)} "
            "(--home DIR or CRAWL_HOME=DIR for another; --redis URL for a server)")


def require_store(settings: Settings) -> None:
    """For a read-only command: an error, not a new server, when there is no store to read."""
    if settings.redis_url is not None:
        return
    home = home_dir(settings.home)
    if not store_exists(home):
        raise CrawlError(f"no crawl store in {home}: nothing was crawled from here (crawl seed "
                         "creates one); point at another with --home DIR or CRAWL_HOME=DIR, "
                         "or at a server with --redis URL")
