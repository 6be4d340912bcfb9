"""``python -m bench.experiments.functions``:
The frontier's scripts as EVALSHA beside a Valkey Functions library.

Issue 9 asked to measure before choosing how the scripts reach a cluster.
redis-py's cluster pipeline refuses EVALSHA, so the frontier sends its own
pipeline to each master (``crawler.frontier.cluster``); the alternative is a
*library* of functions (``FUNCTION LOAD``, called with ``FCALL``), which that
pipeline allows, and which Valkey replicates and persists with the data.

The library here is built from the very scripts the frontier runs: each
``lua/<name>.lua`` with ``_lib.lua`` before it becomes the body of one
function, ``crawler_<name>(KEYS, ARGV)``, just as EVAL wraps a script in a
function of its own (so chunk-level state such as the policy-version cache
is still per call). Both ways then run the same work through the real
``Frontier`` (its runner only swapped for one that sends FCALL), on one
server and on a local cluster, in alternating order:

- seed H home pages; each claim takes up to 200 leases, and each lease is
  completed with its links (the add and complete calls of concurrent
  completions share pipelines: the worker's group commit); no fetching;
- server time per call from ``INFO commandstats`` (``usec_per_call`` of
  ``evalsha`` or ``fcall``, summed over the masters), server CPU per call
  from ``INFO cpu``, and the client's wall time per group commit.

It also measures the operational difference: the first group commit after
``SCRIPT FLUSH`` on every master (NOSCRIPT, load, send again), and, with
replicas, whether each replica holds the scripts and the library.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from crawler.bench.cluster import LocalCluster
from crawler.bench.servers import BenchRedis
from crawler.config import Settings
from crawler.frontier import Call, Frontier, Lease, ScriptRunner
from crawler.frontier.cluster import ClusterScriptRunner
from crawler.frontier.scripts import SCRIPT_NAMES, load_source
from crawler.store.connection import connect, is_cluster, primaries
from crawler.store.layout import crawl_layout

LIBRARY = "crawler"
MODES = ("evalsha", "fcall")
CLAIM = 200
RECORD = json.dumps({"status": 200, "title": "A page title of a usual length",
                     "links": 10, "bytes": 27000, "fetch_ms": 12.5, "error": None,
                     "worker": "bench-functions", "content_type": "text/html"})


def library_source() -> str:
    """The frontier's scripts as one Functions library: each script, one function."""
    parts = [f"#!lua name={LIBRARY}"]
    for name in SCRIPT_NAMES:
        parts += [f"local function {name}_(KEYS, ARGV)", load_source(name), "end",
                  f"redis.register_function('{LIBRARY}_{name}', {name}_)"]
    return "\n".join(parts)


class _Timed:
    """Times each group commit (one pipeline a node, all nodes at once)."""

    timings: list[float]

    async def _send(self, calls: list[Call]) -> list[Any]:
        start = time.perf_counter()
        replies: list[Any] = await super()._send(calls)  # type: ignore[misc]
        self.timings.append(time.perf_counter() - start)
        return replies


class _Fcall:
    """Sends FCALL to the library's functions instead of EVALSHA."""

    def _add_calls(self, pipe: Any, calls: list[Call], server: str = "") -> int:
        for name, script_keys, args in calls:
            pipe.execute_command("FCALL", f"{LIBRARY}_{name}", len(script_keys),
                                 *script_keys, *args)
        return 0


class TimedRunner(_Timed, ScriptRunner):
    pass


class TimedFcallRunner(_Timed, _Fcall, ScriptRunner):
    pass


class TimedClusterRunner(_Timed, ClusterScriptRunner):
    pass


class TimedClusterFcallRunner(_Timed, _Fcall, ClusterScriptRunner):
    pass


