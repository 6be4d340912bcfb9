"""Links from the HTTP ``Link:`` header (RFC 8288): a page's canonical, and pages to crawl.

Any response may carry them, HTML or not: a PDF's ``Link: <...>; rel="canonical"``
is how a site names the HTML page a document belongs to. Of the relations, the
ones naming other pages of the same work are links to crawl (``LINK_RELS``:
next, prev, previous, first, last, up, alternate); the rest name resources of
this page (``preload``, ``stylesheet``, ``icon``...) or other sites' services
(``webmention``...), not pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crawler.errors import InvalidURL
from crawler.urls import resolve

LINK_RELS = frozenset({"next", "prev", "previous", "first", "last", "up", "alternate"})
"""Link relations whose targets are crawled like <a href> links."""

MAX_LINK_HEADER_CHARS = 16_384
"""Header text read at most: a hostile server's megabyte of Link values costs no more."""

_TARGET = re.compile(r"\s*,?\s*<([^>]*)>")
_PARAM = re.compile(r'\s*;\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*'
                    r'(?:=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*))?')


@dataclass(slots=True)
class HeaderLinks:
    """What a response's ``Link`` headers say: its canonical URL and its links (canonical)."""

    canonical: str | None = None
    links: list[str] = field(default_factory=list)


def _rels(params: str) -> set[str]:
    rels: set[str] = set()
    for name, value in _PARAM.findall(params):
        if name.lower() == "rel" and value:
            rels.update(value.strip('"').lower().split())
    return rels


def _take(out: HeaderLinks, base: str, href: str, rels: set[str]) -> None:
    try:
        url = resolve(base, href)
    except (InvalidURL, ValueError):
        return
    if "canonical" in rels and out.canonical is None:
        out.canonical = url
    if rels & LINK_RELS and url not in out.links:
        out.links.append(url)


def read_link_headers(values: list[str], base: str) -> HeaderLinks:
    """Parse every ``Link`` header value; URLs are resolved against ``base`` (the final URL).

    Never raises: an unusable target or a malformed value is skipped.
    """
    out = HeaderLinks()
    text = ",".join(values)[:MAX_LINK_HEADER_CHARS]
    pos = 0
    while True:
        target = _TARGET.match(text, pos)
        if target is None:
            break
        params_start = pos = target.end()
        while (param := _PARAM.match(text, pos)) is not None and param.end() > pos:
            pos = param.end()
        rels = _rels(text[params_start:pos])
        if rels & LINK_RELS or ("canonical" in rels and out.canonical is None):
            _take(out, base, target.group(1), rels)
        # Skip to the next target: anything unparsable up to the next "<".
        next_target = text.find("<", pos)
        if next_target < 0:
            break
        pos = next_target
    return out
