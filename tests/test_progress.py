"""The worker's progress line: recent speed, done of known, ETA, politeness, 4xx apart."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from crawl_helpers import ROOT

from crawler.bench.sitegen import SiteServer, SiteSpec
from crawler.config import Settings
from crawler.worker.progress import (
    Counters,
    CrawlProgress,
    RateWindow,
    duration_text,
    politeness_text,
    progress_line,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_pages_per_second_covers_the_last_ten_seconds_and_falls_to_zero_in_a_stall() -> None:
    clock = FakeClock()
    window = RateWindow(10.0, clock)
    pages = 0
    for _ in range(10):  # 20 s at 10 pages/s, sampled every 2 s
        window.add(pages)
        clock.now += 2
        pages += 20
    window.add(pages)
    assert window.rate() == 10.0
    for _ in range(5):  # then a 10 s stall
        clock.now += 2
        window.add(pages)
    assert window.rate() == 0.0
    assert pages / clock.now > 6  # the average since the start would still say 6.7/s


def test_the_rate_is_unknown_before_two_samples() -> None:
    window = RateWindow(10.0, FakeClock())
    assert window.rate() is None
    window.add(5)
    assert window.rate() is None


def test_the_line_shows_done_of_known_an_eta_and_4xx_apart_from_errors() -> None:
    counters = Counters(pages=40, errors=1, client_errors=3, retries=2)
    crawl = CrawlProgress(done=130, queued=340, leased=10, ready_hosts=5)
    line = progress_line(counters, 4.0, 6, crawl=crawl, crawl_rate=5.0)
    assert "4.0 pages/s" in line
    assert "4xx: 3" in line and "errors 1" in line
    assert "done 130 of 480 known" in line
    assert "eta 1m10s" in line  # 350 left at 5 a second


def test_no_eta_without_a_rate_or_with_nothing_left() -> None:
    counters = Counters()
    assert "eta" not in progress_line(counters, None, 0,
                                      crawl=CrawlProgress(1, 5, 0, 1), crawl_rate=0.0)
    assert "eta" not in progress_line(counters, 1.0, 0,
                                      crawl=CrawlProgress(6, 0, 0, 0), crawl_rate=2.0)


def test_durations_read_naturally() -> None:
    assert [duration_text(s) for s in (5, 70, 3600 * 3 + 20 * 60)] == ["5s", "1m10s", "3h20m"]


def test_politeness_bound_names_the_hosts_and_their_rate() -> None:
    settings = Settings(delay=2.0, max_per_host=2, concurrency=100)
    crawl = CrawlProgress(done=10, queued=50, leased=1, ready_hosts=3)
    assert politeness_text(crawl, settings, 2, 1) == "  3 hosts at 1.0/s: politeness-bound"
    single = CrawlProgress(done=10, queued=50, leased=1, ready_hosts=0)
    assert politeness_text(single, Settings(delay=0.5), 1, 1) == \
        "  1 host at 2.0/s: politeness-bound"


def test_not_politeness_bound_when_the_worker_is_busy_or_there_is_no_delay() -> None:
    crawl = CrawlProgress(done=10, queued=50, leased=60, ready_hosts=3)
    assert politeness_text(crawl, Settings(concurrency=100), 60, 30) == ""  # slots in use
    assert politeness_text(crawl, Settings(delay=0), 1, 1) == ""
    done = CrawlProgress(done=10, queued=0, leased=1, ready_hosts=0)
    assert politeness_text(done, Settings(), 1, 1) == ""  # nothing left to wait for


def test_a_real_worker_prints_politeness_eta_and_4xx(clean_redis: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
    with SiteServer(SiteSpec(hosts=1, pages=12, links=2)) as site:
        seeds = tmp_path / "seeds.txt"
        seeds.write_text(f"{site.spec.seeds()[0]}\n{site.spec.origin(0)}/missing.html\n")
        seeded = subprocess.run([sys.executable, "-m", "crawler", "seed", "--redis",
                                 clean_redis, str(seeds)], cwd=ROOT, env=env, timeout=60)
        assert seeded.returncode == 0
        worker = subprocess.run(
            [sys.executable, "-m", "crawler", "worker", "--redis", clean_redis,
             "--allow-private", "--delay", "0.5"], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=90)
    assert worker.returncode == 0, worker.stderr
    lines = worker.stderr.splitlines()
    running = [line for line in lines if line.startswith("pages ")]
    assert running, worker.stderr
    assert any("1 host at 2.0/s: politeness-bound" in line for line in running), lines
    assert any(re.search(r"done \d+ of \d+ known  eta \d+s", line) for line in running), lines
    [final] = [line for line in lines if line.startswith("done: ")]
    assert "4xx: 1" in final and "errors 0" in final
