"""Page parsing: what the crawler keeps from HTML, whatever bytes a server sends."""

from __future__ import annotations

import pytest

from crawler.bench.sitegen import SiteSpec, expected, page_html
from crawler.pages.parse import detect_charset, parse_html

URL = "http://example.com/dir/page.html"


def page(head: str, charset: str = "utf-8", body: str = "") -> bytes:
    return f"<!DOCTYPE html><html><head>{head}</head><body>{body}</body></html>".encode(charset)


def test_title_is_stripped_and_white_space_collapsed() -> None:
    parsed = parse_html(page("<title>\n  Fish \t &amp;\n chips </title>"), URL)
    assert parsed.title == "Fish & chips"


def test_first_title_wins_and_no_title_is_none() -> None:
    assert parse_html(page("<title>one</title><title>two</title>"), URL).title == "one"
    assert parse_html(b"<html><body><p>x</p></body></html>", URL).title is None


def test_title_control_characters_are_dropped_and_length_capped() -> None:
    parsed = parse_html(page("<title>a\x01b" + "c" * 5000 + "</title>"), URL)
    assert parsed.title is not None
    assert parsed.title.startswith("ab")
    assert len(parsed.title) == 1000


def test_links_are_resolved_canonical_unique_and_in_page_order() -> None:
    html = ('<body><a href="b.html">1</a><a href="/x#frag">2</a><a href="B.HTML">3</a>'
            '<a href="b.html#other">4</a><a href="HTTP://Other.example:80/y">5</a></body>')
    parsed = parse_html(html.encode(), URL)
    assert parsed.links == ["http://example.com/dir/b.html", "http://example.com/x",
                            "http://example.com/dir/B.HTML", "http://other.example/y"]
    assert parsed.link_count == 5


def test_link_count_counts_every_a_with_href_even_unfollowable() -> None:
    html = ('<a href="mailto:a@b.c">m</a><a href="javascript:void(0)">j</a><a href="#top">t</a>'
            '<a href="ftp://x/">f</a><a name="anchor">no href</a><a href="http://[bad/">b</a>'
            '<a href="/ok">ok</a>')
    parsed = parse_html(page("", body=html), URL)
    assert parsed.link_count == 6
    assert parsed.links == ["http://example.com/ok"]


def test_base_href_changes_how_links_resolve() -> None:
    html = page('<base href="http://cdn.example/sub/"><title>t</title>', body='<a href="x">x</a>')
    assert parse_html(html, URL).links == ["http://cdn.example/sub/x"]


def test_relative_base_href_resolves_against_the_page_and_only_the_first_counts() -> None:
    html = page('<base href="../other/"><base href="http://ignored.example/">',
                body='<a href="x">x</a>')
    assert parse_html(html, URL).links == ["http://example.com/other/x"]


def test_unusable_base_href_is_ignored() -> None:
    html = page('<base href="http://[broken/">', body='<a href="x">x</a>')
    assert parse_html(html, URL).links == ["http://example.com/dir/x"]


def test_rel_nofollow_links_are_counted_but_not_followed() -> None:
    html = b'<a href="/a" rel="nofollow">a</a><a href="/b" rel="external NoFollow">b</a>' \
        b'<a href="/c" rel="noopener">c</a>'
    parsed = parse_html(html, URL)
    assert parsed.link_count == 3
    assert parsed.links == ["http://example.com/c"]


def test_rel_nofollow_links_are_followed_when_configured() -> None:
    parsed = parse_html(b'<a href="/a" rel="nofollow">a</a>', URL, follow_nofollow=True)
    assert parsed.links == ["http://example.com/a"]


@pytest.mark.parametrize(("content", "nofollow", "noindex"), [
    ("nofollow", True, False),
    ("noindex", False, True),
    ("NOINDEX, NOFOLLOW", True, True),
    ("none", True, True),
    ("index, follow", False, False),
])
def test_robots_meta_directives(content: str, nofollow: bool, noindex: bool) -> None:
    parsed = parse_html(page(f'<meta name="robots" content="{content}">'), URL)
    assert (parsed.nofollow, parsed.noindex) == (nofollow, noindex)


