"""Export formats: JSON lines (plain or gzip), CSV and Parquet, picked by the file's extension.

A writer takes ``Entry`` objects one at a time and holds at most one batch
in memory (Parquet: one row group), so exporting any number of results
stays bounded. JSON lines are written as stored (no parse); CSV and Parquet
parse each record once and lay it out in fixed columns, documented in the
README:

- ``error`` becomes two columns, ``error_type`` and ``error_message``
  (CSV and Parquet alike), empty / null when the fetch succeeded;
- ``data`` (what an extraction hook returned) is JSON text in one column,
  unless a schema is declared for Parquet (``--data-schema``,
  ``crawler.results.data_schema``): then a struct column of typed fields;
- CSV writes null as an empty cell and booleans as ``true`` / ``false``, and
  puts a ``'`` before a text cell a spreadsheet would take for a formula
  (``FORMULA_STARTS``).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from crawler.errors import CrawlError, cannot_write
from crawler.results.data_schema import DataSchema
from crawler.results.stream import Entry

FORMATS = ("jsonl", "jsonl.gz", "csv", "parquet")
"""The formats ``crawl export`` writes; ``--format`` takes these names."""

COLUMNS = ("id", "url", "final_url", "status", "title", "links", "content_type", "bytes",
           "depth", "attempts", "elapsed_ms", "total_elapsed_ms", "fetched_at", "worker",
           "noindex", "redirect_to", "dedup_url", "canonical", "duplicate_of", "simhash",
           "near_duplicate_of", "kind", "urls",
           "visit", "changed", "not_modified", "rendered", "render_reason",
           "error_type", "error_message", "data", "warc_file", "warc_offset", "retry")
"""The columns of a CSV or Parquet export, in this order."""

ROW_GROUP = 50_000
"""Records a Parquet row group holds: the most an export keeps in memory at once."""


class RecordWriter(Protocol):
    """Where an export puts records, one at a time."""

    def write(self, entry: Entry) -> None: ...

    def flush(self) -> None:
        """Make what was written readable by others (``--follow`` calls it per batch)."""

    def sync(self) -> None:
        """Flush, then make it durable (fsync): ``--drain`` calls it before acknowledging."""

    def close(self) -> None: ...


def format_for(path: str, override: str | None = None) -> str:
    """The format named by ``override``, else by the file's extension (JSON lines if none)."""
    if override is not None:
        name = override.lower().lstrip(".")
        if name not in FORMATS:
            raise CrawlError(f"--format: expected one of {', '.join(FORMATS)}, got {override!r}")
        return name
    lower = path.lower()
    for name in ("jsonl.gz", "csv", "parquet"):
        if lower.endswith("." + name):
            return name
    if lower.endswith((".json.gz", ".ndjson.gz")):
        return "jsonl.gz"
    return "jsonl"


def row_of(entry: Entry, data_schema: DataSchema | None = None) -> dict[str, Any]:
    """A record laid out in ``COLUMNS``: error split in two, data as JSON text (or, with
    ``data_schema``, checked and converted for its struct column)."""
    record = json.loads(entry.text)
    error = record.get("error") or {}
    data = record.get("data")
    if data_schema is not None:
        data = data_schema.convert(record.get("url"), data)
    return {
        "id": entry.id,
        **{name: record.get(name) for name in COLUMNS[1:COLUMNS.index("error_type")]},
        "error_type": error.get("type"),
        "error_message": error.get("message"),
        "data": data if data is None or data_schema is not None else json.dumps(
            data, ensure_ascii=False, separators=(",", ":")),
        "warc_file": record.get("warc_file"),
        "warc_offset": record.get("warc_offset"),
        "retry": record.get("retry"),
    }


class JsonLinesWriter:
    """Each record as stored, with its id first, one a line; optionally gzip-compressed."""

    def __init__(self, fh: IO[str], *, raw: IO[bytes] | None = None) -> None:
        self.fh = fh
        self.raw = raw  # the file under a gzip stream, for fsync

    def write(self, entry: Entry) -> None:
        self.fh.write(entry.line())
        self.fh.write("\n")

    def flush(self) -> None:
        self.fh.flush()

    def sync(self) -> None:
        self.fh.flush()
        target = self.raw if self.raw is not None else self.fh
        target.flush()
        os.fsync(target.fileno())

    def close(self) -> None:
        self.fh.close()
        if self.raw is not None:
            self.raw.close()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
"""A text cell starting with one of these is written with a ``'`` before it. A
spreadsheet opens a cell starting with ``= + - @``, tab or carriage return as a
formula (OWASP, CSV injection), and a crawled title is anyone's text; ``'``
itself is escaped too, so that reading back is one rule: drop one leading ``'``."""


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class CsvWriter:
    """RFC 4180 CSV (``csv`` module, UTF-8), a header line unless appending to a non-empty file."""

    def __init__(self, fh: IO[str], *, header: bool) -> None:
        self.fh = fh
        self.out = csv.writer(fh, lineterminator="\r\n")
        if header:
            self.out.writerow(COLUMNS)

    def write(self, entry: Entry) -> None:
        row = row_of(entry)
        self.out.writerow([_cell(row[name]) for name in COLUMNS])

    def flush(self) -> None:
        self.fh.flush()

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        self.fh.close()


