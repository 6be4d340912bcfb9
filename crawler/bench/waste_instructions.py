"""``crawl bench waste --instructions``: the worker's instructions a page, near-dups off and on.

CPU time on a shared 2-core machine moves ±20% with the load (the README's
cost table shows it); an instruction count does not. Each setting runs a
child process under valgrind's cachegrind (counting only, no cache model)
that crawls the normal benchmark's site 1 time and, in another child, 3
times, each crawl under a fresh name; the difference of the two counts over
the 2 extra crawls' pages is what a page costs, with start-up, imports and
the first crawl's warm-up taken out. The site is served from its own process
and Valkey is embedded: neither is counted.

Needs valgrind (Debian's ``valgrind``). Under it a crawl runs ~50x slower:
the default 2 hosts x 100 pages take a few minutes in all.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_CACHEGRIND = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
               "--cachegrind-out-file=/dev/null"]
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def _child(redis_url: str, prefix: str, near_duplicates: bool, crawls: int,
           seeds: list[str]) -> None:
    """In the child: ``crawls`` whole crawls of the site, one after another."""
    from crawler.bench.waste_crawl import crawl_site, site_settings

    for n in range(crawls):
        settings = site_settings(redis_url, f"{prefix}-{n}", near_duplicates=near_duplicates)
        run = asyncio.run(crawl_site(settings, seeds))
        print(f"pages {len(run['records'])}", flush=True)


def _count(redis_url: str, prefix: str, near_duplicates: bool, crawls: int,
           seeds: list[str]) -> tuple[int, int]:
    """(instructions, pages of the last crawl) of a child doing ``crawls`` crawls."""
    command = [*_CACHEGRIND, sys.executable, "-m", "crawler.bench.waste_instructions",
               redis_url, prefix, "on" if near_duplicates else "off", str(crawls), *seeds]
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, check=False)
    refs = _REFS.search(done.stderr)
    pages = re.findall(r"pages (\d+)", done.stdout)
    if done.returncode != 0 or refs is None or len(pages) != crawls:
        raise RuntimeError(f"the counted crawl failed (exit {done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return int(refs.group(1).replace(",", "")), int(pages[-1])


def worker_instructions(hosts: int = 2, pages: int = 100) -> dict[str, Any]:
    """Instructions a page of the crawling process, near-duplicates off and on."""
    from crawler.bench.config import BenchConfig
    from crawler.bench.servers import BenchRedis
    from crawler.bench.site import SiteProcess
    from crawler.bench.sitegen import SiteSpec, free_port, write_site
    from crawler.pages.simhash import ACCELERATOR

    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    bench = BenchConfig()
    spec = SiteSpec(hosts=hosts, pages=pages, links=bench.links, page_bytes=bench.page_bytes,
                    port=free_port())
    out: dict[str, Any] = {"hosts": hosts, "pages_a_crawl": hosts * pages,
                           "simhash": "C module" if ACCELERATOR is not None else "Python"}
    with tempfile.TemporaryDirectory(prefix="waste-instr") as tmp, \
            BenchRedis(Path(tmp)) as server:
        root = Path(tmp) / "site"
        write_site(spec, root)
        with SiteProcess(spec, root, Path(tmp) / "work", kind="python"):
            for mode in ("off", "on"):
                one, _ = _count(server.url, f"i1-{mode}", mode == "on", 1, spec.seeds())
                three, last = _count(server.url, f"i3-{mode}", mode == "on", 3, spec.seeds())
                out[mode] = {"instructions_a_page": round((three - one) / (2 * last)),
                             "pages": last}
    off, on = out["off"]["instructions_a_page"], out["on"]["instructions_a_page"]
    out["more_pct"] = round(100 * (on - off) / off, 1)
    return out


def report_lines(result: dict[str, Any]) -> list[str]:
    off, on = result["off"], result["on"]
    return [
        f"Worker instructions a page (cachegrind; {result['pages_a_crawl']} pages a crawl, "
        f"3 crawls less 1; SimHash in {result['simhash']}):",
        f"  near-duplicates off {off['instructions_a_page'] / 1e6:.2f} M, "
        f"on {on['instructions_a_page'] / 1e6:.2f} M: {result['more_pct']:+.1f}%",
    ]


if __name__ == "__main__":
    if len(sys.argv) < 6:
        raise SystemExit("usage: python -m crawler.bench.waste_instructions "
                         "REDIS_URL PREFIX on|off CRAWLS SEED...")
    _child(sys.argv[1], sys.argv[2], sys.argv[3] == "on", int(sys.argv[4]), sys.argv[5:])