def test_robots_meta_for_other_names_is_ignored() -> None:
    parsed = parse_html(page('<meta name="description" content="noindex nofollow">'), URL)
    assert not parsed.nofollow and not parsed.noindex


def test_header_charset_decodes_the_title() -> None:
    body = page("<title>café</title>", "latin-1")
    parsed = parse_html(body, URL, "iso-8859-1")
    assert parsed.title == "café"
    assert parsed.charset == "cp1252"  # browsers read latin-1 labels as windows-1252


def test_meta_charset_is_used_without_a_header() -> None:
    body = page('<meta charset="windows-1251"><title>Привет</title>', "cp1251")
    assert parse_html(body, URL).title == "Привет"


def test_http_equiv_content_type_charset_is_used() -> None:
    body = page('<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'
                "<title>日本語</title>", "shift_jis")
    assert parse_html(body, URL).title == "日本語"


def test_bom_wins_over_the_header() -> None:
    body = "\ufeff<html><head><title>ünïcode</title></head></html>".encode("utf-16-le")
    assert detect_charset(body, "iso-8859-1") == "utf-16-le"
    assert parse_html(body, URL, "iso-8859-1").title == "ünïcode"


def test_undeclared_charset_is_guessed_utf8_or_windows_1252() -> None:
    assert detect_charset("<p>é</p>".encode(), None) == "utf-8"
    assert detect_charset("<p>é</p>".encode("cp1252"), None) == "cp1252"
    assert parse_html(page("<title>é</title>", "cp1252"), URL).title == "é"


def test_unknown_charset_label_falls_back_to_sniffing() -> None:
    assert parse_html(page("<title>ok é</title>"), URL, "x-no-such-charset").title == "ok é"


@pytest.mark.parametrize("body", [
    b"", b"   \n", b"\x00\x01\x02", b"<", b"<<<>>>", b"\xff\xfe\x00", b"<html><a href=",
    b"<?xml version='1.0'?><x/>",
])
def test_garbage_is_a_page_with_no_title_and_no_links(body: bytes) -> None:
    for header_charset in (None, "utf-8"):
        page = parse_html(body, URL, header_charset)
        assert (page.title, page.link_count, page.links) == (None, 0, [])


def test_a_title_of_undecodable_bytes_is_decoded_and_capped_not_an_error() -> None:
    body = b"<title>" + b"\xc3" * 5000
    assert parse_html(body, URL).title == "\u00c3" * 1000  # windows-1252, capped
    assert parse_html(body, URL, "utf-8").title == "\ufffd" * 1000  # replacement chars


def test_generated_site_pages_parse_to_their_known_title_and_link_count() -> None:
    spec = SiteSpec(hosts=3, pages=20, links=60, page_bytes=27_000, port=8080)
    truth = expected(spec)
    for h in range(spec.hosts):
        for i in range(spec.pages):
            url = f"{spec.origin(h)}/p/{i}.html"
            parsed = parse_html(page_html(spec, h, i), url, "utf-8")
            assert (parsed.title, parsed.link_count) == truth[url]
            assert url.replace(f"/p/{i}.", f"/p/{(i + 1) % spec.pages}.") in parsed.links


def test_base_href_and_links_join_by_one_rule() -> None:
    """<base href> is joined as links are (``resolve``, RFC 3986), not by urljoin,
    which would drop the empty segment of ``a//b/``."""
    from crawler.urls import resolve

    html = page('<base href="a//b/">', body='<a href="x?">x</a>')
    links = parse_html(html, URL).links
    assert links == [resolve(resolve(URL, "a//b/"), "x?")]
    assert "a//b/x?" in links[0]
