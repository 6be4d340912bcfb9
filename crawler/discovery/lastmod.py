"""A sitemap's ``<lastmod>``: read as W3C Datetime, kept with the URL's revisit state.

With ``recrawl = true`` every page a sitemap lists with a ``<lastmod>`` keeps
that time (unix seconds) in its revisit state (``crawler.recrawl``), whether
the URL is new, queued or done already: ``lastmod.lua`` writes it into the
state of every listed URL the crawl has seen (a URL dedup refused, over
``max_pages_per_host``, keeps nothing), and ``complete.lua`` carries it into
the state of the URL's next result. ``crawl recrawl --changed-since`` then
re-queues the done URLs whose lastmod is later than their last fetch.

A lastmod in the future counts as the time it was listed (the script clamps
it to the server's clock): a wrong clock on the site must not make a page look
changed at every recrawl.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from crawler import errors
from crawler.discovery.recrawl import parse_age, revisit_field
from crawler.store import keys
from crawler.urls import canonicalize, fingerprint, fingerprint_bucket

if TYPE_CHECKING:
    from crawler.discovery.sitemaps import SitemapEntry
    from crawler.frontier import Call, Frontier

W3C_DATETIME = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?")
"""YYYY, YYYY-MM, YYYY-MM-DD, then hh:mm, :ss, .fraction and a zone (W3C Datetime, the
format sitemaps.org names; a space for the T is tolerated, as sites write it)."""
AGE_UNITS = "smhdw"
LASTMOD_CHUNK = 250
"""URLs in one lastmod.lua call (a few µs each: no call holds the server for long)."""


def parse_w3c(text: str) -> int | None:
    """Unix seconds of a W3C Datetime (no zone: UTC); None if it is not one."""
    match = W3C_DATETIME.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, zone = match.groups()
    tz: timezone = UTC
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        when = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                        int(minute or 0), int(second or 0), tzinfo=tz)
    except ValueError:  # month 13, a zone of 25 hours
        return None
    seconds = int(when.timestamp())
    return seconds if seconds > 0 else None


def parse_since(text: str, now: float | None = None) -> int:
    """``--changed-since``: a date or datetime (``2026-11-01``, ``2026-11-01T08:00Z``;
    no zone: UTC), or an age before now with its unit (``12h``, ``7d``). Unix seconds."""
    text = text.strip()
    if text[-1:].lower() in AGE_UNITS and text[:-1].replace(".", "", 1).isdigit():
        return int((time.time() if now is None else now) - parse_age(text))
    when = parse_w3c(text) if "-" in text else None  # a bare "2026" would read as seconds
    if when is None:
        raise ValueError(f"not a date, datetime or age: {text!r} "
                         "(say 2026-11-01, 2026-11-01T08:00:00Z or 7d)")
    return when


def sitemap_lastmods(entries: Iterable[SitemapEntry]) -> dict[str, int]:
    """Canonical page URL -> its lastmod, for the entries that list a valid one."""
    out: dict[str, int] = {}
    for entry in entries:
        if entry.is_sitemap or not entry.lastmod:
            continue
        when = parse_w3c(entry.lastmod)
        if when is None:
            continue
        try:
            out[canonicalize(entry.url)] = when
        except errors.InvalidURL:
            continue
    return out


def lastmod_calls(frontier: Frontier, lastmods: dict[str, int]) -> list[Call]:
    """lastmod.lua calls (one per shard) keeping these URLs' lastmods; the URLs' politeness
    keys must be known (``frontier.keyer.prime``)."""
    bits = frontier.settings.dedup_bucket_bits
    by_shard: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for url in lastmods:
        host = frontier.keyer.key(url)
        by_shard[keys.shard_of(host, len(frontier.shards))].append((host, url))
    calls: list[Call] = []
    for shard_no, urls in by_shard.items():
        shard = frontier.shards[shard_no]
        urls.sort()  # a host's URLs together: one group each
        for start in range(0, len(urls), LASTMOD_CHUNK):
            groups: dict[str, list[Any]] = defaultdict(list)
            for host, url in urls[start:start + LASTMOD_CHUNK]:
                fp = fingerprint(frontier.dedup_key(url))
                groups[host] += (f"{fingerprint_bucket(fp, bits):x}", fp,
                                 revisit_field(host, url), lastmods[url])
            args: list[Any] = [shard.base]
            for host, group in groups.items():
                args += (host, len(group) // 4, *group)
            calls.append(("lastmod", shard.script_keys, args))
    return calls


async def keep_lastmods(frontier: Frontier, lastmods: dict[str, int]) -> int:
    """Keep the lastmods of the listed URLs the crawl has seen; returns how many it kept."""
    if not lastmods:
        return 0
    await frontier.keyer.prime(lastmods)
    return sum(int(kept) for kept in await frontier.run(lastmod_calls(frontier, lastmods)))


async def read_sitemaps_again(frontier: Frontier, urls: list[str]) -> tuple[int, int]:
    """Queue sitemaps (canonical URLs, depth 0) to be read, again if read before
    (``reread.lua``): fresh lastmods for ``crawl recrawl --changed-since``.
    Returns (queued, read before)."""
    from crawler.frontier.leases import SITEMAP_DEDUP, SITEMAP_HOPS

    await frontier.keyer.prime(urls)
    bits = frontier.settings.dedup_bucket_bits
    by_shard: dict[int, list[Any]] = defaultdict(list)
    for url in dict.fromkeys(urls):
        host = frontier.keyer.key(url)
        policy = frontier.settings.policy_for(host)
        fp = fingerprint(SITEMAP_DEDUP + frontier.dedup_key(url))
        by_shard[keys.shard_of(host, len(frontier.shards))] += (
            host, policy.max_per_host, int(policy.delay * 1000),
            f"{fingerprint_bucket(fp, bits):x}", fp, url, SITEMAP_HOPS)  # nesting level 0
    call_id = secrets.token_hex(8)  # the same in a resend: reread.lua runs it once
    replies = await frontier.run([("reread", frontier.shards[n].script_keys,
                                   [frontier.shards[n].base, call_id, *args])
                                  for n, args in by_shard.items()])
    return sum(int(q) for q, _ in replies), sum(int(b) for _, b in replies)
