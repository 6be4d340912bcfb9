"""HTML parsing with lxml: title, links, base href, robots meta, rel=canonical, charset.

lxml's C parser builds the tree and ``iter`` with tag names filters in C, so
Python only sees the few elements we need. Measured on 27 KB pages
(``bench/parse_bench.py``) this is faster than a parser target or
``iterparse`` that skip the tree: their per-element Python callbacks cost
more than the tree. Never raises on any input bytes.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

from lxml import etree

from crawler.errors import InvalidURL
from crawler.urls import resolve

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACE = re.compile(r"\s+")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
         (codecs.BOM_UTF16_BE, "utf-16-be"))
# Browsers read a page labelled iso-8859-1 or ascii as windows-1252 (WHATWG).
_WHATWG_ALIASES = {"iso8859-1": "cp1252", "ascii": "cp1252", "latin-1": "cp1252"}
MAX_TITLE_CHARS = 1000


@dataclass(slots=True)
class Page:
    """What the crawler keeps from an HTML page."""

    title: str | None = None
    link_count: int = 0  # every <a href> on the page, followed or not
    links: list[str] = field(default_factory=list)  # canonical, http(s), in page order, unique
    nofollow: bool = False  # robots meta says: follow no links from here
    noindex: bool = False
    charset: str | None = None
    canonical: str | None = None  # the first <link rel=canonical href>, canonical form
    tree: etree._Element | None = None  # the parsed tree, kept only when asked (keep_tree)
    simhash: int | None = None  # of the visible text, only when asked (crawler.pages.simhash)
    simhash_weak: int = 0  # its bits one word could flip (crawler.pages.simhash.weak_bits)


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    try:
        codec = codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None
    return _WHATWG_ALIASES.get(codec, codec)


def detect_charset(body: bytes, header_charset: str | None) -> str:
    """The page's charset: BOM, then Content-Type header, then <meta>, then a UTF-8 check."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    codec = _codec(header_charset)
    if codec:
        return codec
    match = _META_CHARSET.search(body, 0, 4096)
    if match:
        codec = _codec(match.group(1))
        if codec:
            return "utf-8" if codec.startswith("utf-16") else codec  # a lie in 8-bit bytes
    if body.isascii():
        return "utf-8"
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def clean_title(text: str | None) -> str | None:
    if text is None:
        return None
    text = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return text[:MAX_TITLE_CHARS]


def _parse_tree(body: bytes, charset: str) -> etree._Element | None:
    try:
        return etree.fromstring(body, etree.HTMLParser(encoding=charset, no_network=True))
    except LookupError:
        # A Python codec libxml2 does not know: decode here, hand lxml UTF-8.
        data = body.decode(charset, "replace").encode("utf-8", "replace")
        return etree.fromstring(data, etree.HTMLParser(encoding="utf-8", no_network=True))


def parse_html(body: bytes, url: str, header_charset: str | None = None, *,
               follow_nofollow: bool = False, keep_tree: bool = False,
               simhash: bool = False) -> Page:
    """Extract title, links and robots directives. ``url`` is the page's final URL.

    ``keep_tree``: keep the lxml tree in ``Page.tree`` (for an extraction hook).
    ``simhash``: also compute the SimHash of its visible text, from the same tree.
    """
    charset = detect_charset(body, header_charset)
    page = Page(charset=charset)
    if not body or body.isspace():
        return page
    try:
        root = _parse_tree(body, charset)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError, UnicodeError):
        return page
    if root is None:
        return page
    if keep_tree:
        page.tree = root
    if simhash:
        from crawler.pages.simhash import page_simhash_weak

        page.simhash, page.simhash_weak = page_simhash_weak(root)
    base = url
    hrefs: list[str] = []
    canonical_href: str | None = None
    for el in root.iter("title", "base", "meta", "a", "link"):
        tag = el.tag
        if tag == "a":
            href = el.get("href")
            if href is None:
                continue
            page.link_count += 1
            if not follow_nofollow:
                rel = el.get("rel")
                if rel and "nofollow" in rel.lower().split():
                    continue
            hrefs.append(href)
        elif tag == "title":
            if page.title is None:
                page.title = clean_title("".join(str(t) for t in el.itertext()))
        elif tag == "link":
            # Only rel=canonical: a <link> names the page's resources (styles,
            # icons) or its feeds, not pages to crawl.
            if canonical_href is None and "canonical" in (el.get("rel") or "").lower().split():
                canonical_href = el.get("href")
        elif tag == "base":
            href = el.get("href")
            if href and base is url:
                base = base_url(url, href)
        else:
            robots_meta(page, el.get("name"), el.get("content"))
    return finish(page, base, hrefs, canonical_href)


