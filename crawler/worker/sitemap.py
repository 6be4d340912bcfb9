"""A sitemap's lease: fetched in its host's slot, read as it streams, its URLs queued.

A sitemap is a URL in the frontier like a page, marked as one (``Lease.sitemap_level``),
so its fetch takes its host's politeness slot and robots.txt verdict like any
other (``LeaseRunner.run`` checks robots.txt before it comes here), and it ends
in one record: kind ``sitemap``, with ``urls``, the entries it listed.

Its entries are canonicalized, scoped and deduplicated like links, and queued
batch by batch while the body is still arriving: pages one level deeper than
the sitemap (in the band their ``<priority>`` gives, ``crawler.priority``),
the sitemaps an index names at the same depth and one nesting level further.
Queueing before the record is safe: a worker that dies midway leaves the lease
to expire, the sitemap is read again, and dedup drops what was queued already.
A file over a protocol limit, or malformed, ends as an error record; the URLs
read before the fault stay queued. With ``recrawl = true`` each page's
``<lastmod>`` is kept with its revisit state (``crawler.lastmod``).

With ``--warc`` the sitemap's response and request are captured like a
page's; its body is copied to a spool as it streams past the parser
(``WarcCapture.spool``), never held whole, and archived up to the 50 MB it may
be read to (``crawler.sitemaps.MAX_BYTES``).

Sitemaps come from robots.txt ``Sitemap:`` lines (``robots_sitemap_calls``,
called by ``RobotsCache`` with the verdict) and from ``crawl seed --sitemap``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import aiohttp

from crawler import errors
from crawler.discovery.lastmod import keep_lastmods, sitemap_lastmods
from crawler.discovery.sitemaps import MAX_NESTING, SitemapEntry, SitemapParser
from crawler.frontier import Call
from crawler.net.fetch import CHUNK, REDIRECT_STATUSES, Response, redirect_target
from crawler.net.fetch_errors import classify
from crawler.net.guard import check_literal_address
from crawler.observe.overview import status_tally
from crawler.pages.priority import raised_bands
from crawler.pages.warc import BodySpool
from crawler.results import dumps, make_record
from crawler.urls import canonicalize

if TYPE_CHECKING:
    from crawler.config import Settings
    from crawler.worker.parts import RunnerParts
    from crawler.worker.watch import InFlight

QUEUE_BATCH = 1000
"""Entries held before they are queued: a 50,000-URL sitemap is never in memory whole."""
ANSWERED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses the caller handles as for a page (retry, host backoff)."""


def sitemap_urls(reduced_robots: str) -> list[str]:
    """The Sitemap lines of a reduced robots.txt (``crawler.robots_rules``), canonical."""
    out: list[str] = []
    for line in reduced_robots.splitlines():
        field, colon, value = line.partition(":")
        if colon and field.strip().lower() == "sitemap":
            try:
                out.append(canonicalize(value.strip()))
            except errors.InvalidURL:
                continue
    return out


def sitemap_record(record: dict[str, object], urls: int) -> dict[str, object]:
    """A record of kind ``sitemap``: the fields every record has, then kind and URLs listed."""
    record["kind"] = "sitemap"
    record["urls"] = urls
    return record


