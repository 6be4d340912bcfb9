"""Which links a crawl follows: scope mode, include/exclude patterns, trap limits.

Scope is anchored on the seeds: their hosts (``host``), their registered
domains (``domain``, by the Public Suffix List) or nothing (``any``). The seed
anchors live in Redis so that every worker on every node applies the same
rules.

The PSL's private section counts: ``alice.github.io`` and ``bob.github.io``
are different sites with different owners, so a domain-scoped crawl seeded on
one does not wander into the other.

Trap limits: depth, URL length, and repeated path segments. The last follows
Heritrix's PathologicalPathDecideRule: a segment, or a run of segments,
repeated more than ``max_repeated_segments`` times *in a row*
(``/a/b/a/b/a/b/a/b/``, relative-link loops, calendars) is a trap; the same
segment scattered over a path (``/p/1/p/2/p/3/p/4``) is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import tldextract

from crawler.config import Settings
from crawler.urls import host_key, hostname

MAX_REPEATED_RUN = 16
"""Longest run of segments checked for back-to-back repetition."""
# The PSL snapshot bundled with tldextract; never fetched over the network.
_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                 include_psl_private_domains=True)


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
        if self.max_repeats and repeated_segments(url) > self.max_repeats:
            return "repeated_segments"
        if self.include and not any(p.search(url) for p in self.include):
            return "include"
        if any(p.search(url) for p in self.exclude):
            return "exclude"
        return None

    def allows(self, url: str, depth: int = 0) -> bool:
        return self.rejects(url, depth) is None


def repeated_segments(url: str) -> int:
    """Most times one segment, or one run of segments, repeats back to back in the path.

    ``/a/a/a/x`` gives 3, ``/a/b/a/b/x`` 2, ``/a/x/a/y/a`` 1. Runs of up to
    ``MAX_REPEATED_RUN`` segments are checked, so a hostile page of long URLs
    costs O(length) a link, not O(length^2).
    """
    start = url.find("/", url.index("//") + 2)
    if start < 0:
        return 0
    path = url[start:].split("?", 1)[0]
    segments = path.split("/")[1:]
    n = len(segments)
    best = 1 if n else 0
    for size in range(1, min(n // 2, MAX_REPEATED_RUN) + 1):
        # Count matches of segments[i] with segments[i + size]; a run of
        # `size * k` consecutive matches is k + 1 back-to-back copies.
        run = 0
        for i in range(n - size):
            run = run + 1 if segments[i] == segments[i + size] else 0
            best = max(best, run // size + 1)
    return best
