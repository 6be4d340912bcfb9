"""The extraction hook: a user's function, named by the ``extract`` setting, run on every page.

``extract = "mypkg.extract:page"`` names ``def page(p: crawler.Page) -> dict | None``
(or ``async def``). Every worker imports it at start (a name that does not
import is a ConfigError). For each fetched page (not redirects, not errors):

- what it returns goes into the record under ``data`` (``None``: null);
  it must be a dict that JSON can encode;
- ``p.follow(url)`` queues more URLs: resolved against the page, then
  scoped and deduplicated like the page's own links;
  ``p.follow(url, priority=0.9)`` queues it in a raised band, claimed before
  its host's normal URLs (``crawler.priority``: over 0.5 high, from 0.8 top);
  following one of the page's own links with a priority raises that link
  (a URL queued before is not moved);
- ``p.render_again()`` asks for the page to be rendered in the browser
  (when ``render`` is not ``never`` for its host) and the hook called again on
  the rendered DOM; ``p.screenshot()`` asks for that render with a PNG of the
  page, kept beside the page in the WARC file (crawler.worker.render). One such
  render a page at most: on the hook's second call both say False (True for a
  screenshot already taken of that render);
- an exception ends the URL with an ``extract_error`` record (the page's
  other fields kept, ``message`` = ``Type: message``), one log line says so
  (at most one every FAIL_LOG_EVERY seconds, counting the others; each
  traceback goes to the debug log), and the worker goes on;
- a step of the hook that holds the event loop longer than
  ``extract_block_warning`` seconds is logged with the hook's name; with
  ``extract_in_thread`` a sync hook runs in a thread pool instead.

The module is imported as Python would from the current directory (which is
added to ``sys.path`` if missing), or installed.

Without a hook nothing here runs: the worker's path is the one it always had.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from multidict import CIMultiDict

from crawler.config import Settings
from crawler.errors import ConfigError, InvalidURL
from crawler.net.fetch import Response
from crawler.pages.parse import Page as ParsedPage
from crawler.pages.parse import detect_charset
from crawler.pages.priority import checked_priority
from crawler.urls import resolve

log = logging.getLogger("crawler.extract")

Hook = Callable[["Page"], "dict[str, Any] | Awaitable[dict[str, Any] | None] | None"]
BLOCK_LOG_EVERY = 10.0
"""Seconds between two log lines about the same hook blocking the loop (the rest are counted)."""
FAIL_LOG_EVERY = 10.0
"""Seconds between two log lines about the hook failing (the rest are counted; each failure
is in its record, and its traceback in the debug log, -vv)."""


@dataclass(frozen=True, slots=True)
class BrowserOffer:
    """What the worker's browser does for a hook on one page (crawler.worker.render)."""

    rendered: bool = False  # the page's body is the DOM of a render
    can_render: bool = False  # render_again() would be done
    can_screenshot: bool = False  # ... and screenshot() kept (WARC capture is on)
    screenshot_taken: bool = False  # this render took the PNG the hook asked for


NO_BROWSER = BrowserOffer()


