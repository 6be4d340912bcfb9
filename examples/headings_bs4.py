"""Extraction hook: headings and meta description, with BeautifulSoup (lxml parser).

    crawl worker --extract examples.headings_bs4:page

The same record as examples/headings_lxml.py. ``p.soup`` parses the page a
second time, in Python: see the README for what that costs a page.
"""

from __future__ import annotations

from typing import Any

import crawler

HEADINGS = ["h1", "h2", "h3", "h4", "h5", "h6"]


def clean(text: str) -> str:
    """Whitespace collapsed, a trailing permalink sign (Sphinx's ¶) dropped."""
    return " ".join(text.split()).removesuffix("¶").rstrip()


def page(p: crawler.Page) -> dict[str, Any] | None:
    if p.soup is None:  # not HTML
        return None
    headings = [clean(h.get_text()) for h in p.soup.find_all(HEADINGS)]
    meta = p.soup.find("meta", attrs={"name": "description"})
    content = meta.get("content") if meta else None
    return {"headings": headings, "description": (clean(str(content or ""))) or None}
