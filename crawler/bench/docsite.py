"""A documentation site shaped like Sphinx output, generated locally, for extraction hooks.

The pages look like the Python docs: a head with charset, description
(most pages) and stylesheets; a navigation bar; a sidebar table of contents;
a body of sections with ``<h1>``-``<h3>`` headings carrying permalink anchors
(``¶``), inline code, entities, non-ASCII text, code blocks, tables and
admonitions; a footer. ``headings_of`` gives every page's headings as a
reader sees them, so hooks can be checked page by page. ``docs_app`` serves
the site; ``static_dir_app`` serves a directory of real HTML (such as the
Python docs from Debian's ``python3.11-doc`` package) the same way.
"""

from __future__ import annotations

import random
from functools import lru_cache
from html import escape
from pathlib import Path

from aiohttp import web

SECTIONS = ("library", "reference", "tutorial", "howto")
SIDEBAR_HEADING = "Table of contents"
WORDS = ("module", "object", "return", "value", "the", "function", "argument", "iterator",
         "protocol", "buffer", "exception", "raised", "when", "a", "is", "of", "to", "class",
         "attribute", "default", "encoding", "naïve", "café", "—", "handler", "thread")


def page_paths(pages: int) -> list[str]:
    return [f"/{SECTIONS[i % len(SECTIONS)]}/page-{i}.html" for i in range(pages)]


def _sentence(rnd: random.Random, words: int) -> str:
    text = " ".join(rnd.choice(WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _outline(i: int) -> list[tuple[int, str]]:
    """The page's headings: (level, text)."""
    rnd = random.Random(i)
    out = [(1, f"{SECTIONS[i % len(SECTIONS)].title()} {i} — the «{WORDS[i % len(WORDS)]}» API")]
    for s in range(rnd.randrange(2, 6)):
        out.append((2, f"{s + 1}. {_sentence(rnd, 3)[:-1]} & <more>"))
        out += [(3, f"{s + 1}.{k + 1} Using os.path.join() with {WORDS[k]}")
                for k in range(rnd.randrange(0, 3))]
    return out


def headings_of(i: int) -> list[str]:
    """The page's headings as a reader sees them (no permalink sign), the sidebar's last."""
    return [*(text for _, text in _outline(i)), SIDEBAR_HEADING]


def description_of(i: int) -> str | None:
    return None if i % 5 == 4 else f"Reference page {i}: what the «{WORDS[i % len(WORDS)]}» does."


def _heading(level: int, text: str, anchor: str) -> str:
    # Inline code and a permalink, as Sphinx writes them.
    html = escape(text).replace("os.path.join()", '<code class="docutils literal notranslate">'
                                '<span class="pre">os.path.join()</span></code>')
    return (f'<h{level}>{html}<a class="headerlink" href="#{anchor}" '
            f'title="Permalink to this heading">¶</a></h{level}>')


@lru_cache(maxsize=2048)
def docs_page(pages: int, i: int) -> bytes:
    outline = _outline(i)
    rnd = random.Random(-i - 1)
    paths = page_paths(pages)
    description = description_of(i)
    meta = "" if description is None else \
        f'<meta name="description" content="{escape(description)}">\n'
    toc = "\n".join(f'<li class="toctree-l1"><a class="reference internal" href="{paths[j]}">'
                    f"Page {j}</a></li>" for j in rnd.sample(range(pages), min(pages, 15)))
    title = outline[0][1]
    body = [f'<section id="top">{_heading(1, title, "top")}',
            f"<p>{_sentence(rnd, 30)} See <a href=\"{paths[(i + 1) % pages]}\">next</a>.</p>"]
    for n, (level, text) in enumerate(outline[1:], 1):
        body.append(f'<section id="s{n}">{_heading(level, text, f"s{n}")}')
        body.append(f"<p>{_sentence(rnd, 40)} &amp; {_sentence(rnd, 20)}&nbsp;&#8212;</p>")
        if rnd.random() < 0.5:
            body.append('<div class="highlight-python3 notranslate"><div class="highlight"><pre>'
                        '<span></span><span class="kn">import</span> <span class="nn">os</span>\n'
                        '<span class="n">os</span><span class="o">.</span><span class="n">path'
                        '</span></pre></div></div>')
        if rnd.random() < 0.3:
            body.append('<div class="admonition note"><p class="admonition-title">Note</p>'
                        f"<p>{_sentence(rnd, 15)}</p></div>")
        if rnd.random() < 0.3:
            rows = "".join(f"<tr><td><p>{w}</p></td><td><p>{_sentence(rnd, 6)}</p></td></tr>"
                           for w in WORDS[:8])
            body.append(f'<table class="docutils align-default"><tbody>{rows}</tbody></table>')
        body.append("</section>")
    body.append("</section>")
    html = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8" />
<meta name="viewport" content="width=device-width, initial-scale=1.0" />
{meta}<title>{escape(title)} &#8212; Docs 3.11</title>
<link rel="stylesheet" type="text/css" href="/_static/pygments.css" />
<script src="/_static/documentation_options.js"></script>
<!-- a comment, as Sphinx themes leave them -->
</head>
<body>
<div class="related" role="navigation"><ul>
<li><a href="/index.html">Docs</a> &#187;</li>
<li><a href="{paths[max(0, i - 1)]}" title="previous">previous</a> |</li></ul></div>
<div class="document"><div class="documentwrapper"><div class="body" role="main">
{"".join(body)}
</div></div>
<div class="sphinxsidebar" role="navigation"><h3>{SIDEBAR_HEADING}</h3><ul>{toc}</ul></div>
</div>
<div class="footer">&copy; Copyright 2001-2023. Last updated on Nov 28, 2026.</div>
</body>
</html>
"""
    return html.encode("utf-8")


def docs_app(pages: int) -> web.Application:
    """The generated docs site: ``/index.html`` links to every page."""
    paths = {p: i for i, p in enumerate(page_paths(pages))}

    async def page(request: web.Request) -> web.Response:
        if request.path == "/index.html":
            links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in paths)
            return web.Response(text=f"<html><head><title>Docs</title></head><body><h1>Index"
                                f"</h1><ul>{links}</ul></body></html>",
                                content_type="text/html")
        i = paths.get(request.path)
        if i is None:
            raise web.HTTPNotFound()
        return web.Response(body=docs_page(pages, i), content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app


def static_dir_app(root: Path) -> web.Application:
    """Serve the HTML files under ``root`` (nothing outside it)."""
    base = root.resolve()

    async def page(request: web.Request) -> web.StreamResponse:
        path = (base / request.path.lstrip("/")).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise web.HTTPNotFound()
        kind = "text/html" if path.suffix == ".html" else "application/octet-stream"
        return web.Response(body=path.read_bytes(), content_type=kind)

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    return app
