"""The extraction hook asks for the browser: ``p.render_again()`` and ``p.screenshot()``.

A real Chromium on a loopback site whose ``/hidden`` looks static to ``render =
"auto"`` (much text, a link) but gets a link from a script, and whose ``/app`` is
an app shell ``auto`` renders anyway. The hook (tests/extract_hooks.py
``renders_when_asked``) asks for both to be rendered again and for a
screenshot of ``/hidden``.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from politeness_site import Site, by_url, crawl
from redis.asyncio import Redis
from render_site import TEXT, needs_chromium, path_of, render_settings
from test_render import warc_records

from crawler.config import Settings
from crawler.net.fetch import Response
from crawler.pages.extract import BrowserOffer, Page
from crawler.pages.needs_js import link_count

INSERT_JS = """const a = document.createElement('a'); a.href = '/found'; a.textContent = 'found';
document.body.appendChild(a);"""


async def handler(request: web.Request) -> web.StreamResponse:
    def page(body: str) -> web.Response:
        return web.Response(text=f"<html><head><title>{request.path}</title></head>"
                                 f"<body>{body}</body></html>", content_type="text/html")
    if request.path == "/":
        return page(f'{TEXT}<a href="/hidden">h</a> <a href="/app">a</a>')
    if request.path == "/hidden":  # static to auto: its link comes from a script
        return page(f'{TEXT}<a href="/">home</a><script src="/static/insert.js"></script>')
    if request.path == "/app":
        return page('<div id="root"></div><script src="/static/insert.js"></script>')
    if request.path == "/found":
        return page(f'{TEXT}<a href="/">home</a>')
    if request.path == "/static/insert.js":
        return web.Response(text=INSERT_JS, content_type="application/javascript")
    if request.path == "/robots.txt":
        return web.Response(text="")
    return web.Response(status=404)


def test_what_a_page_lets_the_hook_ask_of_the_browser() -> None:
    response = Response(url="http://a.test/", final_url="http://a.test/", status=200,
                        content_type="text/html", charset="utf-8", body=b"<p>x</p>",
                        headers={}, elapsed=0.01)
    plain = Page(response, None)  # render = "never" (or no worker): nothing to ask
    assert not plain.rendered and plain.render_again() is False and plain.screenshot() is False
    no_warc = Page(response, None, BrowserOffer(can_render=True))
    assert no_warc.screenshot() is False  # nowhere to keep it
    assert no_warc.render_again() is True
    offered = Page(response, None, BrowserOffer(can_render=True, can_screenshot=True))
    assert offered.screenshot() is True and offered._render_again  # a screenshot is a render
    on_render = Page(response, None, BrowserOffer(rendered=True, screenshot_taken=True))
    assert on_render.rendered and on_render.render_again() is False  # once a page
    assert on_render.screenshot() is True  # taken of this very render


@needs_chromium
async def test_the_hook_gets_a_page_rendered_and_a_screenshot_of_it(
        redis: Redis, settings: Settings, tmp_path: Path) -> None:
    settings = render_settings(settings, extract="extract_hooks:renders_when_asked",
                               render_wait="a[href='/found']", render_timeout=10.0,
                               warc_dir=str(tmp_path / "warc"))
    with Site(handler) as site:
        found = {path_of(u): r for u, r in by_url(
            await crawl(redis, settings, [site.url("127.0.0.2")], limit=60)).items()}
        paths = [h.path for h in site.hits]
    assert set(found) == {"/", "/hidden", "/app", "/found"}  # /found: only in the DOM
    hidden, app = found["/hidden"], found["/app"]
    # the hook's second call, on the DOM: it can ask no more, its screenshot was taken
    assert hidden["data"] == {"rendered": True, "again": False, "shot": True, "links": 2}
    assert hidden["rendered"] is True and hidden["render_reason"] == "hook"
    assert hidden["links"] == 2 and hidden["render_subrequests"] == 1
    # rendered by auto, then once more at the hook's request: both renders counted
    assert app["data"] == {"rendered": True, "again": False, "shot": None, "links": 1}
    assert app["render_reason"] == "hook" and app["render_subrequests"] == 2
    assert found["/"]["rendered"] is False and found["/"]["data"]["again"] is None
    assert all(paths.count(p) == 1 for p in found)  # documents fetched once each
    assert paths.count("/static/insert.js") == 3
    responses, conversions, screenshots = warc_records(tmp_path / "warc")
    assert {path_of(u) for u in conversions} == {"/hidden", "/app"}
    assert {path_of(u) for u in screenshots} == {"/hidden"}  # the one the hook asked for
    url = site.url("127.0.0.2", "/hidden")
    assert responses[url][0] == conversions[url][0] == screenshots[url][0]
    assert screenshots[url][1].startswith(b"\x89PNG\r\n")
    assert link_count(conversions[url][1]) == 2


async def test_with_render_never_the_hook_cannot_ask_for_a_render(
        redis: Redis, settings: Settings) -> None:
    settings = settings.replace(extract="extract_hooks:renders_when_asked", max_per_host=1)
    with Site(handler) as site:
        found = {path_of(u): r for u, r in by_url(
            await crawl(redis, settings, [site.url("127.0.0.2")], limit=30)).items()}
        paths = [h.path for h in site.hits]
    assert set(found) == {"/", "/hidden", "/app"}
    assert found["/hidden"]["data"] == {"rendered": False, "again": False, "shot": False,
                                        "links": 1}
    assert "rendered" not in found["/hidden"] and "/static/insert.js" not in paths
