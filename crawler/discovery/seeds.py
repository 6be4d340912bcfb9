"""Seeding: stream a file of URLs into the frontier, reporting bad lines by number."""

from __future__ import annotations

import asyncio
import gc
import re
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, BinaryIO

from redis.asyncio import Redis

from crawler.aio import cancel_and_wait
from crawler.config import Settings
from crawler.discovery.lastmod import read_sitemaps_again
from crawler.errors import InvalidURL
from crawler.frontier import Frontier
from crawler.frontier.scope_anchors import ScopeStore
from crawler.frontier.scripts import Call
from crawler.pages.scope import anchors_for
from crawler.urls import canonicalize, hostname

WINDOW = 50_000
"""Seed URLs read, sorted by host and sent as one pipeline of add calls. The more URLs
of a host one window holds, the fewer times an add call pays for the host's state,
queue and prefix table (1,000 hosts: 50 URLs a host a window, against 10 at a window
of 10,000, take a fifth less server time a URL)."""
FIRST_WINDOW = 30_000
"""Windows start this large and grow by a quarter each (30,000, 37,500, 46,875, then
WINDOW). This process prepares a window while Valkey runs the one before: with a
whole WINDOW first, Valkey waited for it. Seeding 1M URLs, interleaved, Valkey idle:
2.2 s with 50,000 first, 1.1-1.4 s with 30,000 or 5,000. Smaller first windows split a
host's URLs over more add calls, and a query's prefix joins the host's table only when
two URLs of one call use it (add.lua): starting at 5,000 cost the paged shape 45.0 -> 45.4 B a
queued URL and forum 31.0 -> 32.8 (200,000 URLs, 100 a host)."""
WINDOW_GROWTH = 1.25
PREPARE_SLICE = 2_000
"""Sorted URLs turned into add calls between two turns of the event loop."""
IN_FLIGHT = 2
"""Windows sent and not yet answered: Valkey starts on the next window while this
process takes the replies of one and sends its successor."""
YIELD_EVERY = 200
"""Lines read between two turns of the event loop (which writes the pipeline in flight)."""
MAX_LINE_BYTES = 16 * 1024
"""Longer seed lines are reported and skipped without being held in memory."""
BOM = b"\xef\xbb\xbf"
DEFAULT_SCHEMES = ("https", "http")
"""What ``crawl seed --default-scheme`` may put before a bare ``example.com``."""
_HAS_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:(?!\d)")
"""``mailto:x`` and ``http://x`` have a scheme; ``example.com:8080/`` is a host and port."""


@dataclass
class SeedReport:
    added: int = 0
    seen: int = 0
    invalid: int = 0
    capped: int = 0
    problems: list[tuple[int, str]] = field(default_factory=list)
    assumed_scheme: int = 0  # lines without a scheme, seeded with the default one
    reread: int = 0  # sitemaps read before, queued to be read again (recrawl = true)

    @property
    def valid(self) -> int:
        return self.added + self.seen + self.capped + self.reread


def with_default_scheme(text: str, scheme: str | None) -> str | None:
    """``example.com/a`` as ``https://example.com/a``; None if it has a scheme (or no default).

    Browsers and most crawl tools read a bare host so; ``mailto:x`` keeps its scheme
    (and is then refused), ``localhost:8080`` is a host and port.
    """
    if scheme is None or "://" in text or _HAS_SCHEME.match(text):
        return None
    return f"{scheme}://{text.removeprefix('//')}"


def bare_word(url: str) -> bool:
    """A host without a dot (``https://garbage/``), other than localhost: no Internet host."""
    host = hostname(url)
    return "." not in host and not host.startswith("[") and host != "localhost"


def read_seed_lines(stream: BinaryIO, default_scheme: str | None = None,
                    on_assumed: Callable[[int, str, str], None] | None = None,
                    allow_bare_hosts: bool = True,
                    ) -> Iterator[tuple[int, str | None, str]]:
    """Yield (line number, canonical URL or None, problem) for each non-blank, non-comment line.

    Reads bytes a line at a time: a huge file or a huge line never sits in memory.
    A line without a scheme gets ``default_scheme`` (None: it is a bad line), and
    ``on_assumed(number, text, url)`` is told. Such a line that is one word
    without a dot (``garbage``) is most likely no host at all: refused unless
    ``allow_bare_hosts`` (a line with its scheme, ``http://intranet/``, is taken).
    """
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                raw = stream.readline(MAX_LINE_BYTES)
            yield number, None, f"line longer than {MAX_LINE_BYTES} bytes"
            continue
        if number == 1 and raw.startswith(BOM):  # files saved by some Windows editors
            raw = raw[len(BOM):]
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield number, None, "not valid UTF-8"
            continue
        if not text or text.startswith("#"):
            continue
        if not text.isprintable():
            yield number, None, "contains control characters"
            continue
        assumed = with_default_scheme(text, default_scheme)
        try:
            url = canonicalize(assumed or text)
        except InvalidURL as exc:
            shown = repr(text[:80])
            if assumed and str(exc).startswith("bad host"):  # not a host, let alone a URL
                yield number, None, f"not a URL or host name: {shown}"
            else:  # the message may quote the text already: not twice
                yield number, None, str(exc) if shown in str(exc) else f"{exc}: {shown}"
            continue
        if assumed and not allow_bare_hosts and bare_word(url):
            yield number, None, (f"{text[:80]!r} is not a host name (no dot): write "
                                 f"{url} to mean it, or pass --allow-bare-hosts")
            continue
        if assumed and on_assumed:
            on_assumed(number, text, url)
        yield number, url, ""


