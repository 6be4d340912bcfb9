"""Rendering a page in a browser: Playwright driving Chromium, under the fetcher's rules.

Optional (``pip install 'crawler[browser]'``); Playwright is imported on first
use only. The worker renders a page *after* the plain aiohttp fetch
(crawler.worker.render), inside the same lease, so the page holds its host's
politeness slot while the browser works.

No request of the browser reaches the network by itself: each is intercepted
and answered by ``PageRoutes`` (crawler.net.browser_routes): the document from
the plain response, the rest refused or fetched by the worker's own fetcher.

The browser is launched on first use, restarted every ``render_restart_pages``
pages or once its processes' memory (``browser_rss``) passes ``render_max_rss``,
and after a crash.
A crash or a failed load is a ``RenderError``: the worker's retry path.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from crawler import errors
from crawler.net.browser_memory import browser_rss
from crawler.net.browser_routes import PageRoutes
from crawler.net.fetch import Response

if TYPE_CHECKING:
    from playwright.async_api import Browser, Playwright

    from crawler.config import Settings
    from crawler.net.fetch import Fetcher

log = logging.getLogger("crawler.browser")

INSTALL_HINT = "pip install 'crawler[browser]'"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
LAUNCH_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--disable-dev-shm-usage")
"""Without the background-networking ones Chromium calls Google's hosts by itself;
``--no-sandbox``: a worker often runs as root in a container, where the sandbox
cannot start."""
RSS_CHECK_EVERY = 10
"""Pages rendered between two readings of the browser's RSS."""
CLOSE_BOUND = 5.0
"""Seconds a page's context or a retired browser may take to close."""


def require_playwright(setting: str = "render") -> None:
    """ConfigError saying how to install the extra, if Playwright is missing."""
    if importlib.util.find_spec("playwright") is None:
        raise errors.ConfigError(setting, "rendering pages needs Playwright, which is not "
                                 f"installed: {INSTALL_HINT}")


def find_browser(executable: str) -> str | None:
    """The Chromium to launch: the setting, else one on PATH; None: Playwright's own."""
    if executable:
        found = shutil.which(executable)
        if found is None:
            raise errors.ConfigError("browser_executable", f"no browser at {executable!r}")
        return found
    return next((p for p in map(shutil.which, BROWSER_NAMES) if p), None)


@dataclass(slots=True)
class Rendered:
    """A rendered page: the plain response with the rendered DOM as its body."""

    response: Response
    subrequests: int = 0  # requests of the page that went to its host (through the fetcher)
    elsewhere: int = 0  # ... and to other hosts (render_other_hosts = true)
    blocked: Counter[str] = field(default_factory=Counter)  # refused requests, by why
    waited: str = "ok"  # "ok", or "timeout" when render_wait was not met in time (DOM kept)
    elapsed: float = 0.0
    screenshot: bytes | None = None  # PNG of the viewport (render_screenshot)


@dataclass(slots=True)
class _Launched:
    browser: Browser
    renders: int = 0
    active: int = 0
    retired: bool = False


