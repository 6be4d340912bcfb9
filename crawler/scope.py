"""Which links a crawl follows: scope mode, include/exclude patterns, trap limits.

Scope is anchored on the seeds: their hosts (``host``), their registered
domains (``domain``, by the Public Suffix List) or nothing (``any``). The seed
anchors live in Redis so that every worker on every node applies the same
rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import tldextract

from crawler.config import Settings
from crawler.urls import host_key, hostname

# The PSL snapshot bundled with tldextract; never fetched over the network.
_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


@lru_cache(maxsize=65536)
def registered_domain(host: str) -> str:
    """example.co.uk for www.example.co.uk; the host itself for IPs and bare names."""
    name = host.strip("[]")
    if name.replace(".", "").isdigit() or ":" in name:
        return name
    ext = _EXTRACT(name)
    return ext.top_domain_under_public_suffix or name


def anchors_for(urls: Iterable[str]) -> set[str]:
    """The scope anchors seeds contribute: ``host:<host:port>`` and ``domain:<domain>``."""
    out: set[str] = set()
    for url in urls:
        out.add("host:" + host_key(url))
        out.add("domain:" + registered_domain(hostname(url)))
    return out


class Scope:
    """Decides whether a canonical link is followed. ``allows`` returns the reason it is not."""

    def __init__(self, settings: Settings, anchors: Iterable[str] = ()) -> None:
        self.mode = settings.scope
        self.max_depth = settings.max_depth
        self.max_url_length = settings.max_url_length
        self.max_repeats = settings.max_repeated_segments
        self.include = [re.compile(p) for p in settings.include]
        self.exclude = [re.compile(p) for p in settings.exclude]
        self.hosts: set[str] = set()
        self.domains: set[str] = set()
        self.update(anchors)

    def update(self, anchors: Iterable[str]) -> None:
        for anchor in anchors:
            kind, _, value = anchor.partition(":")
            (self.hosts if kind == "host" else self.domains).add(value)

    def knows_anchor_of(self, url: str) -> bool:
        """False if the URL's own host is not an anchor yet: time to refresh from Redis."""
        if self.mode == "host":
            return host_key(url) in self.hosts
        if self.mode == "domain":
            return registered_domain(hostname(url)) in self.domains
        return True

    def rejects(self, url: str, depth: int) -> str | None:
        """None if the URL is in scope at this depth, else a short reason."""
        if self.max_depth and depth > self.max_depth:
            return "depth"
        if len(url) > self.max_url_length:
            return "url_length"
        if self.mode == "host":
            if host_key(url) not in self.hosts:
                return "host"
        elif self.mode == "domain" and registered_domain(hostname(url)) not in self.domains:
            return "domain"
        if self.max_repeats and _repeated_segments(url) > self.max_repeats:
            return "repeated_segments"
        if self.include and not any(p.search(url) for p in self.include):
            return "include"
        if any(p.search(url) for p in self.exclude):
            return "exclude"
        return None

    def allows(self, url: str, depth: int = 0) -> bool:
        return self.rejects(url, depth) is None


def _repeated_segments(url: str) -> int:
    """The most times one path segment occurs: /a/b/a/b/a/... is a calendar-style trap."""
    start = url.find("/", url.index("//") + 2)
    if start < 0:
        return 0
    path = url[start:].split("?", 1)[0]
    counts: dict[str, int] = {}
    for seg in path.split("/"):
        if seg:
            counts[seg] = counts.get(seg, 0) + 1
    return max(counts.values(), default=0)
