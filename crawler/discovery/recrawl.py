"""Incremental recrawl: what a revisit needs of each done URL, and re-queueing them.

With ``recrawl = true`` each done URL keeps, in its host's ``v:<host>`` hash
(same shard), under its path (``revisit_field``), one short string::

    fetched|visit|changes|depth[|lastmod[|interval]]|[c<capture>|]validator\\ntitle

``fetched``: unix seconds of its last result, on Redis's clock (``complete.lua``
stamps it); ``visit``: how many results it
has had; ``changes``: how many of its revisits found it changed; ``depth``:
its crawl depth; ``lastmod``: unix seconds of the ``<lastmod>`` a sitemap
last listed for it (0: none; ``crawler.lastmod``); ``interval``: seconds
until its next revisit with ``revisit_adaptive`` (``crawler.revisit_schedule``);
both are written only when set, so a crawl using neither pays nothing for
them. ``validator``: ``e<ETag>``, else ``m<Last-Modified>``, else ``h<hash of
the body>`` (16 hex digits), or empty; it never starts with a digit, which is
how a reader tells where the numbers end. ``capture``: with WARC capture on,
the ``WARC-Date`` and ``WARC-Record-ID`` (packed, 41 bytes with its ``c`` and
bar: ``crawler.warc.new_capture``) of the last 200 response record holding the
payload the validator stands for, which a 304's revisit record refers to;
written only when such a record was written, kept while the validator stays
(a 304, a failed visit), dropped when the validator changes without one. No
validator starts with ``c``. ``title``: the last one seen, carried into a
not-modified record. A sitemap can list a URL before its first
fetch: its state is then ``0|0|0|0|lastmod|`` (visit 0: not fetched yet).
``complete.lua`` writes the state with the URL's result and only then, so a
visit is counted once however often its lease is retried or reclaimed; it
keeps the lastmod stored meanwhile (a sitemap read while the page was fetched).

``crawl recrawl`` (``requeue``) runs ``recrawl.lua``, which queues the URLs
fetched before a cutoff (``--older-than``) or whose sitemap lastmod is at or
after a time and later than their last fetch (``--changed-since``), either
condition sufficing, and marks them (``*``) until their next result. A
revisit sends ``If-None-Match``/``If-Modified-Since``; a 304 ends in a record
with ``not_modified: true`` and the previous title; a 200 with another
validator, ``changed: true``. Every record then carries ``visit``, so a URL's
successive visits are told apart.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from crawler.config import Settings
from crawler.discovery.revisit_schedule import next_interval
from crawler.frontier import Frontier, Lease
from crawler.store import keys

REQUEUE_HOSTS = 100
"""Hosts one recrawl.lua call re-queues (a call holds the server about 10 µs a URL)."""
REQUEUE_FIELDS = 10_000
"""About how many done URLs one recrawl.lua call reads (HSCAN's hint, split over its
hosts): a host of a million done URLs takes a hundred calls, none of them long."""
STATE_NUMBERS = 6
"""Numbers a state may start with: fetched, visit, changes, depth, lastmod, interval."""


@dataclass(frozen=True, slots=True)
class RevisitState:
    """One done URL's state, as ``v:<host>`` keeps it."""

    fetched: int
    visit: int
    changes: int
    depth: int
    validator: str = ""
    title: str | None = None
    lastmod: int = 0  # a sitemap's <lastmod>, unix seconds; 0: none listed
    interval: int = 0  # seconds to its next revisit (revisit_adaptive); 0: none
    capture: str = ""  # the WARC record of the validator's payload (crawler.warc), or ''

    def dump(self) -> str:
        numbers = [self.fetched, self.visit, self.changes, self.depth]
        if self.lastmod or self.interval:
            numbers.append(self.lastmod)
        if self.interval:
            numbers.append(self.interval)
        capture = f"c{self.capture}|" if self.capture else ""
        head = "|".join(map(str, numbers)) + "|" + capture + self.validator
        return head if self.title is None else f"{head}\n{self.title}"

    @classmethod
    def parse(cls, text: str | bytes | None) -> RevisitState | None:
        if text is None:
            return None
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        head, newline, title = text.removeprefix("*").partition("\n")
        numbers: list[int] = []
        while len(numbers) < STATE_NUMBERS:
            number, bar, rest = head.partition("|")
            if not bar or not (number.isascii() and number.isdigit()):
                break
            numbers.append(int(number))
            head = rest
        if len(numbers) < 4:
            return None
        fetched, visit, changes, depth, *extra = numbers
        lastmod, interval = [*extra, 0, 0][:2]
        capture = ""
        if head.startswith("c"):  # no validator starts so
            capture, _, head = head[1:].partition("|")
        return cls(fetched, visit, changes, depth, head, title if newline else None,
                   lastmod, interval, capture)

    @property
    def fetched_once(self) -> bool:
        """False for a URL a sitemap listed that has no result yet (visit 0)."""
        return self.visit > 0

    def conditional_headers(self) -> dict[str, str]:
        """What a revisit sends, so an unchanged page can answer 304."""
        if self.validator.startswith("e"):
            return {"If-None-Match": self.validator[1:]}
        if self.validator.startswith("m"):
            return {"If-Modified-Since": self.validator[1:]}
        return {}