class BrowserPool:
    """One worker's browser: ``render_concurrency`` pages at a time, each in its own
    context (no cookie or storage of one page reaches the next)."""

    def __init__(self, settings: Settings, fetcher: Fetcher,
                 robots_allow: Callable[[str], bool] = lambda _url: True) -> None:
        require_playwright()
        self.settings = settings
        self.fetcher = fetcher
        self.robots_allow = robots_allow  # robots.txt, for the page's subrequests
        self.executable = find_browser(settings.browser_executable)
        self.slots = asyncio.Semaphore(settings.render_concurrency)
        self.launches = 0
        self.rendered = 0
        self._playwright: Playwright | None = None
        self._current: _Launched | None = None
        self._launching = asyncio.Lock()

    def use(self, settings: Settings) -> None:
        """Changed crawl settings, from the next page on."""
        self.settings = settings

    async def render(self, plain: Response, *, screenshot: bool = False) -> Rendered:
        """``plain`` loaded in the browser, its scripts run; the DOM once ``render_wait``
        is met (or its time is up). RenderError if the browser fails or crashes.
        ``screenshot``: a PNG of it too (with ``render_screenshot``, of every page); only
        with WARC capture on, where it is kept."""
        from playwright.async_api import Error as PlaywrightError

        async with self.slots:
            launched = await self._browser()
            launched.active += 1
            started = time.monotonic()
            try:
                return await self._render(launched, plain, started, screenshot)
            except PlaywrightError as exc:
                if not launched.browser.is_connected():
                    launched.retired = True  # crashed: the next page gets a new browser
                raise errors.RenderError(f"browser: {str(exc).splitlines()[0][:300]}") from exc
            except TimeoutError:
                raise errors.RenderError(
                    f"page not loaded in render_timeout ({self.settings.render_timeout:g} s)"
                ) from None
            finally:
                launched.active -= 1
                launched.renders += 1
                self.rendered += 1
                await self._maybe_retire(launched)

    async def _render(self, launched: _Launched, plain: Response, started: float,
                      screenshot: bool) -> Rendered:
        settings = self.settings
        routes = PageRoutes(plain, self.fetcher, settings, self.robots_allow)
        context = await launched.browser.new_context(
            user_agent=settings.full_user_agent, service_workers="block",
            accept_downloads=False)
        waited = "ok"
        shot: bytes | None = None
        try:
            await context.route("**/*", routes.handle)
            page = await context.new_page()
            async with asyncio.timeout(settings.render_timeout):
                await page.goto(plain.final_url, wait_until="load")
                try:
                    await self._wait(page, started)
                except TimeoutError:
                    waited = "timeout"  # a page that never goes idle: keep what it shows
                html = await page.content()
                if (screenshot or settings.render_screenshot) and settings.warc_dir:  # WARC only
                    shot = await page.screenshot(type="png")
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_BOUND):
                    await context.close()
        body = html.encode("utf-8")
        response = replace(plain, body=body, charset="utf-8",
                           elapsed=plain.elapsed + time.monotonic() - started)
        return Rendered(response, routes.subrequests, routes.elsewhere, routes.blocked, waited,
                        time.monotonic() - started, shot)

    async def _wait(self, page: Any, started: float) -> None:
        """Wait for ``render_wait`` within what is left of ``render_timeout``."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        wait = self.settings.render_wait
        left_ms = max(100.0, (self.settings.render_timeout - (time.monotonic() - started)) * 900)
        try:
            if wait in ("networkidle", "load", "domcontentloaded"):
                await page.wait_for_load_state(wait, timeout=left_ms)
            else:
                await page.wait_for_selector(wait, timeout=left_ms, state="attached")
        except PlaywrightTimeout:
            raise TimeoutError from None

    async def _browser(self) -> _Launched:
        async with self._launching:
            current = self._current
            if current is not None and not current.retired and current.browser.is_connected():
                return current
            if current is not None:
                current.retired = True
                await self._maybe_retire(current)
            self._current = await self._launch()
            return self._current

    async def _launch(self) -> _Launched:
        from playwright.async_api import async_playwright

        if self._playwright is None:
            self._playwright = await async_playwright().start()
        try:
            browser = await self._playwright.chromium.launch(
                executable_path=self.executable, args=list(LAUNCH_ARGS), headless=True)
        except Exception as exc:
            which = self.executable or "Playwright's own"
            raise errors.RenderError(f"cannot start the browser ({which}): "
                                     f"{str(exc).splitlines()[0][:300]}") from exc
        self.launches += 1
        log.info("browser started (%s, launch %d)", self.executable or "Playwright's",
                 self.launches)
        return _Launched(browser)

    async def _maybe_retire(self, launched: _Launched) -> None:
        """Mark the browser for a restart when due; close a retired one once idle."""
        settings = self.settings
        if not launched.retired and settings.render_restart_pages and \
                launched.renders >= settings.render_restart_pages:
            launched.retired = True
        if not launched.retired and settings.render_max_rss and \
                launched.renders % RSS_CHECK_EVERY == 0 and \
                browser_rss() > settings.render_max_rss:
            log.warning("browser RSS past render_max_rss (%d bytes): restarting it",
                        settings.render_max_rss)
            launched.retired = True
        if launched.retired and launched.active == 0:
            if self._current is launched:
                self._current = None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_BOUND):
                    await launched.browser.close()

    async def close(self) -> None:
        if self._current is not None:
            self._current.retired = True
            self._current.active = 0
            await self._maybe_retire(self._current)
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None
