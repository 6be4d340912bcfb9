"""A crawl of a generated site full of near-duplicates and an endless calendar (bench/wastesite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crawl_helpers import crawl, results
from redis.asyncio import Redis

from crawler.bench.sitegen import SiteServer, SiteSpec
from crawler.bench.wastesite import WasteSite, score
from crawler.config import Settings
from crawler.frontier import Frontier
from crawler.observe.status import crawl_status


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with near_duplicates = true (the default; said here so that
    these tests keep testing it if the default changes)."""
    return settings.replace(near_duplicates=True)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[WasteSite, str]]:
    site = WasteSite(pages=60, words=400)
    with SiteServer(SiteSpec(hosts=1), app=site.app()) as server:
        yield site, server.spec.origin(0)


async def test_near_duplicates_are_found_with_precision_and_recall_of_95_percent(
        redis: Redis, settings: Settings, served: tuple[WasteSite, str]) -> None:
    site, origin = served
    settings = settings.replace(trap_query_budget=20, trap_host_pages=0)
    await crawl(redis, settings, [f"{origin}/a/0.html"])
    report = score(site, [r async for r in _in_order(redis, settings)])
    assert report["pages_fetched"] == site.pages, report
    assert report["should_flag"] >= site.near_duplicates
    assert report["precision"] >= 0.95 and report["recall"] >= 0.95, report


async def test_an_endless_calendar_stops_at_its_budget_with_the_reason_in_a_record(
        redis: Redis, settings: Settings, served: tuple[WasteSite, str]) -> None:
    _, origin = served
    settings = settings.replace(trap_query_budget=20, trap_host_pages=0)
    records = await crawl(redis, settings, [f"{origin}/a/0.html"])
    calendar = [u for u in records if "/calendar?" in u]
    traps = [r for r in records.values() if (r["error"] or {}).get("type") == "trap"]
    assert len(calendar) == 21  # 20 fetched, and the one that met the budget
    assert [r["error"]["message"] for r in traps] == [
        f"host {origin.split('//')[1]}: 20 URLs of /calendar with distinct queries; budget 20"]
    assert traps[0]["status"] is None and "/calendar?month=" in traps[0]["url"]
    stats = await crawl_status(redis, settings, memory=False)
    assert stats["errors_by_type"].get("trap") == 1


async def test_a_host_of_mostly_near_duplicates_is_throttled_and_held_for_trap(
        redis: Redis, settings: Settings, served: tuple[WasteSite, str]) -> None:
    _, origin = served
    host = origin.split("//")[1]
    # Without query cleaning every tracking variant is a copy: most pages are.
    settings = settings.replace(clean_query=False)
    free = await crawl(redis, settings.replace(crawl="free", trap_query_budget=20,
                                               trap_host_pages=0), [f"{origin}/a/0.html"])
    settings = settings.replace(trap_query_budget=20, trap_host_pages=5)
    throttled = await crawl(redis, settings, [f"{origin}/a/0.html"])
    assert len(throttled) < len(free)  # URLs queued before the throttle are still fetched
    shard = Frontier(redis, settings).shards[0]
    assert await redis.hget(shard.host(host), "tcap") == "0"  # its 5 URLs were queued
    status = await crawl_status(redis, settings, memory=False)
    [held] = status["held"]["listed"]
    assert held["host"] == host
    assert held["reason"].startswith("trap: ") and "pages near-duplicates" in held["reason"], held
    assert "trap" in status["held"]["urls_by_reason"]
    # Its spent budget is in a record too, once: the calendar's end says why.
    traps = [r for r in throttled.values() if (r["error"] or {}).get("type") == "trap"]
    assert len(traps) == 1, traps
    assert traps[0]["error"]["message"].startswith(f"host {host}: throttled as a trap (")
    assert "pages near-duplicates); the 5 URLs" in traps[0]["error"]["message"]
    assert status["errors_by_type"].get("trap") == 1


async def _in_order(redis: Redis, settings: Settings):  # type: ignore[no-untyped-def]
    for record in await results(redis, settings):
        yield record


def test_the_index_rule_finds_one_word_copies_that_3_bits_alone_miss() -> None:
    """Recall on 600 copies, finer than a crawl's: the index's rule (within 3 bits,
    or differing only in the copy's weak bits) finds them all; 3 bits alone
    misses some (the control: weak bits are what finds them); unrelated pages
    stay apart either way."""
    from crawler.bench.waste import hash_recall

    recall = hash_recall(pages=2000, unrelated=20_000)
    assert recall["copies"] == 600
    assert recall["recall"] >= 0.99, recall
    assert recall["within_3_bits"] < recall["found"], recall
    assert recall["unrelated_found"] == 0 and recall["unrelated_within_3_bits"] == 0


def test_crawl_bench_waste_runs_end_to_end_and_reports_every_part(tmp_path: Path) -> None:
    # The benchmark users run for this issue: a merge once left it crashing on
    # its second part (a server object where a URL was expected).
    import json
    import subprocess
    import sys

    out = tmp_path / "waste.json"
    run = subprocess.run([sys.executable, "-m", "crawler", "bench", "waste", "--pages", "20",
                          "--cost-hosts", "1", "--cost-pages", "20", "--repeat", "1",
                          "--recall-pages", "500",
                          "--out", str(out)], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(out.read_text())
    site = report["waste_site"]["on"]
    assert site["fetches_per_distinct_page"] == 1.0
    assert site["precision"] >= 0.95 and site["recall"] >= 0.95
    drop = report["canonical"]["runs"]["canonical=follow, canonical_links=drop"]
    assert drop["fetched_twice"] == 0 and drop["saved"] > 0.5
    assert "rel=canonical:" in run.stdout and "CPU a page with them on" in run.stdout
    assert report["hash_recall"]["copies"] == 150 and "found by the index's rule" in run.stdout
