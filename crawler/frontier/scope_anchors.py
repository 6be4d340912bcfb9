"""The crawl's scope anchors in Redis (``crawler.pages.scope`` decides with them).

The seeds' hosts and registered domains, stored so that every worker on every
node applies the same scope rules. Workers add the anchors of seeds they are
given and look up those of the links they find: through this store, in the
frontier, as they reach Redis for everything else.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.store import keys
from crawler.urls import fingerprint, fingerprint_bucket


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
