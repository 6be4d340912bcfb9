"""The PDF links example hook (examples/pdf_links.py): a PDF's link annotations are followed.

Skipped without pypdf (a test extra: pip install -c requirements/lock.txt -e '.[test]').
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from politeness_site import Site, by_url, crawl, html
from redis.asyncio import Redis

from crawler.config import Settings

pypdf = pytest.importorskip("pypdf", reason="pypdf is not installed (a test extra)")

ROOT = Path(__file__).resolve().parent.parent
IP = "127.0.0.2"


@pytest.fixture(autouse=True)
def examples_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))


def pdf_with_links(*pages: list[str]) -> bytes:
    """A PDF of blank pages, each with a link annotation (a /URI action) per URL given."""
    from pypdf.annotations import Link

    writer = pypdf.PdfWriter()
    for number, urls in enumerate(pages):
        writer.add_blank_page(width=200, height=200)
        for i, url in enumerate(urls):
            writer.add_annotation(number, Link(rect=(10, 10 + 20 * i, 90, 25 + 20 * i), url=url))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_uris_reads_link_annotations_in_page_order() -> None:
    from examples.pdf_links import pdf_uris

    body = pdf_with_links(["http://a.example/1", "/rel"], [], ["http://a.example/1",
                                                               "mailto:x@a.example"])
    assert pdf_uris(body) == (3, ["http://a.example/1", "/rel", "mailto:x@a.example"])
    assert pdf_uris(body, max_pages=1) == (3, ["http://a.example/1", "/rel"])


async def test_a_pdfs_links_are_crawled_with_the_hook_and_not_without(
        redis: Redis, settings: Settings) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/":
            return html("/doc.pdf", "/broken.pdf")
        if request.path == "/doc.pdf":
            body = pdf_with_links(["/from-pdf", site.url(IP, "/also?x=1")], ["mailto:a@b.c"])
            return web.Response(body=body, content_type="application/pdf")
        if request.path == "/broken.pdf":
            return web.Response(body=b"%PDF-1.7\nnot really", content_type="application/pdf")
        return html(title=request.path)

    with Site(handler, ips=(IP,)) as site:
        without = by_url(await crawl(redis, settings.replace(crawl="plain"), [site.url(IP, "/")]))
        assert site.url(IP, "/from-pdf") not in without
        found = by_url(await crawl(redis, settings.replace(extract="examples.pdf_links:page"),
                                   [site.url(IP, "/")]))
        hits = Counter(site.paths(IP))
    assert hits["/from-pdf"] == hits["/also?x=1"] == 1
    assert found[site.url(IP, "/doc.pdf")]["data"] == {
        "pdf_pages": 2, "pdf_links": ["/from-pdf", site.url(IP, "/also?x=1")]}
    assert found[site.url(IP, "/from-pdf")]["depth"] == 2
    broken = found[site.url(IP, "/broken.pdf")]
    assert "pdf_error" in broken["data"] and broken["error"] is None
    assert found[site.url(IP, "/")]["data"] is None  # HTML: the hook returns at once
