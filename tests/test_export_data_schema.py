"""``crawl export out.parquet --data-schema schema.json``: the hook's data as a typed struct.

The example hook's output (a headings list and a description) from a crawl of
the generated docs site reads back from Parquet as a struct column equal to
the JSONL records' ``data``; every declared type round-trips; a record that
does not fit is an error naming its URL and the field, leaving no file.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from crawl_helpers import ROOT
from crawl_helpers import crawl as crawl_site
from redis.asyncio import Redis
from typer.testing import CliRunner, Result

from crawler.bench.docsite import description_of, docs_app, headings_of, page_paths
from crawler.bench.sitegen import SiteServer, SiteSpec
from crawler.cli import app
from crawler.config import Settings
from crawler.errors import CrawlError
from crawler.frontier import Frontier
from crawler.results import dumps, make_record
from crawler.results.data_schema import DataMismatch, DataSchema
from crawler.results.formats import ParquetWriter
from crawler.results.stream import Entry
from crawler.store.layout import crawl_layout

EXAMPLE_SCHEMA = {"headings": "list<string>", "description": "string"}
PAGES = 30


async def cli(*args: str) -> Result:
    """``crawl ARGS`` (it runs its own event loop: in a thread, beside the test's)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def schema_file(tmp_path: Path, schema: object) -> str:
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    return str(path)


async def test_the_example_hooks_data_reads_back_as_a_struct_column(
        redis: Redis, settings: Settings, clean_redis: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    settings = await crawl_layout(redis, settings)
    with SiteServer(SiteSpec(hosts=1, pages=PAGES), app=docs_app(PAGES)) as site:
        found = await crawl_site(redis, settings.replace(extract="headings_lxml:page"),
                                 [site.spec.origin(0) + "/index.html"])
    assert len(found) == PAGES + 1
    jsonl, parquet = tmp_path / "out.jsonl", tmp_path / "out.parquet"
    first = await cli("export", "--redis", clean_redis, str(jsonl))
    assert first.exit_code == 0, first.stderr
    done = await cli("export", "--redis", clean_redis, str(parquet),
                     "--data-schema", schema_file(tmp_path, EXAMPLE_SCHEMA))
    assert done.exit_code == 0, done.stderr

    table = pq.read_table(parquet)
    assert str(table.schema.field("data").type) == \
        "struct<headings: list<element: string>, description: string>"
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert table.column("url").to_pylist() == [r["url"] for r in records]
    assert table.column("data").to_pylist() == [r["data"] for r in records]
    by_url = dict(zip(table.column("url").to_pylist(), table.column("data").to_pylist(),
                      strict=True))
    origin = site.spec.origin(0)
    for i, path in enumerate(page_paths(PAGES)):  # what the page holds, not only the JSONL
        assert by_url[origin + path] == {"headings": headings_of(i),
                                         "description": description_of(i)}


def entries(datas: list[Any]) -> list[Entry]:
    out = []
    for i, data in enumerate(datas):
        record = make_record(url=f"http://127.0.0.9/{i}", depth=0, attempts=1, worker="w",
                             status=200)
        record["data"] = data
        out.append(Entry(0, f"{i + 1}-0", dumps(record)))
    return out


def test_every_declared_type_round_trips_a_row_group_at_a_time(tmp_path: Path) -> None:
    schema = DataSchema.parse({"s": "string", "n": "int64", "x": "float64", "ok": "bool",
                               "at": "timestamp", "tags": "list<string>",
                               "sizes": "List<Int64>"})
    datas: list[Any] = [
        {"s": "é", "n": 2**62, "x": 1.5, "ok": True, "at": "2026-11-28T12:00:00.250Z",
         "tags": ["a", None], "sizes": [1, 2]},
        {"n": 3, "x": 2, "at": 1700000000, "ok": False},  # missing fields: null; int as float
        None,  # the hook returned nothing for this page
        {"at": "2026-11-28T13:00:00", "tags": []},  # no offset: UTC
        {"s": "", "at": "2026-11-28T14:00:00+02:00"},
    ]
    path = tmp_path / "t.parquet"
    writer = ParquetWriter(path, row_group=2, data_schema=schema)
    for entry in entries(datas):
        writer.write(entry)
    writer.close()
    assert pq.ParquetFile(path).num_row_groups == 3  # 2 + 2 + 1 rows: streamed, not held
    got = pq.read_table(path).column("data").to_pylist()
    assert str(pq.read_schema(path).field("data").type) == (
        "struct<s: string, n: int64, x: double, ok: bool, at: timestamp[ms, tz=UTC], "
        "tags: list<element: string>, sizes: list<element: int64>>")
    assert got[0] == {"s": "é", "n": 2**62, "x": 1.5, "ok": True,
                      "at": datetime(2026, 11, 28, 12, 0, 0, 250000, tzinfo=UTC),
                      "tags": ["a", None], "sizes": [1, 2]}
    assert got[1] == {"s": None, "n": 3, "x": 2.0, "ok": False,
                      "at": datetime.fromtimestamp(1700000000, UTC), "tags": None,
                      "sizes": None}
    assert got[2] is None
    assert got[3]["at"] == datetime(2026, 11, 28, 13, tzinfo=UTC) and got[3]["tags"] == []
    assert got[4]["at"] == datetime(2026, 11, 28, 12, tzinfo=UTC) and got[4]["s"] == ""


@pytest.mark.parametrize(("data", "message"), [
    ({"headings": "Intro", "description": None},
     "data field 'headings': expected list<string>, got str \"Intro\""),
    ({"headings": ["a", 3]}, "data field 'headings[1]': expected string, got int 3"),
    ({"headings": [], "author": "x"}, "data field 'author' is not in the declared schema"),
    (["a"], "data is list [\"a\"], not an object"),
])
def test_data_that_does_not_fit_names_the_url_and_field(data: Any, message: str) -> None:
    schema = DataSchema.parse(EXAMPLE_SCHEMA)
    with pytest.raises(DataMismatch) as caught:
        schema.convert("http://127.0.0.9/p", data)
    assert str(caught.value).startswith("http://127.0.0.9/p: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(("data", "message"), [
    ({"n": True}, "'n': expected int64, got bool true"),
    ({"n": 2**63}, "'n': expected int64"),
    ({"x": "1.5"}, "'x': expected float64, got str"),
    ({"at": "yesterday"}, "'at': expected timestamp, got str \"yesterday\""),
    ({"ok": 1}, "'ok': expected bool, got int 1"),
])
def test_scalars_are_not_coerced(data: Any, message: str) -> None:
    schema = DataSchema.parse({"n": "int64", "x": "float64", "at": "timestamp", "ok": "bool"})
    with pytest.raises(DataMismatch, match="data field " + message.replace("(", r"\(")):
        schema.convert("u", data)


@pytest.mark.parametrize(("schema", "message"), [
    ({"a": "varchar"}, "field 'a': unknown type 'varchar'"),
    ({"a": "list<list<string>>"}, "unknown type"),
    ({"a": 3}, "field 'a': a type is a string"),
    ([], "expected a JSON object"),
    ({}, "expected a JSON object"),
])
def test_a_bad_schema_is_one_clear_error(schema: object, message: str) -> None:
    with pytest.raises(CrawlError, match=message):
        DataSchema.parse(schema)


async def test_export_stops_on_a_misfit_and_leaves_no_file(
        redis: Redis, settings: Settings, clean_redis: str, tmp_path: Path) -> None:
    settings = await crawl_layout(redis, settings)
    stream = Frontier(redis, settings).shards[0].results
    for entry in entries([{"headings": ["ok"]}, {"headings": ["ok"], "description": 7}]):
        await redis.xadd(stream, {"r": entry.text})
    out = tmp_path / "bad.parquet"
    schema = schema_file(tmp_path, EXAMPLE_SCHEMA)
    result = await cli("export", "--redis", clean_redis, str(out), "--data-schema", schema)
    assert result.exit_code == 2
    assert "http://127.0.0.9/1: data field 'description': expected string, got int 7" \
        in result.stderr
    assert not out.exists()
    refused = await cli("export", "--redis", clean_redis, str(tmp_path / "x.csv"),
                  "--data-schema", schema)
    assert refused.exit_code == 2 and "--data-schema types the data column of a Parquet" \
        in refused.stderr
    (tmp_path / "typo.json").write_text('{"a": "strin"}')
    typo = await cli("export", "--redis", clean_redis, str(tmp_path / "y.parquet"),
               "--data-schema", str(tmp_path / "typo.json"))
    assert typo.exit_code == 2 and "field 'a': unknown type 'strin'" in typo.stderr
    assert not (tmp_path / "y.parquet").exists()
