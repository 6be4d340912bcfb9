"""crawler: an asyncio-native, distributed web crawler on a shared Redis/Valkey frontier.

The names below are the library's public surface. They are imported on first
use (PEP 562), so ``import crawler``, and with it every ``crawl`` command and
worker process, starts without aiohttp, redis, pydantic or lxml until it
needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.config import HostPolicy, Settings, load_settings
    from crawler.errors import CrawlError, FetchError
    from crawler.frontier import ClaimResult, Frontier, Lease
    from crawler.pages.extract import Page
    from crawler.pages.parse import Page as ParsedPage
    from crawler.pages.parse import parse_html
    from crawler.urls import canonicalize, fingerprint

_EXPORTS = {
    "ClaimResult": ("crawler.frontier", "ClaimResult"),
    "CrawlError": ("crawler.errors", "CrawlError"),
    "FetchError": ("crawler.errors", "FetchError"),
    "Frontier": ("crawler.frontier", "Frontier"),
    "HostPolicy": ("crawler.config", "HostPolicy"),
    "Lease": ("crawler.frontier", "Lease"),
    "Page": ("crawler.pages.extract", "Page"),
    "ParsedPage": ("crawler.pages.parse", "Page"),
    "Settings": ("crawler.config", "Settings"),
    "canonicalize": ("crawler.urls", "canonicalize"),
    "fingerprint": ("crawler.urls", "fingerprint"),
    "load_settings": ("crawler.config", "load_settings"),
    "parse_html": ("crawler.pages.parse", "parse_html"),
}

__all__ = [
    "ClaimResult",
    "CrawlError",
    "FetchError",
    "Frontier",
    "HostPolicy",
    "Lease",
    "Page",
    "ParsedPage",
    "Settings",
    "canonicalize",
    "fingerprint",
    "load_settings",
    "parse_html",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'crawler' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # looked up once
    return value
