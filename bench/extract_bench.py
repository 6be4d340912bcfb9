"""What an extraction hook costs a page: CPU ms of each example hook on two kinds of pages.

``python bench/extract_bench.py`` prints, per page set, the CPU time per page of:

- parse_html: what the worker does anyway (tree, title, links), for scale;
- the hook examples/headings_lxml.py on the tree parse_html kept;
- the hook examples/headings_bs4.py, which builds a BeautifulSoup first.

Page sets: the benchmark site's pages (``crawl bench``: 27 KB, 60 links) and
the generated docs site (crawler.bench.docsite), plus Debian's Python docs
(``apt-get install python3.11-doc``) when installed. Best of 3 rounds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.bench.docsite import docs_page
from crawler.bench.sitegen import SiteSpec, page_html
from crawler.extract import Page
from crawler.fetch import Response
from crawler.parse import parse_html

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import headings_bs4
import headings_lxml

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")


def page_sets() -> dict[str, list[bytes]]:
    spec = SiteSpec(hosts=1, pages=300, links=60, page_bytes=27_000)
    sets = {"bench site (27 KB, 60 links)": [page_html(spec, 0, i) for i in range(300)],
            "generated docs site": [docs_page(300, i) for i in range(300)]}
    if PYTHON_DOCS.is_dir():
        sets["Python 3.11 docs (530 pages)"] = [
            p.read_bytes() for p in sorted(PYTHON_DOCS.rglob("*.html"))]
    return sets


def cpu_ms_per_page(bodies: list[bytes], work: Callable[[bytes], Any]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for body in bodies:
            work(body)
        best = min(best, time.process_time() - started)
    return best * 1000 / len(bodies)


def main() -> None:
    url = "http://127.0.0.2/p/0.html"
    for name, bodies in page_sets().items():
        parsed = {id(b): parse_html(b, url, None, keep_tree=True) for b in bodies}

        def page(body: bytes, parsed: dict[int, Any] = parsed) -> Page:
            response = Response(url=url, final_url=url, status=200, content_type="text/html",
                                charset=None, body=body, headers={}, elapsed=0.0)
            return Page(response, parsed[id(body)])

        base = cpu_ms_per_page(bodies, lambda b: parse_html(b, url, None))
        lxml_ms = cpu_ms_per_page(bodies, lambda b: headings_lxml.page(page(b)))
        bs4_ms = cpu_ms_per_page(bodies, lambda b: headings_bs4.page(page(b)))
        print(f"{name}: parse_html {base:.2f} ms/page; hook with lxml {lxml_ms:.2f} ms/page "
              f"({lxml_ms / base:.2f}x parse_html), with bs4 {bs4_ms:.2f} ms/page "
              f"({bs4_ms / base:.1f}x parse_html, {bs4_ms / lxml_ms:.0f}x the lxml hook)")


if __name__ == "__main__":
    main()
