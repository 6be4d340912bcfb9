"""What a rendered page's requests get: every one intercepted (Playwright routing).

``PageRoutes`` answers each request of one page rendered by
crawler.net.browser, so that no request of the browser reaches the network by
itself:

1. the page's own document is answered from the plain response already
   fetched: the page is not requested twice;
2. images, fonts and media (``render_block``), address literals the SSRF
   guard refuses, requests to other hosts (unless ``render_other_hosts``),
   methods other than GET, URLs robots.txt disallows, and later navigations
   are refused, and counted;
3. what is left (scripts, stylesheets, XHR/fetch to the page's own host) is
   fetched by the worker's own ``Fetcher``, one at a time, and handed to the
   browser: the SSRF guard (on the addresses DNS returns too), proxies,
   headers, TLS policy and size caps of every fetch apply to it, and the
   worker counts it (the host then rests ``delay`` a subrequest:
   crawler.worker.render).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from crawler import errors
from crawler.net.fetch import Response
from crawler.net.guard import check_literal_address

if TYPE_CHECKING:
    from playwright.async_api import Request, Route

    from crawler.config import Settings
    from crawler.net.fetch import Fetcher

log = logging.getLogger("crawler.browser")

_NOT_FORWARDED = frozenset({"content-encoding", "content-length", "transfer-encoding",
                            "connection", "keep-alive", "set-cookie"})
"""Headers of a subrequest's response not handed to the browser: the body is decoded
already, and cookies stay out of the browser (the crawl's jar is the worker's)."""


def host_of(url: str) -> str:
    """host[:port] of a URL as the browser sends it, the default port dropped."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = parts.port
    return host if port in (None, default) else f"{host}:{port}"



class PageRoutes:
    """Answers every request of one rendered page (steps 1-3 of the module docstring)."""

    def __init__(self, plain: Response, fetcher: Fetcher, settings: Settings,
                 robots_allow: Callable[[str], bool]) -> None:
        self.plain = plain
        self.fetcher = fetcher
        self.robots_allow = robots_allow
        self.block = frozenset(settings.render_block)
        self.other_hosts = settings.render_other_hosts
        self.host = host_of(plain.final_url)
        self.served_document = False
        self.one_at_a_time = asyncio.Lock()
        self.subrequests = 0  # to the page's host
        self.elsewhere = 0  # to other hosts (render_other_hosts = true)
        self.blocked: Counter[str] = Counter()

    async def handle(self, route: Route, request: Request) -> None:
        try:
            await self._handle(route, request)
        except Exception as exc:  # the page closed under it: nothing left to answer
            log.debug("route for %s: %s", request.url, exc)

    async def _handle(self, route: Route, request: Request) -> None:
        url = request.url
        if request.is_navigation_request() and not self.served_document:
            self.served_document = True
            await route.fulfill(status=self.plain.status, body=self.plain.body,
                                headers={"content-type": _content_type(self.plain)})
            return
        why = self._refusal(url, request)
        if why is not None:
            self.blocked[why] += 1
            await route.abort("blockedbyclient" if why != "blocked_address"
                              else "addressunreachable")
            return
        own_host = host_of(url) == self.host
        async with self.one_at_a_time:  # the page holds one slot of its host: one at a time
            try:
                resp = await self.fetcher.get(url)
            except errors.BlockedAddress:
                self.blocked["blocked_address"] += 1
                await route.abort("addressunreachable")
                return
            except errors.FetchError as exc:
                self._count(own_host, int(exc.made_request))
                self.blocked["failed"] += 1
                await route.abort("failed")
                return
            self._count(own_host, 1)
        await route.fulfill(status=resp.status, body=resp.body, headers=_forwarded(resp))

    def _count(self, own_host: bool, made: int) -> None:
        if own_host:
            self.subrequests += made
        else:
            self.elsewhere += made

    def _refusal(self, url: str, request: Request) -> str | None:
        """Why the request is refused without being sent, or None to fetch it."""
        if request.is_navigation_request():
            return "navigation"  # the DOM recorded is the page's own
        if request.resource_type in self.block:
            return request.resource_type
        if urlsplit(url).scheme not in ("http", "https"):
            return "scheme"
        try:  # an address literal: refused before anything else looks at it
            check_literal_address(url, self.fetcher.policy)
        except errors.BlockedAddress:
            return "blocked_address"
        if host_of(url) != self.host and not self.other_hosts:
            return "other_host"
        if request.method != "GET":
            return "method"
        if not self.robots_allow(url):
            return "robots"
        return None


def _content_type(resp: Response) -> str:
    if resp.content_type is None:
        return "text/html"
    return f"{resp.content_type}; charset={resp.charset}" if resp.charset else resp.content_type


def _forwarded(resp: Response) -> dict[str, str]:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in resp.raw_headers
               if k.decode("latin-1").lower() not in _NOT_FORWARDED}
    if resp.redirect_to is not None:
        headers["location"] = resp.redirect_to
    return headers

