"""The dashboard's aiohttp application: one page, its JSON API, an SSE stream, three actions.

=====================  ======  ==============================================
path                   method  answer
=====================  ======  ==============================================
``/``                  GET     the page (``static/index.html``)
``/app.js``            GET     its script
``/style.css``         GET     its style sheet
``/api/status``        GET     a snapshot taken now (``feed.snapshot``)
``/api/events``        GET     server-sent events: a snapshot each second
``/api/pause``         POST    ``crawler.control.pause`` (likewise ``resume``
                               and ``stop``); answers the crawl's new state
=====================  ======  ==============================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from crawler.config import Settings
from crawler.dashboard.feed import POLL_EVERY, Feed
from crawler.observe import control
from crawler.observe.access import guard

KEEPALIVE = 15.0
"""Seconds of silence after which the stream sends a comment, so proxies keep it open."""
STATIC = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
          "/style.css": ("style.css", "text/css")}
SECURITY_HEADERS = {
    # Everything is ours and served from here: nothing else may load or frame it.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ACTIONS: dict[str, Callable[[Redis, Settings], Awaitable[str | None]]] = {
    "pause": control.pause, "resume": control.resume, "stop": control.stop}

FEED = web.AppKey("feed", Feed)


def make_app(redis: Redis, settings: Settings, token: str | None = None, *,
             poll_every: float = POLL_EVERY) -> web.Application:
    """The dashboard of the crawl ``settings`` names (its layout already read, as
    ``open_crawl`` returns it). ``token``: required of every request if given."""
    app = web.Application(middlewares=[guard(token)])
    app[FEED] = Feed(redis, settings, poll_every)
    pages = {path: (files("crawler.dashboard").joinpath("static", name).read_bytes(), kind)
             for path, (name, kind) in STATIC.items()}

    async def static(request: web.Request) -> web.Response:
        body, kind = pages[request.path]
        return web.Response(body=body, content_type=kind, charset="utf-8")

    for path in STATIC:
        app.router.add_get(path, static)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/events", api_events)
    app.router.add_post("/api/{action:pause|resume|stop}", api_action)
    app.on_response_prepare.append(_security_headers)
    app.on_startup.append(_start_feed)
    app.on_shutdown.append(_close_feed)
    return app


async def _security_headers(_: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _start_feed(app: web.Application) -> None:
    app[FEED].start()


async def _close_feed(app: web.Application) -> None:
    await app[FEED].close()  # ends every open stream


def _json(data: Any) -> web.Response:
    return web.Response(text=json.dumps(data, sort_keys=True), content_type="application/json")


async def api_status(request: web.Request) -> web.Response:
    return _json(await request.app[FEED].refresh())


async def api_action(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    cap = await ACTIONS[request.match_info["action"]](feed.redis, feed.settings)
    if cap:  # resume refused: a worker would stop the crawl again at once
        return web.Response(status=409, text=f"not resumed: the crawl has reached its {cap}; "
                                             f"{control.raise_cap_hint(cap)}")
    state = await control.crawl_state(feed.redis, feed.settings)
    await feed.refresh()  # every open page sees the change now, not a second later
    return _json({"crawl": state.as_dict()})


async def api_events(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEED]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    seen = 0
    try:
        await response.write(b"retry: 2000\n\n")
        if feed.latest is not None:
            seen = feed.version
            await response.write(_event(feed.latest))
        while not feed.closed:
            seen, snap = await feed.wait_newer(seen, KEEPALIVE)
            if feed.closed:
                break
            await response.write(b": keepalive\n\n" if snap is None else _event(snap))
    except (ConnectionError, RuntimeError):
        pass  # the page went away (aiohttp raises either, by version)
    return response


def _event(snap: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(snap, separators=(",", ":")).encode() + b"\n\n"
