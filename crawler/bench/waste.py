"""``crawl bench waste``: fetches wasted on copies and traps, and what avoiding them costs.

1. Crawl the generated site of ``crawler.bench.wastesite`` (tracking-parameter
   and session-id variants of every page, canonicals, 30% near-duplicate
   pages, an endless ``?month=`` calendar) with the default settings, then
   score the records against the generator's truth: fetches per distinct
   page, near-duplicates found (precision, recall), where the calendar
   stopped and the trap record that says why. The same crawl with
   ``near_duplicates = false`` gives round trips a page without the index.
2. ``measure_canonical`` of ``crawler.bench.waste_canonical``: what
   rel=canonical saves on a site of its own, on the same fresh Valkey.
3. The cost on the normal benchmark's site (``crawler.bench.sitegen``, served
   from its own process): CPU ms a page of the crawling process and of
   Valkey, round trips and Valkey bytes a page, near-duplicates on and off,
   alternated ``repeat`` times (medians).
4. SimHash time a page on the crawler's path, part by part (visible text,
   distinct words, cached spreads), and BLAKE2b (the stdlib, what the crawler
   uses) against the ``xxhash`` package when it is installed.

Everything runs on loopback, with a fresh embedded Valkey.
"""

from __future__ import annotations

import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from crawler.bench.config import BenchConfig
from crawler.bench.report import write_report
from crawler.bench.servers import BenchRedis
from crawler.bench.site import SiteProcess
from crawler.bench.sitegen import SiteServer, SiteSpec, free_port, page_html, write_site
from crawler.bench.wastesite import WasteSite, score
from crawler.config import Settings
from crawler.store import keys


def _settings(url: str, crawl: str, **changes: Any) -> Settings:
    return Settings(redis_url=url, crawl=crawl, allow_private=True, delay=0.0, max_per_host=4,
                    concurrency=32, max_duration=300.0, **changes)


async def _crawl(settings: Settings, seeds: list[str]) -> dict[str, Any]:
    """Seed and run one in-process worker to the end; its records, round trips and CPU."""
    from redis.asyncio import Redis

    from crawler.discovery.seeds import seed
    from crawler.observe.status import held_hosts
    from crawler.results import iter_results
    from crawler.store.layout import crawl_layout
    from crawler.worker import Worker

    redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
    try:
        settings = await crawl_layout(redis, settings)
        await seed(redis, settings, io.BytesIO("\n".join(seeds).encode()))
        worker = Worker(redis, settings)
        cpu, wall = time.process_time(), time.monotonic()
        await worker.run()
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        records = [json.loads(text) async for text in iter_results(redis, settings)]
        held = [f"{h.host}: {h.reason}" for h in await held_hosts(redis, settings)]
        return {"records": records, "round_trips": worker.frontier.round_trips,
                "cpu_s": cpu, "wall_s": wall, "settings": settings, "held": held}
    finally:
        await redis.aclose()


def _index_bytes(server: BenchRedis, settings: Settings) -> tuple[int, int]:
    """(bytes of every SimHash index and trap key, pages filed in them) of a crawl."""
    import redis as sync_redis

    client = sync_redis.Redis.from_url(server.url)
    total = filed = 0
    try:
        for shard in keys.all_shards(settings.crawl, settings.shards, settings.shard_tags):
            for kind in ("nd:", "ndo:", "tq:"):
                for key in client.scan_iter(match=f"{shard.base}{kind}*", count=1000):
                    total += int(client.memory_usage(key) or 0)
                    if kind == "ndo:":
                        filed += int(client.llen(key))
    finally:
        client.close()
    return total, filed