def validator_of(headers: dict[str, str], body: bytes) -> str:
    """ETag, else Last-Modified, else a hash of the body: what tells a change."""
    if headers.get("ETag"):
        return "e" + headers["ETag"]
    if headers.get("Last-Modified"):
        return "m" + headers["Last-Modified"]
    return "h" + hashlib.blake2b(body, digest_size=8).hexdigest()


def next_visit(lease: Lease, previous: RevisitState | None, record: dict[str, Any],
               headers: dict[str, str] | None, body: bytes,
               settings: Settings | None = None, capture: str = "") -> RevisitState:
    """This visit's state, and its marks on the record (``visit``, ``not_modified``,
    ``changed``, and a 304's carried title).

    ``headers`` is None when no response came (an error): the validator and
    title stay as they were. ``settings``: with ``revisit_adaptive``, the
    state carries the interval to the next revisit (``revisit_schedule``).
    ``capture``: this visit's WARC response record, packed, if one holding a
    200's payload was written: the capture a later 304 refers to.
    """
    lastmod = previous.lastmod if previous else 0
    if previous is not None and not previous.fetched_once:  # only a sitemap's lastmod
        previous = None
    visit = previous.visit + 1 if previous else 1
    record["visit"] = visit
    changes = previous.changes if previous else 0
    validator = previous.validator if previous else ""
    title = previous.title if previous else None
    payload = previous.capture if previous else ""
    if headers is not None and previous is not None and record.get("status") == 304:
        record["not_modified"] = True
        record["title"] = title
    elif headers is not None and record.get("error") is None:
        old, validator = validator, validator_of(headers, body)
        # The capture must hold the payload the validator now stands for.
        payload = capture or (payload if validator == old else "")
        title = record.get("title")
        if previous is not None:
            changed = validator != previous.validator
            record["changed"] = changed
            changes += changed
    interval = next_interval(previous, record, settings) if settings is not None else 0
    return RevisitState(int(time.time()), visit, changes, lease.depth, validator, title,
                        lastmod, interval, payload)


def revisit_field(host: str, url: str) -> str:
    """A URL's field in ``v:<host>``: ``s`` or ``h`` and its path when it is on the
    host itself over https or http (the usual case: ~35 bytes less), else the URL
    (``recrawl.lua`` turns it back into the URL)."""
    for mark, scheme in (("s", "https://"), ("h", "http://")):
        origin = scheme + host
        if url.startswith(origin) and url[len(origin):len(origin) + 1] == "/":
            return mark + url[len(origin):]
    return url


async def requeue(redis: Redis, settings: Settings, older_than: float | None = None, *,
                  changed_since: float | None = None) -> int:
    """Queue again every done URL whose last fetch is more than ``older_than`` s ago, or
    whose sitemap lastmod is at or after ``changed_since`` (unix seconds) and later than
    its last fetch: either condition suffices; a URL is queued once. Returns how many."""
    if older_than is None and changed_since is None:
        raise ValueError("requeue needs older_than, changed_since or both")
    frontier = Frontier(redis, settings, local_dedup=False)
    age = -1 if older_than is None else int(older_than)  # from now on Redis's clock
    since = -1 if changed_since is None else int(changed_since)
    policy = settings.policy_for("")
    total = 0
    for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
        hosts: list[str] = []
        async for host in redis.sscan_iter(shard.recrawl_hosts, count=REQUEUE_HOSTS):
            hosts.append(host.decode() if isinstance(host, bytes) else host)
        pending = [(host, "0") for host in hosts]
        while pending:
            chunk, pending = pending[:REQUEUE_HOSTS], pending[REQUEUE_HOSTS:]
            hint = max(100, REQUEUE_FIELDS // len(chunk))
            [reply] = await frontier.run([("recrawl", shard.script_keys, [
                shard.base, age, since, policy.max_per_host, int(policy.delay * 1000), hint,
                *(x for pair in chunk for x in pair)])])
            total += int(reply[0])
            # A large host is read a page a call, until its cursor comes back to 0.
            cursors = [c.decode() if isinstance(c, bytes) else str(c) for c in reply[1:]]
            pending += [(host, cursor) for (host, _), cursor in zip(chunk, cursors, strict=True)
                        if cursor != "0"]
    return total


def parse_age(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``12h``, ``7d`` (or a bare number of seconds)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    text = text.strip().lower()
    factor = units.get(text[-1:], 0)
    number = text[:-1] if factor else text
    try:
        value = float(number) * (factor or 1)
    except ValueError:
        raise ValueError(f"not an age: {text!r} (say 90s, 30m, 12h or 7d)") from None
    if value < 0 or value != value:
        raise ValueError(f"not an age: {text!r}")
    return value
