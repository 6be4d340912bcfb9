"""How to pull title and links out of a page with lxml: measured on our benchmark pages.

``python bench/parse_bench.py [--page-bytes 27000 --links 60]`` prints µs per page for:

- tree+iter: build the tree with etree.HTMLParser, walk ``iter(tags)`` (C filter);
- tree+iter, shared parser: the same with one parser object per charset;
- target: a parser target getting only start/end/data callbacks, no tree;
- iterparse: ``etree.iterparse(..., html=True, tag=...)`` events;
- lxml.html+xpath: ``lxml.html.fromstring`` and ``//a/@href`` (the ceiling's way);
- parse_html: the crawler's whole extraction, links resolved and canonicalized.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import Any

import lxml.html
from lxml import etree

from crawler.bench.sitegen import SiteSpec, page_html
from crawler.pages.parse import parse_html

TAGS = ("title", "base", "meta", "a")


def tree_iter(body: bytes, parser: Any = None) -> tuple[str | None, list[str]]:
    parser = parser or etree.HTMLParser(encoding="utf-8", no_network=True)
    root = etree.fromstring(body, parser)
    title, hrefs = None, []
    for el in root.iter(*TAGS):
        if el.tag == "a":
            href = el.get("href")
            if href is not None:
                hrefs.append(href)
        elif el.tag == "title" and title is None:
            title = el.text
    return title, hrefs


class _Target:
    def __init__(self) -> None:
        self.hrefs: list[str] = []
        self.title: list[str] = []
        self.in_title = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        if tag == "a":
            href = attrib.get("href")
            if href is not None:
                self.hrefs.append(href)
        elif tag == "title":
            self.in_title = True

    def end(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False

    def data(self, text: str) -> None:
        if self.in_title:
            self.title.append(text)

    def close(self) -> None:
        pass


def target(body: bytes) -> tuple[str | None, list[str]]:
    t = _Target()
    parser = etree.HTMLParser(target=t, encoding="utf-8", no_network=True)
    etree.fromstring(body, parser)
    return "".join(t.title), t.hrefs


def iterparse(body: bytes) -> tuple[str | None, list[str]]:
    title, hrefs = None, []
    for _, el in etree.iterparse(io.BytesIO(body), events=("end",), tag=TAGS, html=True,
                                 encoding="utf-8", no_network=True):
        if el.tag == "a":
            href = el.get("href")
            if href is not None:
                hrefs.append(href)
        elif el.tag == "title" and title is None:
            title = el.text
    return title, hrefs


def html_xpath(body: bytes) -> tuple[str | None, list[str]]:
    doc = lxml.html.fromstring(body)
    return doc.findtext(".//title"), list(doc.xpath("//a/@href"))  # type: ignore[arg-type]


def timeit(fn: Callable[[bytes], object], pages: list[bytes], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for body in pages:
            fn(body)
        best = min(best, time.perf_counter() - started)
    return best / len(pages) * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--page-bytes", type=int, default=27_000)
    p.add_argument("--links", type=int, default=60)
    p.add_argument("--pages", type=int, default=200)
    args = p.parse_args()
    spec = SiteSpec(hosts=20, pages=500, links=args.links, page_bytes=args.page_bytes, port=8080)
    pages = [page_html.__wrapped__(spec, i % 20, i) for i in range(args.pages)]
    shared = etree.HTMLParser(encoding="utf-8", no_network=True)
    url = spec.origin(0) + "/p/0.html"
    counts = {len(tree_iter(b)[1]) for b in pages} | {len(target(b)[1]) for b in pages}
    assert counts == {args.links}, counts
    cases: list[tuple[str, Callable[[bytes], object]]] = [
        ("tree+iter", tree_iter),
        ("tree+iter, shared parser", lambda b: tree_iter(b, shared)),
        ("target (no tree)", target),
        ("iterparse html=True", iterparse),
        ("lxml.html + xpath", html_xpath),
        ("parse_html (whole, links resolved)", lambda b: parse_html(b, url, "utf-8")),
    ]
    print(f"{len(pages)} pages of ~{len(pages[0])} B, {args.links} links; best of 5, µs/page")
    for name, fn in cases:
        print(f"{name:<38}{timeit(fn, pages):8.1f}")


if __name__ == "__main__":
    main()