class Page:
    """What a hook sees of one fetched page. ``tree`` is the parse the crawler already did."""

    __slots__ = ("_can_render", "_can_screenshot", "_follow", "_headers", "_parsed",
                 "_priorities", "_render_again", "_response", "_screenshot", "_soup", "_text",
                 "body", "final_url", "rendered", "status", "url")

    def __init__(self, response: Response, parsed: ParsedPage | None,
                 browser: BrowserOffer | None = None) -> None:
        offer = browser or NO_BROWSER
        self.url = response.url
        self.rendered = offer.rendered
        self._can_render = offer.can_render
        self._can_screenshot = offer.can_render and offer.can_screenshot
        self._render_again = False
        self._screenshot = offer.screenshot_taken
        self.final_url = response.final_url
        self.status = response.status
        self._response = response
        self.body = response.body
        self._parsed = parsed
        self._text: str | None = None
        self._soup: Any = None
        self._follow: list[str] = []
        self._priorities: dict[str, float] = {}
        self._headers: CIMultiDict[str] | None = None

    @property
    def headers(self) -> CIMultiDict[str]:
        """Every response header as received: case-insensitive, repeated ones kept."""
        if self._headers is None:
            raw = self._response.raw_headers
            self._headers = CIMultiDict(
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in raw) if raw else \
                CIMultiDict(self._response.headers)
        return self._headers

    @property
    def text(self) -> str:
        """The body decoded with the crawler's charset rules (BOM, header, <meta>, UTF-8 check).

        An HTML page keeps the charset its parse found; any other page goes
        through the same rules, with its Content-Type's charset.
        """
        if self._text is None:
            charset = self._parsed.charset if self._parsed and self._parsed.charset else \
                detect_charset(self.body, self._response.charset)
            self._text = self.body.decode(charset, "replace")
        return self._text

    @property
    def tree(self) -> etree._Element | None:
        """The lxml HTML tree the crawler built for titles and links; None if not HTML."""
        return self._parsed.tree if self._parsed is not None else None

    @property
    def soup(self) -> Any:
        """A BeautifulSoup of the page (lxml parser), built on first use; None if not HTML."""
        if self._soup is None and self._parsed is not None:
            from bs4 import BeautifulSoup

            self._soup = BeautifulSoup(self.body, "lxml", from_encoding=self._parsed.charset)
        return self._soup

    @property
    def links(self) -> list[str]:
        """The page's links, resolved and canonical, in page order (nofollow ones left out)."""
        return self._parsed.links if self._parsed is not None else []

    def follow(self, url: str, *, priority: float | None = None) -> bool:
        """Queue ``url`` (relative to the page) too; False if it is no crawlable URL.

        It still passes the crawl's scope and dedup, as the page's own links do.
        ``priority``: 0.0 to 1.0 as in a sitemap (ValueError outside it); over
        0.5 the URL is queued in a raised band, claimed before its host's
        normal URLs (``crawler.priority``). Following one of the page's own
        links with a priority raises that link. A URL queued before (dedup)
        stays where it is.
        """
        if priority is not None:
            priority = checked_priority(priority)  # a wrong one is the hook's error
        try:
            canonical = resolve(self.final_url, url)  # as the page's links
        except (InvalidURL, ValueError):
            return False
        self._follow.append(canonical)
        if priority is not None:
            self._priorities[canonical] = max(priority, self._priorities.get(canonical, 0.0))
        return True

    def render_again(self) -> bool:
        """Ask for this page to be rendered in the browser and the hook called again on
        the rendered DOM (``p.rendered`` is then True). What the hook returns and
        follows on that call is what the record keeps.

        False when the worker will not: ``render`` is ``never`` for the page's host,
        the page is no HTML with a 2xx status, or this call is on the render the hook
        asked for already (one a page). A page rendered by ``auto`` or ``always`` may
        be rendered once more.
        """
        if not self._can_render:
            return False
        self._render_again = True
        return True

    def screenshot(self) -> bool:
        """Ask for a PNG of this page in the browser, kept beside it in the WARC file (a
        ``resource`` record), never in Redis. It is taken during the render the hook
        asks for: this asks for ``render_again()`` too. True if it will be (or, on that
        render, was) taken; False without WARC capture or when ``render_again()``
        would say False.
        """
        if self._screenshot:
            return True
        if not self._can_screenshot:
            return False
        self._render_again = self._screenshot = True
        return True


@dataclass(slots=True)
class Extracted:
    """What a hook gave for one page: data, URLs to follow (and the priorities it gave
    some of them), or its error (type, message)."""

    data: dict[str, Any] | None = None
    follow: list[str] = field(default_factory=list)
    error: tuple[str, str] | None = None
    priorities: dict[str, float] = field(default_factory=dict)
    render_again: bool = False  # p.render_again(): render the page, call the hook again
    screenshot: bool = False  # p.screenshot(): ... with a PNG of it


