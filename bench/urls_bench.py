"""Link resolution + canonicalization, measured on our benchmark pages: urllib vs yarl vs w3lib.

``python bench/urls_bench.py`` takes every ``<a href>`` of a sample of the
benchmark site's pages (27 KB, 60 links, fragments, other hosts) and times,
in µs per link, turning (page URL, href) into a canonical absolute URL:

- ``crawler.urls.resolve``: what the crawler uses (string-slicing join, a
  cache, an already-canonical fast path), cold cache and warm;
- ``urljoin + canonicalize``: the previous way (urllib), cold and warm;
- yarl: ``URL(base).join(URL(href))`` without fragment (yarl's own
  normalization, which is not ours: no IDNA for some forms, no percent-escape
  case folding);
- w3lib: ``canonicalize_url(urljoin(...))``, Scrapy's canonicalizer (it also
  sorts query arguments, which we deliberately do not).

With query cleaning (``crawler.frontier.query_clean``, on by default) each
link also gets its dedup key: timed on the same links, cold and warm, and on
the same links carrying tracking and session parameters.

It also counts how often each library's output differs from ours on a set of
awkward URLs, since speed only counts for the same answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urljoin

from lxml import etree

from crawler.bench.sitegen import SiteSpec, page_html
from crawler.frontier.query_clean import QueryCleaner
from crawler.urls import _canonicalize, canonicalize, resolve

AWKWARD = [
    ("http://Example.COM:80/a/b", "../c/./d?x=1#f"),
    ("http://example.com/", "/%7Euser/%e2%82%ac"),
    ("http://example.com/", "HTTP://münchen.DE/path"),
    ("http://example.com/", "//[2001:DB8::1]:8080/x"),
    ("http://example.com/a/", "b c?q=a b"),
    ("http://example.com/", "/a?b=2&a=1"),
    ("http://example.com/", "?"),
    ("http://example.com/a/b", "%2e%2e/c"),
    ("http://example.com/", "/100%"),
    ("https://example.com:443/", "x"),
]


def _hrefs(pages: int = 100) -> list[tuple[str, str]]:
    spec = SiteSpec(hosts=20, pages=500, links=60, page_bytes=27_000, port=8080)
    pairs = []
    for i in range(pages):
        h = i % spec.hosts
        url = f"{spec.origin(h)}/p/{i}.html"
        root = etree.fromstring(page_html.__wrapped__(spec, h, i), etree.HTMLParser())
        pairs += [(url, a.get("href") or "") for a in root.iter("a")]
    return pairs


def _ours(base: str, href: str) -> str:
    return resolve(base, href)


def _urllib(base: str, href: str) -> str:
    return canonicalize(urljoin(base, href))


def _urllib_uncached(base: str, href: str) -> str:
    return _canonicalize(urljoin(base, href))


def _yarl(base: str, href: str) -> str:
    import yarl

    return str(yarl.URL(base).join(yarl.URL(href)).with_fragment(None))


def _w3lib(base: str, href: str) -> str:
    from w3lib.url import canonicalize_url

    return canonicalize_url(urljoin(base, href))


CLEANER = QueryCleaner()
TRACKING_TAILS = ("?utm_source=news&utm_medium=email", "?id=7&fbclid=IwAR0abc",
                  ";jsessionid=0A1B2C3D4E5F", "?sid=9f8e7d6c5b4a39281706&page=2", "?q=a&b=c")


def _ours_cleaned(base: str, href: str) -> str:
    return CLEANER.key(resolve(base, href))


def _clear_all() -> None:
    canonicalize.cache_clear()
    CLEANER.clean.cache_clear()


def _with_tracking(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same links, each with one of TRACKING_TAILS (before any fragment)."""
    return [(base, href.partition("#")[0] + TRACKING_TAILS[i % len(TRACKING_TAILS)])
            for i, (base, href) in enumerate(pairs)]


def _time(fn: Callable[[str, str], str], pairs: list[tuple[str, str]],
          clear: Callable[[], None] | None = None) -> float:
    best = float("inf")
    for _ in range(5):
        if clear:
            clear()
        started = time.perf_counter()
        for base, href in pairs:
            fn(base, href)
        best = min(best, time.perf_counter() - started)
    return best / len(pairs) * 1e6


def main() -> None:
    pairs = _hrefs()
    print(f"{len(pairs)} links from 100 benchmark pages; best of 5, µs per link")
    cold = canonicalize.cache_clear
    cases: list[tuple[str, Callable[[str, str], str], Callable[[], None] | None]] = [
        ("resolve (ours), cold cache", _ours, cold),
        ("resolve (ours), warm cache", _ours, None),
        ("resolve + dedup key, cold caches", _ours_cleaned, _clear_all),
        ("resolve + dedup key, warm caches", _ours_cleaned, None),
        ("urljoin + canonicalize, no cache", _urllib_uncached, None),
        ("urljoin + canonicalize, warm cache", _urllib, None),
        ("yarl join", _yarl, None),
        ("w3lib canonicalize_url(urljoin)", _w3lib, None),
    ]
    for name, fn, clear in cases:
        try:
            print(f"{name:<38}{_time(fn, pairs, clear):7.2f}")
        except ImportError as exc:
            print(f"{name:<38}   (not installed: {exc.name})")
    tracked = _with_tracking(pairs)
    print(f"\nthe same links, each with tracking/session parameters "
          f"({len(TRACKING_TAILS)} kinds in turn)")
    for name, fn, clear in cases[:4]:
        print(f"{name:<38}{_time(fn, tracked, clear):7.2f}")
    print("\ndiffers from ours on the awkward URLs:")
    for name, fn in (("urllib", _urllib), ("yarl", _yarl), ("w3lib", _w3lib)):
        diffs = 0
        for base, href in AWKWARD:
            try:
                if fn(base, href) != resolve(base, href):
                    diffs += 1
            except ImportError:
                diffs = -1
                break
            except Exception:  # a library refusing a URL we accept is a difference too
                diffs += 1
        print(f"{name:<10}" + (f"{diffs}/{len(AWKWARD)}" if diffs >= 0 else "(not installed)"))


if __name__ == "__main__":
    main()
