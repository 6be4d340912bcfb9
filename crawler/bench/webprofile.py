"""A benchmark worker under cProfile, and its CPU split into TLS / inflate / parse / frontier.

``python -m crawler.bench.webprofile SETTINGS_JSON OUT_JSON`` runs the same
worker as ``crawler.bench.worker`` under cProfile and writes the profile to
``OUT_JSON`` with ``.prof`` for ``.json``. It runs on the standard asyncio
loop, not uvloop: uvloop's TLS and socket code is compiled, so cProfile
would see none of its calls, while on the standard loop the TLS reads,
writes and handshakes are calls from Python (``ssl.SSLObject``) it times.
The crypto is the same OpenSSL either way. The timed runs use uvloop.

``split`` sums each function's own time into a category by its file; a
C function (lxml's parser, zlib's inflate, a regex match) goes to its own
category when its name says it (``_ssl``, ``zlib``, ``lxml``) and otherwise
to its callers' categories, in proportion to the time each call path spent.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

CATEGORIES = ("tls", "inflate", "parse", "links", "frontier", "http", "other")
"""tls: ssl.py, asyncio's sslproto and OpenSSL calls; inflate: gzip decoding;
parse: crawler.pages.parse(_lexbor), lxml and selectolax (tree and walk); links:
URL resolution (crawler.urls, urllib.parse); frontier: crawler.frontier, crawler.store and
the Redis client; http: aiohttp, yarl, multidict; other: the rest (event
loop, worker loop, politeness, results)."""

_BY_FILE: tuple[tuple[str, str], ...] = (
    ("/ssl.py", "tls"), ("/sslproto.py", "tls"),
    ("/compression_utils.py", "inflate"), ("isal", "inflate"), ("zlib_ng", "inflate"),
    ("/crawler/pages/parse", "parse"), ("/lxml/", "parse"), ("selectolax", "parse"),
    ("/crawler/urls.py", "links"), ("/urllib/parse.py", "links"), ("ada_url", "links"),
    ("/crawler/frontier/", "frontier"), ("/crawler/store/", "frontier"),
    ("/redis/", "frontier"), ("hiredis", "frontier"),
    ("/aiohttp/", "http"), ("/yarl/", "http"), ("/multidict/", "http"),
)
_BY_BUILTIN_NAME: tuple[tuple[str, str], ...] = (
    ("_ssl.", "tls"), ("zlib", "inflate"), ("Decompress", "inflate"), ("isal", "inflate"),
    ("lxml", "parse"), ("selectolax", "parse"), ("ada_url", "links"), ("hiredis", "frontier"),
)
Func = tuple[str, int, str]


def _own_category(func: Func) -> str | None:
    filename, _, name = func
    if filename == "~":  # a C function: only its name tells
        return next((cat for part, cat in _BY_BUILTIN_NAME if part in name), None)
    return next((cat for part, cat in _BY_FILE if part in filename), None)


def split(profile: Path, pages: int) -> dict[str, Any]:
    """CPU ms a page by category (with the profiler's overhead), shares, handshakes a page."""
    stats: dict[Func, Any] = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    totals = dict.fromkeys(CATEGORIES, 0.0)
    memo: dict[Func, str] = {}

    def category(func: Func, depth: int = 0) -> str:
        """A Python function's own category, else its heaviest caller's (a few levels up)."""
        if func in memo:
            return memo[func]
        found = _own_category(func)
        if (found is None and func[0] != "~") or depth > 3:
            found = found or "other"
        if found is None:
            callers = stats.get(func, (0, 0, 0.0, 0.0, {}))[4]
            heaviest = max(callers.items(), key=lambda kv: kv[1][2], default=None)
            found = category(heaviest[0], depth + 1) if heaviest else "other"
        memo[func] = found
        return found

    handshakes, handshaking = 0, 0.0
    for func, (_, calls, own, _, callers) in stats.items():
        if func[2].endswith("do_handshake' of '_ssl._SSLSocket' objects>"):
            # Called again while the handshake waits for the server: calls
            # that completed one are not told apart, so count connections.
            handshaking += own
        if func[2] == "connection_made" and func[0].endswith("sslproto.py"):
            handshakes += calls
        mine = _own_category(func)
        if mine is not None or func[0] != "~" or not callers:
            totals[mine or "other"] += own
            continue
        # A C function of no telling name (a regex, a join): split over its callers.
        for caller, edge in callers.items():
            totals[category(caller)] += edge[2]
        totals["other"] += max(0.0, own - sum(edge[2] for edge in callers.values()))
    total = sum(totals.values())
    per_page = max(1, pages)
    return {
        "ms_per_page": {c: round(s / per_page * 1000, 4) for c, s in totals.items()},
        "share": {c: round(s / total, 3) if total else 0.0 for c, s in totals.items()},
        "total_ms_per_page": round(total / per_page * 1000, 4),
        "tls_handshakes_per_page": round(handshakes / per_page, 4),
        "tls_handshake_ms_per_page": round(handshaking / per_page * 1000, 4),
        "pages": pages,
    }


def top(profile: Path, keep: Callable[[Func], bool], n: int = 15) -> list[tuple[str, float]]:
    """The n functions of most own time that ``keep`` selects: (name, seconds)."""
    stats: dict[Func, Any] = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    rows = sorted(((f, v[2]) for f, v in stats.items() if keep(f)), key=lambda r: -r[1])
    return [(f"{Path(f[0]).name}:{f[1]}:{f[2]}", round(t, 4)) for f, t in rows[:n]]


def main() -> None:
    import asyncio
    import time

    import crawler.worker  # noqa: F401  # imported before the profile starts: not a page's cost
    from crawler.bench.worker import run

    overrides = json.loads(sys.argv[1])
    out = Path(sys.argv[2])
    # CPU time, not wall time: waiting in epoll for the network is no page's cost.
    profiler = cProfile.Profile(time.process_time)
    report = profiler.runcall(asyncio.run, run(overrides))
    profiler.dump_stats(str(out.with_suffix(".prof")))
    out.write_text(json.dumps(report))


if __name__ == "__main__":
    main()
