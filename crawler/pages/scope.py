"""Which links a crawl follows: scope mode, include/exclude patterns, trap limits.

Scope is anchored on the seeds: their hosts (``host``), their registered
domains (``domain``, by the Public Suffix List) or nothing (``any``). The seed
anchors live in Redis so that every worker on every node applies the same
rules: as fingerprints in bucketed sets per shard (``ScopeStore``, the
anchor's shard like a host's), looked up per anchor and cached in each
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
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.store import keys
from crawler.urls import fingerprint, fingerprint_bucket, host_key, hostname

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


class ScopeStore:
    """The crawl's scope anchors in Redis: per shard, fingerprints in bucketed intsets.

    An anchor is stored as its 64-bit fingerprint (``crawler.urls.fingerprint``
    of ``host:<host>`` or ``domain:<domain>``, never a URL's: a URL starts with
    its scheme) in ``scope:<bucket>`` of its shard, the bucket its top
    ``dedup_bucket_bits`` bits, as the dedup sets do: 8 B an anchor instead of
    ~45 as a string in one big set (issue 24: a broad crawl seeds two anchors a
    host, ~90 B of each small host's cost). Two anchors whose fingerprints
    collide (odds 2^-64 a pair) would share their scope. Crawls created before
    keep their anchors in the one set ``scope``: a store finds it once and then
    reads it too.
    """

    def __init__(self, redis: Redis, settings: Settings) -> None:
        if not settings.dedup_bucket_bits:
            # Every process must bucket anchors alike: the crawl's layout says how.
            raise ValueError("settings without dedup_bucket_bits: open the crawl with "
                             "crawler.store.layout.crawl_layout first")
        self.redis = redis
        self.shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
        self.bits = settings.dedup_bucket_bits
        self._legacy: list[bool] | None = None  # per shard: has the old ``scope`` set

    def _by_key(self, anchors: Iterable[str]) -> dict[str, list[tuple[str, int]]]:
        """Anchors with their fingerprints, grouped by the bucket key they belong in."""
        groups: dict[str, list[tuple[str, int]]] = {}
        n = len(self.shards)
        for anchor in anchors:
            fp = fingerprint(anchor)
            shard = self.shards[keys.shard_of(anchor, n)]
            key = shard.scope_bucket(fingerprint_bucket(fp, self.bits))
            groups.setdefault(key, []).append((anchor, fp))
        return groups

    async def add(self, anchors: Iterable[str]) -> None:
        groups = self._by_key(anchors)
        if not groups:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key, group in groups.items():
            pipe.sadd(key, *(fp for _, fp in group))
        await pipe.execute()

    async def _legacy_shards(self) -> list[bool]:
        if self._legacy is None:
            pipe = self.redis.pipeline(transaction=False)
            for shard in self.shards:
                pipe.exists(shard.scope)
            self._legacy = [bool(n) for n in await pipe.execute()]
        return self._legacy

    async def lookup(self, anchors: Iterable[str]) -> dict[str, bool]:
        """Which of these anchors are in scope: one SMISMEMBER a bucket, one round trip."""
        groups = self._by_key(anchors)
        if not groups:
            return {}
        legacy = await self._legacy_shards()
        pipe = self.redis.pipeline(transaction=False)
        for key, group in groups.items():
            pipe.smismember(key, [fp for _, fp in group])
        old: dict[int, list[str]] = {}
        if any(legacy):
            for group in groups.values():
                for anchor, _ in group:
                    shard = keys.shard_of(anchor, len(self.shards))
                    if legacy[shard]:
                        old.setdefault(shard, []).append(anchor)
            for shard, names in old.items():
                pipe.smismember(self.shards[shard].scope, names)
        replies = await pipe.execute()
        found: dict[str, bool] = {}
        for group, reply in zip(groups.values(), replies, strict=False):
            found.update((a, bool(int(r))) for (a, _), r in zip(group, reply, strict=True))
        for names, reply in zip(old.values(), replies[len(groups):], strict=True):
            for anchor, r in zip(names, reply, strict=True):
                found[anchor] = found[anchor] or bool(int(r))
        return found


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
