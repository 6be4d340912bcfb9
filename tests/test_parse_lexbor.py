"""html_parser = "lexbor": the same title, link count, links, robots meta and SimHash as lxml.

Checked page by page on the Python docs (Debian's python3.11-doc), on the
web benchmark's generated site, and on small pages with the cases the
extraction handles (base href, nofollow, robots meta, charsets, odd markup).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.bench.websitegen import WebSpec, web_page
from crawler.pages.parse import Page, parse_html
from crawler.pages.parse_lexbor import parse_page

pytest.importorskip("selectolax.lexbor", reason="selectolax is not installed "
                                                "(pip install 'crawler[lexbor]')")
DOCS = Path("/usr/share/doc/python3.11/html")
URL = "https://example.com/dir/page.html"


def _both(body: bytes, url: str = URL, charset: str | None = None,
          follow_nofollow: bool = False, simhash: bool = True) -> tuple[Page, Page]:
    return (parse_html(body, url, charset, follow_nofollow=follow_nofollow, simhash=simhash),
            parse_page(body, url, charset, follow_nofollow=follow_nofollow, parser="lexbor",
                       simhash=simhash))


def _facts(page: Page) -> tuple[object, ...]:
    # The SimHash too: near-duplicates are judged across workers, whichever
    # parser each node runs.
    return (page.title, page.link_count, page.links, page.nofollow, page.noindex, page.charset,
            page.simhash)


@pytest.mark.skipif(not DOCS.is_dir(), reason="python3.11-doc is not installed "
                                              "(apt-get install python3.11-doc)")
def test_lexbor_agrees_with_lxml_on_every_page_of_the_python_docs() -> None:
    pages = sorted(DOCS.rglob("*.html"))
    assert len(pages) > 400
    differ = []
    for n, path in enumerate(pages):
        url = "https://docs.python.org/3.11/" + str(path.relative_to(DOCS))
        # The SimHashes on every third page (a third of the pages, every section): the
        # hash doubles the test's time, and the text rules are the same on all.
        lxml_page, lexbor_page = _both(path.read_bytes(), url, simhash=n % 3 == 0)
        if _facts(lxml_page) != _facts(lexbor_page):
            differ.append(url)
        elif lxml_page.link_count == 0:
            differ.append(f"{url}: no links at all")
    assert not differ, differ[:10]


def test_lexbor_agrees_with_lxml_on_the_web_benchmark_site() -> None:
    spec = WebSpec(hosts=3, pages=20, port=8443)
    for h in range(spec.hosts):
        for i in range(spec.pages):
            html, _ = web_page(spec, h, i)
            lxml_page, lexbor_page = _both(html, f"{spec.origin(h)}/p/{i}.html", "utf-8")
            assert _facts(lexbor_page) == _facts(lxml_page)
            assert lexbor_page.link_count == spec.links and lexbor_page.title


SMALL = [
    b'<html><head><base href="/other/"><title> A \n title </title></head>'
    b'<body><a href="x.html">x</a><a href="/y#f">y</a><a href="x.html">again</a></body></html>',
    b'<a href="a" rel="nofollow">a</a><a href="b" rel="external NoFollow">b</a><a href="c">c</a>',
    b'<meta name="robots" content="noindex, nofollow"><title>t</title><a href="a">a</a>',
    b'<meta name="Crawler" content="none"><a href="a">a</a>',
    b'<a href>empty</a><a href="">empty</a><a>none</a><a href="  ">space</a>'
    b'<a href="javascript:x()">js</a><a href="mailto:a@b">m</a><a href="#top">t</a>',
    b'<title>first</title><title>second</title><a href="http://Example.COM:80/%7ea">e</a>',
    '<meta charset="windows-1251"><title>Привет</title>'.encode("cp1251"),
    b"\xef\xbb\xbf<title>bom</title><a href=q?x=1>q</a>",
    b"<p>no head <title>late</title><a href=../up>up</a><table><a href=t>in table</a></table>",
    b"", b"   ", b"\x00\x01binary\xff\xfe",
    # Hidden text, found by name in the whole document (lexbor's ``tags``): a
    # head's style or script whose text is also body text cuts nothing.
    b"<head><style>p q</style><script>shared</script><noscript><style>r</style></noscript>"
    b"</head><body><p>p q shared r stay</p><script>gone</script><noscript>also gone"
    b"</noscript><template>never <b>seen</b></template><svg><style>svg gone</style></svg>"
    b"<p>tail</p></body>",
    # A style inside a noscript, beside visible text (a common snippet): the
    # noscript's whole text goes, the style's with it.
    b"<body><h1>Shop</h1><noscript><style>.js{display:none}</style>"
    b"<p>Please enable JavaScript to use this site</p></noscript>"
    b"<p>Welcome to our shop</p></body>",
]


@pytest.mark.parametrize("body", SMALL)
@pytest.mark.parametrize("follow_nofollow", [False, True])
def test_lexbor_agrees_with_lxml_on_the_cases_extraction_handles(
        body: bytes, follow_nofollow: bool) -> None:
    lxml_page, lexbor_page = _both(body, follow_nofollow=follow_nofollow)
    assert _facts(lexbor_page) == _facts(lxml_page)


def test_hidden_elements_of_the_body_are_cut_and_the_heads_are_not() -> None:
    from selectolax.lexbor import LexborHTMLParser

    from crawler.pages.parse_lexbor import visible_text

    text = visible_text(LexborHTMLParser(SMALL[-2].decode()))
    assert text.split() == ["p", "q", "shared", "r", "stay", "tail"]
    text = visible_text(LexborHTMLParser(SMALL[-1].decode()))
    assert text.split() == ["Shop", "Welcome", "to", "our", "shop"]


def test_an_extraction_hook_still_gets_the_lxml_tree_with_lexbor() -> None:
    page = parse_page(SMALL[0], URL, parser="lexbor", keep_tree=True)
    assert page.tree is not None and page.tree.tag == "html"
    assert page.links == ["https://example.com/other/x.html", "https://example.com/y"]


def test_parse_page_parses_with_lexbor_unless_lxml_or_its_tree_is_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from crawler.pages import parse_lexbor

    calls: list[str] = []
    real = parse_lexbor.parse_html_lexbor

    def counted(body: bytes, url: str, charset: str | None = None, *,
                follow_nofollow: bool = False, simhash: bool = False) -> Page:
        calls.append(f"{url} simhash={simhash}")
        return real(body, url, charset, follow_nofollow=follow_nofollow, simhash=simhash)

    monkeypatch.setattr(parse_lexbor, "parse_html_lexbor", counted)
    parse_page(SMALL[0], URL)  # the default: lexbor
    parse_page(SMALL[0], URL, simhash=True)  # near_duplicates: from lexbor's tree too
    parse_page(SMALL[0], URL, parser="lxml")
    parse_page(SMALL[0], URL, keep_tree=True)  # a hook needs lxml's tree
    assert calls == [f"{URL} simhash=False", f"{URL} simhash=True"]


def test_the_default_parser_is_lexbor() -> None:
    from crawler.config import Settings

    assert Settings().html_parser == "lexbor"
