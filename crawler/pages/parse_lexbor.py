"""``parse_html`` on selectolax's lexbor parser (``html_parser = "lexbor"``), and the choice.

lexbor is an HTML5 parser in C; on the Python docs it built the tree in
under half the time lxml takes, the whole extraction in 38% less, and in
crawl bench's worker processes it took 0.2-0.3 ms a page off (README,
Performance). It is the default; the tree an extraction hook gets is always
lxml's (``keep_tree`` goes to lxml). The SimHash comes from lexbor's tree
too, by the same rule as from lxml's (``visible_text``): the same hash on
every page of the Python docs and the benchmark site.

What it returns agrees with ``parse_html``: charset detection, title,
link count, links (resolved by ``crawler.urls.resolve``, in page order),
``<base href>``, robots meta; checked page by page on the Python docs and
the generated site (tests/test_parse_lexbor.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crawler.pages.parse import (
    Page,
    base_url,
    clean_title,
    detect_charset,
    finish,
    parse_html,
    robots_meta,
)

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

_WANTED = "title, base[href], meta[name], a[href], link[rel]"
_HIDDEN_TAGS = ("noscript", "script", "style")
"""Elements whose text is in the body's textContent and not seen, cut in this
order. noscript first: its content is markup in lexbor's tree and may hold a
style or a script, whose text goes with it (cut first, the inner one would
leave the noscript's text unfound, and its words visible). A ``<template>``'s
content is a fragment of its own in lexbor's tree, outside the body's
textContent (its own is empty): nothing to cut, so no walk."""


def _in_body(node: LexborNode) -> bool:
    """Whether an element found in the whole document lies in its body."""
    parent = node.parent
    while parent is not None:
        tag = parent.tag
        if tag == "body":
            return True
        if tag in ("head", "html"):
            return False
        parent = parent.parent
    return False


def parse_page(body: bytes, url: str, header_charset: str | None = None, *,
               follow_nofollow: bool = False, keep_tree: bool = False,
               simhash: bool = False, parser: str = "lexbor") -> Page:
    """``parse_html`` with the ``html_parser`` setting: lexbor unless it is "lxml" or a
    hook needs the lxml tree (``keep_tree``)."""
    if parser == "lexbor" and not keep_tree:
        return parse_html_lexbor(body, url, header_charset, follow_nofollow=follow_nofollow,
                                 simhash=simhash)
    return parse_html(body, url, header_charset, follow_nofollow=follow_nofollow,
                      keep_tree=keep_tree, simhash=simhash)


def visible_text(tree: LexborHTMLParser) -> str:
    """The body's text without script, style, noscript or template, as
    ``crawler.pages.simhash.visible_text`` takes it from lxml's tree: the
    whole text, then each hidden element's text cut out, leaving a space.

    lexbor's own textContent (``text_lexbor``), not selectolax's ``text()``:
    the same text (checked on every page of the Python docs), and on the
    benchmark's pages 0.16 M instructions a page against 0.36 M (``text()``
    calls back into Cython for each of its ~1,000 text nodes). The hidden
    elements are found by name (``tags``, one walk of the tree in C each,
    0.05 M instructions a page): 0.14 M against 0.36 M for the CSS selector
    "script, style, noscript, template", which selectolax parses anew on
    every call and matches against every node. lxml's path cuts in document
    order; by name, the order differs only between siblings, and that
    changes the text only where one hidden element's text is also part of
    another's or of the visible text (each cut takes the text's first
    occurrence, in both). (A scan of the page's bytes
    for the tags, to skip a walk for a name that is not there, cost 0.1 M on
    the benchmark's 27 KB pages: more than it saved on a page with a script.)"""
    body = tree.body
    if body is None:
        return ""
    text = body.text_lexbor()
    for name in _HIDDEN_TAGS:
        for element in tree.tags(name):
            part = element.text_lexbor()
            if part and part in text and _in_body(element):
                text = text.replace(part, " ", 1)
    return text


def parse_html_lexbor(body: bytes, url: str, header_charset: str | None = None, *,
                      follow_nofollow: bool = False, simhash: bool = False) -> Page:
    """Title, links and robots directives of a page, like ``parse_html``. Never raises.

    ``simhash``: also the SimHash of its visible text, from the same tree."""
    from selectolax.lexbor import LexborHTMLParser

    charset = detect_charset(body, header_charset)
    page = Page(charset=charset)
    if not body or body.isspace():
        return page
    try:
        text = body.decode(charset, "replace")
    except (UnicodeError, LookupError):
        return page
    # As lxml reads them: a byte-order mark is no text (lexbor would start the
    # body at it, and put the <title> after it there), and a NUL is U+FFFD
    # (lexbor drops it), so both parsers see the same visible text.
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        tree = LexborHTMLParser(text)
    except ValueError:
        return page
    base = url
    hrefs: list[str] = []
    canonical_href: str | None = None
    for el in tree.css(_WANTED):  # one walk, in document order
        tag = el.tag
        attrs = el.attributes
        if tag == "a":
            href = attrs.get("href") or ""  # a bare ``href`` is an empty one, as in lxml
            page.link_count += 1
            if not follow_nofollow:
                rel = attrs.get("rel")
                if rel and "nofollow" in rel.lower().split():
                    continue
            hrefs.append(href)
        elif tag == "title":
            if page.title is None:
                page.title = clean_title(el.text(deep=True))
        elif tag == "base":
            base_href = attrs.get("href")
            if base_href and base is url:
                base = base_url(url, base_href)
        elif tag == "link":
            if canonical_href is None and "canonical" in (attrs.get("rel") or "").lower().split():
                canonical_href = attrs.get("href")
        elif tag == "meta":
            robots_meta(page, attrs.get("name"), attrs.get("content"))
    if simhash:
        from crawler.pages.simhash import text_simhash_weak

        page.simhash, page.simhash_weak = text_simhash_weak(
            visible_text(tree).encode("utf-8", "replace"))
    return finish(page, base, hrefs, canonical_href)
