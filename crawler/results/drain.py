"""Taking results out of Redis once a file holds them: ``crawl export FILE --drain``.

Through a consumer group (``drain``) on every shard's results stream:

1. read a batch: first this drain's own entries read but not acknowledged
   (a drain killed before it acknowledged gets them again when it restarts),
   then entries another drain has held unacknowledged for ``STALE_AFTER``
   (a drain killed and never restarted), then new ones;
2. the caller writes them to its file and fsyncs it;
3. ``acknowledge``: XACK, then delete every entry all groups have
   acknowledged (``drain.lua``), so memory goes back down.

Several drains of one crawl share the work through the group. A drain's
consumer name comes from its host and file, so the same command run again
after a kill picks up its own pending entries at once. Its file holds each
result once, whatever the consumer's name (``crawler.results.drain_file``):
a batch is recorded beside the file before it is acknowledged, and a restart
cuts what no record covers and acknowledges what the record names.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from crawler.config import Settings
from crawler.frontier.cluster import runner_for
from crawler.results.stream import PAGE, Entry, s, text_of
from crawler.store import keys
from crawler.store.connection import is_cluster

GROUP = "drain"
STALE_AFTER_MS = 60_000
"""A result another drain read this long ago and never acknowledged is taken over."""
BLOCK_MS = 2000


def consumer_name(path: str) -> str:
    """Stable for one file on one host: a restarted drain is the same consumer."""
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}:{digest}"


class Drain:
    """A consumer of the crawl's results streams, in the ``drain`` group."""

    def __init__(self, redis: Redis, settings: Settings, consumer: str) -> None:
        self.redis = redis
        self.consumer = consumer
        self.shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
        self.scripts = runner_for(redis)
        self._numbers = {shard.results: shard.shard for shard in self.shards}
        self._own_pending_done = False
        self.delivered: dict[int, str] = {}
        """The group's last-delivered entry id by shard, read by ``start``: a drain is
        handed nothing past it, so a file's result past it came from elsewhere."""

    async def start(self) -> int:
        """Join the group on every shard; returns how many entries the group holds
        unacknowledged (every consumer's)."""
        held = 0
        for shard in self.shards:
            try:
                await self.redis.xgroup_create(shard.results, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            summary: Any = await self.redis.xpending(shard.results, GROUP)
            held += int(summary["pending"])
            groups: Any = await self.redis.xinfo_groups(shard.results)
            self.delivered[shard.shard] = next((str(g["last-delivered-id"]) for g in groups
                                           if str(g["name"]) == GROUP), "0-0")
        return held

    async def read(self, *, block: bool) -> list[Entry]:
        """The next batch: own pending entries, then stale ones, then new ones."""
        if not self._own_pending_done:
            batch = await self._read_group("0")
            if batch:
                return batch
            self._own_pending_done = True
        batch = await self._claim_stale()
        if batch:
            return batch
        return await self._read_group(">", block=BLOCK_MS if block else None)

    async def _read_group(self, start: str, block: int | None = None) -> list[Entry]:
        if is_cluster(self.redis):  # streams of different slots: one read a shard
            out: list[Entry] = []
            for shard in self.shards:
                out += self._entries(await self.redis.xreadgroup(
                    GROUP, self.consumer, {shard.results: start}, count=PAGE))
            if not out and block:
                await asyncio.sleep(block / 4000)
            return out
        return self._entries(await self.redis.xreadgroup(
            GROUP, self.consumer, {shard.results: start for shard in self.shards},
            count=PAGE, block=block))

    def _entries(self, reply: Any) -> list[Entry]:
        out = []
        for stream, entries in reply or []:
            shard = self._numbers[s(stream)]
            out += [Entry(shard, s(entry_id), text_of(fields))
                    for entry_id, fields in entries if fields]
        return out

    async def _claim_stale(self) -> list[Entry]:
        out = []
        for shard in self.shards:
            reply: Any = await self.redis.xautoclaim(shard.results, GROUP, self.consumer,
                                                     STALE_AFTER_MS, "0-0", count=PAGE)
            out += [Entry(shard.shard, s(entry_id), text_of(fields))
                    for entry_id, fields in reply[1] if fields]
        return out

    async def acknowledge(self, entries: Iterable[Entry]) -> int:
        """Acknowledge written entries and delete what every group has; returns deleted."""
        by_shard: dict[int, list[str]] = {}
        for entry in entries:
            by_shard.setdefault(entry.shard, []).append(entry.entry_id)
        return await self.acknowledge_ids(by_shard)

    async def acknowledge_ids(self, by_shard: dict[int, list[str]]) -> int:
        """``acknowledge`` by stream entry ids, by shard; a shard this crawl has not is
        skipped. Acknowledging an id twice, or one already deleted, changes nothing."""
        by_shard = {shard: ids for shard, ids in by_shard.items()
                    if ids and 0 <= shard < len(self.shards)}
        if not by_shard:
            return 0
        calls = [("drain", self.shards[shard].script_keys,
                  [self.shards[shard].base, GROUP, *ids]) for shard, ids in by_shard.items()]
        replies = await self.scripts.run(calls)
        return sum(int(deleted) for _, deleted in replies)

    async def trim(self) -> int:
        """Delete what every group has acknowledged, on every shard (nothing to acknowledge)."""
        replies = await self.scripts.run([("drain", shard.script_keys, [shard.base, GROUP])
                                          for shard in self.shards])
        return sum(int(deleted) for _, deleted in replies)
