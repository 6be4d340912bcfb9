"""Query cleaning: the URL a link is fetched as, and the key it is deduplicated under.

A canonical URL (``crawler.urls``) still differs from its page's other links
by parameters that change nothing on the page: campaign tracking
(``utm_source``, ``fbclid``...) and session ids (``jsessionid``...). A crawl
that dedups on the raw URL fetches one copy per variant. So the frontier
dedups on ``QueryCleaner.key(url)``, and the worker fetches
``QueryCleaner.clean(url)``:

- ``clean``: the canonical URL without the dropped parameters (query
  parameters, and ``;jsessionid=...``-style path parameters), the rest kept
  in their order: that is the URL a server is asked for.
- ``key``: ``clean``, with the parameters sorted when ``sort_query`` is on.
  Sorting is for the key only: the server still gets its parameters in the
  order its page wrote them (a few sites read them positionally).

The queue keeps the URL as it was found (the record's ``url``); the record
names the key as ``dedup_url`` when it differs. Built once per settings
(``from_settings``) and cached per URL, like ``canonicalize``: links repeat.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crawler.config import Settings

TRACKING_PARAMS = (
    # Google Analytics / Ads, Urchin
    "utm_*", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "_ga", "_gl", "srsltid",
    # Meta, Microsoft, Yandex, TikTok, Twitter, LinkedIn, Instagram
    "fbclid", "fb_action_ids", "fb_action_types", "fb_ref", "fb_source", "msclkid",
    "yclid", "ttclid", "twclid", "li_fat_id", "igshid",
    # Mailchimp, HubSpot, Marketo, Olytics, Vero, Adobe, Openstat, others
    "mc_cid", "mc_eid", "_hsenc", "_hsmi", "__hssc", "__hstc", "__hsfp", "hsctatracking",
    "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id", "vero_conv", "s_cid", "s_kwcid",
    "_openstat", "rb_clickid", "wickedid",
)
"""Campaign and click tracking parameters dropped by default (names, ``*`` globs, any case).
From the ClearURLs global rules and the click-id lists analytics tools ship;
generic names a page may really use (``ref``, ``source``, ``cid``, ``campaign``)
are left out on purpose."""

SESSION_PARAMS = ("jsessionid", "phpsessid", "aspsessionid*", "cfid", "cftoken", "sessionid",
                  "session_id")
"""Session-id parameters dropped by default, in the query or as a path parameter
(``/a;jsessionid=0A1B``), whatever their value (Heritrix strips the same)."""

SESSION_VALUED = ("sid",)
"""Dropped only when the value looks like a session id (``SESSION_VALUE``): ``sid=3``
may well select a page."""

SESSION_VALUE = re.compile(r"(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[0-9A-Za-z]{16,128}")
"""A session id's value: 16 to 128 letters and digits, with both in it."""

_PATH_PARAM = re.compile(r";([^/;=?]*)=[^/;?]*")
_GLOB_CHARS = frozenset("*?[")


class _Names:
    """Parameter names matching any of some globs, in any case: a set lookup for plain
    names, ``startswith`` for ``prefix*`` globs, a regex only for the other globs."""

    __slots__ = ("exact", "other", "prefixes")

    def __init__(self, patterns: Iterable[str]) -> None:
        cleaned = [p.strip().lower() for p in patterns if p.strip()]
        self.exact = frozenset(p for p in cleaned if not _GLOB_CHARS & set(p))
        self.prefixes = tuple(p[:-1] for p in cleaned if p.endswith("*")
                              and not _GLOB_CHARS & set(p[:-1]))
        others = [p for p in cleaned if _GLOB_CHARS & set(p)
                  and not (p.endswith("*") and not _GLOB_CHARS & set(p[:-1]))]
        self.other = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in others)) \
            if others else None

    def __contains__(self, name: str) -> bool:
        """``name`` must be lower case already (the caller lowers it once for every list)."""
        return name in self.exact or name.startswith(self.prefixes) or (
            self.other is not None and self.other.match(name) is not None)


class QueryCleaner:
    """Drops tracking and session parameters from canonical URLs (see the module doc)."""

    __slots__ = ("_drop", "_keep", "_session", "_valued", "clean", "enabled", "key")

    def __init__(self, *, enabled: bool = True, drop: Iterable[str] = (),
                 keep: Iterable[str] = (), sort: bool = False) -> None:
        self.enabled = enabled
        self._drop = _Names((*TRACKING_PARAMS, *SESSION_PARAMS, *drop))
        self._session = _Names(SESSION_PARAMS)
        self._valued = _Names(SESSION_VALUED)
        self._keep = _Names(keep)
        # Per instance: a changed setting (crawl config set) builds a new cleaner.
        self.clean = lru_cache(maxsize=65536)(self._clean)
        self.key = lru_cache(maxsize=65536)(self._key) if sort else self.clean

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryCleaner:
        return cls(enabled=settings.clean_query, drop=settings.drop_params,
                   keep=settings.keep_params, sort=settings.sort_query)

    def dropped(self, name: str, value: str) -> bool:
        """True if the parameter ``name=value`` is dropped."""
        name = name.lower()
        if name in self._drop:
            return name not in self._keep
        return name in self._valued and bool(SESSION_VALUE.fullmatch(value)) \
            and name not in self._keep

    def _clean(self, url: str) -> str:
        if not self.enabled:
            return url
        query_at = url.find("?")
        path_end = len(url) if query_at < 0 else query_at
        if url.find(";", 0, path_end) >= 0:
            head = _PATH_PARAM.sub(self._path_param, url[:path_end])
            url, query_at = head + url[path_end:], -1 if query_at < 0 else len(head)
        if query_at < 0 or query_at == len(url) - 1:
            return url
        kept = []
        changed = False
        for part in url[query_at + 1:].split("&"):
            name, _, value = part.partition("=")
            if self.dropped(name, value):
                changed = True
            else:
                kept.append(part)
        if not changed:
            return url
        return url[:query_at] + "?" + "&".join(kept) if kept else url[:query_at]

    def _path_param(self, match: re.Match[str]) -> str:
        # Only session ids go: ``;type=a`` or ``;v=2`` may well be the page's own.
        name = match.group(1).lower()
        if name in self._session and name not in self._keep:
            return ""
        return match.group(0)

    def _key(self, url: str) -> str:
        url = self.clean(url)
        query_at = url.find("?")
        if query_at < 0 or "&" not in url[query_at:]:
            return url
        return url[:query_at] + "?" + "&".join(sorted(url[query_at + 1:].split("&")))


def key_changes(cleaner: QueryCleaner, url: str) -> str | None:
    """The dedup key of ``url`` when it is not ``url`` itself (for the record), else None."""
    key = cleaner.key(url)
    return None if key == url else key
