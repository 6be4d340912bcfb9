"""What ``crawl export`` checks about its file: the extension it was given, and, for
``--append``, which results the file already holds.

A result's id is ``shard-ms-seq``: its shard, then its stream entry id, which
only grows within a shard. Export writes each shard's results in id order, so
a file written by exports (whole, interrupted or followed) holds, for each
shard, every result up to the largest id it has of that shard and none after.
``--append`` therefore adds only the results past those ids: one streaming
pass over the file keeps one id a shard, whatever the file's size.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from crawler.errors import CrawlError
from crawler.results.formats import FORMATS, RecordWriter
from crawler.results.stream import Entry, StreamId, stream_id

EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".jsonl.gz": "jsonl.gz",
              ".ndjson.gz": "jsonl.gz", ".json.gz": "jsonl.gz", ".csv": "csv",
              ".parquet": "parquet"}
"""The extensions export knows; a file without one is JSON lines."""


def check_extension(out: str, fmt: str | None) -> None:
    """An extension export does not know (``out.xlsx``) is refused unless --format says."""
    if fmt is not None or out == "-":
        return
    name = os.path.basename(out).lower()
    suffixes = Path(name).suffixes
    if not suffixes or any(name.endswith(ext) for ext in EXTENSIONS):
        return
    raise CrawlError(f"{out}: unknown extension {suffixes[-1]!r}: export writes "
                     f"{', '.join(FORMATS)} (by the extension: "
                     f"{', '.join(sorted(EXTENSIONS))}); name the format with --format, "
                     f"e.g. --format jsonl")


def _parse_id(text: bytes) -> tuple[int, StreamId] | None:
    parts = text.split(b"-")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), (int(parts[1]), int(parts[2]))


def _lines(path: Path, fmt: str) -> Iterator[bytes]:
    fh: IO[bytes] = gzip.open(path, "rb") if fmt == "jsonl.gz" \
        else open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115
    with fh:
        try:
            yield from fh
        except (EOFError, OSError, zlib.error):  # a member cut short by a kill: what came before
            return


def last_ids(path: Path, fmt: str) -> tuple[dict[int, StreamId], int]:
    """(the largest result id of each shard in the file, the results counted in it)."""
    last: dict[int, StreamId] = {}
    count = 0
    for line in _lines(path, fmt):
        if fmt == "csv":
            raw = line.split(b",", 1)[0]
        elif line.startswith(b'{"id":"'):
            raw = line[7:line.find(b'"', 7)]
        else:
            continue
        parsed = _parse_id(raw)
        if parsed is None:
            continue  # the CSV header, a line cut short
        shard, stream_id = parsed
        count += 1
        if stream_id > last.get(shard, (-1, -1)):
            last[shard] = stream_id
    return last, count


class NewOnly:
    """A writer that passes on only the results past the file's last id of their shard."""

    def __init__(self, writer: RecordWriter, last: dict[int, StreamId]) -> None:
        self.writer = writer
        self.last = last
        self.skipped = 0

    def write(self, entry: Entry) -> None:
        if stream_id(entry.entry_id) <= self.last.get(entry.shard, (-1, -1)):
            self.skipped += 1
            return
        self.writer.write(entry)

    def flush(self) -> None:
        self.writer.flush()

    def sync(self) -> None:
        self.writer.sync()

    def close(self) -> None:
        self.writer.close()