def runner(mode: str, redis: Redis, on_failure: Callable[[], None]) -> ScriptRunner:
    kinds: dict[tuple[bool, str], Any] = {
        (False, "evalsha"): TimedRunner, (False, "fcall"): TimedFcallRunner,
        (True, "evalsha"): TimedClusterRunner, (True, "fcall"): TimedClusterFcallRunner}
    made: ScriptRunner = kinds[(is_cluster(redis), mode)](redis, on_failure)
    made.timings = []  # type: ignore[attr-defined]
    return made


def page_links(url: str, pages: int, links: int) -> list[tuple[str, int]]:
    """A page's links: a tree over the host's pages (each found once) plus repeats."""
    base, _, page = url.rpartition("/p/")
    n, fanout = int(page), max(1, links - 2)
    found = [f"{base}/p/{n * fanout + j + 1}" for j in range(fanout)
             if n * fanout + j + 1 < pages]
    return [(u, 1) for u in [*found, f"{base}/p/0", f"{base}/p/{max(0, n - 1)}"]]


async def workload(frontier: Frontier, hosts: int, pages: int, links: int) -> int:
    """Seed, then claim and complete every page with its links; returns pages done."""
    await frontier.add([(f"http://h{h}.bench.test/p/0", 0) for h in range(hosts)])
    done = claims = 0

    async def complete(lease: Lease) -> None:
        await frontier.complete(lease, RECORD, links=page_links(lease.url, pages, links),
                                tally="s:2xx")

    while True:
        claims += 1
        result = await frontier.claim(CLAIM, "bench", request_id=str(claims))
        if not result.leases:
            if result.finished:
                return done
            await asyncio.sleep(0.001)
            continue
        await asyncio.gather(*(complete(lease) for lease in result.leases))
        done += len(result.leases)


async def _stats(nodes: list[Redis]) -> dict[str, float]:
    """Script calls and their server time, and server CPU, summed over the masters."""
    total = {"evalsha_calls": 0.0, "evalsha_usec": 0.0, "fcall_calls": 0.0, "fcall_usec": 0.0,
             "cpu_s": 0.0}
    for node in nodes:
        info: dict[str, Any] = await node.info("all")
        for mode in MODES:
            stat = info.get(f"cmdstat_{mode}")
            if isinstance(stat, dict):
                total[f"{mode}_calls"] += float(stat["calls"])
                total[f"{mode}_usec"] += float(stat["usec"])
        total["cpu_s"] += float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    return total


async def load_both(nodes: list[Redis]) -> dict[str, float]:
    """Load the scripts and the library on every master: ms each way."""
    sources = [load_source(name) for name in SCRIPT_NAMES]
    library = library_source()
    start = time.perf_counter()
    for node in nodes:
        for source in sources:
            await node.script_load(source)
    scripts_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    for node in nodes:
        await node.function_load(library, replace=True)
    return {"scripts_ms": round(scripts_ms, 2),
            "library_ms": round((time.perf_counter() - start) * 1000, 2)}


async def run_mode(redis: Redis, nodes: list[Redis], mode: str, crawl: str, hosts: int,
                   pages: int, links: int) -> dict[str, Any]:
    settings = await crawl_layout(redis, Settings(crawl=crawl, max_per_host=1000, delay=0))
    frontier = Frontier(redis, settings, local_dedup=False)
    frontier.scripts = runner(mode, redis, frontier.scripts.on_failure)
    for node in nodes:
        await node.config_resetstat()
    before = await _stats(nodes)
    start = time.perf_counter()
    done = await workload(frontier, hosts, pages, links)
    wall = time.perf_counter() - start
    after = await _stats(nodes)
    timings: list[float] = frontier.scripts.timings  # type: ignore[attr-defined]
    await frontier.scripts.close()
    calls = after[f"{mode}_calls"]
    return {
        "mode": mode, "pages": done, "script_calls": int(calls),
        "server_usec_per_call": round(after[f"{mode}_usec"] / max(1.0, calls), 2),
        "server_cpu_usec_per_call": round((after["cpu_s"] - before["cpu_s"]) * 1e6
                                          / max(1.0, calls), 2),
        "group_commits": len(timings),
        "calls_per_group_commit": round(calls / max(1, len(timings)), 1),
        "group_commit_ms_median": round(statistics.median(timings) * 1000, 3),
        "group_commit_ms_p90": round(sorted(timings)[int(len(timings) * 0.9)] * 1000, 3),
        "pages_per_s": round(done / wall, 1),
    }


