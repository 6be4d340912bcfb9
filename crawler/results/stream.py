"""Reading the results streams, one a shard, without changing them.

Each exported record carries an ``id``: its shard and its stream entry id
(``3-1732790000000-0``), unique per result, so a downstream reader can tell a
result it has seen from a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.store import keys
from crawler.store.connection import is_cluster

PAGE = 1000
FOLLOW_BLOCK_MS = 2000
CLUSTER_POLL = 0.5
"""Seconds between reads of every shard while following results on a cluster."""


StreamId = tuple[int, int]


def stream_id(entry_id: str) -> StreamId:
    """A stream entry id (``ms-seq``) as numbers, which compare in stream order; as
    text they do not ("9-0" sorts after "10-0")."""
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Entry:
    """One result as stored: its shard, its stream entry id, its JSON text."""

    shard: int
    entry_id: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.shard}-{self.entry_id}"

    def line(self) -> str:
        """The record's JSON text with its ``id`` first (no parse, no re-serialise)."""
        return f'{{"id":"{self.id}",{self.text[1:]}' if len(self.text) > 2 else \
            f'{{"id":"{self.id}"}}'


def text_of(fields: dict[Any, Any]) -> str:
    raw = fields.get("r") or fields.get(b"r") or "{}"
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def count_results(redis: Redis, settings: Settings) -> int:
    pipe = redis.pipeline(transaction=False)
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        pipe.xlen(shard.results)
    return sum(int(n) for n in await pipe.execute())


async def iter_entries(redis: Redis, settings: Settings, *, follow: bool = False,
                       until_done: Any = None, on_idle: Callable[[], None] | None = None
                       ) -> AsyncIterator[Entry]:
    """Every result, a page at a time, shard after shard; then, with ``follow``, new ones.

    ``until_done``: an async callable; while following, when a wait for new
    results comes back empty and it returns True, the iteration ends.
    ``on_idle``: called while following, before each wait for new results
    (an export flushes its file there: once a batch, not once a record).
    """
    shards = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)
    last: dict[str, str] = {shard.results: "0-0" for shard in shards}
    numbers = {shard.results: shard.shard for shard in shards}
    for shard in shards:
        start = "-"
        while True:
            page: Any = await redis.xrange(shard.results, min=start, max="+", count=PAGE)
            for entry_id, fields in page:
                yield Entry(shard.shard, s(entry_id), text_of(fields))
                last[shard.results] = s(entry_id)
            if len(page) < PAGE:
                break
            start = "(" + s(page[-1][0])
    cluster = is_cluster(redis)
    # Once until_done says the crawl ended, one more read: a worker may have completed
    # results between the last empty read and that check.
    ending = False
    while follow:
        if on_idle is not None:
            on_idle()
        if cluster:  # streams of different slots: one read a shard, then a short pause
            got = False
            for shard in shards:
                reply: Any = await redis.xread({shard.results: last[shard.results]}, count=PAGE)
                for _, entries in reply or []:
                    for entry_id, fields in entries:
                        got = True
                        yield Entry(shard.shard, s(entry_id), text_of(fields))
                        last[shard.results] = s(entry_id)
            if not got:
                if ending:
                    return
                if until_done is not None and await until_done():
                    ending = True
                    continue
                await asyncio.sleep(CLUSTER_POLL)
            continue
        reply = await redis.xread(last, count=PAGE,  # type: ignore[arg-type]
                                  block=None if ending else FOLLOW_BLOCK_MS)
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                yield Entry(numbers[s(stream)], s(entry_id), text_of(fields))
                last[s(stream)] = s(entry_id)
        if not reply:
            if ending:
                return
            ending = until_done is not None and await until_done()


async def iter_results(redis: Redis, settings: Settings, *, follow: bool = False
                       ) -> AsyncIterator[str]:
    """Every result's JSON text (as stored, without ``id``)."""
    async for entry in iter_entries(redis, settings, follow=follow):
        yield entry.text
