"""``crawl bench``: the crawler against a local site, beside the ceiling of a minimal loop.

One run (see bench/README.md):

1. render a deterministic site of H hosts x P pages (``crawler.bench.sitegen``) to
   files and serve it from nginx, or a pre-rendered file server, on 127.0.0.x;
2. time the ceiling: a minimal aiohttp + uvloop + lxml loop, in-memory queue,
   no politeness (``crawler.bench.ceiling``);
3. for each process count N: a fresh embedded Valkey, seed, N worker
   processes (``crawler.bench.worker``) with robots.txt obeyed, then check the
   results stream against the site's truth (every page once, titles, link
   counts) and read the counters: CPU per page of workers (getrusage), Valkey
   (INFO cpu) and web server (/proc/<pid>/stat), round trips and commands per
   page, Valkey memory per seen URL, peak RSS per worker;
4. print a table and write the figures as JSON, so runs can be compared.

``--dedup N`` instead measures Valkey memory for N fingerprints
(``crawler.bench.dedup``). Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from crawler.bench.config import BenchConfig
from crawler.bench.report import format_table, split_warnings, summary, write_report
from crawler.bench.servers import BenchRedis
from crawler.bench.site import SiteProcess
from crawler.bench.sitegen import SiteSpec, expected, free_port, write_site


def run_label(processes: int, shards: int = 1, masters: int = 0, wait: int = 0) -> str:
    """A run's key in the report: "2" is 2 processes on one server with 1 shard,
    "2p 3m w1" 2 processes on 3 masters with wait_replicas 1."""
    if masters:
        return f"{processes}p {masters}m" + (f" w{wait}" if wait else "")
    return str(processes) if shards == 1 else f"{processes}p {shards}sh"


def _variants(cfg: BenchConfig) -> list[tuple[int, int, int, int]]:
    """(processes, shards, masters, wait_replicas) of every crawl a repeat runs."""
    out = [(n, s, 0, 0) for n in cfg.processes for s in cfg.shards]
    if cfg.cluster:
        out += [(n, 1, cfg.cluster, w) for n in cfg.processes for w in cfg.wait_replicas]
    return out


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill a child that is still running (a failed or interrupted run) and reap it."""
    if proc.returncode is None and proc.poll() is None:
        proc.kill()
        proc.wait()


