"""Priority bands: which URLs of a host are claimed first.

A host's URLs wait in first-in, first-out lists, one a band, and a claim pops
the highest band that holds one (``lua/claim.lua``). The normal band is the
host queue the crawler always had, so a crawl that raises nothing costs what
it did: breadth-first within a host, since a page's links are appended after
the URLs queued before them. A sorted set per host was measured and not
taken (README, "Memory").

A priority is a number on the sitemap protocol's scale, 0.0 to 1.0 with 0.5
the default. It comes from a sitemap's ``<priority>`` or from the extraction
hook (``crawler.Page.follow(url, priority=...)``), and can only raise a URL:

==============  ======  ==================================================
priority        band    key
==============  ======  ==================================================
up to 0.5       normal  ``q:<host>`` (the default: no priority, or 0.5)
over 0.5        high    ``q1:<host>``
0.8 and over    top     ``q2:<host>``
==============  ======  ==================================================

Bands order a host's own URLs only: which host is claimed next still
depends on politeness alone, so a host full of raised URLs takes no turn
from another. A URL seen before (dedup) is not moved: a priority counts
when a URL is first queued. A URL given back (retry, expired lease,
robots.txt fetched first) returns to its own band, and a redirect's target
is queued in its source's band; a recrawl's revisit (``crawl recrawl``) is
queued in the normal band.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

NORMAL, HIGH, TOP = 0, 1, 2
"""The bands, lowest first (as many as ``crawler.keys.BANDS``)."""
DEFAULT_PRIORITY = 0.5
"""A sitemap entry's priority when it names none (the protocol's default)."""
HIGH_ABOVE = 0.5
"""A priority over this is queued in the high band."""
TOP_FROM = 0.8
"""A priority of this or more is queued in the top band."""


def band_of(priority: float | None) -> int:
    """The band a URL of this priority is queued in (None: the default, normal)."""
    if priority is None:
        return NORMAL
    if priority >= TOP_FROM:
        return TOP
    if priority > HIGH_ABOVE:
        return HIGH
    return NORMAL


def checked_priority(value: object) -> float:
    """``value`` as a priority: a finite number from 0.0 to 1.0, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a priority is a number from 0.0 to 1.0, not {value!r}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ValueError(f"a priority is a number from 0.0 to 1.0, not {value!r}")
    return number


def parse_priority(text: str | None) -> float | None:
    """A sitemap's ``<priority>`` text as a priority; None if missing or not one."""
    if not text:
        return None
    try:
        return checked_priority(float(text))
    except ValueError:
        return None


def raised_bands(priorities: Mapping[str, float], urls: Iterable[str]) -> dict[str, int]:
    """URL -> band, for those of ``urls`` whose priority raises them over normal."""
    out: dict[str, int] = {}
    for url in urls:
        band = band_of(priorities.get(url))
        if band != NORMAL:
            out[url] = band
    return out