def robots_meta(page: Page, name: str | None, content: str | None) -> None:
    """A ``<meta name=robots|crawler>``'s nofollow / noindex (``none`` is both)."""
    if (name or "").lower() in ("robots", "crawler"):
        directives = {d.strip() for d in (content or "").lower().split(",")}
        page.nofollow |= bool(directives & {"nofollow", "none"})
        page.noindex |= bool(directives & {"noindex", "none"})


def finish(page: Page, base: str, hrefs: list[str], canonical_href: str | None) -> Page:
    """The page's canonical and links, resolved against ``base``, once it is walked."""
    if canonical_href and canonical_href.strip():
        page.canonical = resolve_canonical(base, canonical_href)
    resolve_links(page, base, hrefs)
    return page


def resolve_canonical(base: str, href: str) -> str | None:
    """A rel=canonical href, resolved; None if unusable (as if none was declared)."""
    try:
        return resolve(base, href.strip())
    except (InvalidURL, ValueError):
        return None


def resolve_links(page: Page, base: str, hrefs: list[str]) -> None:
    """Append the hrefs' canonical URLs to ``page.links``, in order, once each."""
    seen: set[str] = set()
    for href in hrefs:
        href = href.strip()
        if not href or href.startswith(_NOT_LINKS):
            continue
        try:
            link = resolve(base, href)
        except (InvalidURL, ValueError):
            continue
        if link not in seen:
            seen.add(link)
            page.links.append(link)


_NOT_LINKS = ("#", "javascript:", "mailto:", "tel:", "data:")


def base_url(url: str, href: str) -> str:
    """The page's <base href>, canonical (``resolve`` needs that); the page URL if unusable."""
    try:
        return resolve(url, href)
    except (InvalidURL, ValueError):
        return url


# Directives of X-Robots-Tag whose values contain a colon: "unavailable_after:
# 25 Jun 2010", "max-snippet: 20". Any other "name:" prefix names a user agent.
_VALUED_DIRECTIVES = frozenset({"unavailable_after", "max-snippet", "max-image-preview",
                                "max-video-preview"})


def x_robots_tag(values: list[str], agent: str) -> set[str]:
    """The X-Robots-Tag directives that apply to ``agent`` (a product token), lower case.

    Google's documented format: each header value is a comma-separated list
    of directives, optionally led by ``<user agent>:``, which scopes the
    directives after it (up to the next agent) to that crawler only. So
    ``otherbot: noindex`` says nothing to us, ``noindex`` says it to every
    crawler, and ``mybot: nofollow`` to us. Each header value starts again
    unscoped.
    """
    ours = agent.lower()
    out: set[str] = set()
    for value in values:
        scope: str | None = None  # None: every crawler
        for item in value.split(","):
            name, colon, rest = item.partition(":")
            name = name.strip().lower()
            if colon and name and name not in _VALUED_DIRECTIVES and " " not in name:
                scope, item = name, rest
            directive = item.strip().lower()
            if directive and (scope is None or scope == ours):
                out.add(directive.split(":", 1)[0].strip())
    return out
