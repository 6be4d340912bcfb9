"""Sitemap parsing: index, urlset, gzip, text, fed in chunks; limits and malformed files."""

from __future__ import annotations

import gzip

import pytest

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