def waste_crawl(server: BenchRedis, pages: int) -> dict[str, Any]:
    """Part 1: the generated site of copies and traps, near-duplicates on and off."""
    site = WasteSite(pages=pages)
    out: dict[str, Any] = {}
    with SiteServer(SiteSpec(hosts=1), app=site.app()) as web:
        seeds = [web.spec.origin(0) + "/a/0.html"]
        for mode, on in (("on", True), ("off", False)):
            run = asyncio.run(_crawl(_settings(server.url, f"waste-{mode}",
                                               near_duplicates=on), seeds))
            report = score(site, run["records"])
            report["results"] = len(run["records"])
            report["held"] = run["held"]
            report["round_trips_a_page"] = round(run["round_trips"] / len(run["records"]), 3)
            if on:
                size, filed = _index_bytes(server, run["settings"])
                report["index_bytes"], report["index_pages"] = size, filed
                report["index_bytes_a_page"] = round(size / max(1, filed), 1)
            out[mode] = report
    return out


def canonical_savings(server: BenchRedis) -> dict[str, Any]:
    """Part 2: query cleaning and rel=canonical on their own site (bench/waste_canonical.py)."""
    from crawler.bench.waste_canonical import measure_canonical

    return measure_canonical(server.url)


def normal_cost(server: BenchRedis, hosts: int, pages: int, repeat: int) -> dict[str, Any]:
    """Part 3: CPU, round trips and Valkey bytes a page on the normal site, on and off."""
    bench = BenchConfig()  # the normal benchmark's pages: its size and links, fewer of them
    spec = SiteSpec(hosts=hosts, pages=pages, links=bench.links, page_bytes=bench.page_bytes,
                    port=free_port())
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="waste-site") as tmp:
        root = Path(tmp) / "site"
        write_site(spec, root)
        with SiteProcess(spec, root, Path(tmp) / "work", kind="python"):
            for n in range(repeat):
                for mode in ("off", "on"):
                    settings = _settings(server.url, f"normal-{mode}-{n}",
                                         near_duplicates=mode == "on")
                    memory, valkey = server.info()["used_memory"], sum(server.cpu())
                    run = asyncio.run(_crawl(settings, spec.seeds()))
                    done = len(run["records"])
                    runs[mode].append({
                        "pages": done,
                        "cpu_ms_a_page": 1000 * run["cpu_s"] / done,
                        "valkey_cpu_ms_a_page": 1000 * (sum(server.cpu()) - valkey) / done,
                        "round_trips_a_page": run["round_trips"] / done,
                        "valkey_bytes_a_page": (server.info()["used_memory"] - memory) / done,
                    })
    out: dict[str, Any] = {"pages": hosts * pages, "repeat": repeat}
    for mode, rows in runs.items():
        out[mode] = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
    off, on = out["off"]["cpu_ms_a_page"], out["on"]["cpu_ms_a_page"]
    out["cpu_more_pct"] = round(100 * (on - off) / off, 1) if off else 0.0
    return out


