"""WARC capture: every response reads back with warcio, byte for byte what the server sent.

Also: results name their record (file and offset), files rotate at a size,
and a partial record a crash left at a file's end is cut on the next start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crawl_helpers import crawl as crawl_site
from redis.asyncio import Redis
from warcio.archiveiterator import ArchiveIterator

from crawler.bench.sitegen import SiteServer, SiteSpec, page_html
from crawler.config import Settings
from crawler.net.fetch import Response
from crawler.pages.warc import OPEN_SUFFIX, WarcWriter, complete_length

SPEC = SiteSpec(hosts=2, pages=25, links=6, page_bytes=3000)


def read_all(directory: Path) -> list[Any]:
    """Every record of every WARC file: (file, type, uri, headers, payload, http status)."""
    out = []
    for path in sorted(directory.glob("*.warc.gz")):
        with open(path, "rb") as fh:
            for record in ArchiveIterator(fh):
                status = record.http_headers.get_statuscode() if record.http_headers else None
                out.append((path.name, record.rec_type, record.rec_headers.get_header(
                    "WARC-Target-URI"), record.rec_headers, record.content_stream().read(),
                    status))
    return out


def sent_by_server(spec: SiteSpec) -> dict[str, bytes]:
    return {f"{spec.origin(h)}/p/{i}.html": page_html(spec, h, i)
            for h in range(spec.hosts) for i in range(spec.pages)}


async def test_every_response_reads_back_byte_for_byte(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    with SiteServer(SPEC) as site:
        found = await crawl_site(redis, settings.replace(warc_dir=str(warc_dir)),
                                 site.spec.seeds())
        sent = sent_by_server(site.spec)
    assert not list(warc_dir.glob("*" + OPEN_SUFFIX))  # closed and renamed at exit
    records = read_all(warc_dir)
    responses = {uri: payload for _, kind, uri, _, payload, _ in records if kind == "response"}
    assert len([r for r in records if r[1] == "response"]) == len(sent)  # each fetched once
    assert responses == sent  # byte for byte
    assert all(headers.protocol == "WARC/1.1" for _, _, _, headers, _, _ in records)
    ids = {h.get_header("WARC-Record-ID") for _, kind, _, h, _, _ in records
           if kind == "response"}
    requests = [h for _, kind, _, h, _, _ in records if kind == "request"]
    assert {h.get_header("WARC-Concurrent-To") for h in requests} == ids
    assert [kind for _, kind, *_ in records].count("warcinfo") == 1
    assert all(r["warc_file"].endswith(".warc.gz") for r in found.values())


async def test_each_result_names_its_response_record(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    with SiteServer(SPEC) as site:
        found = await crawl_site(redis, settings.replace(warc_dir=str(warc_dir)),
                                 site.spec.seeds())
    for url, result in found.items():
        with open(warc_dir / result["warc_file"], "rb") as fh:  # noqa: ASYNC230 - a test
            fh.seek(result["warc_offset"])
            record = next(iter(ArchiveIterator(fh)))
            assert record.rec_type == "response"
            assert record.rec_headers.get_header("WARC-Target-URI") == url
            assert record.http_headers.get_statuscode() == str(result["status"])


async def test_files_rotate_at_the_size_limit_and_every_one_reads_back(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    with SiteServer(SPEC) as site:
        await crawl_site(redis, settings.replace(warc_dir=str(warc_dir), warc_max_bytes=8000),
                         site.spec.seeds())
        sent = sent_by_server(site.spec)
    files = sorted(warc_dir.glob("*.warc.gz"))
    assert len(files) > 5
    assert all(f.stat().st_size < 8000 + 5000 for f in files)  # past the limit by one fetch
    node_pid = {f.name.rsplit("-", 2)[0].split("-", 2)[2] + f.name.rsplit("-", 2)[1]
                for f in files}
    assert len(node_pid) == 1  # one writer: one node, one pid
    records = read_all(warc_dir)
    assert {uri: p for _, kind, uri, _, p, _ in records if kind == "response"} == sent


def response(i: int) -> Response:
    body = f"<html><title>{i}</title>{'x' * 2000}</html>".encode()
    return Response(url=f"http://127.0.0.2/{i}", final_url=f"http://127.0.0.2/{i}", status=200,
                    content_type="text/html", charset="utf-8", body=body, headers={},
                    elapsed=0.01, raw_headers=((b"Content-Type", b"text/html"),), reason="OK")


def test_a_partial_record_left_by_a_crash_is_cut_on_the_next_start(tmp_path: Path) -> None:
    writer = WarcWriter(tmp_path, max_bytes=10**9, user_agent="t", node="n1")
    for i in range(3):
        writer.write([], response(i))
    assert writer.fh is not None
    # A second writer's record, half written, then the process "dies".
    spare = WarcWriter(tmp_path / "spare", max_bytes=10**9, user_agent="t", node="n1")
    spare.write([], response(99))
    assert spare.fh is not None and spare.path is not None
    spare.fh.close()
    whole = spare.path.with_name(spare.path.name + OPEN_SUFFIX).read_bytes()
    writer.fh.write(whole[len(whole) // 2:len(whole) // 2 + 1500])
    writer.fh.close()
    open_file = next(tmp_path.glob("*" + OPEN_SUFFIX))
    assert complete_length(open_file) < open_file.stat().st_size

    # Another process's live file is left alone (pid 1 is alive).
    live = tmp_path / f"crawl-20260101000000-n1-1-00001.warc.gz{OPEN_SUFFIX}"
    live.write_bytes(b"partial")
    WarcWriter(tmp_path, max_bytes=10**9, user_agent="t", node="n1")
    assert live.read_bytes() == b"partial"
    assert not open_file.exists()
    fixed = open_file.with_name(open_file.name.removesuffix(OPEN_SUFFIX))
    assert complete_length(fixed) == fixed.stat().st_size
    with open(fixed, "rb") as fh:
        uris = [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(fh)
                if r.rec_type == "response"]
    assert uris == [f"http://127.0.0.2/{i}" for i in range(3)]
    assert os.getpid() == int(fixed.name.rsplit("-", 2)[1])


def test_complete_length_of_whole_members_is_the_file(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"a" * 100) + gzip.compress(b"b" * 100))
    assert complete_length(path) == path.stat().st_size
    path.write_bytes(path.read_bytes()[:-3])
    assert complete_length(path) == len(gzip.compress(b"a" * 100))