def parquet_schema(data_type: Any = None) -> Any:
    """The fixed Parquet schema: typed columns, ``data`` as JSON text unless ``data_type``."""
    pa = _pyarrow()
    return pa.schema([
        ("id", pa.string()), ("url", pa.string()), ("final_url", pa.string()),
        ("status", pa.int32()), ("title", pa.string()), ("links", pa.int32()),
        ("content_type", pa.string()), ("bytes", pa.int64()), ("depth", pa.int32()),
        ("attempts", pa.int32()), ("elapsed_ms", pa.float64()),
        ("total_elapsed_ms", pa.float64()),
        ("fetched_at", pa.timestamp("ms", tz="UTC")), ("worker", pa.string()),
        ("noindex", pa.bool_()), ("redirect_to", pa.string()),
        ("dedup_url", pa.string()), ("canonical", pa.string()), ("duplicate_of", pa.string()),
        ("simhash", pa.string()), ("near_duplicate_of", pa.string()),
        # A sitemap's record: kind "sitemap" and the URLs it listed; a recrawl's
        # visit number and whether the page changed (or answered 304).
        ("kind", pa.string()), ("urls", pa.int64()), ("visit", pa.int32()),
        ("changed", pa.bool_()), ("not_modified", pa.bool_()),
        # render != never: whether the page was rendered in the browser, and why (not)
        ("rendered", pa.bool_()), ("render_reason", pa.string()), ("error_type", pa.string()),
        ("error_message", pa.string()), ("data", data_type or pa.string()),
        ("warc_file", pa.string()),
        ("warc_offset", pa.int64()),
        ("retry", pa.int32()),  # crawl retry: which retry of a failed URL (crawler.discovery.retry)
    ])


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        import shlex
        import sys

        # This interpreter's pip: a bare `pip` may be another Python's.
        raise CrawlError("Parquet export needs pyarrow (part of the default install, missing "
                         f"here): {shlex.quote(sys.executable)} -m pip install "
                         "'pyarrow>=14'") from None
    return pyarrow


def _timestamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class ParquetWriter:
    """Parquet through pyarrow: rows gather column by column, a row group at a time."""

    def __init__(self, path: Path, *, row_group: int = ROW_GROUP,
                 data_schema: DataSchema | None = None) -> None:
        import pyarrow.parquet as pq

        self.pa = _pyarrow()
        self.data_schema = data_schema
        self.schema = parquet_schema(data_schema.arrow_type() if data_schema else None)
        self.row_group = row_group
        self.columns: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd")
        self.closed = False

    def write(self, entry: Entry) -> None:
        row = row_of(entry, self.data_schema)
        row["fetched_at"] = _timestamp(row["fetched_at"])
        for name, column in self.columns.items():
            column.append(row[name])
        if len(self.columns["id"]) >= self.row_group:
            self._write_group()

    def _write_group(self) -> None:
        if not self.columns["id"]:
            return
        table = self.pa.Table.from_pydict(self.columns, schema=self.schema)
        self.writer.write_table(table)
        for column in self.columns.values():
            column.clear()

    def flush(self) -> None:
        """Nothing: a Parquet file is readable only once closed (its footer is written last)."""

    def sync(self) -> None:
        raise CrawlError("Parquet cannot be drained into")  # refused before we get here

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._write_group()
        self.writer.close()


def check_options(fmt: str, *, stdout: bool, drain: bool, append: bool,
                  data_schema: bool = False) -> None:
    """Refuse combinations a format cannot do, with the reason, before anything is written."""
    if data_schema and fmt != "parquet":
        raise CrawlError(f"--data-schema types the data column of a Parquet file; {fmt} keeps "
                         f"data as JSON text")
    if stdout and fmt != "jsonl":
        raise CrawlError(f"'-' writes JSON lines to standard output; {fmt} needs a file")
    if drain and fmt not in ("jsonl", "jsonl.gz"):
        raise CrawlError(f"--drain writes JSON lines only, plain or gzip (it appends batch by "
                         f"batch and, after a kill, cuts the file back to its last whole "
                         f"batch): export to {fmt} without --drain first, then drain "
                         f"to a .jsonl file")
    if append and fmt == "parquet":
        raise CrawlError("--append: a Parquet file cannot be added to (its footer is written "
                         "once, at the end); export to a new file, or use .jsonl or .csv")


def open_writer(path: str, fmt: str, *, append: bool = False,
                data_schema: DataSchema | None = None) -> RecordWriter:
    """A writer for ``path`` in ``fmt``; ``append`` adds to an existing file;
    ``data_schema`` (Parquet) makes ``data`` a struct column."""
    opener: Callable[[], RecordWriter]
    mode = "a" if append else "w"
    if fmt == "jsonl":
        def opener() -> RecordWriter:
            return JsonLinesWriter(open(path, mode, encoding="utf-8"))
    elif fmt == "jsonl.gz":
        def opener() -> RecordWriter:
            # Appending adds a gzip member: gzip readers read them all, in order.
            raw = open(path, mode + "b")  # noqa: SIM115
            text = gzip.open(raw, "wt", encoding="utf-8", compresslevel=6)  # noqa: SIM115
            return JsonLinesWriter(text, raw=raw)
    elif fmt == "csv":
        def opener() -> RecordWriter:
            header = not (append and os.path.exists(path) and os.path.getsize(path) > 0)
            return CsvWriter(open(path, mode, encoding="utf-8", newline=""),
                             header=header)
    else:
        _pyarrow()

        def opener() -> RecordWriter:
            return ParquetWriter(Path(path), data_schema=data_schema)
    try:
        return opener()
    except OSError as exc:
        raise cannot_write(path, exc) from None
