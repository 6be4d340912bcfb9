"""Extraction hook: follow the links of PDF documents, read with pypdf (``pip install pypdf``).

    crawl worker --extract examples.pdf_links:page --extract-in-thread

The crawler follows links of HTML pages (and of any response's ``Link:``
header) by itself; a PDF's links are in its link annotations (``/Annots``,
``/Subtype /Link`` with a ``/URI`` action), which only a PDF library reads.
pypdf is pure Python: reading a PDF costs milliseconds a page, so this runs
as a hook, off the crawler's fast path, and only on PDF responses (HTML pages
return at once). ``--extract-in-thread`` keeps the event loop answering while
a long PDF is read.

Record: ``"data": {"pdf_pages": 12, "pdf_links": ["https://...", ...]}`` (the
URIs followed, as the PDF writes them), or ``{"pdf_error": "..."}`` for a PDF pypdf cannot
read (a body cut at ``max_body_bytes`` is one: its cross-reference table is
at the end). Links go through the crawl's scope and dedup like any link.
"""

from __future__ import annotations

import io
from typing import Any

import crawler

MAX_PDF_PAGES = 500
"""Pages read at most: a 10,000-page PDF costs no more than this many."""


def is_pdf(p: crawler.Page) -> bool:
    content_type = p.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    return content_type == "application/pdf" or p.body[:5] == b"%PDF-"


def pdf_uris(body: bytes, max_pages: int = MAX_PDF_PAGES) -> tuple[int, list[str]]:
    """(pages, URIs of the link annotations in page order, unique), from a PDF's bytes."""
    from pypdf import PdfReader  # lazily: only PDF responses need it

    reader = PdfReader(io.BytesIO(body), strict=False)
    uris: dict[str, None] = {}
    for pdf_page in reader.pages[:max_pages]:
        for ref in pdf_page.get("/Annots") or []:
            annotation = ref.get_object()
            if annotation.get("/Subtype") != "/Link":
                continue
            action = annotation.get("/A")
            action = action.get_object() if action is not None else None
            if action is not None and action.get("/S") == "/URI" and action.get("/URI"):
                uris[str(action["/URI"])] = None
    return len(reader.pages), list(uris)


def page(p: crawler.Page) -> dict[str, Any] | None:
    if p.tree is not None or not is_pdf(p):  # HTML, or not a PDF: nothing to do
        return None
    from pypdf.errors import PyPdfError

    try:
        pages, uris = pdf_uris(p.body)
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        return {"pdf_error": f"{type(exc).__name__}: {exc}"}
    followed = [uri for uri in uris if p.follow(uri)]  # False: not a crawlable URL (mailto:)
    return {"pdf_pages": pages, "pdf_links": followed}
