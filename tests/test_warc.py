"""WARC capture: every response reads back with warcio, byte for byte what the server sent.

Also: results name their record (file and offset), files rotate at a size,
and a partial record a crash left at a file's end is cut on the next start.
"""

from __future__ import annotations

import gzip
import io
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from crawl_helpers import crawl as crawl_site
from politeness_site import Site, crawl
from redis.asyncio import Redis
from test_sitemap_crawl import IP, OTHER, SitemapSite, one_record_each, robots, urlset
from warcio.archiveiterator import ArchiveIterator

from crawler.bench.sitegen import SiteServer, SiteSpec, page_html
from crawler.config import Settings
from crawler.discovery import sitemaps
from crawler.net.fetch import Response
from crawler.pages.warc import (
    OPEN_SUFFIX,
    SPOOL_IN_MEMORY,
    WarcCapture,
    WarcWriter,
    complete_length,
)

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



def responses_by_uri(directory: Path) -> dict[str, tuple[bytes, str | None, Any]]:
    """Each response record's payload, HTTP status and WARC headers, by URI (each URI once)."""
    records = read_all(directory)
    out = {uri: (payload, status, headers) for _, kind, uri, headers, payload, status in records
           if kind == "response"}
    assert len(out) == [r[1] for r in records].count("response")  # none written twice
    ids = {h.get_header("WARC-Record-ID") for _, kind, _, h, _, _ in records
           if kind == "response"}
    assert {h.get_header("WARC-Concurrent-To") for _, kind, _, h, _, _ in records
            if kind == "request"} == ids  # a request record beside each
    return out


