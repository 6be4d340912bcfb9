"""crawler: an asyncio-native, distributed web crawler on a shared Redis/Valkey frontier."""

from crawler.config import HostPolicy, Settings, load_settings
from crawler.errors import CrawlError, FetchError
from crawler.extract import Page
from crawler.frontier import ClaimResult, Frontier, Lease
from crawler.parse import Page as ParsedPage
from crawler.parse import parse_html
from crawler.urls import canonicalize, fingerprint

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
