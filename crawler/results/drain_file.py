"""The file a drain appends to, and the record beside it that makes each result land once.

``FILE.drain`` (JSON, replaced atomically) says where FILE's last whole batch
ends and which results that batch holds. Every batch goes, in this order:

1. append the batch to FILE, flush, fsync;
2. replace ``FILE.drain`` with {offset: FILE's size now, written: the batch's
   ids} (a temporary file, fsynced, renamed over it, the directory fsynced);
3. acknowledge the batch in Redis (``Drain.acknowledge``).

A drain starting on FILE (``recover``):

- cuts every byte past ``offset``: a batch (or part of a line) written before
  step 2 was never acknowledged, so Redis still holds it and hands it out
  again, to this drain or to another;
- acknowledges ``written``: a kill between steps 2 and 3 left that batch in
  FILE and unacknowledged; once acknowledged no drain is handed it again,
  whatever its consumer name.

A ``.jsonl.gz`` FILE gets each batch as a gzip member of its own (gzip
readers read the members in order), so ``offset`` is always where a member
ends and a cut leaves a whole gzip file.

So FILE holds each result once whatever the size of a record or the name of
the consumer, and a restart reads nothing of FILE before ``offset`` (memory
and time do not grow with the file). Without ``FILE.drain``, or with one that
does not match FILE (the bytes before ``offset`` differ: FILE was replaced or
truncated), a restart cuts a half-written last line and acknowledges the ids
of FILE's last lines, as many as the group has pending, reading them
backwards a block at a time (memory stays one block; time grows with those
lines' length). A gzip FILE cannot be read backwards: a non-empty one without
its record is refused. So is a FILE without its record whose last result is
past the drain group's last-delivered id on its shard: no drain was handed it,
so another command wrote FILE (``crawl export``), and the results it holds that
are still in Redis would be appended again.
"""

from __future__ import annotations

import base64
import fcntl
import gzip
import json
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crawler.errors import CrawlError, cannot_write
from crawler.results.stream import Entry, stream_id

log = logging.getLogger("crawler.drain")

SUFFIX = ".drain"
"""``FILE.drain``: the record of FILE's last whole batch."""
FINGERPRINT = 64
"""Bytes of FILE just before ``offset`` kept in the record: a FILE replaced by another
(``crawl export --force``) no longer matches, so its record is not applied to it."""
LAST_RESULT_SCAN = 8 << 20
"""Bytes read back from the end of a FILE without its record to find where its last
result starts (records are far smaller). A last line longer than that says nothing:
the drain goes on. Unbounded, a 4 GiB FILE of one line was read back whole (17 s)."""
BLOCK = 1 << 16
"""Bytes read at a time when a file without a record is read backwards."""
KILL_AT = "CRAWL_TEST_DRAIN_KILL"
"""Test-only: ``point`` or ``point:N`` kills the drain with SIGKILL at that point of its
Nth batch (1 if not given). Points, in order: mid-line, written, synced, recorded, acked."""


@dataclass
class DrainRecord:
    """What ``FILE.drain`` holds."""

    crawl: str
    offset: int
    fingerprint: bytes
    written: dict[int, list[str]] = field(default_factory=dict)
    """Stream entry ids of the last batch, by shard: in FILE, maybe not acknowledged."""

    def dumps(self) -> str:
        return json.dumps({"crawl": self.crawl, "offset": self.offset,
                           "fingerprint": base64.b64encode(self.fingerprint).decode(),
                           "written": {str(k): v for k, v in self.written.items()}})

    @classmethod
    def loads(cls, text: str) -> DrainRecord:
        raw: dict[str, Any] = json.loads(text)
        return cls(str(raw["crawl"]), int(raw["offset"]),
                   base64.b64decode(raw["fingerprint"]),
                   {int(k): [str(i) for i in v] for k, v in raw["written"].items()})