async def noscript_cost(redis: Redis, nodes: list[Redis], crawl: str) -> dict[str, float]:
    """A claim's group commit as usual, then the first after SCRIPT FLUSH on every master."""
    settings = await crawl_layout(redis, Settings(crawl=crawl, max_per_host=1000, delay=0))
    frontier = Frontier(redis, settings, local_dedup=False)
    frontier.scripts = runner("evalsha", redis, frontier.scripts.on_failure)
    timings: list[float] = frontier.scripts.timings  # type: ignore[attr-defined]
    for i in range(5):
        await frontier.claim(CLAIM, "bench", request_id=f"warm{i}")
    usual = statistics.median(timings)
    for node in nodes:
        await node.script_flush()
    await frontier.claim(CLAIM, "bench", request_id="after-flush")
    await frontier.scripts.close()
    return {"usual_ms": round(usual * 1000, 3), "after_flush_ms": round(timings[-1] * 1000, 3)}


async def bench_target(url: str, label: str, hosts: int, pages: int, links: int, rounds: int,
                       echo: Callable[[str], None]) -> dict[str, Any]:
    redis = await connect(Settings(redis_url=url, concurrency=CLAIM))
    nodes = await primaries(redis)
    try:
        loading = await load_both(nodes)
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:  # alternate who goes first
                runs[mode].append(await run_mode(redis, nodes, mode, f"fn-{mode}-{r}", hosts,
                                                 pages, links))
                echo(f"{label}, round {r + 1}, {mode}: "
                     f"{runs[mode][-1]['server_usec_per_call']} us/call on the server, "
                     f"{runs[mode][-1]['group_commit_ms_median']} ms/group commit")
        flush = await noscript_cost(redis, nodes, "fn-flush")
    finally:
        for node in nodes:
            if node is not redis:
                await node.aclose()
        await redis.aclose()
    return {"label": label, "masters": len(nodes), "loading": loading, "noscript": flush,
            "runs": runs, "median": {mode: _median(rs) for mode, rs in runs.items()}}


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}


def replication(cluster: LocalCluster) -> dict[str, int]:
    """How many replicas hold the library, and how many every script (after loading)."""
    import hashlib

    shas = [hashlib.sha1(load_source(n).encode()).hexdigest() for n in SCRIPT_NAMES]
    replicas = [n for n in cluster.nodes if n.alive()
                and n.client.info("replication").get("role") == "slave"]
    library = scripts = 0
    for node in replicas:
        listed: Any = node.client.execute_command("FUNCTION", "LIST", "LIBRARYNAME", LIBRARY)  # type: ignore[no-untyped-call]
        library += bool(listed)
        scripts += all(node.client.script_exists(*shas))
    return {"replicas": len(replicas), "with_library": library, "with_scripts": scripts}


def verdict(targets: list[dict[str, Any]]) -> str:
    """Functions win only if FCALL costs the server clearly less (>10%) everywhere."""
    ratios = [t["median"]["fcall"]["server_usec_per_call"]
              / max(1e-9, t["median"]["evalsha"]["server_usec_per_call"]) for t in targets]
    spread = ", ".join(f"{t['label']} {r - 1:+.0%}" for t, r in zip(targets, ratios, strict=True))
    if all(r < 0.9 for r in ratios):
        return (f"FCALL costs the server clearly less ({spread} per call): Functions win on "
                f"speed (the frontier keeps EVALSHA until it is switched on purpose)")
    return (f"keep EVALSHA: FCALL's server time per call is {spread}, under the 10% that "
            f"would make it a clear win; the choice rests on operations, not speed")