def _wait_child(proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    """Wait for a child; return its exit code and all the CPU it used, start-up included."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle, from /proc/stat (all processes)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _profiler(cfg: BenchConfig, name: str) -> list[str]:
    """py-spy in front of a process's command line, with --profile (collapsed stacks)."""
    if not cfg.profile:
        return []
    Path(cfg.profile).mkdir(parents=True, exist_ok=True)
    out = Path(cfg.profile) / f"{name}.txt"
    beside = Path(sys.executable).parent / "py-spy"  # installed in the venv, maybe not on PATH
    spy = str(beside) if beside.exists() else "py-spy"
    return [spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-o", str(out), "--"]


def _spec(cfg: BenchConfig, port: int) -> SiteSpec:
    return SiteSpec(hosts=cfg.hosts, pages=cfg.pages, links=cfg.links,
                    page_bytes=cfg.page_bytes, port=port)


# -- completeness ---------------------------------------------------------------


def check_results(spec: SiteSpec, records: list[dict[str, Any]]) -> list[str]:
    """Problems with a crawl's results: each page once, status 200, right title and links."""
    want = expected(spec)
    counts = Counter(r["url"] for r in records)
    problems = [f"{u}: {n} results" for u, n in counts.items() if n > 1]
    problems += [f"{u}: missing" for u in sorted(want.keys() - counts.keys())]
    problems += [f"{u}: not in the site" for u in sorted(counts.keys() - want.keys())]
    for r in records:
        truth = want.get(r["url"])
        if truth is None:
            continue
        if r.get("error") or r.get("status") != 200:
            problems.append(f"{r['url']}: status {r.get('status')} error {r.get('error')}")
        elif (r.get("title"), r.get("links")) != truth:
            problems.append(f"{r['url']}: got {r.get('title')!r}/{r.get('links')}, "
                            f"want {truth[0]!r}/{truth[1]}")
    return problems


# -- one crawl ------------------------------------------------------------------


async def _seed(url: str, overrides: dict[str, Any], seeds: list[str]) -> None:
    from crawler.config import Settings, load_settings
    from crawler.discovery.seeds import seed
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    settings = load_settings(base=Settings(), overrides=overrides)
    client = await connect(settings)
    try:
        settings = await crawl_layout(client, settings)
        await seed(client, settings, io.BytesIO("\n".join(seeds).encode()))
    finally:
        await client.aclose()


def run_crawl(spec: SiteSpec, processes: int, cfg: BenchConfig, site: SiteProcess,
              work: Path, *, shards: int = 1, masters: int = 0, wait: int = 0,
              extra: dict[str, Any] | None = None, worker: str = "crawler.bench.worker",
              label: str = "") -> dict[str, Any]:
    """Crawl the site with N worker processes on a fresh Valkey (or a fresh
    cluster of ``masters``, with ``cfg.replicas`` each); return the figures.

    ``extra``: settings besides the benchmark's (``crawl bench --web``'s);
    ``worker``: the worker process's module (a profiled one)."""
    procs: list[subprocess.Popen[bytes]] = []
    with BenchRedis(work, masters, cfg.replicas if masters else 0) as valkey:
        overrides = {"redis_url": valkey.url, "crawl": "bench", "concurrency": cfg.concurrency,
                     "max_per_host": cfg.max_per_host, "delay": 0.0, "obey_robots": True,
                     "allow_private": True, "home": str(work / "home"), "scope": "host",
                     "shards": shards, "wait_replicas": wait}
        if cfg.extract:
            overrides |= {"extract": cfg.extract, "extract_in_thread": cfg.extract_in_thread}
        if cfg.warc:
            overrides["warc_dir"] = str(work / f"warc-{processes}p")
        if cfg.recrawl:
            overrides["recrawl"] = True
        overrides |= extra or {}
        try:
            asyncio.run(_seed(valkey.url, overrides, spec.seeds()))
            info0 = valkey.info()
            redis_cpu0, site_cpu0 = valkey.cpu(), site.cpu_seconds()
            replica_cpu0 = valkey.replica_cpu()
            busy0, wall0 = machine_busy_seconds(), time.monotonic()
            label = label or f"crawl-{processes}p" + (f"-{masters}m" if masters else "")
            outs = [work / f"{label}-worker-{i}.json" for i in range(processes)]
            procs += [subprocess.Popen([*_profiler(cfg, f"{label}-{i}"), sys.executable,
                                        "-m", worker, json.dumps(overrides),
                                        str(out)])
                      for i, out in enumerate(outs)]
            workers_cpu_total = 0.0
            for proc in procs:
                code, cpu = _wait_child(proc)
                workers_cpu_total += cpu
                if code != 0:
                    raise RuntimeError(f"worker exited with {code}")
            redis_cpus = [c1 - c0 for c0, c1 in zip(redis_cpu0, valkey.cpu(), strict=True)]
            site_cpu = site.cpu_seconds() - site_cpu0
            replica_cpu = valkey.replica_cpu() - replica_cpu0
            busy, wall = machine_busy_seconds() - busy0, time.monotonic() - wall0
            info1 = valkey.info()
            workers = [json.loads(out.read_text()) for out in outs]
            records = valkey.records("bench")
            seen_bytes, seen_sets = valkey.seen_set_bytes()
            seen = valkey.seen("bench")
            shard_count = len(valkey.shards("bench"))
        finally:
            for proc in procs:  # a failed or interrupted run must not leave workers behind
                _kill(proc)
    redis_cpu = sum(redis_cpus)
    problems = check_results(spec, records)
    pages = len(records)
    # From the first worker's start to the last result written: the workers'
    # idle wait before they see the crawl is finished is not crawling time.
    last = max((r["_written"] for r in records), default=max(w["end"] for w in workers))
    seconds = last - min(w["start"] for w in workers)

    def per_page(value: float) -> float:
        return value / max(1, pages)

    def delta(name: str) -> float:
        return per_page(info1[name] - info0[name])

    by_master = [round(per_page(c) * 1000, 4) for c in redis_cpus]
    mean = sum(by_master) / len(by_master)
    return {
        "processes": processes,
        "masters": masters,
        "shards": shard_count,
        "pages": pages,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 1),
        "cpu_ms_per_page": {
            "workers": round(per_page(sum(w["cpu_s"] for w in workers)) * 1000, 3),
            "redis": round(per_page(redis_cpu) * 1000, 3),
            "replicas": round(per_page(replica_cpu) * 1000, 3),
            "server": round(per_page(site_cpu) * 1000, 3),
        },
        "redis_cpu_ms_per_page_by_master": by_master,
        # The busiest master's share over an even split: 0.2 means 20% above.
        "redis_split_max_over_mean": round(max(by_master) / mean - 1, 3) if mean else 0.0,
        "round_trips_per_page": round(per_page(sum(w["round_trips"] for w in workers)), 3),
        # Every request the workers' Redis clients sent and waited on, the frontier's
        # pipelines and any command sent outside them (heartbeats, steering polls).
        "client_round_trips_per_page": round(per_page(sum(w.get("client_round_trips", 0)
                                                          for w in workers)), 3),
        "socket_reads_per_page": round(delta("reads"), 3),
        "script_calls_per_page": round(delta("evalsha"), 3),
        "commands_per_page": round(delta("commands"), 2),
        "redis_bytes_per_seen_url": round((info1["used_memory"] - info0["used_memory"])
                                          / max(1, seen), 1),
        "dedup_bytes_per_seen_url": round(seen_bytes / max(1, seen), 1),
        "dedup_sets": seen_sets,
        "pages_per_worker": [w["pages"] for w in workers],
        "peak_rss_mb": [round(w["peak_rss_kb"] / 1024, 1) for w in workers],
        "rss_samples_kb": [w["rss_samples"] for w in workers],
        "robots_fetches": sum(w["robots_fetches"] for w in workers),
        "retries": sum(w["retries"] for w in workers),
        "wait_replicas": wait,
        "other_load_cores": round(max(0.0, busy - redis_cpu - replica_cpu - site_cpu
                                      - workers_cpu_total)
                                  / wall, 2),
        "complete": not problems,
        "problems": problems[:20],
    }


def run_ceiling(spec: SiteSpec, cfg: BenchConfig, site: SiteProcess, work: Path,
                links: str = "urllib") -> dict[str, Any]:
    seeds, out = work / "seeds.json", work / "ceiling.json"
    seeds.write_text(json.dumps(spec.seeds()))
    site_cpu0, busy0, wall0 = site.cpu_seconds(), machine_busy_seconds(), time.monotonic()
    proc = subprocess.Popen(
        [*_profiler(cfg, f"ceiling-{links}"), sys.executable, "-m", "crawler.bench.ceiling",
         str(seeds), str(cfg.concurrency), str(out), links])
    try:
        code, ceiling_cpu = _wait_child(proc)
    finally:
        _kill(proc)
    if code != 0:
        raise RuntimeError(f"the ceiling loop exited with {code}")
    site_cpu = site.cpu_seconds() - site_cpu0
    busy, wall = machine_busy_seconds() - busy0, time.monotonic() - wall0
    report = json.loads(out.read_text())
    pages, seconds = report["pages"], report["end"] - report["start"]
    titles = report["titles"]
    wrong = [u for u, (t, _) in expected(spec).items() if titles.get(u) != t]
    return {
        "pages": pages,
        "seconds": round(seconds, 2),
        "pages_per_s": round(pages / seconds, 1),
        "cpu_ms_per_page": {"workers": round(report["cpu_s"] / max(1, pages) * 1000, 3),
                            "server": round(site_cpu / max(1, pages) * 1000, 3)},
        "peak_rss_mb": [round(report["peak_rss_kb"] / 1024, 1)],
        "other_load_cores": round(max(0.0, busy - site_cpu - ceiling_cpu) / wall, 2),
        "complete": not wrong,
        "problems": wrong[:20],
    }


# -- the whole benchmark ----------------------------------------------------------


def run_bench(cfg: BenchConfig, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the whole benchmark; return (and write, if cfg.out) the report."""
    with tempfile.TemporaryDirectory(prefix="crawlbench") as tmp:
        work = Path(tmp)
        spec = _spec(cfg, free_port("127.0.0.2"))
        t0 = time.monotonic()
        size = write_site(spec, work / "site")
        echo(f"site: {spec.hosts} hosts x {spec.pages} pages, {size / spec.hosts / spec.pages:.0f}"
             f" B/page, {spec.links} links/page, rendered in {time.monotonic() - t0:.1f}s")
        ceiling: list[dict[str, Any]] = []
        ceiling_ours: list[dict[str, Any]] = []
        ours: dict[str, list[dict[str, Any]]] = {run_label(*v): [] for v in _variants(cfg)}
        with SiteProcess(spec, work / "site", work / "server", cfg.server) as site:
            echo(f"server: {site.kind}")
            for i in range(cfg.repeat):
                if cfg.ceiling:
                    ceiling.append(run_ceiling(spec, cfg, site, work))
                    echo(f"[{i + 1}/{cfg.repeat}] ceiling: {ceiling[-1]['pages_per_s']} pages/s")
                if cfg.ceiling_our_urls:
                    ceiling_ours.append(run_ceiling(spec, cfg, site, work, "ours"))
                    echo(f"[{i + 1}/{cfg.repeat}] ceiling, our URL code: "
                         f"{ceiling_ours[-1]['pages_per_s']} pages/s")
                for n, shards, masters, wait in _variants(cfg):
                    label = run_label(n, shards, masters, wait)
                    ours[label].append(run_crawl(spec, n, cfg, site, work, shards=shards,
                                                 masters=masters, wait=wait))
                    run = ours[label][-1]
                    where = f" on {masters} masters ({run['shards']} shards" + (
                        f", wait_replicas {wait})" if wait else ")") if masters else (
                        f", {shards} shards" if shards != 1 else "")
                    echo(f"[{i + 1}/{cfg.repeat}] {n} process(es){where}: "
                         f"{run['pages_per_s']} pages/s"
                         + ("" if run["complete"] else f"  INCOMPLETE: {run['problems'][:3]}"))
            server_kind = site.kind
    report: dict[str, Any] = {
        "config": asdict(cfg),
        "site": {"hosts": spec.hosts, "pages": spec.pages, "links": spec.links,
                 "bytes_per_page": round(size / spec.hosts / spec.pages)},
        "server": server_kind,
        "machine": {"cpus": _cpus(), "python": sys.version.split()[0]},
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ceiling": summary(ceiling) if ceiling else None,
        "ceiling_our_urls": summary(ceiling_ours) if ceiling_ours else None,
        "runs": {str(n): summary(runs) for n, runs in ours.items()},
    }
    report["complete"] = all(r["complete"] for r in report["runs"].values())
    echo(format_table(report))
    for warning in split_warnings(report):
        echo(warning)
    if cfg.out:
        write_report(cfg.out, report, echo)
    return report


def _cpus() -> int:
    return len(os.sched_getaffinity(0))
