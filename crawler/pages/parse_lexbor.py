"""``parse_html`` on selectolax's lexbor parser (``html_parser = "lexbor"``), and the choice.

lexbor is an HTML5 parser in C; on the Python docs it built the tree in
under half the time lxml takes, the whole extraction in 38% less (README,
Performance; on simple generated markup the two were closer). It is optional (``pip install
'crawler[lexbor]'``): lxml stays the default, and the tree an extraction hook
gets is always lxml's (``keep_tree`` goes to lxml).

What it returns agrees with ``parse_html``: charset detection, title,
link count, links (resolved by ``crawler.urls.resolve``, in page order),
``<base href>``, robots meta; checked page by page on the Python docs and
the generated site (tests/test_parse_lexbor.py).
"""

from __future__ import annotations

from crawler.pages.parse import (
    Page,
    base_url,
    clean_title,
    detect_charset,
    finish,
    parse_html,
    robots_meta,
)

_WANTED = "title, base[href], meta[name], a[href], link[rel]"


def parse_page(body: bytes, url: str, header_charset: str | None = None, *,
               follow_nofollow: bool = False, keep_tree: bool = False,
               simhash: bool = False, parser: str = "lxml") -> Page:
    """``parse_html`` with the ``html_parser`` setting: lexbor unless it is "lxml", a
    hook needs the lxml tree (``keep_tree``) or the SimHash is wanted (it is
    computed on lxml's tree: ``near_duplicates = true``)."""
    if parser == "lexbor" and not keep_tree and not simhash:
        return parse_html_lexbor(body, url, header_charset, follow_nofollow=follow_nofollow)
    return parse_html(body, url, header_charset, follow_nofollow=follow_nofollow,
                      keep_tree=keep_tree, simhash=simhash)


def parse_html_lexbor(body: bytes, url: str, header_charset: str | None = None, *,
                      follow_nofollow: bool = False) -> Page:
    """Title, links and robots directives of a page, like ``parse_html``. Never raises."""
    from selectolax.lexbor import LexborHTMLParser

    charset = detect_charset(body, header_charset)
    page = Page(charset=charset)
    if not body or body.isspace():
        return page
    try:
        tree = LexborHTMLParser(body.decode(charset, "replace"))
    except (ValueError, UnicodeError, LookupError):
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
    return finish(page, base, hrefs, canonical_href)