def format_report(report: dict[str, Any]) -> str:
    targets = report["targets"]
    cols = [(t, mode) for t in targets for mode in MODES]
    head = "".join(f" {t['label'][:11] + ' ' + mode.upper():>20}" for t, mode in cols)

    def row(label: str, key: str) -> str:
        cells = "".join(f" {t['median'][mode][key]:>20}" for t, mode in cols)
        return f"{label:<34}{cells}"

    lines = [
        f"bench.experiments.functions: {report['hosts']} hosts x {report['pages']} pages, "
        f"{report['links']} links a page, {report['rounds']} round(s) each, medians",
        f"{'':<34}{head}",
        row("pages (claimed and completed)", "pages"),
        row("script calls", "script_calls"),
        row("server us/call (commandstats)", "server_usec_per_call"),
        row("server CPU us/call (INFO cpu)", "server_cpu_usec_per_call"),
        row("group commit ms (median)", "group_commit_ms_median"),
        row("group commit ms (p90)", "group_commit_ms_p90"),
        row("calls per group commit", "calls_per_group_commit"),
        row("pages/s (no fetching)", "pages_per_s"),
    ]
    for t in targets:
        load, flush = t["loading"], t["noscript"]
        lines.append(f"{t['label']}: loading on {t['masters']} master(s): 11 scripts "
                     f"{load['scripts_ms']} ms, the library {load['library_ms']} ms; "
                     f"first claim after SCRIPT FLUSH {flush['after_flush_ms']} ms "
                     f"(NOSCRIPT, load, resend) vs {flush['usual_ms']} ms usually")
    repl = report.get("replication")
    if repl:
        lines.append(f"replicas holding the library: {repl['with_library']}/{repl['replicas']};"
                     f" holding the scripts: {repl['with_scripts']}/{repl['replicas']} "
                     f"(a promoted replica answers NOSCRIPT until they are loaded)")
    lines.append(f"decision: {report['verdict']}")
    return "\n".join(lines)


def run_functions(hosts: int = 20, pages: int = 200, links: int = 10, rounds: int = 2,
                  masters: int = 3, replicas: int = 1,
                  out: str | None = "bench/results/functions-latest.json",
                  echo: Callable[[str], None] = print) -> dict[str, Any]:
    """EVALSHA beside FCALL on one server and on a local cluster; print and save the report."""
    args = (hosts, pages, links, rounds, echo)
    with tempfile.TemporaryDirectory(prefix="crawlfn") as tmp:
        with BenchRedis(Path(tmp)) as single:
            targets = [asyncio.run(bench_target(single.url, "one server", *args))]
        repl: dict[str, int] | None = None
        if masters:
            with LocalCluster(Path(tmp) / "cluster", masters=masters,
                              replicas=replicas) as cluster:
                targets.append(asyncio.run(bench_target(cluster.url, f"{masters} masters",
                                                        *args)))
                repl = replication(cluster) if replicas else None
    report: dict[str, Any] = {
        "hosts": hosts, "pages": pages, "links": links, "rounds": rounds,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "targets": targets,
        "replication": repl, "verdict": verdict(targets)}
    echo(format_report(report))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1))
        echo(f"wrote {out}")
    return report


def main() -> None:
    """``python bench/experiments/functions.py [--hosts N] ... [--out FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    for flag, default, text in [("--hosts", 20, "hosts of the synthetic crawl"),
                                ("--pages", 200, "pages per host"),
                                ("--links", 10, "links a page (some repeat)"),
                                ("--rounds", 3, "runs of each way (medians)"),
                                ("--masters", 3, "masters of the local cluster (0: none)"),
                                ("--replicas", 1, "replicas per master")]:
        parser.add_argument(flag, type=int, default=default, help=text)
    parser.add_argument("--out", default="bench/results/functions-latest.json",
                        help="JSON report path ('' for none)")
    a = parser.parse_args()
    run_functions(a.hosts, a.pages, a.links, a.rounds, a.masters, a.replicas, a.out or None)


if __name__ == "__main__":
    main()
