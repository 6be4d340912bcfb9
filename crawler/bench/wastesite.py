"""A generated site built to waste a crawler's fetches, with the truth to score it against.

``WasteSite(pages=200)`` serves, on one loopback host:

- ``/a/<i>.html``: distinct articles of ``words`` random words; a
  ``near_dup_share`` of them are near-duplicates of an earlier article (its
  text with ``edits`` words changed and their own heading);
- every link carries tracking parameters on every other page
  (``?utm_source=…&fbclid=…``), and half of them a session id
  (``;jsessionid=…`` or ``?sid=…``), so each page is reached under several URLs;
- every article declares ``<link rel=canonical>`` to its clean URL;
- ``/calendar?month=YYYY-MM``: an endless calendar, each month linking to the
  next and the previous one.

The truth: ``cluster_of(path)`` names the article whose text a page copies
(itself for an original). ``score`` judges a crawl's records against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

VOCABULARY_SIZE = 5000
TRACKING = ("utm_source=news&utm_medium=email&utm_campaign=spring", "fbclid=IwAR0abc",
            "gclid=Cj0KCQ", "utm_source=feed")


@dataclass
class WasteSite:
    pages: int = 200
    near_dup_share: float = 0.3
    words: int = 400
    edits: int = 1
    links: int = 6  # links to other articles per page
    seed: int = 23
    originals: dict[int, int] = field(default_factory=dict)  # page -> the page it copies
    _texts: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rnd = random.Random(self.seed)
        vocabulary = [f"{rnd.choice('bcdfgklmnprst')}{rnd.choice('aeiou')}{i}"
                      for i in range(VOCABULARY_SIZE)]
        copies = set(rnd.sample(range(1, self.pages), round(self.near_dup_share * self.pages)))
        for i in range(self.pages):
            if i in copies:
                source = rnd.choice([j for j in range(i) if j not in copies])
                text = list(self._texts[source])
                for _ in range(self.edits):
                    text[rnd.randrange(len(text))] = rnd.choice(vocabulary)
                self.originals[i] = source
            else:
                text = [rnd.choice(vocabulary) for _ in range(self.words)]
                self.originals[i] = i
            self._texts[i] = text

    def cluster_of(self, path: str) -> int | None:
        """The article a page's text comes from; None for the calendar and anything else."""
        path = path.split(";")[0]
        if path.startswith("/a/") and path.endswith(".html"):
            try:
                return self.originals.get(int(path[3:-5]))
            except ValueError:
                return None
        return None

    @property
    def near_duplicates(self) -> int:
        return sum(1 for i, o in self.originals.items() if i != o)

    def _href(self, rnd: random.Random, target: int) -> str:
        path = f"/a/{target}.html"
        query = []
        if rnd.random() < 0.5:
            query.append(rnd.choice(TRACKING))
        if rnd.random() < 0.5:  # a session id in half the links
            session = f"{rnd.getrandbits(64):016x}"
            if rnd.random() < 0.5:
                path += f";jsessionid={session.upper()}"
            else:
                query.append(f"sid={session}")
        return path + ("?" + "&".join(query) if query else "")

    def article(self, i: int) -> bytes:
        rnd = random.Random(self.seed * 7919 + i)
        targets = [(i + 1) % self.pages] + [rnd.randrange(self.pages) for _ in range(self.links)]
        links = "".join(f'<li><a href="{self._href(rnd, t)}">read more</a></li>'
                        for t in targets)
        calendar = '<li><a href="/calendar?month=2020-01">calendar</a></li>' if i == 0 else ""
        paragraphs = "".join(f"<p>{' '.join(self._texts[i][k:k + 40])}</p>"
                             for k in range(0, len(self._texts[i]), 40))
        return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>Article {i}</title>'
                f'<link rel="canonical" href="/a/{i}.html"><script>var page = {i};</script>'
                f"</head><body><h1>Article</h1>{paragraphs}<ul>{links}{calendar}</ul>"
                f"</body></html>").encode()

    @staticmethod
    def month(request: web.Request) -> bytes:
        text = request.query.get("month", "2020-01")
        try:
            year, mon = (int(p) for p in text.split("-", 1))
        except ValueError:
            year, mon = 2020, 1
        n = year * 12 + mon - 1
        links = "".join(f'<a href="/calendar?month={m // 12:04d}-{m % 12 + 1:02d}">{label}</a> '
                        for m, label in ((n - 1, "previous"), (n + 1, "next")))
        return (f"<html><head><title>{text}</title></head><body><h1>Events of {text}</h1>"
                f"<p>No events this month.</p>{links}</body></html>").encode()

    def app(self) -> web.Application:
        async def article(request: web.Request) -> web.Response:
            # /a/3.html;jsessionid=X is /a/3.html: a matrix parameter holds the session.
            name = request.match_info["rest"].split(";")[0]
            try:
                i = int(name.removesuffix(".html")) if name.endswith(".html") else -1
            except ValueError:
                i = -1
            if not 0 <= i < self.pages:
                raise web.HTTPNotFound()
            return web.Response(body=self.article(i), content_type="text/html",
                                charset="utf-8")

        async def calendar(request: web.Request) -> web.Response:
            return web.Response(body=self.month(request), content_type="text/html",
                                charset="utf-8")

        app = web.Application()
        app.router.add_get("/a/{rest}", article)
        app.router.add_get("/calendar", calendar)
        return app


def score(site: WasteSite, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Near-duplicates found against the truth, fetches per page, and the calendar's end.

    ``records`` in result order (the order pages were filed in the index). A
    record should name an earlier one as ``near_duplicate_of`` exactly when
    an earlier record holds the same article's text (a copy, or the same
    article under another URL); it is right when the one it names does.
    """
    first_of: dict[int, str] = {}
    flagged = right = should = found = 0
    fetches: dict[str, int] = {}
    calendar = 0
    trap_messages = []
    for record in records:
        error = record.get("error") or {}
        if error.get("type") == "trap":
            trap_messages.append(error.get("message"))
            continue
        if record.get("status") is None:
            continue
        path = urlsplit(record["url"]).path
        if path == "/calendar":
            calendar += 1
            continue
        cluster = site.cluster_of(path)
        if cluster is None:
            continue
        fetches[path.split(";")[0]] = fetches.get(path.split(";")[0], 0) + 1
        dup_of = record.get("near_duplicate_of")
        earlier = cluster in first_of
        should += earlier
        if dup_of:
            flagged += 1
            if site.cluster_of(urlsplit(dup_of).path) == cluster:
                right += 1
                found += earlier
        first_of.setdefault(cluster, record["url"])
    return {
        "distinct_pages": site.pages, "pages_fetched": len(fetches),
        "not_fetched": sorted(set(range(site.pages))
                              - {int(p[3:-5]) for p in fetches if p[3:-5].isdigit()})[:10],
        "fetches": sum(fetches.values()),
        "fetches_per_distinct_page": round(sum(fetches.values()) / max(1, len(fetches)), 2),
        "near_duplicate_pages": site.near_duplicates,
        "flagged": flagged, "should_flag": should,
        "precision": round(right / flagged, 4) if flagged else 1.0,
        "recall": round(found / should, 4) if should else 1.0,
        "calendar_fetches": calendar, "trap_records": trap_messages,
    }
