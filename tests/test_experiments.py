"""The one-off experiments under bench/experiments keep running against today's code.

They measured design decisions already taken (bench/README.md has the
figures); they live outside the installed package, and are imported here from
the checkout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.experiments.bands import run_bands
from bench.experiments.functions import library_source, run_functions, verdict
from crawler.frontier.scripts import SCRIPT_NAMES


def test_the_functions_bench_runs_both_ways_on_one_server_and_a_cluster(tmp_path: Path) -> None:
    out = tmp_path / "functions.json"
    lines: list[str] = []
    report = run_functions(hosts=2, pages=12, links=5, rounds=1, masters=3, replicas=0,
                           out=str(out), echo=lines.append)
    assert [t["label"] for t in report["targets"]] == ["one server", "3 masters"]
    for target in report["targets"]:
        evalsha, fcall = target["median"]["evalsha"], target["median"]["fcall"]
        assert evalsha["pages"] == fcall["pages"] == 24  # every page, both ways
        assert evalsha["script_calls"] == fcall["script_calls"] > 24  # the same calls
        assert evalsha["server_usec_per_call"] > 0 and fcall["server_usec_per_call"] > 0
        assert target["noscript"]["after_flush_ms"] > 0
    assert report["targets"][1]["masters"] == 3
    printed = "\n".join(lines)
    assert "server us/call (commandstats)" in printed and "decision: " in printed
    assert json.loads(out.read_text())["verdict"] == report["verdict"]


def test_the_functions_library_is_every_frontier_script_as_a_function() -> None:
    source = library_source()
    assert source.startswith("#!lua name=crawler\n")
    for name in SCRIPT_NAMES:
        assert f"redis.register_function('crawler_{name}', {name}_)" in source


def test_functions_win_only_if_clearly_cheaper_on_every_target() -> None:
    def target(label: str, evalsha: float, fcall: float) -> dict[str, Any]:
        return {"label": label, "median": {"evalsha": {"server_usec_per_call": evalsha},
                                           "fcall": {"server_usec_per_call": fcall}}}

    assert verdict([target("one", 30, 29), target("3m", 40, 37)]).startswith("keep EVALSHA")
    assert verdict([target("one", 30, 25), target("3m", 40, 37)]).startswith("keep EVALSHA")
    assert verdict([target("one", 30, 25), target("3m", 40, 30)]).startswith("FCALL costs")


def test_bands_benchmark_measures_every_layout_and_a_raised_bands_key() -> None:
    report = run_bands(10_000, 100, None, echo=lambda _: None, repeat=1)
    layouts = report["layouts"]
    assert set(layouts) == {"normal", "mixed", "top"}
    for figures in layouts.values():
        assert figures["bytes_per_queued_url"] > 0 and figures["claim_server_us_per_url"] > 0
    # A URL costs its entry in whichever band; a band in use adds its list and flag.
    assert abs(layouts["top"]["bytes_per_queued_url"]
               - layouts["normal"]["bytes_per_queued_url"]) < 1.0
    assert layouts["mixed"]["bytes_per_queued_url"] > layouts["normal"]["bytes_per_queued_url"]
    assert report["band_key"]["extra_per_host_second_url_high"] > 0


def test_the_spill_measurement_gives_every_queue_back_entry_for_entry(tmp_path: Path) -> None:
    from bench.experiments.spill import run_spill

    out = tmp_path / "spill.json"
    report = run_spill(30_000, 10, "news", str(out), echo=lambda _: None)
    assert report["spill"]["urls_spilled"] == 30_000 - 10 * 1000  # the heads stay
    assert report["spill"]["used_memory_grown_after"] < report["in_redis"]["used_memory_grown"]
    assert 0 < report["spill"]["disk_bytes_per_url"] < 40
    assert report["refill"]["urls"] == report["spill"]["urls_spilled"]
    assert report["refill"]["queues_identical"] is True
    assert report["claim_after_refill"] == {"urls": 100, "decoded": True}
    assert json.loads(out.read_text())["refill"] == report["refill"]
