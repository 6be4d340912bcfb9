"""What a fetched response says about itself: title, links, robots directives, canonical.

Read from its headers (``X-Robots-Tag``; ``Link``: a canonical and links, for
any content type, a PDF's too) and, for HTML, from one parse of its body
(crawler.pages.parse_lexbor), whose tree the extraction hook may reuse. Where
both speak: the page's own links come first, then the header's not among
them; its ``<link rel=canonical>`` wins over the header's (the page's own
word; a header is often a server-wide rule); a ``noindex`` or ``nofollow``
from either holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crawler.pages.link_header import HeaderLinks, read_link_headers
from crawler.pages.parse import Page as ParsedPage
from crawler.pages.parse import x_robots_tag
from crawler.pages.parse_lexbor import parse_page

if TYPE_CHECKING:
    from crawler.config import Settings
    from crawler.net.fetch import Response


@dataclass(slots=True)
class PageSignals:
    """What one response says (``read_page_signals``)."""

    page: ParsedPage | None = None  # the parse of an HTML body
    title: str | None = None
    link_count: int = 0  # every <a href> on the page, followed or not
    links: list[str] = field(default_factory=list)  # to follow, canonical, each once
    noindex: bool = False
    nofollow: bool = False
    canonical: str | None = None


def read_page_signals(resp: Response, agent: str, settings: Settings, *,
                      keep_tree: bool) -> PageSignals:
    """``resp``'s signals; ``agent``: the product token X-Robots-Tag lines may name;
    ``keep_tree``: keep the parsed tree (for the extraction hook)."""
    headers = resp.header_lists or {}
    robots = x_robots_tag(headers.get("X-Robots-Tag", []), agent)
    link_values = headers.get("Link")
    declared = read_link_headers(link_values, resp.final_url) if link_values \
        else HeaderLinks()
    said = PageSignals(noindex=bool(robots & {"noindex", "none"}),
                       nofollow=bool(robots & {"nofollow", "none"}),
                       links=declared.links, canonical=declared.canonical)
    if not resp.is_html:
        return said
    page = parse_page(resp.body, resp.final_url, resp.charset,
                      follow_nofollow=settings.follow_nofollow, keep_tree=keep_tree,
                      simhash=settings.near_duplicates, parser=settings.html_parser)
    said.page, said.title, said.link_count = page, page.title, page.link_count
    said.noindex |= page.noindex
    said.nofollow |= page.nofollow
    said.links = page.links + [u for u in said.links if u not in page.links] if said.links \
        else page.links
    said.canonical = page.canonical or said.canonical
    return said