def record_path(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def ids_by_shard(entries: list[Entry]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for entry in entries:
        out.setdefault(entry.shard, []).append(entry.entry_id)
    return out


def kill_asked(point: str, batch: int) -> bool:
    want = os.environ.get(KILL_AT)
    if not want:
        return False
    name, _, nth = want.partition(":")
    return name == point and batch == int(nth or 1)


def kill_point(point: str, batch: int) -> None:
    """Test-only: die here, as ``kill -9`` would, when ``KILL_AT`` names this point."""
    if kill_asked(point, batch):
        os.kill(os.getpid(), signal.SIGKILL)


class DrainFile:
    """FILE opened for appending by one drain (an exclusive lock), and its record."""

    def __init__(self, path: Path, crawl: str, *, compress: bool = False) -> None:
        self.path = path
        self.crawl = crawl
        self.compress = compress
        self.record_path = record_path(path)
        self.batches = 0
        try:
            self.fh = open(path, "ab+")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise cannot_write(path, exc) from None
        try:  # two drains appending to one file would cut each other's batches
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise CrawlError(f"{path}: another drain is writing it (one drain a file)"
                             ) from None
        self.fd = self.fh.fileno()

    def close(self) -> None:
        self.fh.close()

    def recover(self, pending: int, delivered: dict[int, str] | None = None
                ) -> dict[int, list[str]]:
        """Cut what no record covers; returns the ids FILE may hold unacknowledged.

        ``pending``: how many entries the group holds unacknowledged (all consumers),
        the most lines read back from a FILE without a record. ``delivered``: the
        group's last-delivered entry id, by shard (``Drain.start``).
        """
        size = os.fstat(self.fd).st_size
        record = self._load()
        unacked: dict[int, list[str]] = {}
        if record is not None and self._describes(record, size):
            if record.crawl == self.crawl:
                unacked = record.written
            if size > record.offset:
                log.warning("%s: cut %d bytes past its last whole batch (written by a drain "
                            "that was stopped; Redis still holds them)",
                            self.path, size - record.offset)
                os.ftruncate(self.fd, record.offset)
                size = record.offset
        else:
            if size > 0 and not self._drained_before(size, delivered):
                raise CrawlError(
                    f"{self.path} holds results the drain was never handed (another "
                    f"command wrote it, such as crawl export; no {self.record_path.name} "
                    f"matches it): a drain appends every result still in Redis, so they "
                    f"would be in it twice; drain into a new file")
            if self.compress and size > 0:
                raise CrawlError(
                    f"{self.path}: no {self.record_path.name} beside it that matches it, and "
                    f"a gzip file cannot be read back to find which results it holds; "
                    f"drain into a new file")
            if record is not None:  # its batch may not be in FILE: not acknowledged blindly
                log.warning("%s does not match %s (replaced or truncated?): reading its last "
                            "lines back instead", self.path, self.record_path)
            size, found = last_lines(self.fd, size, pending)
            os.ftruncate(self.fd, size)
            for shard, ids in found.items():
                unacked.setdefault(shard, []).extend(ids)
        os.fsync(self.fd)  # what is acknowledged next must be on disk
        self._save(size, unacked)
        return unacked

    def _drained_before(self, size: int, delivered: dict[int, str] | None) -> bool:
        """Whether FILE, with no record, may be a drain's: its last result was handed to
        the drain group. A drain writes only what the group handed it; a result past
        the group's last-delivered id came from elsewhere (crawl export), and all of
        its results still in Redis would be appended again. A last line without a
        result id says nothing either way."""
        if delivered is None:
            return True
        _, last = last_lines(self.fd, size, 1, limit=LAST_RESULT_SCAN)
        return all(stream_id(entry_id) <= stream_id(delivered.get(shard, "0-0"))
                   for shard, ids in last.items() for entry_id in ids)

    def append(self, batch: list[Entry]) -> None:
        """Steps 1 and 2: the batch on disk, then the record that it is whole."""
        self.batches += 1
        data = b"".join(entry.line().encode() + b"\n" for entry in batch)
        if self.compress:  # a member a batch: the offset after it is a whole gzip file
            data = gzip.compress(data, compresslevel=6)
        if kill_asked("mid-line", self.batches):  # the batch's last line half-written
            half = len(data) - (len(data) // 4 if self.compress else len(batch[-1].line()) // 2)
            self.fh.write(data[:half])
            self.fh.flush()
            kill_point("mid-line", self.batches)
        self.fh.write(data)
        self.fh.flush()
        kill_point("written", self.batches)
        os.fsync(self.fd)
        kill_point("synced", self.batches)
        self._save(os.fstat(self.fd).st_size, ids_by_shard(batch))
        kill_point("recorded", self.batches)

    def _describes(self, record: DrainRecord, size: int) -> bool:
        if size < record.offset:
            return False
        start = max(0, record.offset - FINGERPRINT)
        return os.pread(self.fd, record.offset - start, start) == record.fingerprint

    def _load(self) -> DrainRecord | None:
        try:
            return DrainRecord.loads(self.record_path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise CrawlError(f"{self.record_path} is damaged ({exc}); if {self.path} ends "
                             f"with whole lines, delete it and drain again") from None

    def _save(self, offset: int, written: dict[int, list[str]]) -> None:
        start = max(0, offset - FINGERPRINT)
        record = DrainRecord(self.crawl, offset, os.pread(self.fd, offset - start, start),
                             written)
        temporary = self.record_path.with_name(self.record_path.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as fh:
            fh.write(record.dumps())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, self.record_path)
        directory = os.open(self.record_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)


def last_lines(fd: int, size: int, count: int, limit: int | None = None
               ) -> tuple[int, dict[int, list[str]]]:
    """Read backwards: where the last whole line ends, and the ids of the last ``count``
    lines before it (by shard). Holds one block at a time, whatever the file's size;
    with ``limit``, reads no more than that many bytes back (the lines that start
    further back are not found)."""
    end = -1  # the offset just past the last newline, once found
    starts: list[int] = []
    position = size
    while position > 0 and (end < 0 or len(starts) < count) \
            and (limit is None or size - position < limit):
        low = max(0, position - BLOCK)
        block = os.pread(fd, position - low, low)
        at = len(block)
        while (at := block.rfind(b"\n", 0, at)) >= 0:
            if end < 0:
                end = low + at + 1
            elif len(starts) < count:
                starts.append(low + at + 1)
        position = low
    if end < 0:  # not one whole line
        return 0, {}
    if position == 0 and len(starts) < count and end > 0:
        starts.append(0)  # the first line has no newline before it
    found: dict[int, list[str]] = {}
    for start in starts:
        head = os.pread(fd, 80, start)
        if head.startswith(b'{"id":"') and (close := head.find(b'"', 7)) > 0:
            shard, _, entry_id = head[7:close].decode().partition("-")
            if shard.isdigit() and entry_id:
                found.setdefault(int(shard), []).append(entry_id)
    return end, found
