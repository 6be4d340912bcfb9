"""The ``crawl`` command line.

``app`` is the typer application. Its group class carries the one error
handler every command shares: a CrawlError (a bad setting, Redis out of
reach, a file that cannot be read) is one line on stderr and exit status 2,
never a traceback.
"""

from __future__ import annotations

from crawler.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