class SitemapReader:
    """Reads the sitemap leases of one worker (``LeaseRunner``'s fetch for them)."""

    def __init__(self, runner: RunnerParts) -> None:
        self.runner = runner

    @property
    def settings(self) -> Settings:
        return self.runner.settings  # the crawl's, as changed by ``crawl config set``

    async def robots_sitemap_calls(self, reduced_robots: str) -> list[Call]:
        """add.lua calls queueing the in-scope sitemaps a robots.txt names, at depth 0."""
        urls = sitemap_urls(reduced_robots)
        if not urls:
            return []
        urls = await self._in_scope(urls, 0)
        frontier = self.runner.frontier
        await frontier.keyer.prime(urls)
        return frontier.add_calls(((url, 0) for url in urls), sitemap_level=0)[0]

    async def read(self, item: InFlight, attempt: int) -> Response | None:
        """Fetch and read the lease's sitemap; complete it, and return None.

        Returns the response instead when the caller must handle it as it
        handles a page's: a redirect (its target is queued as a sitemap) or a
        status worth a retry. Raises FetchError as ``Fetcher.get`` does.
        """
        lease = item.lease
        assert lease.sitemap_level is not None
        if lease.sitemap_level > MAX_NESTING:
            await self._finish(item, attempt, None, 0.0, 0, 0, error=(
                "sitemap_error", f"sitemap indexes nested more than {MAX_NESTING} deep"),
                no_request=True)
            return None
        fetcher = self.runner.fetcher
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self.settings.total_timeout + 1
        try:
            check_literal_address(lease.url, fetcher.policy)
            async with asyncio.timeout_at(deadline):
                resp = await fetcher.session.get(lease.url, allow_redirects=False,
                                                 timeout=fetcher.timeout,
                                                 ssl=fetcher.ssl_for(lease.url))
        except Exception as exc:
            raise classify(exc) from exc
        try:
            answer = Response(
                url=lease.url, final_url=lease.url, status=resp.status,
                content_type=resp.content_type.lower() if "Content-Type" in resp.headers
                else None, charset=resp.charset, body=b"", elapsed=0.0,
                headers={h: resp.headers[h] for h in ("Retry-After", "Content-Type", "Location")
                         if h in resp.headers},
                raw_headers=resp.raw_headers, reason=resp.reason or "",
                request_headers=resp.request_info.headers)  # for its WARC record
            if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                answer.redirect_to = redirect_target(lease.url, resp.headers["Location"],
                                                     resp.status)
                return answer
            if resp.status in ANSWERED_STATUSES:
                return answer
            parser = SitemapParser()
            warc = self.runner.warc
            # A sitemap's body is archived as far as it may be read; a 404's as a page's.
            spool = None if warc is None else warc.spool(
                parser.max_bytes if 200 <= resp.status < 300 else self.settings.max_body_bytes)
            try:
                truncated = None  # why the archived body is not whole (WARC-Truncated)
                if 200 <= resp.status < 300:
                    if (resp.content_length or 0) > parser.max_bytes:
                        parser.error = (f"Content-Length {resp.content_length} over "
                                        f"{parser.max_bytes} bytes")
                        truncated = "length"
                    else:
                        truncated = await self._read_body(item, resp, parser, deadline, spool)
                elif spool is not None:  # a 404's body is archived as a page's is
                    truncated = await self._archive_body(resp, spool, deadline)
                error = None if parser.error is None else ("sitemap_error", parser.error)
                if not 200 <= resp.status < 300:
                    error = None  # a 404 sitemap is recorded as a 404 page is: by its status
                answer.elapsed = time.monotonic() - started
                if warc is not None:  # before the result that names it
                    warc.write(answer, spool=spool, truncated=truncated)
            finally:
                if spool is not None:
                    spool.close()
            await self._finish(item, attempt, answer, answer.elapsed, parser.count,
                               parser.size, error=error)
            return None
        finally:
            resp.close()  # a sitemap cut short is not read to its end

    async def _read_body(self, item: InFlight, resp: aiohttp.ClientResponse,
                         parser: SitemapParser, deadline: float,
                         spool: BodySpool | None) -> str | None:
        """Feed the body to the parser, queueing its entries batch by batch.

        Each chunk is also copied to ``spool`` (WARC capture). Returns None
        if the body was read to its end, else why not, as WARC-Truncated
        says it. Only the reads are classified as fetch errors: a fault of
        our own while queueing must not pass for the server's.
        """
        pending: list[SitemapEntry] = []
        ended = False
        while parser.error is None:
            try:
                async with asyncio.timeout_at(deadline):
                    chunk = await resp.content.read(CHUNK)
            except Exception as exc:
                await self._queue(item, pending)  # what was read stands, as for a bad file
                raise classify(exc) from exc
            if not chunk:
                ended = True
                pending += parser.close()
                break
            if spool is not None:
                spool.write(chunk)
            pending += parser.feed(chunk)
            if len(pending) >= QUEUE_BATCH:
                await self._queue(item, pending)
                pending = []
        await self._queue(item, pending)
        if parser.size > parser.max_bytes or (spool is not None and spool.over):
            return "length"
        # A fault found in the last chunk still leaves the body whole.
        return None if ended or resp.content.at_eof() else "unspecified"

    async def _archive_body(self, resp: aiohttp.ClientResponse, spool: BodySpool,
                            deadline: float) -> str | None:
        """Copy a body that is not a sitemap (a 404's) to ``spool``, up to its cap.

        Returns None, or why the copy is not whole: nothing here fails the sitemap.
        """
        try:
            async with asyncio.timeout_at(deadline):
                while chunk := await resp.content.read(CHUNK):
                    spool.write(chunk)
                    if spool.over:
                        return "length"
        except (aiohttp.ClientError, OSError, TimeoutError):
            return "disconnect"
        return None

    async def _queue(self, item: InFlight, entries: list[SitemapEntry]) -> None:
        """Queue the entries' URLs that are valid and in scope (dedup drops the rest)."""
        if not entries:
            return
        lease = item.lease
        assert lease.sitemap_level is not None
        pages: list[str] = []
        sitemaps: list[str] = []
        priorities: dict[str, float] = {}
        for entry in entries:
            try:
                url = canonicalize(entry.url)
            except errors.InvalidURL:
                continue
            (sitemaps if entry.is_sitemap else pages).append(url)
            if entry.priority is not None and not entry.is_sitemap:
                priorities[url] = entry.priority
        frontier = self.runner.frontier
        pages = await self._in_scope(pages, lease.depth + 1)
        sitemaps = await self._in_scope(sitemaps, lease.depth)
        level = lease.sitemap_level + 1
        # Lists, not generators: a write is run again after a Redis outage.
        if pages:
            page_pairs = [(u, lease.depth + 1) for u in pages]
            bands = raised_bands(priorities, pages)  # <priority> over 0.5 raises a page
            await self.runner.write(lambda: frontier.add(page_pairs, bands=bands))
        if sitemaps:
            sitemap_pairs = [(u, lease.depth) for u in sitemaps]
            await self.runner.write(lambda: frontier.add(sitemap_pairs, sitemap_level=level))
        if pages and self.settings.recrawl:  # after the add: only seen URLs keep a lastmod
            listed = sitemap_lastmods(entries)
            stamps = {u: listed[u] for u in pages if u in listed}
            if stamps:
                await self.runner.write(lambda: keep_lastmods(frontier, stamps))

    async def _in_scope(self, urls: Iterable[str], depth: int) -> list[str]:
        urls = list(urls)
        scope = self.runner.scope
        unknown = scope.unknown_anchors(urls)
        if unknown:
            await self.runner.write(lambda: self.runner.worker.learn_anchors(unknown))
        return [u for u in urls if scope.allows(u, depth)]

    async def _finish(self, item: InFlight, attempt: int, resp: Response | None,
                      elapsed: float, urls: int, size: int, *,
                      error: tuple[str, str] | None = None, no_request: bool = False) -> None:
        lease = item.lease
        record = sitemap_record(make_record(
            url=lease.url, depth=lease.depth, attempts=attempt, worker=self.runner.worker.id,
            final_url=resp.final_url if resp else None, status=resp.status if resp else None,
            links=urls, content_type=resp.content_type if resp else None, size=size,
            elapsed=elapsed, error=error, warc=resp.warc if resp else None), urls)
        counters = self.runner.counters
        counters.pages += 1
        metrics = self.runner.worker.metrics
        if error is not None:
            counters.errors += 1
            metrics.failed(error[0], elapsed, resp.status if resp else None)
            tally = f"e:{error[0]}"
        else:
            assert resp is not None
            metrics.fetched(resp.status, elapsed, size)
            tally = status_tally(resp.status)
        frontier = self.runner.frontier
        await self.runner.write(lambda: frontier.complete(
            lease, dumps(record), is_error=error is not None, no_request=no_request,
            tally=tally))
        self.runner.worker.watch.progress()
