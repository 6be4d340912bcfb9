"""``python -m bench.experiments.bands``:
What priority bands cost in Valkey memory and in claim time.

On a fresh embedded Valkey (append-only, as a crawl runs it), through the
frontier's own scripts, with N 76-character URLs on H hosts (the shape of
``crawl bench memory``), each layout queued and then claimed whole:

- ``normal``: every URL in the normal band, as a crawl that raises nothing;
- ``mixed``: half normal, a quarter high, a quarter top: every host uses
  all three bands;
- ``top``: every URL in the top band.

For each: bytes per queued URL (``MEMORY USAGE`` of the queues, prefix
tables and host state, as ``crawl status`` counts them), and the server time
``claim.lua`` took per URL (``INFO commandstats``, claims of 1000 URLs, one a
host a pass) beside the URLs a second one client claimed. Then the cost of a
band's key: H hosts of two URLs, the second in the normal band or in a raised
one; the difference is a raised band's list and flag, per host.

The ``normal`` layout uses only what the frontier had before bands, so the
same function measures an older checkout for a before/after figure. Only
loopback and a temporary directory are used.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

from crawler.bench.memory import url_76

LAYOUTS = ("normal", "mixed", "top")
CLAIM_BATCH = 1000
PIPELINE_CALLS = 200
"""add.lua calls sent in one pipeline while queueing a layout."""


def band_for(layout: str, j: int) -> int:
    """The band of a host's URL number j in this layout."""
    if layout == "top":
        return 2
    if layout == "mixed":
        return (0, 0, 1, 2)[(j // 10) % 4]  # runs of ten, as a page's links come
    return 0


async def _evalsha_usec(client: Any) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("usec", 0))


async def _queue(client: Any, frontier: Any, layout: str, n: int, hosts: int) -> None:
    """Queue N URLs in the layout's bands (sorted by host, as ``crawl seed`` sends them)."""
    numbered = sorted(((url_76(i, hosts), i) for i in range(n)),
                      key=lambda pair: pair[0].split("/", 3)[2])
    pairs = [(url, 0) for url, _ in numbered]
    if layout == "normal":
        calls, _ = frontier.add_calls(pairs)  # the call a frontier without bands takes too
    else:
        bands = {url: band for url, i in numbered if (band := band_for(layout, i // hosts))}
        calls, _ = frontier.add_calls(pairs, bands=bands)
    for start in range(0, len(calls), PIPELINE_CALLS):
        await frontier.run(calls[start:start + PIPELINE_CALLS])


async def _layout(url: str, layout: str, n: int, hosts: int) -> dict[str, Any]:
    from crawler.config import Settings
    from crawler.frontier import Frontier
    from crawler.observe.status import memory_by_kind
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    base = Settings(redis_url=url, crawl=f"bands-{layout}", expected_urls=max(n, 1_000_000),
                    max_per_host=1_000_000, delay=0)
    client = await connect(base)
    try:
        settings = await crawl_layout(client, base)
        frontier = Frontier(client, settings, local_dedup=False)
        await _queue(client, frontier, layout, n, hosts)
        memory = (await memory_by_kind(client, settings))["bytes"]
        queued_bytes = memory["queued"] + memory["hosts"]
        usec0, started, claimed = await _evalsha_usec(client), time.perf_counter(), 0
        while claimed < n:
            leases = (await frontier.claim(CLAIM_BATCH, "bench")).leases
            assert leases, f"claimed {claimed} of {n}"
            claimed += len(leases)
        seconds = time.perf_counter() - started
        usec = await _evalsha_usec(client) - usec0
        await client.flushdb()
        return {"bytes_per_queued_url": round(queued_bytes / n, 2),
                "claim_server_us_per_url": round(usec / n, 2),
                "claimed_urls_per_s": round(n / seconds)}
    finally:
        await client.aclose()


async def _band_key_bytes(url: str, hosts: int) -> dict[str, float]:
    """Bytes a host pays for its second URL in a raised band rather than the normal one."""
    from crawler.config import Settings
    from crawler.frontier import Frontier
    from crawler.observe.status import memory_by_kind
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    out: dict[str, float] = {}
    for raised in (0, 1, 2):
        base = Settings(redis_url=url, crawl=f"bandkey{raised}", expected_urls=1_000_000)
        client = await connect(base)
        try:
            settings = await crawl_layout(client, base)
            frontier = Frontier(client, settings, local_dedup=False)
            firsts = [(url_76(h, hosts), 0) for h in range(hosts)]
            seconds = [(url_76(hosts + h, hosts), 0) for h in range(hosts)]
            await frontier.add(firsts)
            await frontier.add(seconds, bands={u: raised for u, _ in seconds} if raised else None)
            memory = (await memory_by_kind(client, settings))["bytes"]
            out[("normal", "high", "top")[raised]] = (memory["queued"] + memory["hosts"]) / hosts
            await client.flushdb()
        finally:
            await client.aclose()
    return {"host_of_2_urls_both_normal": round(out["normal"], 1),
            "extra_per_host_second_url_high": round(out["high"] - out["normal"], 1),
            "extra_per_host_second_url_top": round(out["top"] - out["normal"], 1)}


async def _measure(url: str, n: int, hosts: int, layouts: tuple[str, ...], repeat: int,
                   echo: Any) -> dict[str, Any]:
    report: dict[str, Any] = {"urls": n, "hosts": hosts, "repeat": repeat, "layouts": {}}
    for layout in layouts:
        runs = [await _layout(url, layout, n, hosts) for _ in range(repeat)]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        report["layouts"][layout] = {**median, "runs": runs}
        echo(f"{layout:>6}: {median['bytes_per_queued_url']} B a queued URL; claim "
             f"{median['claim_server_us_per_url']} µs server time a URL, "
             f"{median['claimed_urls_per_s']:.0f} URLs/s claimed")
    if len(layouts) > 1:
        report["band_key"] = await _band_key_bytes(url, min(hosts, 10_000))
        echo(f"a raised band's key: {report['band_key']}")
    return report


def run_bands(n: int, hosts: int, out: str | None, echo: Any = print,
              layouts: tuple[str, ...] = LAYOUTS, repeat: int = 3) -> dict[str, Any]:
    from crawler.store.server import scratch_server

    with scratch_server("crawlbands") as (url, _):
        report = asyncio.run(_measure(url, n, hosts, layouts, repeat, echo))
    echo(json.dumps(report, indent=1))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    """``python bench/experiments/bands.py [--urls N] [--hosts N] [--repeat N] [--out FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--urls", type=int, default=200_000, help="queued URLs in each layout")
    parser.add_argument("--hosts", type=int, default=1000, help="hosts they spread over")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each layout (median)")
    parser.add_argument("--out", default="bench/results/bands-latest.json",
                        help="JSON report path ('' for none)")
    args = parser.parse_args()
    run_bands(args.urls, args.hosts, args.out or None, repeat=args.repeat)


if __name__ == "__main__":
    main()