def load_hook(spec: str) -> Hook:
    """The function ``module.path:name`` names; ConfigError if it cannot be imported."""
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise ConfigError("extract", f"expected module.path:function, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())  # a hook beside the crawl, as `python -m` would find it
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user's module may raise anything on import
        raise ConfigError("extract", f"cannot import {module_name}: "
                          f"{type(exc).__name__}: {exc}") from None
    hook = getattr(module, attr, None)
    if not callable(hook):
        raise ConfigError("extract", f"{module_name} has no function {attr!r}")
    return hook  # type: ignore[no-any-return]


class _Stepped:
    """Awaits a coroutine step by step, timing each step (each holds the event loop)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], on_step: Callable[[float], None]) -> None:
        self.coro = coro
        self.on_step = on_step

    def __await__(self) -> Generator[Any, Any, Any]:
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.perf_counter()
            try:
                yielded = self.coro.throw(error) if error is not None else self.coro.send(value)
            except StopIteration as stop:
                self.on_step(time.perf_counter() - started)
                return stop.value
            except BaseException:
                self.on_step(time.perf_counter() - started)
                raise
            self.on_step(time.perf_counter() - started)
            try:
                value, error = (yield yielded), None
            except BaseException as exc:  # cancellation and the like: into the hook
                value, error = None, exc


class Extractor:
    """Runs the hook on pages: on the loop, or a sync hook in a thread pool."""

    def __init__(self, hook: Hook, name: str, settings: Settings) -> None:
        self.hook = hook
        self.name = name
        self.is_async = inspect.iscoroutinefunction(hook)
        self.block_limit = settings.extract_block_warning
        self.pool = ThreadPoolExecutor(settings.extract_threads, "extract") \
            if settings.extract_in_thread and not self.is_async else None
        self._blocked = 0  # steps over the limit since the last log line
        self._logged_at = -BLOCK_LOG_EVERY
        self._failed = 0  # failures since the last log line about them
        self._failure_logged_at = -FAIL_LOG_EVERY

    @classmethod
    def from_settings(cls, settings: Settings) -> Extractor | None:
        if not settings.extract:
            return None
        return cls(load_hook(settings.extract), settings.extract, settings)

    async def run(self, response: Response, parsed: ParsedPage | None,
                  browser: BrowserOffer | None = None) -> Extracted:
        """Call the hook on one page; never raises (but cancellation). ``browser``: what
        the hook may ask of the browser for it."""
        page = Page(response, parsed, browser)
        try:
            if self.is_async:
                value = await _Stepped(self.hook(page), self._step)  # type: ignore[arg-type]
            elif self.pool is not None:
                value = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self.hook, page)
            else:
                started = time.perf_counter()
                try:
                    value = self.hook(page)
                finally:
                    self._step(time.perf_counter() - started)
            data = self._checked(value)
        except Exception as exc:
            self._failure(response.url, exc)
            return Extracted(error=("extract_error", f"{type(exc).__name__}: {exc}"))
        return Extracted(data=data, follow=page._follow, priorities=page._priorities,
                         render_again=page._render_again,
                         screenshot=page._screenshot and page._render_again)

    def _checked(self, value: Any) -> dict[str, Any] | None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"{self.name} returned {type(value).__name__}, "
                            "expected a dict or None")
        if value is not None:
            json.dumps(value)  # what cannot go into the record fails here, as the hook's error
        return value

    def _step(self, seconds: float) -> None:
        if seconds <= self.block_limit or self.block_limit <= 0:
            return
        self._blocked += 1
        now = time.monotonic()
        if now - self._logged_at >= BLOCK_LOG_EVERY:
            log.warning("extract hook %s held the event loop for %.0f ms (over %.0f ms; %d "
                        "times since the last warning): fetches wait meanwhile; "
                        "extract_in_thread = true runs a sync hook in threads",
                        self.name, seconds * 1000, self.block_limit * 1000, self._blocked)
            self._logged_at, self._blocked = now, 0

    def _failure(self, url: str, exc: Exception) -> None:
        """One line, not a traceback a page: at most one every FAIL_LOG_EVERY s, with a count."""
        log.debug("extract hook %s failed on %s", self.name, url, exc_info=exc)
        self._failed += 1
        now = time.monotonic()
        if now - self._failure_logged_at < FAIL_LOG_EVERY:
            return
        frame = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" at {os.path.basename(frame[0].filename)}:{frame[0].lineno}" if frame else ""
        more = f" ({self._failed} failures since the last line)" if self._failed > 1 else ""
        log.error("extract hook %s failed on %s: %s: %s%s%s; the record says extract_error "
                  "(-vv logs each traceback)", self.name, url, type(exc).__name__, exc, where,
                  more)
        self._failure_logged_at, self._failed = now, 0

    def close(self) -> None:
        if self._failed:  # the ones counted since the last line are not lost
            log.error("extract hook %s failed on %d more pages (extract_error records)",
                      self.name, self._failed)
            self._failed = 0
        if self.pool is not None:
            self.pool.shutdown(wait=False)
