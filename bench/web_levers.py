"""The levers of issue 22 on the web benchmark's pages and the Python docs, one at a time.

``python bench/web_levers.py [--docs 300] [--out bench/results/web-levers.json]`` prints,
CPU ms a page (process time, best of several rounds):

- inflate: the standard zlib, zlib-ng and isal (those installed) on the ~80 KB
  gzip pages of ``crawl bench --web``;
- links: ``crawler.urls.resolve`` and ada-url's ``join_url`` (WHATWG, in C)
  on every href of those pages and of the docs, and where the two disagree;
- parse: lxml (``parse_html``'s tree and walk) and selectolax's lexbor
  parser, their titles and link counts compared page by page.

The docs are Debian's python3.11-doc (/usr/share/doc/python3.11/html).
Optional packages missing are reported as such.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lxml import etree

from crawler.bench.websitegen import WebSpec, web_page
from crawler.errors import InvalidURL
from crawler.pages.parse import clean_title, parse_html
from crawler.urls import resolve

DOCS = Path("/usr/share/doc/python3.11/html")
DOCS_ORIGIN = "https://docs.python.org/3.11/"


def best_ms(fns: dict[str, Callable[[Any], Any]], items: list[Any],
            rounds: int = 7) -> dict[str, float]:
    """CPU ms an item of each function, best of ``rounds``, the functions taking turns
    in each round: on a shared machine the load changes by the second, so
    alternatives measured one after the other would be measured under different load."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.process_time()
            for item in items:
                fn(item)
            best[name] = min(best[name], (time.process_time() - t) / len(items))
    return {name: round(b * 1000, 4) for name, b in best.items()}


def optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def inflate(gzips: list[bytes]) -> dict[str, float]:
    fns = {}
    for name, module in [("zlib", zlib), ("zlib-ng", optional("zlib_ng.zlib_ng")),
                         ("isal", optional("isal.isal_zlib"))]:
        if module is not None:
            fns[name] = (lambda data, m=module:
                         m.decompressobj(wbits=16 + m.MAX_WBITS).decompress(data))
    return best_ms(fns, gzips)


def hrefs_of(body: bytes) -> list[str]:
    root = etree.fromstring(body, etree.HTMLParser(encoding="utf-8", no_network=True))
    return [h for el in root.iter("a") if (h := el.get("href")) is not None]


def links(pages: list[tuple[str, bytes]]) -> dict[str, Any]:
    ada = optional("ada_url")
    pairs = [(url, href.strip()) for url, body in pages for href in hrefs_of(body)]
    pairs = [(u, h) for u, h in pairs
             if h and not h.startswith(("#", "javascript:", "mailto:", "tel:", "data:"))]

    def ours(pair: tuple[str, str]) -> str | None:
        try:
            return resolve(*pair)
        except (InvalidURL, ValueError):
            return None

    out: dict[str, Any] = {"links": len(pairs)}
    if ada is None:
        us = best_ms({"resolve": ours}, pairs, 3)["resolve"] * 1000
        return {**out, "resolve_us": round(us, 3), "ada": "not installed"}

    def theirs(pair: tuple[str, str]) -> str | None:
        try:
            joined: str = ada.join_url(*pair)
        except ValueError:
            return None
        joined = joined.split("#", 1)[0]
        return joined if joined.startswith(("http://", "https://")) else None

    times = best_ms({"resolve": ours, "ada": theirs}, pairs, 3)
    out["resolve_us"] = round(times["resolve"] * 1000, 3)
    out["ada_join_us"] = round(times["ada"] * 1000, 3)
    differ = [(u, h, ours((u, h)), theirs((u, h))) for u, h in pairs]
    differ = [d for d in differ if d[2] != d[3]]
    out["disagree"] = len(differ)
    out["disagree_examples"] = sorted({(h, o, t) for _, h, o, t in differ})[:12]
    return out


def ada_on_property_urls(examples: int = 2000) -> dict[str, Any]:
    """ada-url against ``resolve`` on hrefs drawn from tests/test_properties.py's URLs."""
    ada = optional("ada_url")
    if ada is None or optional("hypothesis") is None:
        return {"ada": "not installed (or hypothesis)"}
    import sys

    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from test_properties import urls

    base = "https://example.com/a/b.html"
    found: dict[str, Any] = {"hrefs": 0, "disagree": 0, "examples": []}

    def ours(href: str) -> str | None:
        try:
            return resolve(base, href)
        except (InvalidURL, ValueError):
            return None

    def theirs(href: str) -> str | None:
        try:
            joined: str = ada.join_url(base, href).split("#", 1)[0]
        except ValueError:
            return None
        return joined if joined.startswith(("http://", "https://")) else None

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(urls)
    def compare(href: str) -> None:
        found["hrefs"] += 1
        if ours(href) != theirs(href):
            found["disagree"] += 1
            if len(found["examples"]) < 6:
                found["examples"].append((href, ours(href), theirs(href)))

    compare()
    return found


def lexbor_page(body: bytes) -> tuple[str | None, int]:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(body.decode("utf-8", "replace"))
    title = tree.css_first("title")
    return (clean_title(title.text()) if title is not None else None,
            len(tree.css("a[href]")))


def parse(pages: list[tuple[str, bytes]]) -> dict[str, Any]:
    out: dict[str, Any] = {"pages": len(pages)}
    fns: dict[str, Callable[[Any], Any]] = {
        "parse_html_ms": lambda p: parse_html(p[1], p[0], "utf-8"),
        "lxml_tree_ms": lambda p: etree.fromstring(
            p[1], etree.HTMLParser(encoding="utf-8", no_network=True))}
    if optional("selectolax") is None:
        return {**out, **best_ms(fns, pages, 5), "lexbor": "not installed"}
    from selectolax.lexbor import LexborHTMLParser

    from crawler.pages.parse_lexbor import parse_page

    fns["lexbor_tree_ms"] = lambda p: LexborHTMLParser(p[1].decode("utf-8", "replace"))
    fns["parse_page_lexbor_ms"] = lambda p: parse_page(p[1], p[0], "utf-8", parser="lexbor")
    out.update(best_ms(fns, pages, 5))
    differ = []
    for url, body in pages:
        page = parse_html(body, url, "utf-8")
        theirs = lexbor_page(body)
        if (page.title, page.link_count) != theirs:
            differ.append((url, page.title, page.link_count, *theirs))
    out["disagree"] = len(differ)
    out["disagree_examples"] = differ[:8]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=60, help="web bench pages to use")
    parser.add_argument("--docs", type=int, default=300, help="docs pages to use")
    parser.add_argument("--out", default="bench/results/web-levers.json")
    args = parser.parse_args()
    spec = WebSpec(port=8443)
    made = [(f"{spec.origin(h)}/p/{i}.html", *web_page(spec, h, i))
            for h in range(max(1, args.pages // 20)) for i in range(20)]
    site = [(url, html) for url, html, _ in made]
    docs = [(DOCS_ORIGIN + str(p.relative_to(DOCS)), p.read_bytes())
            for p in sorted(DOCS.rglob("*.html"))[:args.docs]] if DOCS.is_dir() else []
    report: dict[str, Any] = {
        "inflate_ms": inflate([gz for _, _, gz in made]),
        "links_site": links(site), "links_docs": links(docs) if docs else "no docs",
        "links_property_tests": ada_on_property_urls(),
        "parse_site": parse(site), "parse_docs": parse(docs) if docs else "no docs",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    text = json.dumps(report, indent=1)  # ASCII: examples may hold lone surrogates
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