async def test_sitemaps_are_archived_like_pages(redis: Redis, settings: Settings,
                                                tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    server = SitemapSite()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/gone.xml":
            return web.Response(status=404, text="no sitemap here")
        if request.path == "/moved.txt":
            raise web.HTTPMovedPermanently("/map.txt")
        return await server(request)

    with Site(handler, ips=(IP,)) as site:
        pages = [site.url(IP, f"/p/{i}") for i in range(3)]
        text_map = "\n".join(pages[:2]).encode()
        gz_map = gzip.compress(urlset(pages[2]))
        server.files.update({
            "/robots.txt": robots(site, "/map.txt", "/maps/more.xml.gz", "/gone.xml",
                                  "/moved.txt"),
            "/map.txt": (text_map, "text/plain"),
            "/maps/more.xml.gz": (gz_map, "application/gzip")})
        by_url = one_record_each(await crawl(redis, settings.replace(warc_dir=str(warc_dir)),
                                             [site.url(IP, "/")]))
        served = [site.url(IP, p) for p in site.paths(IP) if p != "/robots.txt"]
    archived = responses_by_uri(warc_dir)
    # Every response the server gave, robots.txt aside, once: sitemaps included.
    assert sorted(archived) == sorted(served) and len(served) == 1 + 4 + 3
    assert archived[site.url(IP, "/map.txt")][:2] == (text_map, "200")
    assert archived[site.url(IP, "/maps/more.xml.gz")][:2] == (gz_map, "200")  # as sent
    assert archived[site.url(IP, "/gone.xml")][:2] == (b"no sitemap here", "404")
    assert archived[site.url(IP, "/moved.txt")][1] == "301"
    assert archived[site.url(IP, "/map.txt")][2].get_header("WARC-Truncated") is None
    for path in ("/map.txt", "/maps/more.xml.gz", "/gone.xml", "/moved.txt"):
        result = by_url[site.url(IP, path)]
        assert result.get("kind") == (None if path == "/moved.txt" else "sitemap")
        with open(warc_dir / result["warc_file"], "rb") as fh:  # noqa: ASYNC230 - a test
            fh.seek(result["warc_offset"])
            record = next(iter(ArchiveIterator(fh)))
            assert record.rec_type == "response"
            assert record.rec_headers.get_header("WARC-Target-URI") == result["url"]
            assert record.http_headers.get_header("Content-Length") == \
                str(len(archived[result["url"]][0]))
            # The headers as the server sent them (a redirect's Location too).
            assert record.http_headers.get_header("Location") == (
                "/map.txt" if path == "/moved.txt" else None)
            assert record.http_headers.get_header("Server", "").startswith("Python")


async def test_a_sitemap_larger_than_the_memory_spool_streams_into_the_warc(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    warc_dir = tmp_path / "warc"
    server = SitemapSite()
    with Site(server, ips=(IP,)) as site:
        # Out of scope (another host): listed, not fetched, so the crawl stays small.
        big = urlset(*(site.url(OTHER, f"/p/{i:06}/" + "x" * 600) for i in range(8000)))
        assert len(big) > 4 * SPOOL_IN_MEMORY
        server.files.update({"/robots.txt": robots(site, "/big.xml"),
                             "/big.xml": (big, "application/xml")})
        by_url = one_record_each(await crawl(
            redis, settings.replace(warc_dir=str(warc_dir), total_timeout=60),
            [site.url(IP, "/")], limit=90))
    assert by_url[site.url(IP, "/big.xml")]["urls"] == 8000
    payload, status, headers = responses_by_uri(warc_dir)[site.url(IP, "/big.xml")]
    assert status == "200" and payload == big and headers.get_header("WARC-Truncated") is None
    assert not [p for p in warc_dir.iterdir() if not p.name.endswith(".warc.gz")]  # no spool left


def test_a_streamed_payload_is_copied_into_the_record_not_held_whole(tmp_path: Path) -> None:
    body = os.urandom(1 << 16) * 256  # 16 MiB
    spool = tmp_path / "spool"
    spool.write_bytes(body)
    writer = WarcWriter(tmp_path / "warc", max_bytes=10**10, user_agent="t", node="n1")
    empty = Response(url="http://127.0.0.2/s.xml", final_url="http://127.0.0.2/s.xml",
                     status=200, content_type="application/xml", charset=None, body=b"",
                     headers={}, elapsed=0.01, reason="OK")
    with open(spool, "rb") as payload:
        tracemalloc.start()
        try:
            writer.write([], empty, payload=payload)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    writer.close()
    assert peak < len(body) // 8, peak
    records = read_all(tmp_path / "warc")
    assert [(kind, payload) for _, kind, _, _, payload, _ in records if kind == "response"] \
        == [("response", body)]


async def test_a_sitemap_over_a_limit_or_malformed_is_archived_as_read_and_marked_truncated(
        redis: Redis, settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps, "MAX_BYTES", 100_000)
    warc_dir = tmp_path / "warc"
    server = SitemapSite()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path != "/streamed.xml":
            return await server(request)
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)  # chunked: no Content-Length to refuse it by
        for i in range(0, len(big), 10_000):
            await response.write(big[i:i + 10_000])
        return response

    with Site(handler, ips=(IP,)) as site:
        big = urlset(*(site.url(OTHER, f"/p/{i:06}") for i in range(5000)))
        assert len(big) > 2 * 100_000 + 64 * 1024
        # Malformed early; under the cap but over one read, so the rest is never read.
        broken = big[:1000] + b"<<<" + big[1000:90_000]
        small_broken = urlset(site.url(OTHER, "/p/x"))[:-3]  # cut short, read whole
        server.files.update({
            "/robots.txt": robots(site, "/streamed.xml", "/big.xml", "/broken.xml",
                                  "/small.xml"),
            "/big.xml": (big, "application/xml"),
            "/broken.xml": (broken, "application/xml"),
            "/small.xml": (small_broken, "application/xml")})
        by_url = one_record_each(await crawl(redis, settings.replace(warc_dir=str(warc_dir)),
                                             [site.url(IP, "/")]))
    archived = responses_by_uri(warc_dir)
    payload, _, headers = archived[site.url(IP, "/streamed.xml")]
    assert by_url[site.url(IP, "/streamed.xml")]["error"]["message"].endswith(
        "bytes uncompressed")
    assert payload == big[:100_000] and headers.get_header("WARC-Truncated") == "length"
    payload, _, headers = archived[site.url(IP, "/big.xml")]  # refused by its Content-Length
    assert by_url[site.url(IP, "/big.xml")]["error"]["message"].startswith("Content-Length")
    assert payload == b"" and headers.get_header("WARC-Truncated") == "length"
    payload, _, headers = archived[site.url(IP, "/broken.xml")]
    assert by_url[site.url(IP, "/broken.xml")]["error"]["type"] == "sitemap_error"
    assert broken.startswith(payload) and len(payload) < len(broken)
    assert headers.get_header("WARC-Truncated") == "unspecified"
    payload, _, headers = archived[site.url(IP, "/small.xml")]
    assert by_url[site.url(IP, "/small.xml")]["error"]["type"] == "sitemap_error"
    assert payload == small_broken and headers.get_header("WARC-Truncated") is None


def test_a_body_that_cannot_be_spooled_gets_no_record_and_the_fetch_goes_on(
        tmp_path: Path) -> None:
    class FullDisk(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(28, "No space left on device")

    capture = WarcCapture(WarcWriter(tmp_path, max_bytes=10**9, user_agent="t", node="n1"), [])
    spool = capture.spool(cap=100)
    spool.file = FullDisk()
    spool.write(b"<urlset>")  # logged, not raised
    spool.write(b"</urlset>")
    assert spool.failed and spool.size == 17
    sitemap = response(1)
    capture.write(sitemap, spool=spool)
    capture.close()
    assert sitemap.warc is None  # the result names no record
    assert [kind for _, kind, *_ in read_all(tmp_path)] in ([], ["warcinfo"])
