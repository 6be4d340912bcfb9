"""Sitemap parsing: index, urlset, gzip, text, fed in chunks; limits and malformed files."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree

from crawler.discovery import sitemaps
from crawler.discovery.sitemaps import MAX_LINE_BYTES, SitemapEntry, SitemapParser

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*locs: str, lastmod: str | None = None) -> bytes:
    mod = f"<lastmod>{lastmod}</lastmod>" if lastmod else ""
    body = "".join(f"<url><loc>{loc}</loc>{mod}</url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset {NS}>{body}</urlset>'.encode()


def index(*locs: str) -> bytes:
    body = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{body}</sitemapindex>'.encode()


def parse(data: bytes, chunk: int = 7, **limits: int) -> tuple[SitemapParser, list[SitemapEntry]]:
    """Feed ``data`` in ``chunk``-byte pieces: every boundary falls somewhere odd."""
    parser = SitemapParser(**limits)
    out: list[SitemapEntry] = []
    for i in range(0, len(data), chunk):
        out += parser.feed(data[i:i + chunk])
    out += parser.close()
    return parser, out


def test_urlset_gives_pages_with_lastmod() -> None:
    parser, entries = parse(urlset("http://a.test/1", "http://a.test/2", lastmod="2026-01-02"))
    assert parser.kind == "urlset" and parser.error is None
    assert entries == [SitemapEntry("http://a.test/1", False, "2026-01-02"),
                       SitemapEntry("http://a.test/2", False, "2026-01-02")]


def test_index_gives_sitemaps() -> None:
    parser, entries = parse(index("http://a.test/s1.xml.gz", "http://a.test/s2.xml"))
    assert parser.kind == "index" and parser.error is None
    assert [(e.url, e.is_sitemap) for e in entries] == [
        ("http://a.test/s1.xml.gz", True), ("http://a.test/s2.xml", True)]


def test_gzipped_urlset_is_inflated() -> None:
    locs = [f"http://a.test/p/{i}" for i in range(300)]
    parser, entries = parse(gzip.compress(urlset(*locs)), chunk=100)
    assert parser.error is None and [e.url for e in entries] == locs


@pytest.mark.parametrize("data", [
    b"http://a.test/1\nhttp://a.test/2\r\n\n  http://a.test/3  ",
    b"\xef\xbb\xbfhttp://a.test/1\nhttp://a.test/2\nhttp://a.test/3\n",
])
def test_text_sitemap_is_one_url_a_line(data: bytes) -> None:
    parser, entries = parse(data, chunk=5)
    assert parser.kind == "text" and parser.error is None
    assert [e.url for e in entries] == ["http://a.test/1", "http://a.test/2", "http://a.test/3"]


def test_no_namespace_and_whitespace_are_accepted() -> None:
    data = b"\n  <urlset><url><loc>\n http://a.test/x \n</loc></url></urlset>"
    assert [e.url for e in parse(data)[1]] == ["http://a.test/x"]


def test_over_the_url_limit_keeps_the_first_ones() -> None:
    parser, entries = parse(urlset(*(f"http://a.test/{i}" for i in range(12))), max_urls=10)
    assert parser.error == "more than 10 URLs"
    assert [e.url for e in entries] == [f"http://a.test/{i}" for i in range(10)]


def test_over_the_size_limit_stops_early() -> None:
    data = urlset(*(f"http://a.test/{i:06}" for i in range(2000)))
    parser, entries = parse(data, chunk=1000, max_bytes=len(data) // 2)
    assert parser.error is not None and "bytes uncompressed" in parser.error
    assert 0 < len(entries) < 2000
    assert [e.url for e in entries] == [f"http://a.test/{i:06}" for i in range(len(entries))]


def test_a_gzip_bomb_is_never_inflated_whole() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * (64 * 1024 * 1024))
    parser = SitemapParser(max_bytes=1024 * 1024)
    parser.feed(bomb)
    assert parser.error is not None and "bytes uncompressed" in parser.error
    # It stopped within one inflated piece of the limit, not at 64 MiB.
    assert parser.size < 2 * 1024 * 1024


def test_malformed_xml_keeps_what_came_before() -> None:
    data = urlset("http://a.test/1", "http://a.test/2")[:-len("</urlset>")]
    data += b"<url><loc>http://a.test/3</loc></url><url><loc>oops</url>"
    parser, entries = parse(data)
    assert parser.error is not None and parser.error.startswith("malformed XML")
    assert [e.url for e in entries] == ["http://a.test/1", "http://a.test/2", "http://a.test/3"]


def test_a_file_cut_short_is_an_error() -> None:
    parser, entries = parse(urlset("http://a.test/1", "http://a.test/2")[:-20])
    assert parser.error is not None and [e.url for e in entries] == ["http://a.test/1"]
    gz = gzip.compress(urlset("http://a.test/1"))
    parser, _ = parse(gz[:-10])
    assert parser.error == "gzip data cut short"


def closed_entries(data: bytes, locs: list[str]) -> list[str]:
    """The ``locs`` whose entry's closing tag lies whole within ``data``."""
    return locs[:len(re.findall(rb"</(url|sitemap)>", data))]


