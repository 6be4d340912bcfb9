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
   the SimHash of it in the C module and in its Python twin).
5. The SimHash alone on 3,000 copies (``hash_recall``; ``--recall-pages``): recall measured
   finer than a crawl's 60 copies allow, and false positives.
6. With ``--instructions`` (valgrind): the worker's instructions a page on
   the normal site, near-duplicates off and on (``waste_instructions``), a
   figure the machine's load does not move.

Everything runs on loopback, with a fresh embedded Valkey.
"""

from __future__ import annotations

import asyncio
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
from crawler.bench.waste_crawl import crawl_site, site_settings
from crawler.bench.wastesite import WasteSite, score
from crawler.config import Settings
from crawler.store import keys


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
            run = asyncio.run(crawl_site(site_settings(server.url, f"waste-{mode}",
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
                    settings = site_settings(server.url, f"normal-{mode}-{n}",
                                         near_duplicates=mode == "on")
                    memory, valkey = server.info()["used_memory"], sum(server.cpu())
                    run = asyncio.run(crawl_site(settings, spec.seeds()))
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
    """Part 4: µs a page of the SimHash on the crawler's path, part by part, and the
    C module against its Python twin.

    On the default parser's (lexbor's) tree: the parse without and with the
    SimHash (what near-duplicates add to a page's parse), then its parts: the
    visible text, and the SimHash of that text in C (``crawler.pages._simhash``,
    when built) and in Python (``python_text_simhash``, its cache of word
    spreads warm, as on a site whose words repeat). Each is the best of
    ``rounds`` passes in CPU time (a loaded machine's other processes stretch
    a pass, never shorten it)."""
    from selectolax.lexbor import LexborHTMLParser

    from crawler.pages.parse_lexbor import parse_html_lexbor, visible_text
    from crawler.pages.simhash import ACCELERATOR, MAX_WORDS, python_text_simhash

    waste = WasteSite(pages=site_pages)
    normal = SiteSpec(links=BenchConfig().links, page_bytes=BenchConfig().page_bytes)
    bodies = {"waste site": [waste.article(i) for i in range(site_pages)],
              "normal site": [page_html(normal, 0, i) for i in range(site_pages)]}

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
        row: dict[str, Any] = {
            "words_a_page": round(statistics.mean(len(t.split()) for t in texts)),
            "distinct_a_page": round(statistics.mean(len(set(t.lower().split())) for t in texts)),
            "parse us": best_us(lambda b: parse_html_lexbor(b, url), pages),
            "parse with SimHash us": best_us(
                lambda b: parse_html_lexbor(b, url, simhash=True), pages),
            "visible text us": best_us(visible_text, trees),
            "SimHash in C us": "not built" if ACCELERATOR is None else best_us(
                lambda t: ACCELERATOR.simhash_text(t, MAX_WORDS), texts),
            "SimHash in Python us": best_us(python_text_simhash, texts),
        }
        out[name] = row
    return out


def hash_recall(pages: int = 10_000, unrelated: int = 100_000) -> dict[str, Any]:
    """Part 5: the SimHash alone, on many more copies than a crawl of the site holds.

    A crawl's 60 copies give recall in steps of 1/60; with one word changed
    in 400, a fair 64-bit SimHash leaves about 5% of copies more than 3 bits
    away (a bit flips when its count sits at the majority's edge), so on the
    bits alone a crawl of the site would score anywhere from 0.92 to 0.98.
    Every bit that differs is one of the copy's weak bits, though
    (crawler.pages.simhash.weak_bits), and the index also takes a page that
    differs only in its weak bits (lua/_traps.lua). Here, for ``pages`` x 30%
    copies: the share the index's rule finds, and the share within 3 bits; and
    for ``unrelated`` pairs of originals, how many each would take for
    near-duplicates (false positives)."""
    import random

    from crawler.pages.parse_lexbor import parse_page

    site = WasteSite(pages=pages)
    # Each page's SimHash as a worker computes it: the served article, parsed.
    parsed = [parse_page(site.article(i), f"http://127.0.0.1/a/{i}.html", simhash=True)
              for i in range(pages)]
    hashes = [p.simhash or 0 for p in parsed]
    weak = [p.simhash_weak for p in parsed]

    def within_3_bits(new: int, old: int) -> bool:
        return (hashes[new] ^ hashes[old]).bit_count() <= 3

    def by_the_rule(new: int, old: int) -> bool:  # lua/_traps.lua near_duplicate
        return within_3_bits(new, old) or (hashes[new] ^ hashes[old]) & ~weak[new] == 0

    copies = [(i, o) for i, o in site.originals.items() if i != o]
    originals = [i for i, o in site.originals.items() if i == o]
    rnd = random.Random(1)
    pairs = [rnd.sample(originals, 2) for _ in range(unrelated)]
    found = sum(by_the_rule(i, o) for i, o in copies)
    within = sum(within_3_bits(i, o) for i, o in copies)
    return {"copies": len(copies), "found": found, "recall": round(found / len(copies), 4),
            "within_3_bits": within, "recall_within_3_bits": round(within / len(copies), 4),
            "unrelated_pairs": unrelated,
            "unrelated_found": sum(by_the_rule(a, b) for a, b in pairs),
            "unrelated_within_3_bits": sum(within_3_bits(a, b) for a, b in pairs)}


def run_waste(pages: int = 200, cost_hosts: int = 5, cost_pages: int = 200, repeat: int = 3,
              out: str | None = None, instructions: bool = False,
              recall_pages: int = 10_000) -> dict[str, Any]:
    """Run every part (the instruction count only if asked); print it and write it
    as JSON to ``out``."""
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="waste") as work, BenchRedis(Path(work)) as server:
        report["waste_site"] = waste_crawl(server, pages)
        report["canonical"] = canonical_savings(server)
        report["normal_site_cost"] = normal_cost(server, cost_hosts, cost_pages, repeat)
    report["simhash_speed"] = simhash_speed()
    report["hash_recall"] = hash_recall(recall_pages, 10 * recall_pages)
    if instructions:
        from crawler.bench.waste_instructions import worker_instructions

        report["worker_instructions"] = worker_instructions()
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
        f"{on['fetches']} fetches ({on['fetches_per_distinct_page']} a page; 1.0 is each "
        "page once, which query cleaning and rel=canonical make possible)",
        f"  near-duplicates: {on['flagged']} flagged, {on['should_flag']} should be; "
        f"precision {on['precision']}, recall {on['recall']}",
        f"  calendar: {on['calendar_fetches']} fetches; trap records: "
        + ("; ".join(on["trap_records"]) or "none"),
        "  held: " + ("; ".join(on["held"]) or "none"),
        f"  without near-duplicates: {off['fetches']} fetches, calendar "
        f"{off['calendar_fetches']} fetches, trap records: "
        + ("; ".join(off["trap_records"]) or "none"),
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
    lines.append(f"  CPU a page with them on: {cost['cpu_more_pct']:+.1f}%" + (
        " (a small sample: CPU time on a busy machine is noise here; see --instructions)"
        if cost["pages"] * cost["repeat"] < 1000 else ""))
    lines.append("SimHash a page:")
    for site, row in report["simhash_speed"].items():
        lines.append(f"  {site}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    recall = report["hash_recall"]
    lines.append(f"SimHash alone, one word changed in 400, {recall['copies']} copies: "
                 f"{recall['found']} found by the index's rule (recall {recall['recall']}); "
                 f"{recall['within_3_bits']} within 3 bits (recall "
                 f"{recall['recall_within_3_bits']})")
    lines.append(f"  unrelated pairs taken for near-duplicates: {recall['unrelated_found']} "
                 f"(within 3 bits: {recall['unrelated_within_3_bits']}) of "
                 f"{recall['unrelated_pairs']}")
    if "worker_instructions" in report:
        from crawler.bench.waste_instructions import report_lines as instruction_lines

        lines += instruction_lines(report["worker_instructions"])
    return "\n".join(lines)
