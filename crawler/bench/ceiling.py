"""The ceiling: a minimal in-memory crawl loop on aiohttp + uvloop + lxml.

No Redis, no politeness, no robots.txt, no retries, no results: a set for
dedup, a deque for the queue, N tasks. It is what one core can do with the
same libraries on the same site, so ``ours / ceiling`` shows what the
crawler's guarantees cost. Usage:
``python -m crawler.bench.ceiling SEEDS_JSON CONCURRENCY OUT_JSON [urllib|ours]``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import lxml.html

from crawler.bench.worker import cpu_seconds, status_kb


def _urllib_link(base: str, href: str) -> str:
    return urldefrag(urljoin(base, href))[0]


def _our_link(base: str, href: str) -> str:
    from crawler.errors import InvalidURL
    from crawler.urls import resolve

    try:
        return resolve(base, href)
    except (InvalidURL, ValueError):
        return ""


async def crawl(seeds: list[str], concurrency: int, links: str = "urllib") -> dict[str, Any]:
    """Crawl every page reachable from the seeds on the seeds' hosts.

    ``links``: "urllib" joins with urljoin (the minimal loop), "ours" with
    ``crawler.urls.resolve``, to show what is left once URL handling is equal.
    """
    link_of = _our_link if links == "ours" else _urllib_link
    allowed = {urlsplit(s).netloc for s in seeds}
    queue: deque[str] = deque(seeds)
    seen = set(seeds)
    titles: dict[str, str] = {}
    wake = asyncio.Event()
    busy = 0

    async def fetch_loop(session: aiohttp.ClientSession) -> None:
        nonlocal busy
        while True:
            if not queue:
                if busy == 0:
                    wake.set()  # nothing queued, nothing in flight: done
                    return
                wake.clear()
                await wake.wait()
                continue
            url = queue.popleft()
            busy += 1
            try:
                async with session.get(url) as resp:
                    body = await resp.read()
                doc = lxml.html.fromstring(body)
                titles[url] = doc.findtext(".//title") or ""
                hrefs: list[str] = doc.xpath("//a/@href")  # type: ignore[assignment]
                for href in hrefs:
                    link = link_of(url, href)
                    if link not in seen and urlsplit(link).netloc in allowed:
                        seen.add(link)
                        queue.append(link)
            finally:
                busy -= 1
                wake.set()

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started, cpu0 = time.time(), cpu_seconds()
        await asyncio.gather(*(fetch_loop(session) for _ in range(concurrency)))
        ended, cpu1 = time.time(), cpu_seconds()
    return {"pages": len(titles), "start": started, "end": ended, "cpu_s": cpu1 - cpu0,
            "peak_rss_kb": status_kb("VmHWM"), "titles": titles}


def main() -> None:
    import uvloop

    seeds = json.loads(Path(sys.argv[1]).read_text())
    links = sys.argv[4] if len(sys.argv) > 4 else "urllib"
    report = uvloop.run(crawl(seeds, int(sys.argv[2]), links))
    Path(sys.argv[3]).write_text(json.dumps(report))


if __name__ == "__main__":
    main()