CUT_LOCS = ["http://a.test/1", "http://a.test/2", "http://a.test/3"]


@pytest.mark.parametrize("make", [urlset, index], ids=["urlset", "index"])
@pytest.mark.parametrize("chunk", [1, 7, 100_000], ids=["bytes", "chunks", "whole"])
def test_a_cut_at_any_byte_yields_only_closed_entries_and_is_an_error(make: Any,
                                                                      chunk: int) -> None:
    data = make(*CUT_LOCS)
    for cut in range(len(data)):
        parser, entries = parse(data[:cut], chunk=chunk)
        assert parser.error is not None, cut
        assert [e.url for e in entries] == closed_entries(data[:cut], CUT_LOCS), \
            (cut, data[cut - 20:cut])
    parser, entries = parse(data, chunk=chunk)
    assert parser.error is None and [e.url for e in entries] == CUT_LOCS


@pytest.mark.parametrize("make", [urlset, index], ids=["urlset", "index"])
def test_a_gzipped_sitemap_cut_at_any_byte_yields_only_closed_entries(make: Any) -> None:
    plain = make(*CUT_LOCS)
    gz = gzip.compress(plain)
    # From 2 bytes: one byte of gzip magic is indistinguishable from a text file's.
    for cut in [0, *range(2, len(gz))]:
        arrived = zlib.decompressobj(wbits=31).decompress(gz[:cut])  # what a reader could inflate
        parser, entries = parse(gz[:cut], chunk=5)
        assert parser.error is not None, cut
        assert [e.url for e in entries] == closed_entries(arrived, CUT_LOCS), cut


class RecoveringPullParser:
    """lxml's pull parser, but after a failed feed it also reports an end for every
    element still open: what lxml 6 does on a failed close, done on a feed."""

    real = etree.XMLPullParser

    def __init__(self, **options: Any) -> None:
        self.parser = self.real(**options)
        self.open: list[Any] = []
        self.failed = False

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed(data)
        except etree.XMLSyntaxError:
            self.failed = True
            raise

    def close(self) -> None:
        self.parser.close()

    def read_events(self) -> Iterator[tuple[str, Any]]:
        for event, element in self.parser.read_events():
            if event == "start":
                self.open.append(element)
            elif self.open:
                self.open.pop()
            yield event, element
        while self.failed and self.open:
            yield "end", self.open.pop()


def test_an_entry_a_failed_feed_ends_without_its_closing_tag_is_not_yielded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sitemaps.etree, "XMLPullParser", RecoveringPullParser)
    data = urlset("http://a.test/1", "http://a.test/2")
    cut = data.index(b"a.test/2") + len(b"a.te")
    parser, entries = parse(data[:cut] + b"<<garbage", chunk=len(data) * 2)
    assert parser.error is not None and parser.error.startswith("malformed XML")
    assert [e.url for e in entries] == ["http://a.test/1"]


def test_malformed_xml_in_one_feed_keeps_the_entries_closed_before_the_fault() -> None:
    data = urlset(*CUT_LOCS)[:-len("</urlset>")] + b"<url><loc>oops</url></urlset>"
    parser, entries = parse(data, chunk=len(data))
    assert parser.error is not None and parser.error.startswith("malformed XML")
    assert [e.url for e in entries] == CUT_LOCS


def test_a_closing_tag_in_a_comment_or_cdata_closes_no_entry() -> None:
    assert sitemaps._closing_tags(b"", b"<!-- </url> --><![CDATA[</url>]]></x:url ></url>") == 2
    assert sitemaps._closing_tags(b"<url><loc>x</loc></u", b"rl>") == 1
    assert sitemaps._closing_tags(b"</url>", b"</sitemap>") == 1


@pytest.mark.parametrize(("data", "why"), [
    (b"<html><body>not found</body></html>", "not a sitemap: the root element is <html>"),
    (b"", "empty sitemap"),
    (b"\x1f\x8bnot gzip at all", "bad gzip data"),
    (b"http://a.test/" + b"x" * (MAX_LINE_BYTES + 10), f"a line longer than {MAX_LINE_BYTES}"),
])
def test_what_is_not_a_sitemap_says_why(data: bytes, why: str) -> None:
    parser, entries = parse(data, chunk=4096)
    assert parser.error is not None and parser.error.startswith(why), parser.error
    assert entries == []


def test_entities_are_not_expanded() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e "http://evil.test/">]>'
            b"<urlset><url><loc>&e;x</loc></url></urlset>")
    _, entries = parse(data)
    assert all("evil" not in e.url for e in entries)
