"""Which pages a worker renders in the browser, and what it learns per host.

``render`` (crawl-wide, or per host pattern in ``[hosts."p"] render``):
``never``; ``always`` renders every HTML page; ``auto`` renders a page the
plain fetch shows to need JavaScript (crawler.pages.needs_js), and learns
per host from what rendering found:

- after ``render_learn_pages`` renders of a host that found no more links
  than the plain fetch (and none that found many more), it stops rendering
  that host (``render_reason: "host_static"``);
- after ``render_learn_pages`` renders that found many more, it renders every
  page of it (``"host_needs_js"``).

What is learned is kept in the worker process, not in Redis: another worker,
or this one restarted, learns again (a few renders per host).

The extraction hook may ask for a page to be rendered (``p.render_again()``,
``p.screenshot()``: ``offer``, ``render_for_hook``) whatever was decided, when
``render`` is not ``never`` for its host: once a page (``render_reason:
"hook"``); what ``auto`` learns comes from its own renders only. A page rendered
runs inside the lease that fetched it, so it holds its host's politeness slot
while the browser works, and the host then rests ``delay`` per subrequest the
page made (``rest_after``): the page's own requests count against its host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crawler import errors
from crawler.net.browser import BrowserPool, Rendered, find_browser, require_playwright
from crawler.net.tls import host_matches
from crawler.pages.extract import BrowserOffer
from crawler.pages.needs_js import RenderNote, link_count, needs_javascript

if TYPE_CHECKING:
    from crawler.config import Settings
    from crawler.net.fetch import Fetcher, Response
    from crawler.pages.warc import WarcCapture
    from crawler.worker.watch import InFlight

log = logging.getLogger("crawler.worker")

MANY_MORE_LINKS = 3
"""A render that found at least this many more links than the plain fetch (and
half as many again) found "many more"."""


def renderable(plain: Response) -> bool:
    """Whether a page as fetched can be rendered: a whole HTML page with a 2xx status."""
    return plain.is_html and 200 <= plain.status < 300 and not plain.truncated


def archive_rendered(warc: WarcCapture | None, item: InFlight, rendered: Response) -> None:
    """A rendered page's DOM (and PNG) into the WARC file after its response as fetched,
    which ``warc.write`` archived; the PNG is not held until the frontier write."""
    if warc is not None and item.plain is not None and item.render is not None:
        warc.write_rendered(rendered, item.plain, item.render.screenshot)
        item.render.screenshot = None


def lease_too_short(settings: Settings) -> str | None:
    """Why ``lease_time`` is too short for a page that renders, or None.

    A lease is not renewed while its page is fetched and rendered (the frontier has
    no transition that extends one): a lease that expires mid-render is handed to
    another worker, and the page fetched and rendered twice. A page may take
    ``total_timeout`` to fetch and ``render_timeout`` to render, once more with an
    extraction hook (``p.render_again()``).
    """
    renders = 2 if settings.extract else 1
    needed = settings.total_timeout + renders * settings.render_timeout
    if settings.lease_time >= needed:
        return None
    sum_of = "total_timeout + 2 x render_timeout, with an extraction hook" if renders == 2 \
        else "total_timeout + render_timeout"
    return (f"{settings.lease_time:g} s is shorter than a rendered page may hold its lease "
            f"({sum_of} = {needed:g} s), and a lease is not renewed while a page renders: "
            "raise lease_time or lower those timeouts")


def wants_rendering(settings: Settings) -> bool:
    """Whether any page of the crawl may be rendered."""
    return settings.render != "never" or any(m != "never" for m in settings.host_render.values())


@dataclass(slots=True)
class HostLesson:
    """What renders of one host found: how many found nothing more, how many much more."""

    no_more: int = 0
    many_more: int = 0


class Rendering:
    """One worker's renderer: the decision, the browser pool, the lessons per host."""

    def __init__(self, settings: Settings, fetcher: Fetcher,
                 robots_allow: Callable[[str], bool] = lambda _url: True) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.robots_allow = robots_allow
        self.lessons: dict[str, HostLesson] = {}
        self.pool: BrowserPool | None = None
        if wants_rendering(settings):
            require_playwright()
            find_browser(settings.browser_executable)  # a wrong path: said at start
            short = lease_too_short(settings)
            if short is not None:
                raise errors.ConfigError("lease_time", short)

    def use(self, settings: Settings) -> None:
        """Changed crawl settings (``crawl config set render=auto``), from the next page on."""
        if wants_rendering(settings):
            require_playwright()
            short = lease_too_short(settings)
            if short is not None:  # the crawl's settings changed under running workers:
                log.warning("crawl settings: lease_time: %s", short)  # they render on
        self.settings = settings
        if self.pool is not None:
            self.pool.use(settings)

    def mode_for(self, host: str) -> str:
        """``render`` for ``host``: its ``[hosts."p"]`` pattern's, else the crawl's."""
        patterns = self.settings.host_render
        pattern = host_matches(host, patterns) if patterns else None
        return patterns[pattern] if pattern is not None else self.settings.render

    def decide(self, host: str, plain: Response) -> RenderNote | None:
        """Whether to render ``plain``; None when rendering is off for its host."""
        mode = self.mode_for(host)
        if mode == "never":
            return None
        if not renderable(plain):
            return RenderNote(False, "not_html" if not plain.is_html else "status")
        if mode == "always":
            return RenderNote(True, "always")
        lesson = self.lessons.get(host)
        learn = self.settings.render_learn_pages
        if learn and lesson is not None and lesson.many_more >= learn:
            return RenderNote(True, "host_needs_js")
        reason = needs_javascript(plain.body)
        if reason is None:
            return RenderNote(False, "static")
        if learn and lesson is not None and lesson.no_more >= learn and not lesson.many_more:
            return RenderNote(False, "host_static")
        return RenderNote(True, reason)

    async def after_fetch(self, item: InFlight, plain: Response) -> Response:
        """The response the page's record is made from: ``plain``, or the page rendered
        when ``decide`` says so (``item.render``; ``item.plain`` keeps the fetched one).
        Runs inside the lease, so the host's politeness slot stays held meanwhile."""
        host = item.lease.host
        item.render = self.decide(host, plain)
        if item.render is None or not item.render.rendered:
            return plain
        item.at("render")
        item.plain = plain
        return await self.render(host, plain, item.render)

    async def render(self, host: str, plain: Response, note: RenderNote, *,
                     screenshot: bool = False) -> Response:
        """The rendered page (RenderError if the browser fails); ``note`` gets its counts.
        ``screenshot``: take a PNG of it whatever ``render_screenshot`` says."""
        if self.pool is None:
            self.pool = BrowserPool(self.settings, self.fetcher, self.robots_allow)
        done: Rendered = await self.pool.render(plain, screenshot=screenshot)
        note.subrequests, note.elsewhere, note.waited = done.subrequests, done.elsewhere, \
            done.waited
        note.blocked = dict(done.blocked)
        note.screenshot = done.screenshot
        if self.mode_for(host) == "auto" and note.reason != "hook":
            self._learn(host, link_count(plain.body), link_count(done.response.body))
        return done.response

    def offer(self, item: InFlight, resp: Response, capture: bool) -> BrowserOffer:
        """What the extraction hook may ask of the browser for the page ``resp`` (its
        body the DOM if rendered): a render, if ``render`` is not ``never`` for its host
        and the hook has not had one for it yet; a screenshot too with ``capture``
        (WARC capture on: the PNG is kept there)."""
        note = item.render
        by_hook = note is not None and note.reason == "hook"
        can_render = not by_hook and self.mode_for(item.lease.host) != "never" and \
            renderable(item.plain or resp)
        return BrowserOffer(rendered=note is not None and note.rendered,
                            can_render=can_render, can_screenshot=capture,
                            screenshot_taken=by_hook and note is not None and
                            note.screenshot_asked)

    async def render_for_hook(self, item: InFlight, resp: Response,
                              screenshot: bool) -> Response:
        """The page rendered at the hook's request (``offer``): its DOM, from the document
        as fetched; ``item.render`` says ``"hook"``, with both renders' counts when the
        page was rendered already (its host rests for all of their subrequests)."""
        plain = item.plain or resp
        earlier = item.render if item.render is not None and item.render.rendered else None
        note = RenderNote(True, "hook", screenshot_asked=screenshot)
        item.at("render")
        rendered = await self.render(item.lease.host, plain, note, screenshot=screenshot)
        if earlier is not None:
            note.add_counts(earlier)
        item.plain, item.render = plain, note
        return rendered

    def _learn(self, host: str, plain_links: int, rendered_links: int) -> None:
        lesson = self.lessons.setdefault(host, HostLesson())
        gained = rendered_links - plain_links
        if gained >= MANY_MORE_LINKS and rendered_links * 2 >= plain_links * 3:
            lesson.many_more += 1
        elif gained <= 0:
            lesson.no_more += 1

    def rest_after(self, host: str, note: RenderNote | None) -> float:
        """Seconds the host rests after a render: its delay for each subrequest made."""
        if note is None or not note.rendered:
            return 0.0
        return self.settings.policy_for(host).delay * note.subrequests

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
