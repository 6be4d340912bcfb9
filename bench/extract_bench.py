"""What an extraction hook costs a page: CPU ms of each example hook on two kinds of pages.

``python bench/extract_bench.py`` prints, per page set, the CPU time per page of:

- parse_html: what the worker does anyway (tree, title, links), for scale;
- the hook examples/headings_lxml.py on the tree parse_html kept;
- the hook examples/headings_bs4.py, which builds a BeautifulSoup first.

Page sets: the benchmark site's pages (``crawl bench``: 27 KB, 60 links) and
the generated docs site (crawler.bench.docsite), plus Debian's Python docs
(``apt-get install python3.11-doc``) when installed. Best of 3 rounds.

It then checks, on every page of every set (all 530 files of the Python docs,
read straight from disk, no crawl), that the two hooks return the same record:
it prints ``agree on N of N pages`` per set and exits 1 on any difference,
naming the page. ``--agree-only`` skips the timing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.bench.docsite import docs_page
from crawler.bench.sitegen import SiteSpec, page_html
from crawler.net.fetch import Response
from crawler.pages.extract import Page
from crawler.pages.parse import parse_html

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import headings_bs4
import headings_lxml

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html")
URL = "http://127.0.0.2/p/0.html"


def page_sets() -> dict[str, list[tuple[str, bytes]]]:
    """Each set's pages, as (name, body)."""
    spec = SiteSpec(hosts=1, pages=300, links=60, page_bytes=27_000)
    sets = {"bench site (27 KB, 60 links)": [(f"p/{i}.html", page_html(spec, 0, i))
                                             for i in range(300)],
            "generated docs site": [(f"docs/{i}", docs_page(300, i)) for i in range(300)]}
    if PYTHON_DOCS.is_dir():
        files = sorted(PYTHON_DOCS.rglob("*.html"))
        sets[f"Python 3.11 docs ({len(files)} pages)"] = [
            (str(p.relative_to(PYTHON_DOCS)), p.read_bytes()) for p in files]
    return sets


def make_page(body: bytes, url: str = URL) -> Page:
    """What the worker hands a hook for ``body``: the response, and the parse it kept."""
    response = Response(url=url, final_url=url, status=200, content_type="text/html",
                        charset=None, body=body, headers={}, elapsed=0.0)
    return Page(response, parse_html(body, url, None, keep_tree=True))


def disagreements(pages: list[tuple[str, bytes]]) -> list[str]:
    """The pages on which the lxml and bs4 hooks return different records, or no headings
    (a page with none would make the comparison empty)."""
    differ = []
    for name, body in pages:
        by_lxml = headings_lxml.page(make_page(body))
        by_bs4 = headings_bs4.page(make_page(body))
        if by_lxml != by_bs4 or not by_lxml or not by_lxml["headings"]:
            differ.append(f"{name}: lxml {by_lxml!r}, bs4 {by_bs4!r}")
    return differ


def cpu_ms_per_page(bodies: list[bytes], work: Callable[[bytes], Any]) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for body in bodies:
            work(body)
        best = min(best, time.process_time() - started)
    return best * 1000 / len(bodies)


def timings(bodies: list[bytes]) -> str:
    parsed = {id(b): parse_html(b, URL, None, keep_tree=True) for b in bodies}

    def page(body: bytes) -> Page:
        response = Response(url=URL, final_url=URL, status=200, content_type="text/html",
                            charset=None, body=body, headers={}, elapsed=0.0)
        return Page(response, parsed[id(body)])

    base = cpu_ms_per_page(bodies, lambda b: parse_html(b, URL, None))
    lxml_ms = cpu_ms_per_page(bodies, lambda b: headings_lxml.page(page(b)))
    bs4_ms = cpu_ms_per_page(bodies, lambda b: headings_bs4.page(page(b)))
    return (f"parse_html {base:.2f} ms/page; hook with lxml {lxml_ms:.2f} ms/page "
            f"({lxml_ms / base:.2f}x parse_html), with bs4 {bs4_ms:.2f} ms/page "
            f"({bs4_ms / base:.1f}x parse_html, {bs4_ms / lxml_ms:.0f}x the lxml hook)")


def main(argv: list[str]) -> int:
    failed = False
    for name, pages in page_sets().items():
        if "--agree-only" not in argv:
            print(f"{name}: {timings([body for _, body in pages])}")
        differ = disagreements(pages)
        print(f"{name}: the two hooks agree on {len(pages) - len(differ)} of {len(pages)} "
              f"pages")
        for line in differ[:10]:
            print(f"  differ: {line[:300]}")
        failed = failed or bool(differ)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
