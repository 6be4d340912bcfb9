"""URL canonicalization: the rules a crawl's dedup depends on, and the fast paths' equivalence."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.errors import InvalidURL
from crawler.urls import (
    _canonicalize,
    canonicalize,
    fingerprint,
    fingerprint_bucket,
    host_key,
    hostname,
    remove_dot_segments,
    resolve,
)


@pytest.mark.parametrize(("url", "canonical"), [
    # case: scheme and host lower-cased, path and query kept
    ("HTTP://Example.COM/Path?Q=A", "http://example.com/Path?Q=A"),
    ("hTTpS://WWW.example.org/", "https://www.example.org/"),
    # default ports dropped, others kept
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:443/a", "http://example.com:443/a"),
    ("https://example.com:8443/", "https://example.com:8443/"),
    # fragment dropped, empty query kept (it can matter to the server)
    ("http://example.com/a#section", "http://example.com/a"),
    ("http://example.com/a?#frag", "http://example.com/a?"),
    ("http://example.com/a?", "http://example.com/a?"),
    ("http://example.com/a?x=1#frag", "http://example.com/a?x=1"),
    # empty path becomes /
    ("http://example.com", "http://example.com/"),
    ("http://example.com?q", "http://example.com/?q"),
    # dot segments
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/../../a", "http://example.com/a"),
    ("http://example.com/a/b/..", "http://example.com/a/"),
    ("http://example.com/a/.", "http://example.com/a/"),
    ("http://example.com/a/.hidden", "http://example.com/a/.hidden"),
    # percent-encoding: unreserved decoded, others upper-case hex, stray % escaped
    ("http://example.com/%7euser/%41%2d", "http://example.com/~user/A-"),
    ("http://example.com/a%2fb%3f", "http://example.com/a%2Fb%3F"),
    ("http://example.com/100%", "http://example.com/100%25"),
    ("http://example.com/?q=%zz", "http://example.com/?q=%25zz"),
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://example.com/é?q=ü", "http://example.com/%C3%A9?q=%C3%BC"),
    ("http://example.com/%C3%A9", "http://example.com/%C3%A9"),
    # IDN hosts become punycode; a trailing dot goes
    ("http://münchen.de/", "http://xn--mnchen-3ya.de/"),
    ("http://BÜCHER.example/", "http://xn--bcher-kva.example/"),
    ("http://example.com./", "http://example.com/"),
    # IPv6 literals: compressed, lower-case, bracketed, port kept
    ("http://[2001:DB8:0:0::0001]/", "http://[2001:db8::1]/"),
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
    # IPv4 and surrounding white space
    ("  http://127.0.0.2:8080/p/1.html \n", "http://127.0.0.2:8080/p/1.html"),
])
def test_canonical_form(url: str, canonical: str) -> None:
    assert canonicalize(url) == canonical


@pytest.mark.parametrize("url", [
    "ftp://example.com/",
    "mailto:someone@example.com",
    "javascript:alert(1)",
    "//example.com/no-scheme",
    "/relative/path",
    "example.com",
    "",
    "http:///no-host",
    "http://example.com:65536/",
    "http://example.com:port/",
    "http://[::1/",
    "http://[12345::1]/",
    "http://exa mple.com/",
    "http://" + "a" * 64 + ".com/",  # a label IDNA cannot take is still ASCII: kept
    "http://example.com/" + "a" * 5000,
])
def test_unusable_urls_are_invalid(url: str) -> None:
    if url.startswith("http://aaaa"):
        assert canonicalize(url) == url  # ASCII labels are not length-checked
        return
    with pytest.raises(InvalidURL):
        canonicalize(url)


def test_bad_international_host_is_invalid() -> None:
    with pytest.raises(InvalidURL):
        canonicalize("http://" + "ü" * 70 + ".de/")


def test_canonical_form_is_a_fixed_point() -> None:
    once = canonicalize("HTTP://Ex.com:80/a/../%7e/é?x=%2a#f")
    assert canonicalize(once) == once


def test_remove_dot_segments_follows_rfc3986_examples() -> None:
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert remove_dot_segments("mid/content=5/../6") == "/mid/6"


BASE = "http://example.com:8080/dir/page.html?x=1"


@pytest.mark.parametrize("href", [
    "/p/1.html", "/p/1.html#frag", "p/2.html", "../up.html", "./here.html", "?q=2", "#top",
    "", "//other.example/x", "//other.example", "http://Other.example:80/A#b",
    "https://example.com", "HTTP://example.com/", "/a/../b/./c", "/é", " /padded ",
    "/a?b#c?d", "http:relative", "/\\backslash", "/p\t1.html", ".", "..",
])
def test_resolve_matches_urljoin_then_canonicalize(href: str) -> None:
    assert resolve(BASE, href) == canonicalize(urljoin(BASE, href.strip()))


def test_resolve_reads_a_semicolon_segment_as_rfc3986_does() -> None:
    # urljoin (RFC 1808 params) would make this http://example.com:8080/
    assert resolve(BASE, "/..;x") == "http://example.com:8080/..;x"


def test_resolve_against_base_without_path_or_port() -> None:
    assert resolve("http://example.com/", "/a") == "http://example.com/a"
    assert resolve("https://example.com/x/y", "//cdn.example/z") == "https://cdn.example/z"


_url_chars = st.sampled_from([*list("aZ09-._~!$&'()*+,;=:@/?%#é "), "%2e", "%41", "/..", "/."])
_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https", "HTTP"]),
    st.sampled_from(["example.com", "Example.com", "a.b", "127.0.0.1", "[::1]", "x_y.z",
                     "ex.com.", "münchen.de"]),
    st.sampled_from(["", ":80", ":443", ":8080", ":080", ":70000", ":1"]),
    st.lists(_url_chars, max_size=12).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(_urls)
def test_fast_path_agrees_with_full_canonicalization(url: str) -> None:
    canonicalize.cache_clear()
    try:
        expected = _canonicalize(url)
    except InvalidURL:
        with pytest.raises(InvalidURL):
            canonicalize(url)
        return
    assert canonicalize(url) == expected


_href_chars = st.sampled_from([*list("aZ09-._~!$&'()*+,=:@/?%#é\t"), "%2e", "%41", "/..", "/."])


@settings(max_examples=400, deadline=None)
@given(st.lists(_href_chars, max_size=10).map("".join),
       st.sampled_from([BASE, "https://a.b/", "http://[::1]:81/x/y/"]))
def test_resolve_agrees_with_urljoin(href: str, base: str) -> None:
    # Where the two differ on purpose (see resolve) is tested apart: an empty
    # query, empty segments, an empty host, %2e as a dot (as browsers read it).
    cleaned = href.strip().replace("\t", "").split("#", 1)[0]
    if (cleaned.endswith("?") or "//" in cleaned[1:] or cleaned.rstrip() == "//"
            or "%2e" in cleaned):
        return
    try:
        expected = canonicalize(urljoin(base, href.strip()))
    except (InvalidURL, ValueError):
        with pytest.raises((InvalidURL, ValueError)):
            resolve(base, href)
        return
    assert resolve(base, href) == expected


def test_resolve_keeps_an_empty_query_whatever_the_link_shape() -> None:
    base = "http://example.com/dir/page"
    assert resolve(base, "a?") == resolve(base, "/dir/a?") == "http://example.com/dir/a?"
    assert resolve(base, "a?#f") == "http://example.com/dir/a?"


def test_resolve_reads_an_escaped_dot_as_a_dot_segment() -> None:
    assert resolve("http://example.com/a/b/", "%2e%2E/c") == "http://example.com/a/c"


def test_resolve_keeps_empty_segments_and_refuses_an_empty_host() -> None:
    assert resolve("http://example.com/d/p", "a//b") == "http://example.com/d/a//b"
    with pytest.raises(InvalidURL):
        resolve("http://example.com/d/p", "//")


def test_resolve_removes_tabs_and_newlines_before_reading_the_link() -> None:
    assert resolve("http://example.com/", "/\t/other.example/x") == "http://other.example/x"
    assert resolve("http://example.com/", "/p/\n1.html") == "http://example.com/p/1.html"


def test_resolve_keeps_white_space_that_a_fragment_protects() -> None:
    assert resolve("http://example.com/", "/a #frag") == "http://example.com/a%20"
    assert resolve("http://example.com/", " /a ") == "http://example.com/a"


def test_fingerprint_is_stable_and_signed_64_bit() -> None:
    fp = fingerprint("http://example.com/")
    assert fp == -350646258024731386  # changing this re-crawls every stored crawl
    assert -(2**63) <= fp < 2**63
    assert fingerprint_bucket(fp, 12) == 4018
    assert fingerprint("http://example.com/a") != fingerprint("http://example.com/b")


def test_host_key_keeps_non_default_port_and_hostname_drops_it() -> None:
    assert host_key("http://a.example:81/x") == "a.example:81"
    assert hostname("http://a.example:81/x") == "a.example"
    assert host_key("http://[::1]:8080/x") == "[::1]:8080"
    assert hostname("http://[::1]:8080/x") == "[::1]"
    assert host_key("http://a.example") == "a.example"
