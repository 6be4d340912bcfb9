"""Extraction hook: headings and meta description, from the lxml tree the crawler built.

    crawl worker --extract examples.headings_lxml:page

Record: ``"data": {"headings": ["Title", "1. Section", ...], "description": "..."}``.
"""

from __future__ import annotations

from typing import Any

import crawler

HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def clean(text: str) -> str:
    """Whitespace collapsed, a trailing permalink sign (Sphinx's ¶) dropped."""
    return " ".join(text.split()).removesuffix("¶").rstrip()


def page(p: crawler.Page) -> dict[str, Any] | None:
    if p.tree is None:  # not HTML
        return None
    # string(): the heading's text nodes only, no comments.
    headings = [clean(h.xpath("string()")) for h in p.tree.iter(*HEADINGS)]
    meta = p.tree.xpath('//meta[@name="description"]/@content')
    return {"headings": headings, "description": (clean(meta[0]) if meta else "") or None}
