"""A loopback site with plain pages and three kinds of JavaScript page, and its truth.

- ``/scripted``: text and a ``<noscript>``; its links are inserted by a script
  (``/static/insert.js``);
- ``/app/``, ``/app/about``, ``/app/contact``: one shell (``<div id="root">``,
  a stylesheet and two scripts) and a client-side router (``/static/app.js``)
  that renders each path's links and title;
- ``/api-page``: a shell that fetches its items from ``/api/items`` on the same
  host and links them (and tries ``/api/secret``, which robots.txt disallows).

Every other page is plain HTML. ``JS_PAGES`` is the truth the crawl is judged
against; ``ALL_PAGES`` every page a crawl from ``/`` must find. Paths under
``/static/`` and ``/api/`` are the pages' own subrequests, never pages.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from crawler.config import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH")

JS_PAGES = frozenset({"/scripted", "/app/", "/app/about", "/app/contact", "/api-page"})
PLAIN_PAGES = frozenset({"/", "/plain/a", "/plain/b", "/found/1", "/found/2",
                         "/items/1", "/items/2", "/items/3"})
ALL_PAGES = JS_PAGES | PLAIN_PAGES
SUBREQUEST_PREFIXES = ("/static/", "/api/")

TEXT = "<p>" + "Plain words about nothing in particular. " * 12 + "</p>"

INSERT_JS = """
for (const n of [1, 2]) {
  const a = document.createElement('a');
  a.href = '/found/' + n; a.textContent = 'found ' + n;
  document.body.appendChild(a);
}
"""

ROUTES_JS = """
window.routes = {
  '/app/': ['Home', ['/app/about', '/app/contact']],
  '/app/about': ['About', ['/app/', '/app/contact']],
  '/app/contact': ['Contact', ['/app/', '/app/about']],
};
"""

APP_JS = """
const [name, links] = window.routes[location.pathname] || ['Not found', []];
document.title = 'App: ' + name;
document.getElementById('root').innerHTML = '<h1>' + name + '</h1>' +
  links.map(l => '<a href="' + l + '">' + l + '</a>').join(' ') +
  '<img src="/static/logo.png">';
"""

API_PAGE = """<html><head><title>Items</title></head><body><div id="app">Loading</div>
<script>
fetch('/api/secret').catch(() => 0);  // robots.txt disallows it: never requested
fetch('/api/items').then(r => r.json()).then(items => {
  document.getElementById('app').innerHTML =
    items.map(i => '<a href="/items/' + i.id + '">' + i.name + '</a>').join(' ');
});
</script></body></html>"""


def page(title: str, *links: str, body: str = TEXT) -> web.Response:
    anchors = " ".join(f'<a href="{href}">{href}</a>' for href in links)
    return web.Response(text=f"<html><head><title>{title}</title></head><body>{body}"
                             f"{anchors}</body></html>", content_type="text/html")


async def handler(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path == "/robots.txt":
        return web.Response(text="User-agent: *\nDisallow: /api/secret\n")
    if path == "/":
        return page("Home", "/plain/a", "/plain/b", "/scripted", "/app/", "/api-page")
    if path in ("/plain/a", "/plain/b"):
        return page(f"Plain {path[-1]}", "/", "/plain/a", "/plain/b")
    if path.startswith(("/found/", "/items/")):
        return page(f"Leaf {path}", "/", "/plain/a", "/plain/b")
    if path == "/scripted":
        return web.Response(text="<html><head><title>Scripted</title></head><body>"
                                 "<noscript>Please enable JavaScript to see the links.</noscript>"
                                 f"{TEXT}<script src='/static/insert.js'></script></body></html>",
                            content_type="text/html")
    if path.startswith("/app/"):
        return web.Response(text="<html><head><title>App</title></head><body>"
                                 "<link rel=stylesheet href='/static/app.css'>"
                                 "<div id='root'></div><script src='/static/routes.js'></script>"
                                 "<script src='/static/app.js'></script>"
                                 "</body></html>", content_type="text/html")
    if path == "/api-page":
        return web.Response(text=API_PAGE, content_type="text/html")
    if path == "/static/insert.js":
        return web.Response(text=INSERT_JS, content_type="application/javascript")
    if path == "/static/routes.js":
        return web.Response(text=ROUTES_JS, content_type="application/javascript")
    if path == "/static/app.css":
        return web.Response(text="h1 { color: teal }", content_type="text/css")
    if path == "/static/app.js":
        return web.Response(text=APP_JS, content_type="application/javascript")
    if path == "/api/items":
        items = [{"id": n, "name": f"item {n}"} for n in (1, 2, 3)]
        return web.Response(text=json.dumps(items), content_type="application/json")
    return web.Response(status=404, text="not here")


# -- helpers of the rendering tests ------------------------------------------------------------


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"


def render_settings(settings: Settings, **changes: Any) -> Settings:
    given: dict[str, Any] = {"render": "auto", "browser_executable": CHROMIUM or "",
                             "max_per_host": 1, "render_timeout": 15.0}
    return settings.replace(**(given | changes))


def browser_pids(root: int | None = None) -> list[int]:
    """The descendants of ``root`` (this process) that are Chromium."""
    me, out = os.getpid() if root is None else root, []
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            names[int(name)] = stat[stat.index("(") + 1:stat.rindex(")")]
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor)
        if ancestor == me and "chrom" in names[pid]:
            out.append(pid)
    return out


def wait_gone(pids: list[int], within: float) -> list[int]:
    """The ``pids`` still alive after ``within`` seconds; those are then killed (they are
    this test's own)."""
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if Path(f"/proc/{p}").exists()
                 and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return alive