def simhash_speed(site_pages: int = 50, rounds: int = 9) -> dict[str, Any]:
    """Part 4: µs a page of the SimHash on the crawler's path, part by part, and
    BLAKE2b against xxhash.

    On the default parser's (lexbor's) tree: the parse without and with the
    SimHash (what near-duplicates add to a page's parse), then its parts: the
    visible text, the page's distinct words, and their cached spreads summed.
    Each is the best of ``rounds`` passes in CPU time (a loaded machine's
    other processes stretch a pass, never shorten it). Uncached, each digest
    is spread into lanes in Python: the digest's own cost is the difference
    between the two uncached rows."""
    from selectolax.lexbor import LexborHTMLParser

    from crawler.pages.parse_lexbor import parse_html_lexbor, visible_text
    from crawler.pages.simhash import (
        _blake2b_digest,
        simhash_shingles,
        simhash_words,
        words_of,
    )

    waste = WasteSite(pages=site_pages)
    normal = SiteSpec(links=BenchConfig().links, page_bytes=BenchConfig().page_bytes)
    bodies = {"waste site": [waste.article(i) for i in range(site_pages)],
              "normal site": [page_html(normal, 0, i) for i in range(site_pages)]}
    digests: dict[str, Any] = {"blake2b (stdlib)": _blake2b_digest}
    try:
        import xxhash  # type: ignore[import-not-found, unused-ignore]

        digests["xxh3_64 (xxhash)"] = xxhash.xxh3_64_digest
    except ImportError:
        digests["xxh3_64 (xxhash)"] = "not installed"

    def best_us(work: Any, items: list[Any]) -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            for item in items:
                work(item)
            best = min(best, time.process_time() - start)
        return round(1e6 * best / len(items), 1)

    url = "http://127.0.0.1/p.html"
    out: dict[str, Any] = {}
    for name, pages in bodies.items():
        trees = [LexborHTMLParser(b.decode()) for b in pages]
        texts = [visible_text(t).encode() for t in trees]
        words = [t.lower().split() for t in texts]
        distinct = [set(w) for w in words]
        row: dict[str, Any] = {
            "words_a_page": round(statistics.mean(map(len, words))),
            "distinct_a_page": round(statistics.mean(map(len, distinct))),
            "parse us": best_us(lambda b: parse_html_lexbor(b, url), pages),
            "parse with SimHash us": best_us(
                lambda b: parse_html_lexbor(b, url, simhash=True), pages),
            "visible text us": best_us(visible_text, trees),
            "distinct words us": best_us(lambda t: set(t.lower().split()), texts),
            "cached spreads us": best_us(simhash_shingles, distinct),
        }
        str_words = [words_of(t.decode()) for t in texts]
        for label, digest in digests.items():
            row[label] = digest if isinstance(digest, str) else best_us(
                lambda w, d=digest: simhash_words(w, d), str_words)
        out[name] = row
    return out


def run_waste(pages: int = 200, cost_hosts: int = 5, cost_pages: int = 200, repeat: int = 3,
              out: str | None = None) -> dict[str, Any]:
    """Run every part; print it and write it as JSON to ``out``."""
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="waste") as work, BenchRedis(Path(work)) as server:
        report["waste_site"] = waste_crawl(server, pages)
        report["canonical"] = canonical_savings(server)
        report["normal_site_cost"] = normal_cost(server, cost_hosts, cost_pages, repeat)
    report["simhash_speed"] = simhash_speed()
    print(format_report(report))
    if out:
        write_report(out, report)
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = []
    on, off = report["waste_site"]["on"], report["waste_site"]["off"]
    lines += [
        "Waste site (tracking and session variants, canonicals, near-duplicates, a calendar):",
        f"  distinct pages {on['distinct_pages']}, fetched {on['pages_fetched']} of them in "
        f"{on['fetches']} fetches ({on['fetches_per_distinct_page']} a page; 1.0 needs "
        "query cleaning and rel=canonical)",
        f"  near-duplicates: {on['flagged']} flagged, {on['should_flag']} should be; "
        f"precision {on['precision']}, recall {on['recall']}",
        f"  calendar: {on['calendar_fetches']} fetches; trap records: {on['trap_records']}",
        f"  held: {on['held']}",
        f"  without near-duplicates: {off['fetches']} fetches, calendar "
        f"{off['calendar_fetches']} fetches, trap records {off['trap_records']}",
        f"  SimHash index: {on['index_bytes_a_page']} bytes a page ({on['index_pages']} pages)",
        f"  round trips a page: {on['round_trips_a_page']} with the index, "
        f"{off['round_trips_a_page']} without",
    ]
    from crawler.bench.waste_canonical import report_lines

    lines += report_lines(report["canonical"])
    cost = report["normal_site_cost"]
    lines.append(f"Normal site ({cost['pages']} pages, median of {cost['repeat']}):")
    for mode in ("off", "on"):
        lines.append(f"  near-duplicates {mode:3}: " + ", ".join(
            f"{k} {v}" for k, v in cost[mode].items()))
    lines.append(f"  CPU a page with them on: {cost['cpu_more_pct']:+.1f}%")
    lines.append("SimHash a page:")
    for site, row in report["simhash_speed"].items():
        lines.append(f"  {site}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    return "\n".join(lines)
