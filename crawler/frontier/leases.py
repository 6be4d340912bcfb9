"""What the frontier's transitions hand back: leases, claim results, add counts.

Plain values with no Redis in them, so that the worker, the revisits and the
observers can name a ``Lease`` without the client of ``transitions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SITEMAP_HOPS = 256
"""A URL queued to be read as a sitemap carries its mark in the scripts' ``hops`` number:
hops + SITEMAP_HOPS x (1 + its sitemap nesting level). Every script keeps that number
as it is (queue entry, lease, delayed retry, reclaim), so the mark rides through each
transition with no script knowing it; only ``leases_of_claim`` decodes it. Redirect hops stay
below it (``max_redirects`` is at most 100)."""
SITEMAP_DEDUP = "sitemap "
"""Sitemaps are deduplicated apart from pages: a page linking to /sitemap.xml must not
stop robots.txt's Sitemap line from having it read as a sitemap."""

AddItem = tuple[str, int, str, int, int]
"""One URL to add: (canonical url, depth, politeness key, fingerprint, priority band)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """One URL handed to one worker until ``complete`` or ``retry``."""

    id: str
    shard: int
    host: str
    attempts: int  # attempts made before this lease
    depth: int
    url: str
    hops: int = 0  # redirects that led to this URL
    sitemap_level: int | None = None  # a sitemap to read (0: named by robots.txt or a seed)
    band: int = 0  # the priority band it was queued in (crawler.priority)
    spaced: bool = False  # its claim spaced the host's next request (delay or Crawl-delay)
    claim_sent: float = field(default=0.0, compare=False)  # time.monotonic() before the claim
    earlier_ms: float = 0.0  # what its URL's earlier attempts took (retry's elapsed)
    revisit_state: str = ""  # recrawl = true: its URL's state from its last visit, or ''
    # cookies = true: the host's jar at claim time (crawler.net.cookies.read_jar);
    # never in a repr, so never in a log line.
    cookies: str = field(default="", compare=False, repr=False)


@dataclass(slots=True)
class ClaimResult:
    leases: list[Lease]
    wait: float  # seconds until something may be claimable; < 0: nothing queued or leased
    queued: int
    leased: int

    @property
    def finished(self) -> bool:
        """True when no shard has anything queued or leased: the crawl is done."""
        return not self.leases and self.queued <= 0 and self.leased <= 0


@dataclass(slots=True)
class AddCounts:
    added: int = 0
    seen: int = 0
    capped: int = 0

    def __iadd__(self, other: AddCounts) -> AddCounts:
        self.added += other.added
        self.seen += other.seen
        self.capped += other.capped
        return self


def text(value: bytes | str) -> str:
    """A reply's bytes as str (a client may decode replies, or not)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


CLAIMED_FIELDS = 11
"""Fields a lease takes in claim.lua's reply, after its 3 counts."""


def leases_of_claim(shard: int, reply: Sequence[Any], sent: float) -> list[Lease]:
    """The leases in one shard's claim.lua reply (see that script's header)."""
    leases = []
    for i in range(3, len(reply), CLAIMED_FIELDS):
        mark, hops = divmod(int(reply[i + 4]), SITEMAP_HOPS)
        leases.append(Lease(text(reply[i]), shard, text(reply[i + 1]),
                            int(reply[i + 2]), int(reply[i + 3]), text(reply[i + 5]),
                            hops, mark - 1 if mark else None, int(reply[i + 6]),
                            spaced=reply[i + 7] in (1, "1", b"1"), claim_sent=sent,
                            earlier_ms=float(reply[i + 8] or 0),
                            revisit_state=text(reply[i + 9]), cookies=text(reply[i + 10])))
    return leases
