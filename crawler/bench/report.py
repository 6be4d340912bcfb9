"""The benchmark's report: the median of repeated runs, and the table it prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run by pages/s, with the spread of every repeat."""
    ordered = sorted(runs, key=lambda r: r["pages_per_s"])
    median = dict(ordered[len(ordered) // 2])
    median["pages_per_s_runs"] = [r["pages_per_s"] for r in runs]
    median["pages_per_worker_runs"] = [r.get("pages_per_worker") for r in runs]
    median["complete"] = all(r["complete"] for r in runs)
    return median


def format_table(report: dict[str, Any]) -> str:
    ceiling = report["ceiling"]
    cols: list[tuple[str, dict[str, Any]]] = [("ceiling", ceiling)] if ceiling else []
    starred = report.get("ceiling_our_urls")
    if starred:
        cols.append(("ceiling*", starred))
    cols += [(f"{n} proc" if n.isdigit() else n, run) for n, run in report["runs"].items()]
    one = report["runs"].get("1")

    def row(label: str, fn: Callable[[str, dict[str, Any]], Any]) -> str:
        cells = []
        for name, run in cols:
            try:
                value = fn(name, run)
            except (KeyError, TypeError, ZeroDivisionError):
                value = None
            cells.append("-" if value is None else _number(value) if isinstance(value, float)
                         else str(value))
        return f"{label:<34}" + "".join(f" {c:>15}" for c in cells)

    def mine(fn: Callable[[dict[str, Any]], Any]) -> Callable[[str, dict[str, Any]], Any]:
        return lambda name, run: None if name.startswith("ceiling") else fn(run)

    lines = [
        f"{'':<34}" + "".join(f" {name:>15}" for name, _ in cols),
        *(["(ceiling*: the same minimal loop with crawler.urls.resolve for its links)"]
          if report.get("ceiling_our_urls") else []),
        row("pages/s (median)", lambda _, r: r["pages_per_s"]),
        row("pages/s (each run)", lambda _, r: "/".join(
            f"{p:.0f}" for p in r["pages_per_s_runs"])),
        row("ours / ceiling", mine(lambda r: r["pages_per_s"] / ceiling["pages_per_s"])),
        *([row("ours / ceiling*", mine(lambda r: r["pages_per_s"] / starred["pages_per_s"]))]
          if starred else []),
        row("N procs / 1 proc", mine(lambda r: r["pages_per_s"] / one["pages_per_s"])),
        row("other load on the machine (cores)", lambda _, r: r.get("other_load_cores")),
        row("pages", lambda _, r: r["pages"]),
        row("complete", lambda _, r: "yes" if r["complete"] else "NO"),
        row("CPU ms/page: crawler", lambda _, r: r["cpu_ms_per_page"]["workers"]),
        row("CPU ms/page: Valkey", mine(lambda r: r["cpu_ms_per_page"]["redis"])),
        row("CPU ms/page: Valkey, each master", mine(lambda r: "/".join(
            f"{m:.3f}" for m in r["redis_cpu_ms_per_page_by_master"]))),
        row("CPU ms/page: Valkey replicas", mine(lambda r: r["cpu_ms_per_page"]["replicas"])),
        row("busiest master over even split", mine(
            lambda r: f"{r['redis_split_max_over_mean']:+.0%}")),
        row("CPU ms/page: web server", lambda _, r: r["cpu_ms_per_page"]["server"]),
        row("Redis round trips/page (frontier)", mine(lambda r: r["round_trips_per_page"])),
        row("Redis round trips/page (all)", mine(
            lambda r: r.get("client_round_trips_per_page", "-"))),
        row("Redis socket reads/page (server)", mine(lambda r: r["socket_reads_per_page"])),
        row("Redis script calls/page (EVALSHA)", mine(lambda r: r["script_calls_per_page"])),
        row("Redis commands/page (incl. in Lua)", mine(lambda r: r["commands_per_page"])),
        row("Redis bytes/seen URL (all)", mine(lambda r: r["redis_bytes_per_seen_url"])),
        row("Redis bytes/seen URL (dedup sets)", mine(lambda r: r["dedup_bytes_per_seen_url"])),
        row("peak RSS/process MB", lambda _, r: "/".join(f"{m:.0f}" for m in r["peak_rss_mb"])),
    ]
    return "\n".join(lines)


SPLIT_TOLERANCE = 0.2
"""The busiest master may do this much more than an even split (issue 9: within ±20%)."""


def split_warnings(report: dict[str, Any]) -> list[str]:
    """A line for each cluster run whose busiest master is over an even split by > 20%.

    The work splits by host (a host lives in one shard, a shard on one
    master), so a site of few hosts cannot split evenly: ~200 hosts can.
    """
    hosts = report.get("site", {}).get("hosts", 0)
    out = []
    for label, run in report["runs"].items():
        over = run.get("redis_split_max_over_mean", 0.0)
        if len(run.get("redis_cpu_ms_per_page_by_master", ())) > 1 and over > SPLIT_TOLERANCE:
            out.append(f"WARNING: {label}: the busiest master did {over:+.0%} over an even "
                       f"split (tolerance +{SPLIT_TOLERANCE:.0%}); work splits by host and "
                       f"this site has {hosts} hosts: use --hosts 200 or more")
    return out


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def write_report(out: str | Path, report: Any, echo: Callable[[str], object] | None = None
                 ) -> None:
    """A benchmark's report as JSON at ``out`` (its directory made); said through ``echo``."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
    if echo is not None:
        echo(f"wrote {path}")