@contextmanager
def _rare_collections() -> Iterator[None]:
    """Seeding allocates millions of short-lived strings and tuples, and no cycles;
    Python's cycle collector, run every 700 allocations by default, walks them all
    for nothing (a tenth of seeding's CPU). It runs every 100,000 meanwhile."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 100_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def seed(redis: Redis, settings: Settings, stream: BinaryIO,
               on_problem: Callable[[int, str], None] | None = None, *,
               default_scheme: str | None = None,
               on_assumed: Callable[[int, str, str], None] | None = None,
               allow_bare_hosts: bool = False) -> SeedReport:
    """Add every valid URL in ``stream`` at depth 0; report the rest by line number.

    ``default_scheme``: what a line without one (``example.com``) gets; None
    makes such a line a bad one. ``on_assumed`` hears of the first such line.
    ``allow_bare_hosts``: take such a line that is one word without a dot.

    Pipelined: while Valkey runs one window's add calls (and has the next one
    queued), this process reads and prepares a third. A window is sorted by
    host first, so each add call holds few hosts with many URLs each (one
    queue push and one prefix table lookup a host) instead of as many hosts
    as URLs.

    Seeding is what creates a crawl: its layout is recorded here if it is new
    (``crawl_layout``), so a crawl seeded through this function, not only by
    ``crawl seed``, is one the other commands find.
    """
    from crawler.store.layout import crawl_layout

    settings = await crawl_layout(redis, settings)
    frontier = Frontier(redis, settings, local_dedup=False)
    scope = ScopeStore(redis, settings)
    report = SeedReport()
    window: list[str] = []
    window_size = min(FIRST_WINDOW, WINDOW)
    in_flight: deque[asyncio.Task[list[Any]]] = deque()

    def count(replies: list[Any]) -> None:
        for added, seen, capped in replies:
            report.added += int(added)
            report.seen += int(seen)
            report.capped += int(capped)

    async def send(urls: list[str]) -> None:
        await frontier.keyer.prime(urls)
        keyed = sorted(((frontier.keyer.key(url), url) for url in urls), key=itemgetter(0))
        calls: list[Call] = []
        for start in range(0, len(keyed), PREPARE_SLICE):
            part = keyed[start:start + PREPARE_SLICE]
            calls += frontier.add_calls(((url, 0) for _, url in part),
                                        hosts=[host for host, _ in part], seeded=True)[0]
            # Let the event loop feed Valkey the window in flight: the socket
            # holds a few milliseconds of its work, this loop takes far longer.
            await asyncio.sleep(0)
        first_of_host = {host: url for host, url in reversed(keyed)}
        anchors = anchors_for(first_of_host.values())
        while len(in_flight) >= IN_FLIGHT:
            count(await in_flight.popleft())
        # Scope anchors first: a running worker may claim these URLs at once,
        # and must then see their hosts as in scope.
        await scope.add(anchors)
        in_flight.append(asyncio.create_task(frontier.run(calls)))

    def assumed(number: int, text: str, url: str) -> None:
        report.assumed_scheme += 1
        if report.assumed_scheme == 1 and on_assumed:
            on_assumed(number, text, url)

    with _rare_collections():
        try:
            for number, url, problem in read_seed_lines(stream, default_scheme, assumed,
                                                             allow_bare_hosts):
                if url is None:
                    report.invalid += 1
                    if len(report.problems) < 1000:
                        report.problems.append((number, problem))
                    if on_problem:
                        on_problem(number, problem)
                    continue
                window.append(url)
                if len(window) % YIELD_EVERY == 0:
                    # The pipeline in flight is larger than the socket's buffer: let
                    # the event loop keep writing it while this loop reads lines.
                    await asyncio.sleep(0)
                if len(window) >= window_size:
                    await send(window)
                    window_size = min(WINDOW, int(window_size * WINDOW_GROWTH))
                    window = []
            if window:
                await send(window)
            while in_flight:
                count(await in_flight.popleft())
        finally:
            if in_flight:
                await cancel_and_wait(list(in_flight), within=5.0)
    return report


async def seed_sitemaps(redis: Redis, settings: Settings, urls: list[str]) -> SeedReport:
    """Queue sitemaps to read (``crawl seed --sitemap``), at depth 0 like seed URLs.

    Their hosts join the scope as a seed's do; the pages they list are queued
    at depth 1 when a worker reads them (``crawler.worker.sitemap``). With
    ``recrawl = true`` a sitemap read before is read again (``reread``).
    """
    frontier = Frontier(redis, settings, local_dedup=False)
    report = SeedReport()
    canonical: list[str] = []
    for number, url in enumerate(urls, 1):
        try:
            canonical.append(canonicalize(url.strip()))
        except InvalidURL as exc:
            report.invalid += 1
            report.problems.append((number, f"{exc}: {url[:80]!r}"))
    if canonical:
        await ScopeStore(redis, settings).add(anchors_for(canonical))
        if settings.recrawl:  # its lastmods, fresh, are what crawl recrawl --changed-since uses
            queued, before = await read_sitemaps_again(frontier, canonical)
            report.added, report.reread = queued - before, before
        else:
            counts = await frontier.add(((url, 0) for url in canonical), sitemap_level=0)
            report.added, report.seen, report.capped = counts.added, counts.seen, counts.capped
    return report
