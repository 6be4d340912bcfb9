"""What happens to one claimed URL: robots check, fetch, then exactly one frontier write.

Every path through ``LeaseRunner.run`` ends in one write (complete or retry),
or in none when robots.txt took the lease's slot (``robots.lua`` gave the
lease back itself). Writes go through ``Write``, which the worker shields
from cancellation and retries while Redis is down.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from crawler import errors
from crawler.discovery.recrawl import RevisitState, next_visit, revisit_field
from crawler.frontier import Lease
from crawler.frontier.politeness import SlotMissed, adaptive_delay
from crawler.net.fetch import Response
from crawler.net.robots import RobotsFetched, RobotsUnavailable, product_token
from crawler.observe.overview import status_tally
from crawler.pages.extract import Extracted, Extractor
from crawler.pages.page_signals import read_page_signals
from crawler.pages.priority import raised_bands
from crawler.pages.scope import anchors_for
from crawler.pages.simhash import to_hex
from crawler.pages.warc import WarcCapture
from crawler.results import dumps, make_record
from crawler.worker import cookies
from crawler.worker.backoff import REDIS_ERRORS, backoff_delay, log, retry_after
from crawler.worker.canonical import drops_links, page_canonical
from crawler.worker.links import links_to_queue
from crawler.worker.parts import Write
from crawler.worker.render import Rendering, archive_rendered
from crawler.worker.sitemap import SitemapReader
from crawler.worker.watch import InFlight

if TYPE_CHECKING:
    from crawler.config import Settings
    from crawler.pages.scope import Scope
    from crawler.worker.parts import WorkerParts

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
HOST_BACKOFF_STATUSES = frozenset({429, 503})



class LeaseRunner:
    """Processes leases for one worker, with its frontier, robots cache, session and scope."""

    def __init__(self, worker: WorkerParts) -> None:
        assert worker.robots is not None and worker.fetcher is not None
        self.worker = worker
        self.settings = worker.settings
        self.frontier = worker.frontier
        self.robots = worker.robots
        self.fetcher = worker.fetcher
        self.scope = worker.scope
        self.counters = worker.counters
        self.write: Write = worker.write
        self.agent = product_token(worker.settings.user_agent)
        self.sitemaps = SitemapReader(self)
        if worker.settings.sitemaps:
            self.robots.on_sitemaps = self.sitemaps.robots_sitemap_calls
        self.extractor = Extractor.from_settings(worker.settings)  # None: no hook
        self.warc = WarcCapture.from_settings(worker.settings)  # None: no capture
        self.rendering = Rendering(worker.settings, worker.fetcher, self.robots.allows)

    def use(self, settings: Settings, scope: Scope) -> None:
        """Changed crawl settings (``crawl config set``): from the next lease on."""
        self.settings = settings
        self.scope = scope
        self.agent = product_token(settings.user_agent)
        self.robots.on_sitemaps = self.sitemaps.robots_sitemap_calls if settings.sitemaps \
            else None
        self.set_hook(settings)
        try:
            self.rendering.use(settings)
        except errors.ConfigError as exc:
            log.error("crawl settings: %s; pages are not rendered", exc)

    def set_hook(self, settings: Settings) -> None:
        """Use the crawl's changed ``extract`` (crawl config set); keep the old hook if it fails."""
        current = self.extractor.name if self.extractor is not None else ""
        if settings.extract == current:
            return
        try:
            hook = Extractor.from_settings(settings)
        except errors.ConfigError as exc:
            log.error("crawl settings: %s; the extraction hook stays %r", exc, current)
            return
        if self.extractor is not None:
            self.extractor.close()
        self.extractor = hook
        log.warning("extraction hook now %r", settings.extract)

    async def close_browser(self) -> None:
        """Close the browser, if one was started (crawler.net.browser)."""
        await self.rendering.close()

    def close(self) -> None:
        """Close what the runner holds open (the WARC file, the hook's threads)."""
        if self.warc is not None:
            self.warc.close()
        if self.extractor is not None:
            self.extractor.close()

    async def run(self, item: InFlight, deadline: float = math.inf) -> None:
        lease = item.lease
        attempt = lease.attempts + 1
        if lease.attempts >= self.settings.max_attempts:
            # Reclaimed after its worker died, too many times: give up on it.
            await self._finish_error(item, lease.attempts, 0.0, errors.FetchError(
                f"lease expired {lease.attempts} times without a result"), "lease_expired")
            return
        started = time.monotonic()
        # The URL as found, without its tracking and session parameters: the
        # URL deduplicated and asked for (crawler.frontier.query_clean).
        fetch_url = self.frontier.cleaner.clean(lease.url)
        try:
            item.at("robots")
            await self.robots.check(lease if fetch_url == lease.url else
                                    replace(lease, url=fetch_url), deadline)
            if time.monotonic() > deadline:
                raise SlotMissed(lease.url)
            item.at("fetch")
            if self.settings.recrawl:  # the claim brought the state back with the lease
                item.previous = RevisitState.parse(lease.revisit_state or None)
            if lease.sitemap_level is None:
                headers = item.previous.conditional_headers() if item.previous else None
                if self.settings.cookies:
                    headers = cookies.request_headers(item, headers)
                resp = await self.fetcher.get(fetch_url, headers=headers)
                if self.settings.cookies:
                    item.cookie_updates = cookies.jar_updates(resp)
                resp = await self.rendering.after_fetch(item, resp)  # in the lease, its slot
            else:
                sitemap_resp = await self.sitemaps.read(item, attempt)
                if sitemap_resp is None:  # read and completed
                    return
                resp = sitemap_resp
        except SlotMissed:
            # Starting now could put this request closer than the host's delay to
            # the next one: give the slot back unused (crawler.politeness).
            self.counters.missed_slots += 1
            await self._write(item, lambda: self.frontier.retry(lease, 0.0, count_attempt=False))
            return
        except RobotsFetched:
            # The host's slot went to robots.txt; robots.lua already put the
            # page back in its queue for the next slot.
            return
        except REDIS_ERRORS as exc:
            # The robots.txt verdict lives in Redis, which is down: not the URL's
            # fault. Give it back uncounted once Redis answers (write waits).
            log.warning("redis unavailable during robots check (%s); giving %s back",
                        exc, lease.url)
            await self._write(item, lambda: self.frontier.retry(lease, 0.0, count_attempt=False))
            return
        except RobotsUnavailable as exc:
            # robots.txt is down for now: the whole host waits for its next try.
            # Not this URL's attempt: robots.txt has its own retry budget.
            await self._retry(item, exc.retry_after or backoff_delay(1, self.settings),
                              host_backoff=True, count_attempt=False, reason="robots")
            return
        except errors.FetchError as exc:
            await self._fetch_failed(item, attempt, time.monotonic() - started, exc)
            return
        if self.warc is not None:  # before the result that names it; a rendered page's
            # response as fetched, then its DOM (a conversion record)
            item.capture = self.warc.write(item.plain or resp,
                                           item.previous.capture if item.previous else "")
            archive_rendered(self.warc, item, resp)
        if resp.status in RETRY_STATUSES:
            await self._status_retry(item, attempt, resp)
            return
        if resp.redirect_to is not None:
            await self._finish_redirect(item, attempt, resp, resp.redirect_to)
            return
        await self._finish_page(item, attempt, resp)

    async def _fetch_failed(self, item: InFlight, attempt: int, elapsed: float,
                            exc: errors.FetchError) -> None:
        """A fetch (or render) failed: another attempt later, or the URL's error record."""
        if exc.retry and attempt < self.settings.max_attempts:
            await self._retry(item, backoff_delay(attempt, self.settings), elapsed=elapsed)
        else:
            await self._finish_error(item, attempt, elapsed, exc,
                                     no_request=not exc.made_request)

    async def _render_for_hook(self, item: InFlight, attempt: int, resp: Response,
                               screenshot: bool) -> Response | None:
        """The page rendered at the hook's request, its DOM archived after its response;
        None when the render failed (the lease's retry or error is written then)."""
        try:
            rendered = await self.rendering.render_for_hook(item, resp, screenshot)
        except errors.FetchError as exc:
            await self._fetch_failed(item, attempt, resp.elapsed, exc)
            return None
        archive_rendered(self.warc, item, rendered)
        return rendered

    async def _finish_redirect(self, item: InFlight, attempt: int, resp: Response,
                               target: str) -> None:
        """A redirect ends its URL with a 3xx record; the target is queued as a URL of its own.

        The target is deduplicated, scoped and checked against robots.txt, and
        waits for its own host's politeness slot. It keeps the depth, with one
        more hop; past ``max_redirects`` hops the chain ends as redirect_error.
        A seed's redirect target counts as a seed: its host joins the scope
        (example.com -> https://www.example.com/ must not leave the crawl empty).
        """
        lease = item.lease
        problem = None
        if lease.hops >= self.settings.max_redirects:
            problem = f"more than {self.settings.max_redirects} redirects"
        elif target == lease.url:
            problem = "redirect to itself"
        if problem is not None:
            exc = errors.RedirectError(f"{problem}: {lease.url} -> {target}", status=resp.status)
            await self._finish_error(item, attempt, resp.elapsed, exc, response=resp,
                                     redirect_to=target)
            return
        unknown = self.scope.unknown_anchors([target])
        if unknown:
            await self.write(lambda: self.worker.learn_anchors(unknown))
        if lease.depth == 0 and not self.scope.allows(target, 0):
            await self.write(lambda: self.worker.extend_scope([target]))
        follow = self.scope.allows(target, lease.depth)
        record = make_record(
            url=lease.url, depth=lease.depth, attempts=attempt, worker=self.worker.id,
            dedup_url=self._dedup_url(lease),
            final_url=lease.url, status=resp.status, content_type=resp.content_type,
            size=len(resp.body), elapsed=resp.elapsed, redirect_to=target, warc=resp.warc,
            total_elapsed=self._all_attempts(lease, resp.elapsed))
        self.counters.pages += 1
        self.worker.metrics.fetched(resp.status, resp.elapsed, len(resp.body))
        revisit = self._revisit(item, record, resp)
        await self._complete(item, record, redirect_to=target if follow else None,
                             tally=status_tally(resp.status), revisit=revisit)

    async def _status_retry(self, item: InFlight, attempt: int, resp: Response) -> None:
        host_backoff = resp.status in HOST_BACKOFF_STATUSES
        wait = retry_after(resp.headers.get("Retry-After"), self.settings.backoff_max)
        delay = wait if wait is not None else backoff_delay(attempt, self.settings)
        if attempt < self.settings.max_attempts:
            await self._retry(item, delay, host_backoff=host_backoff, elapsed=resp.elapsed,
                              reason="backoff" if wait is None else "retry-after")
            return
        exc = errors.HTTPStatusError(f"HTTP {resp.status} after {attempt} attempts",
                                     status=resp.status)
        await self._finish_error(item, attempt, resp.elapsed, exc, response=resp,
                                 not_before=delay if host_backoff else 0.0)

    async def _finish_page(self, item: InFlight, attempt: int, resp: Response) -> None:
        lease = item.lease
        links: list[tuple[str, int]] = []
        if resp.is_html:
            item.at("parse")
        said = read_page_signals(resp, self.agent, self.settings,
                                 keep_tree=self.extractor is not None)
        page = said.page
        if lease.depth == 0:  # a seed (or a seed's redirect): its host is in scope
            self.scope.remember(dict.fromkeys(anchors_for([lease.url]), True))
        canonical, duplicate = await page_canonical(self, lease, resp, said.canonical)
        if said.links and not said.nofollow and not drops_links(self.settings, duplicate):
            links = await links_to_queue(self, said.links, lease.depth + 1)
        if duplicate is not None and not self.frontier.sent_recently(duplicate):
            links.append((duplicate, lease.depth))  # the same page, under its own URL
        # Only a page with text: an empty one is no one's near-duplicate.
        simhash = to_hex(page.simhash) if page is not None and page.simhash else None
        simhash_weak = to_hex(page.simhash_weak) if page is not None and simhash else ""
        extracted: Extracted | None = None
        link_bands: dict[str, int] | None = None
        if self.extractor is not None:
            item.at("extract")
            extracted = await self.extractor.run(
                resp, page, self.rendering.offer(item, resp, capture=self.warc is not None))
            if page is not None:
                page.tree = None  # not held while the completion waits for its group commit
            if extracted.render_again and extracted.error is None:
                # p.render_again(): the page again, from its DOM, the hook called on it
                rendered = await self._render_for_hook(item, attempt, resp, extracted.screenshot)
                if rendered is not None:
                    await self._finish_page(item, attempt, rendered)
                return
            if extracted.follow:
                queued = {u for u, _ in links}
                links += await links_to_queue(
                    self, [u for u in dict.fromkeys(extracted.follow) if u not in queued],
                    lease.depth + 1)
            if extracted.priorities:  # the hook raised some: queued in their bands
                link_bands = raised_bands(extracted.priorities, (u for u, _ in links))
        record = make_record(
            url=lease.url, depth=lease.depth, attempts=attempt, worker=self.worker.id,
            dedup_url=self._dedup_url(lease),
            final_url=resp.final_url, status=resp.status, title=said.title,
            links=said.link_count,
            content_type=resp.content_type, size=len((item.plain or resp).body),
            elapsed=resp.elapsed,
            noindex=said.noindex, error=extracted.error if extracted else None, warc=resp.warc,
            canonical=canonical, duplicate_of=duplicate,
            total_elapsed=self._all_attempts(lease, resp.elapsed), simhash=simhash)
        if item.render is not None:
            record.update(item.render.fields())
        if extracted is not None:
            record["data"] = extracted.data
            self.counters.errors += extracted.error is not None
        self.counters.pages += 1
        if 400 <= resp.status < 500:
            self.counters.client_errors += 1
        plain = item.plain or resp  # as fetched (the server's time, the bytes it sent)
        pause = max(adaptive_delay(plain.elapsed, self.settings),
                    self.rendering.rest_after(lease.host, item.render))
        failed = extracted is not None and extracted.error is not None
        self.worker.metrics.fetched(resp.status, resp.elapsed, len(resp.body))
        revisit = self._revisit(item, record, plain)
        await self._complete(item, record, links=links, not_before=pause, is_error=failed,
                             tally="e:extract_error" if failed else status_tally(resp.status),
                             revisit=revisit, link_bands=link_bands, simhash=simhash,
                             simhash_weak=simhash_weak)

    def _dedup_url(self, lease: Lease) -> str | None:
        """The key the lease's URL was deduplicated under, if not the URL itself."""
        key = self.frontier.dedup_key(lease.url)
        return None if key == lease.url else key

    async def _finish_error(self, item: InFlight, attempt: int, elapsed: float,
                            exc: errors.FetchError, error_type: str | None = None, *,
                            response: Response | None = None, not_before: float = 0.0,
                            no_request: bool = False, redirect_to: str | None = None) -> None:
        lease = item.lease
        record = make_record(
            url=lease.url, depth=lease.depth, attempts=attempt, worker=self.worker.id,
            dedup_url=self._dedup_url(lease),
            final_url=response.final_url if response else None,
            status=response.status if response else exc.status,
            content_type=response.content_type if response else None,
            size=len(response.body) if response else 0, elapsed=elapsed,
            error=(error_type or exc.type, str(exc)), redirect_to=redirect_to,
            warc=response.warc if response else None,
            total_elapsed=self._all_attempts(lease, elapsed))
        self.counters.pages += 1
        self.counters.errors += 1
        kind = error_type or exc.type
        self.counters.by_error.add(kind, str(exc))
        self.worker.metrics.failed(kind, elapsed, response.status if response else None)
        revisit = self._revisit(item, record, response)
        await self._complete(item, record, is_error=True, not_before=not_before,
                             no_request=no_request, tally=f"e:{kind}", revisit=revisit)

    def _revisit(self, item: InFlight, record: dict[str, Any], resp: Response | None
                 ) -> tuple[str, str] | None:
        """recrawl = true: this visit's state to store, and its marks on the record."""
        if not self.settings.recrawl or item.lease.sitemap_level is not None:
            return None
        return revisit_field(item.lease.host, item.lease.url), next_visit(
            item.lease, item.previous, record, resp.headers if resp else None,
            resp.body if resp else b"", self.settings, item.capture).dump()

    async def _retry(self, item: InFlight, delay: float, *, host_backoff: bool = False,
                     count_attempt: bool = True, reason: str = "backoff",
                     elapsed: float = 0.0) -> None:
        """Give the lease back for a later attempt; a counted one adds its time to the URL's."""
        self.counters.retries += 1
        lease = item.lease

        await self._write(item, lambda: self.frontier.retry(
            lease, delay, host_backoff=host_backoff, count_attempt=count_attempt, reason=reason,
            elapsed=elapsed if count_attempt else 0.0, cookies=item.cookie_updates))

    @staticmethod
    def _all_attempts(lease: Lease, last: float) -> float:
        """Seconds this URL's attempts took, the last one (``last``) included: retry.lua
        kept the earlier ones' time, and the claim brought it back with the lease."""
        return last + lease.earlier_ms / 1000

    async def _complete(self, item: InFlight, record: dict[str, object], **kw: Any) -> None:
        """Complete the lease with ``record`` (complete.lua forgets its attempt times)."""
        if self.settings.cookies:  # how many, never which (crawler.worker.cookies)
            record["cookies_sent"] = item.cookies_sent
        await self._write(item, lambda: self.frontier.complete(
            item.lease, dumps(record), cookies=item.cookie_updates, **kw))

    async def _write(self, item: InFlight, call: Callable[[], Awaitable[object]]) -> None:
        item.at("write")
        await self.write(call)
        self.worker.watch.progress()
