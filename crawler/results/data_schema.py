"""A declared schema for the extraction hook's ``data``: Parquet then writes it as a struct.

``crawl export out.parquet --data-schema schema.json``, where ``schema.json``
maps each field the hook returns to a type::

    {"headings": "list<string>", "description": "string"}

Types: ``string``, ``int64``, ``float64``, ``bool``, ``timestamp`` (an ISO 8601
string, or seconds since the epoch; stored as UTC milliseconds; without an
offset it is taken as UTC) and ``list<T>`` of any of those.

Every record's ``data`` must fit: a declared field may be missing or null
(null in the column), ``data`` itself may be null (a page the hook skipped,
an ``extract_error``), but a field the schema does not declare, or a value
of another type, stops the export with an error naming the record's URL and
the field (``DataMismatch``), and no Parquet file is left behind. Nothing is
silently dropped or nulled: a typed column that quietly lost values is worse
than an export that says which page to look at.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler.errors import CrawlError

SCALARS = ("string", "int64", "float64", "bool", "timestamp")
LIST = re.compile(r"^list<\s*(\w+)\s*>$")
INT64 = range(-(2**63), 2**63)


class DataMismatch(CrawlError):
    """A record's ``data`` does not fit the declared schema."""


def _kind(text: object) -> tuple[str, bool]:
    """(scalar type, is a list) of a type name; ValueError if it is none we know."""
    if not isinstance(text, str):
        raise ValueError(f"a type is a string, got {json.dumps(text)}")
    name = text.strip().lower()
    match = LIST.match(name)
    scalar = match.group(1) if match else name
    if scalar not in SCALARS:
        raise ValueError(f"unknown type {text!r}: expected one of {', '.join(SCALARS)}, "
                         f"or list<one of them>")
    return scalar, match is not None


def _arrow(pa: Any, scalar: str) -> Any:
    return {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
            "bool": pa.bool_(), "timestamp": pa.timestamp("ms", tz="UTC")}[scalar]


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


class DataSchema:
    """The fields of ``data``, in the order declared, each with its type."""

    def __init__(self, fields: dict[str, tuple[str, bool]]) -> None:
        self.fields = fields

    @classmethod
    def parse(cls, declared: object, source: str = "--data-schema") -> DataSchema:
        if not isinstance(declared, dict) or not declared:
            raise CrawlError(f"{source}: expected a JSON object mapping each field of data "
                             'to a type, like {"headings": "list<string>"}')
        fields = {}
        for name, kind in declared.items():
            try:
                fields[name] = _kind(kind)
            except ValueError as exc:
                raise CrawlError(f"{source}: field {name!r}: {exc}") from None
        return cls(fields)

    @classmethod
    def load(cls, path: str | Path) -> DataSchema:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CrawlError(f"--data-schema: cannot read {path}: {exc.strerror}") from None
        try:
            declared = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CrawlError(f"--data-schema: {path} is not JSON: {exc}") from None
        return cls.parse(declared, f"--data-schema {path}")

    def arrow_type(self) -> Any:
        """The struct type of the ``data`` column."""
        import pyarrow as pa

        return pa.struct([(name, pa.list_(_arrow(pa, scalar)) if is_list
                           else _arrow(pa, scalar)) for name, (scalar, is_list)
                          in self.fields.items()])

    def convert(self, url: str | None, data: Any) -> dict[str, Any] | None:
        """``data`` as the struct column takes it; DataMismatch naming ``url`` and the field."""
        if data is None:
            return None
        if not isinstance(data, dict):
            raise DataMismatch(f"{url}: data is {_describe(data)}, not an object")
        for name in data:
            if name not in self.fields:
                raise DataMismatch(f"{url}: data field {name!r} is not in the declared schema "
                                   f"(declared: {', '.join(self.fields)})")
        out: dict[str, Any] = {}
        for name, (scalar, is_list) in self.fields.items():
            value = data.get(name)
            if value is None:
                out[name] = None
            elif not is_list:
                out[name] = _scalar(url, name, scalar, value)
            elif not isinstance(value, list):
                raise DataMismatch(f"{url}: data field {name!r}: expected list<{scalar}>, "
                                   f"got {_describe(value)}")
            else:
                out[name] = [None if item is None else _scalar(url, f"{name}[{i}]", scalar,
                                                                item)
                             for i, item in enumerate(value)]
        return out


def _scalar(url: str | None, name: str, scalar: str, value: Any) -> Any:
    if scalar == "string" and isinstance(value, str):
        return value
    if scalar == "bool" and isinstance(value, bool):
        return value
    if scalar == "int64" and isinstance(value, int) and not isinstance(value, bool) \
            and value in INT64:
        return value
    if scalar == "float64" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if scalar == "timestamp":
        stamp = _timestamp(value)
        if stamp is not None:
            return stamp
    raise DataMismatch(f"{url}: data field {name!r}: expected {scalar}, got {_describe(value)}")


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return None
        return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
