"""Properties over arbitrary input (hypothesis): canonical URLs, fingerprints, parser, export."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from protego import Protego

from crawler.errors import InvalidURL
from crawler.net.robots_rules import rules_for_agent
from crawler.pages.parse import parse_html
from crawler.results import FIELDS, dumps, make_record
from crawler.urls import _canonicalize, canonicalize, fingerprint

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])

_label = st.text(alphabet="abcXYZ019-_.~", min_size=1, max_size=12)
_unicode_label = st.text(alphabet="äöüßéñ日本語абвАБВ", min_size=1, max_size=6)
hosts = st.one_of(
    _label, _unicode_label, st.builds(lambda a, b: f"{a}.{b}", _unicode_label, _label),
    st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
    st.text(max_size=10),
)
# Characters that matter to URL parsing, and a bit of everything else.
_url_chars = st.one_of(st.sampled_from([*"/?#%.:;@=&+~ \t", "%2e", "%2E", "%zz", "..",
                                                                  "%41", "%7e", "%25"]),
                       st.characters(), st.characters(categories=["Cs", "Cc", "Cf"]))
parts_text = st.lists(_url_chars, max_size=25).map("".join)
urls = st.one_of(
    st.builds(lambda scheme, host, port, path, query, fragment: (
        f"{scheme}://{host}{port}{path}{query}{fragment}"),
        st.sampled_from(["http", "https", "HTTP", "hTtPs", "ftp", ""]), hosts,
        st.one_of(st.just(""), st.integers(0, 70000).map(lambda p: f":{p}"),
                  st.text(max_size=4).map(lambda t: ":" + t)),
        parts_text.map(lambda t: "/" + t), st.one_of(st.just(""), parts_text.map("?".__add__)),
        st.one_of(st.just(""), parts_text.map("#".__add__))),
    st.text(max_size=60),
)


@PROPERTY_SETTINGS
@given(urls)
@example("http://EXAMPLE.com:80/a/./b/../c?%7e#frag")
@example("https://bücher.example/%zz/%2e%2E/x?")
@example("http://example.com/\udcff")
def test_canonicalize_is_idempotent(url: str) -> None:
    try:
        once = canonicalize(url)
    except InvalidURL:
        return
    assert canonicalize(once) == once
    assert _canonicalize(once) == once  # the slow path agrees with the fast path


@PROPERTY_SETTINGS
@given(urls)
@example("http://example.com/a?\ud800")
def test_canonicalize_raises_only_invalid_url(url: str) -> None:
    try:
        result = canonicalize(url)
    except InvalidURL:
        return
    assert result.startswith(("http://", "https://")) and result.isascii()


@PROPERTY_SETTINGS
@given(urls)
def test_fingerprint_is_a_signed_64_bit_function_of_the_canonical_url(url: str) -> None:
    try:
        once = canonicalize(url)
    except InvalidURL:
        return
    fp = fingerprint(once)
    assert -(2 ** 63) <= fp < 2 ** 63
    assert fingerprint(canonicalize(once)) == fp


def test_fingerprint_is_the_same_in_every_process_and_release() -> None:
    # Fingerprints live in Redis across restarts and upgrades: they must never
    # depend on the process (hash randomization) or change between releases.
    expected = {"http://example.com/": -350646258024731386,
                "https://xn--bcher-kva.example/stra%C3%9Fe?q=1": -7226566950589499640}
    code = ("import json,sys; from crawler.urls import fingerprint; "
            "print(json.dumps({u: fingerprint(u) for u in json.loads(sys.argv[1])}))")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code, json.dumps(list(expected))],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert json.loads(out) == expected
    assert {u: fingerprint(u) for u in expected} == expected


_html_bits = st.sampled_from([
    "<html>", "<head>", "<title>", "</title>", "<body>", "<a href='", "'>", "</a>", '"',
    "<base href='", "<meta charset='", "<meta name=robots content='", "nofollow", "noindex",
    "shift_jis", "utf-16", "windows-1251", "javascript:", "//", "../", "#", "%", "\x00",
    "<!--", "-->", "<![CDATA[", "<script>", "</script>", "&amp;", "&#0;", "&#x110000;",
    "\u202e", "🕷", "\ufeff",
])
html_like = st.lists(st.one_of(_html_bits, st.text(max_size=8)), max_size=40).map("".join)
charsets = st.sampled_from([None, "utf-8", "windows-1251", "shift_jis", "iso-8859-1", "utf-16",
                            "bogus", "", "x-user-defined", "utf-7"])


def _assert_sane_page(body: bytes, charset: str | None) -> None:
    page = parse_html(body, "http://example.com/dir/page.html", charset)
    assert page.title is None or (isinstance(page.title, str) and "\x00" not in page.title)
    for link in page.links:
        assert canonicalize(link) == link
    assert page.link_count >= len(page.links)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2000), charsets)
def test_parser_never_raises_on_arbitrary_bytes(body: bytes, charset: str | None) -> None:
    _assert_sane_page(body, charset)


@PROPERTY_SETTINGS
@given(html_like, st.sampled_from(["utf-8", "utf-16-le", "cp1251", "latin-1"]), charsets)
def test_parser_never_raises_on_html_like_text(text: str, encoding: str,
                                               charset: str | None) -> None:
    _assert_sane_page(text.encode(encoding, "replace"), charset)


# Lone surrogates (what aiohttp's surrogateescape makes of bad header bytes),
# control and format characters (escapes, right-to-left overrides), and the rest.
any_text = st.text(alphabet=st.one_of(st.characters(), st.characters(
    categories=["Cs", "Cc", "Cf"])), max_size=200)


@PROPERTY_SETTINGS
@given(title=any_text, url=any_text, message=any_text)
def test_every_record_is_one_valid_ascii_json_line(title: str, url: str, message: str) -> None:
    record = make_record(url=url, depth=0, attempts=1, worker="w", title=title,
                         error=("bad_content", message))
    line = dumps(record)
    assert "\n" not in line and "\r" not in line
    assert line.isascii() and line.isprintable()
    back = json.loads(line)
    assert back == record and tuple(back) == FIELDS


# -- robots.txt reduced to our rules decides every URL as the whole file does --------------

_AGENTS = ["crawler", "Crawler", "crawler-news", "googlebot", "*", "crawl", "mycrawler"]
_PATHS = ["/", "/a", "/a/", "/a/b", "/a*", "/*.pdf", "/b$", "/a/b/c", "/%7Euser", "/a?q=1"]


@st.composite
def robots_files(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        for agent in draw(st.lists(st.sampled_from(_AGENTS), min_size=1, max_size=3)):
            lines.append(f"User-agent: {agent}")
        for _ in range(draw(st.integers(0, 4))):
            field = draw(st.sampled_from(["Disallow", "Allow", "Crawl-delay", "Sitemap"]))
            value = draw(st.sampled_from(["2", "0.5"])) if field == "Crawl-delay" else \
                "http://x.test/s.xml" if field == "Sitemap" else draw(st.sampled_from(_PATHS))
            lines.append(f"{field}: {value}")
    return "\n".join(lines) + "\n"


@given(robots_files(), st.sampled_from(["crawler", "crawler-news", "other"]),
       st.lists(st.sampled_from(["/", "/a", "/a/b", "/a/b/c.pdf", "/b", "/bb", "/~user",
                                 "/a?q=1", "/x.pdf"]), min_size=1, max_size=5))
def test_robots_reduced_to_our_rules_decides_like_the_whole_file(
        body: str, agent: str, paths: list[str]) -> None:
    whole, reduced = Protego.parse(body), Protego.parse(rules_for_agent(body, agent))
    for path in paths:
        url = "http://x.test" + path
        assert reduced.can_fetch(url, agent) == whole.can_fetch(url, agent), (body, path)
    assert reduced.crawl_delay(agent) == whole.crawl_delay(agent)
    assert sorted(reduced.sitemaps) == sorted(whole.sitemaps)
