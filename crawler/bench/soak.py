"""``crawl bench soak``: a long crawl with a draining export, kills, and memory that must come back.

1. Render a site of H hosts x P pages and serve it (nginx, or the
   pre-rendered Python server) on 127.0.0.x.
2. Seed ``urls`` URLs: the site's pages, and the rest under ``/private/``
   of the same hosts, which robots.txt disallows (each ends as a
   ``robots_disallowed`` record without a request).
3. Crawl with N worker processes while ``crawl export --drain --follow``
   runs; kill -9 the drain ``kill_drain`` times and a worker
   ``kill_workers`` times, restarting each.
4. Print Redis memory by kind every ``report_every`` seconds and at the end.

Then check: every URL is in the drained file exactly once; the results
streams are empty; and the crawl's memory is back to what its seen URLs need:
at most ``MEMORY_TOLERANCE`` above the dedup sets (the leftovers being robots
verdicts, scope anchors and empty stream skeletons) plus ``MEMORY_SLACK``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from crawler.bench.site import SiteProcess
from crawler.bench.sitegen import SiteSpec, free_port, write_site

MEMORY_TOLERANCE = 0.15
"""Memory after the soak may exceed its dedup sets by this fraction..."""
MEMORY_SLACK = 1_000_000
"""...plus this many bytes (robots verdicts, scope anchors, stream skeletons)."""


def _crawl(*args: str) -> list[str]:
    return [sys.executable, "-m", "crawler", *args]


async def _memory(url: str, crawl: str) -> dict[str, Any]:
    from crawler.config import Settings
    from crawler.observe.status import crawl_status
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    client = await connect(Settings(redis_url=url))
    try:
        settings = await crawl_layout(client, Settings(redis_url=url, crawl=crawl))
        return await crawl_status(client, settings)
    finally:
        await client.aclose()


def _line(status: dict[str, Any]) -> str:
    b = status["memory"]["bytes"]
    mb = {k: round(v / 1e6, 1) for k, v in b.items()}
    return (f"done {status['done']}  queued {status['queued']}  leased {status['leased']}  "
            f"results in Redis {status['results_pending']}  memory MB {mb}")


def run_soak(urls: int = 1_000_000, hosts: int = 100, pages: int = 2000, processes: int = 2,
             kill_drain: int = 2, kill_workers: int = 1, report_every: float = 10.0,
             server: str = "auto", echo: Any = print) -> dict[str, Any]:
    """Run the soak; returns the report (``ok`` says whether every check held)."""
    from crawler.store.server import ensure_server, stop_server

    rnd = random.Random(7)
    crawl = "soak"
    with tempfile.TemporaryDirectory(prefix="soak") as tmp:
        work = Path(tmp)
        spec = SiteSpec(hosts=hosts, pages=pages, links=10, page_bytes=1200,
                        port=free_port("127.0.0.2"))
        write_site(spec, work / "site")
        seeds = work / "seeds.txt"
        site_urls = [f"{spec.origin(h)}/p/{i}.html" for h in range(hosts) for i in range(pages)]
        extra = max(0, urls - len(site_urls))
        with open(seeds, "w") as fh:
            fh.writelines(u + "\n" for u in site_urls[:urls])
            fh.writelines(f"{spec.origin(i % hosts)}/private/{i}.html\n" for i in range(extra))
        home = work / "v"
        url = ensure_server(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRAWL_")}
        env.update(CRAWL_REDIS_URL=url, CRAWL_CRAWL=crawl, CRAWL_HOME=str(home))
        out = work / "results.jsonl"
        worker_cmd = _crawl("worker", "--quiet", "--allow-private", "--delay", "0",
                            "--max-per-host", "10", "--lease-time", "15")
        drain_cmd = _crawl("export", str(out), "--drain", "--follow")
        procs: list[subprocess.Popen[bytes]] = []
        report: dict[str, Any] = {"urls": urls, "pages": min(urls, len(site_urls)),
                                  "kills": {"drain": 0, "worker": 0}, "memory": []}
        try:
            with SiteProcess(spec, work / "site", work / "srv", server):
                started = time.monotonic()
                seeded = subprocess.run(_crawl("seed", str(seeds)), env=env, check=True,
                                        capture_output=True, text=True)
                report["seed_seconds"] = round(time.monotonic() - started, 1)
                echo(f"seeded in {report['seed_seconds']}s: {seeded.stdout.strip()}")
                workers = [subprocess.Popen(worker_cmd, env=env) for _ in range(processes)]
                drainer = subprocess.Popen(drain_cmd, env=env, stderr=subprocess.DEVNULL)
                procs += [*workers, drainer]
                kills = ["drain"] * kill_drain + ["worker"] * kill_workers
                rnd.shuffle(kills)
                next_kill = time.monotonic() + rnd.uniform(15, 40)
                next_report = time.monotonic()
                while any(w.poll() is None for w in workers):
                    time.sleep(0.5)
                    now = time.monotonic()
                    if now >= next_report:
                        status = asyncio.run(_memory(url, crawl))
                        report["memory"].append({"t": round(now - started), **status["memory"]})
                        echo(f"[{now - started:5.0f}s] {_line(status)}")
                        next_report = now + report_every
                    if kills and now >= next_kill:
                        kind = kills.pop()
                        if kind == "drain":
                            drainer.send_signal(signal.SIGKILL)
                            drainer.wait()
                            drainer = subprocess.Popen(drain_cmd, env=env,
                                                       stderr=subprocess.DEVNULL)
                            procs.append(drainer)
                        else:
                            victim = next(w for w in workers if w.poll() is None)
                            victim.send_signal(signal.SIGKILL)
                            victim.wait()
                            workers[workers.index(victim)] = subprocess.Popen(worker_cmd, env=env)
                            procs.append(workers[-1])
                        report["kills"][kind] += 1
                        echo(f"[{now - started:5.0f}s] kill -9 of a {kind}, restarted")
                        next_kill = now + rnd.uniform(15, 40)
                report["crawl_seconds"] = round(time.monotonic() - started, 1)
                report["workers_exit"] = [w.wait() for w in workers]
                report["drain_exit"] = drainer.wait(600)  # it ends once the crawl is done
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            final = asyncio.run(_memory(url, crawl))
            stop_server(home)
        counts = Counter(json.loads(line)["url"] for line in out.read_text().splitlines())
        want = set(site_urls[:urls]) | {f"{spec.origin(i % hosts)}/private/{i}.html"
                                        for i in range(extra)}
        memory = final["memory"]["bytes"]
        allowed = memory["seen"] * (1 + MEMORY_TOLERANCE) + MEMORY_SLACK
        report.update({
            "final_memory": final["memory"], "records": sum(counts.values()),
            "missing": len(want - counts.keys()), "unexpected": len(counts.keys() - want),
            "duplicated": sum(1 for n in counts.values() if n > 1),
            "results_left_in_redis": final["results_pending"],
            "memory_total": sum(memory.values()), "memory_allowed": round(allowed),
        })
        echo(f"[final] {_line(final)}")
        report["ok"] = (report["missing"] == report["unexpected"] == report["duplicated"] == 0
                        and report["results_left_in_redis"] == 0
                        and report["memory_total"] <= allowed
                        and report["workers_exit"] == [0] * processes)
        echo(json.dumps({k: v for k, v in report.items() if k != "memory"}, indent=1))
        return report
