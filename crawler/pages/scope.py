"""Which links a crawl follows: scope mode, include/exclude patterns, trap limits.

Scope is anchored on the seeds: their hosts (``host``), their registered
domains (``domain``, by the Public Suffix List) or nothing (``any``). The seed
anchors live in Redis so that every worker on every node applies the same
rules: as fingerprints in bucketed sets per shard
(``crawler.frontier.scope_anchors.ScopeStore``, the anchor's shard like a
host's), looked up per anchor and cached in each
process (``Scope``), never copied whole. A cached "in scope" stays (anchors
are only ever added); a cached "not in scope" is asked again after
``NEGATIVE_TTL``, so hosts seeded later join.

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
import time
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache

import tldextract

from crawler.config import Settings
from crawler.urls import host_key, hostname

MAX_REPEATED_RUN = 16
"""Longest run of segments checked for back-to-back repetition."""
NEGATIVE_TTL = 30.0
"""Seconds a process trusts "this host is not in scope" before asking Redis again."""
ANCHOR_CACHE_SIZE = 200_000
"""Anchors (hosts or domains) one process remembers the scope of."""
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
    hosts = {host_key(url) for url in urls}
    out = {"host:" + host for host in hosts}
    out.update("domain:" + registered_domain(hostname(f"http://{host}/")) for host in hosts)
    return out


class Scope:
    """Decides whether a canonical link is followed. ``rejects`` returns the reason it is not.

    The host and domain rules need each link's anchor to be known here: ask
    ``unknown_anchors`` which are not, look those up (``ScopeStore.lookup``),
    and ``remember`` the answers first. An anchor still unknown is out of scope.
    """

    def __init__(self, settings: Settings, anchors: Iterable[str] = ()) -> None:
        self.mode = settings.scope
        self.max_depth = settings.max_depth
        self.max_url_length = settings.max_url_length
        self.max_repeats = settings.max_repeated_segments
        self.include = [re.compile(p) for p in settings.include]
        self.exclude = [re.compile(p) for p in settings.exclude]
        # anchor -> time.monotonic() until which "in scope: no" is trusted (inf for "yes")
        self._known: OrderedDict[str, float | None] = OrderedDict()
        self.remember({a: True for a in anchors})

    def anchor(self, url: str) -> str | None:
        """The anchor deciding the scope of ``url``, or None in ``any`` mode."""
        if self.mode == "host":
            return "host:" + host_key(url)
        if self.mode == "domain":
            return "domain:" + registered_domain(hostname(url))
        return None

    def _in_scope(self, anchor: str) -> bool | None:
        """True or False if known here (and not expired), else None."""
        if anchor not in self._known:
            return None
        until = self._known[anchor]
        if until is None:
            return True
        if until > time.monotonic():
            return False
        del self._known[anchor]
        return None

    def unknown_anchors(self, urls: Iterable[str]) -> set[str]:
        out: set[str] = set()
        if self.mode == "any":
            return out
        for url in urls:
            anchor = self.anchor(url)
            if anchor is not None and anchor not in out and self._in_scope(anchor) is None:
                out.add(anchor)
        return out

    def remember(self, found: dict[str, bool]) -> None:
        expires = time.monotonic() + NEGATIVE_TTL
        for anchor, inside in found.items():
            self._known[anchor] = None if inside else expires
            self._known.move_to_end(anchor)
        while len(self._known) > ANCHOR_CACHE_SIZE:
            self._known.popitem(last=False)

    def rejects(self, url: str, depth: int) -> str | None:
        """None if the URL is in scope at this depth, else a short reason."""
        if self.max_depth and depth > self.max_depth:
            return "depth"
        if len(url) > self.max_url_length:
            return "url_length"
        anchor = self.anchor(url)
        if anchor is not None and not self._in_scope(anchor):
            return self.mode
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
