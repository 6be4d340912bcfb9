"""Query cleaning and Link headers, as functions: what is dropped, what is kept, what is read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.config import Settings
from crawler.frontier.query_clean import QueryCleaner
from crawler.pages.link_header import read_link_headers
from crawler.pages.parse import parse_html
from crawler.urls import canonicalize

CLEAN = QueryCleaner()


@pytest.mark.parametrize(("url", "cleaned"), [
    ("http://a.example/p?utm_source=x&utm_medium=y", "http://a.example/p"),
    ("http://a.example/p?id=3&fbclid=IwAR0&gclid=1&msclkid=2", "http://a.example/p?id=3"),
    ("http://a.example/p?UTM_Campaign=z&b=2&mc_eid=9&_hsenc=p2&a=1", "http://a.example/p?b=2&a=1"),
    ("http://a.example/p?igshid=1&yclid=2&mkt_tok=3&_ga=4&s_cid=5", "http://a.example/p"),
    ("http://a.example/p;jsessionid=0A1B2C3D?x=1", "http://a.example/p?x=1"),
    ("http://a.example/p;JSESSIONID=0A1B2C3D", "http://a.example/p"),
    ("http://a.example/d;v=2/p", "http://a.example/d;v=2/p"),  # not a session id: kept
    ("http://a.example/p?PHPSESSID=abc&q=1", "http://a.example/p?q=1"),
    ("http://a.example/p?ASPSESSIONIDQQGGGNCG=x", "http://a.example/p"),
    ("http://a.example/p?sessionid=1&session_id=2&n=1", "http://a.example/p?n=1"),
    ("http://a.example/p?sid=9f8e7d6c5b4a39281706&page=2", "http://a.example/p?page=2"),
    ("http://a.example/p?sid=3&page=2", "http://a.example/p?sid=3&page=2"),
    ("http://a.example/p?sid=deutschland", "http://a.example/p?sid=deutschland"),
    ("http://a.example/p?ref=home&source=x&cid=4", "http://a.example/p?ref=home&source=x&cid=4"),
    ("http://a.example/p?", "http://a.example/p?"),
    ("http://a.example/p", "http://a.example/p"),
])
def test_tracking_and_session_parameters_are_dropped_and_the_rest_kept_in_order(
        url: str, cleaned: str) -> None:
    assert CLEAN.clean(url) == cleaned
    assert CLEAN.key(url) == cleaned  # sort_query off: the key is the cleaned URL


def test_the_lists_are_extended_narrowed_or_turned_off_per_crawl() -> None:
    settings = Settings(drop_params=("ref", "promo_*", "*_src"), keep_params=("utm_id",))
    cleaner = QueryCleaner.from_settings(settings)
    url = "http://a.example/p?ref=x&promo_code=1&utm_id=7&utm_source=n&id=2&Nav_Src=4"
    assert cleaner.clean(url) == "http://a.example/p?utm_id=7&id=2"
    off = QueryCleaner.from_settings(settings.replace(clean_query=False))
    assert off.clean(url) == off.key(url) == url


def test_sort_query_sorts_the_dedup_key_but_not_the_url_fetched() -> None:
    cleaner = QueryCleaner(sort=True)
    url = "http://a.example/p?b=2&utm_source=x&a=1"
    assert cleaner.clean(url) == "http://a.example/p?b=2&a=1"
    assert cleaner.key(url) == cleaner.key("http://a.example/p?a=1&b=2") == \
        "http://a.example/p?a=1&b=2"


def test_link_header_gives_canonical_and_page_links_but_not_resources() -> None:
    found = read_link_headers([
        '<https://a.example/x>; rel="canonical", </p/2>; rel="next"; title="a, <b>"',
        "</s.css>; rel=preload; as=style, </favicon.ico>; rel=icon",
        '<//b.example/y>;rel="alternate";hreflang=de, junk, <http://a.example/p/0>; rel=prev',
        "<mailto:x@a.example>; rel=next, <>; rel=up",
    ], "http://a.example/p/1")
    assert found.canonical == "https://a.example/x"
    assert found.links == ["http://a.example/p/2", "http://b.example/y", "http://a.example/p/0",
                           "http://a.example/p/1"]


def test_parse_html_reads_the_first_link_rel_canonical_resolved() -> None:
    body = (b'<html><head><link rel="stylesheet" href="/s.css">'
            b'<link rel="Canonical" href="../a/b?x=1#top"><link rel=canonical href="/no">'
            b'</head><body><a href="/c">c</a></body></html>')
    page = parse_html(body, "http://a.example/d/e")
    assert page.canonical == "http://a.example/a/b?x=1"
    assert page.links == ["http://a.example/c"]  # a <link> is not a link to follow
    assert parse_html(b"<html><head><title>t</title></head></html>",
                      "http://a.example/").canonical is None


NAMES = ["utm_source", "UTM_Term", "fbclid", "gclid", "jsessionid", "page", "q", "id", "sort",
         "sid", "ref"]


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.text("abc0123456789", max_size=20)),
                max_size=6),
       st.booleans())
def test_cleaning_keeps_the_other_parameters_in_order_and_is_idempotent(
        params: list[tuple[str, str]], sort: bool) -> None:
    cleaner = QueryCleaner(sort=sort)
    url = canonicalize("http://a.example/p" + ("?" + "&".join(f"{n}={v}" for n, v in params)
                                               if params else ""))
    cleaned = cleaner.clean(url)
    kept = [f"{n}={v}" for n, v in params if not cleaner.dropped(n, v)]
    assert cleaned == "http://a.example/p" + ("?" + "&".join(kept) if kept else "")
    tracking = {"utm_source", "utm_term", "fbclid", "gclid", "jsessionid"}
    assert not any(part.partition("=")[0].lower() in tracking
                   for part in cleaned.partition("?")[2].split("&"))
    assert canonicalize(cleaned) == cleaned  # still canonical: no second pass needed
    assert cleaner.clean(cleaned) == cleaned and cleaner.key(cleaner.key(url)) == cleaner.key(url)
