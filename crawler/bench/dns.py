"""``crawl bench dns``: is a crawl of many hosts DNS-bound?

Against the local dnslib server (``crawler.bench.dnsserver``, in a process of
its own) serving ``h0.test`` ... ``h<N-1>.test`` on 127.0.0.2 ... 127.0.0.251:

1. lookups only: ``CachingResolver`` looks up the N names cold (every one a
   query), then again warm (every one from the cache): lookups/s of each;
2. a crawl of N hosts, one page each (robots.txt obeyed, so two requests a
   host), by one worker process in this process, against a small web server
   on those 250 addresses (a process of its own): pages/s, lookups, the
   crawl's cache hit rate, and the share of the fetch slots' time spent
   waiting on DNS. Every host is new, so every host costs one lookup: the
   worst case for DNS.

The crawl is not DNS-bound when the lookups/s it needed are far below what
the resolver does alone, and its fetch slots spend little time on DNS.
Only loopback addresses are contacted.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from crawler.bench.report import write_report

WEB_IPS = tuple(f"127.0.0.{2 + i}" for i in range(250))
PAGE = (b"<!doctype html><html><head><title>a host</title></head>"
        b"<body><p>" + b"text " * 400 + b"</p></body></html>")


def _start(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """A helper process of this benchmark, and the first line it prints (its address)."""
    proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.kill()
        raise RuntimeError(f"{' '.join(args)} did not start")
    return proc, line


def _stop(proc: subprocess.Popen[str]) -> str:
    """Close the helper's standard input (its signal to stop); what it printed last."""
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out.strip()


async def lookup_run(address: str, names: list[str], concurrency: int) -> dict[str, Any]:
    """Look every name up cold, then warm; lookups/s of each."""
    from crawler.config import Settings
    from crawler.net.dns import CachingResolver

    resolver = CachingResolver(Settings(dns_servers=(address,), dns_concurrency=concurrency))
    try:
        started = time.monotonic()
        await asyncio.gather(*(resolver.lookup(n) for n in names))
        cold_s = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(resolver.lookup(n) for n in names))
        warm_s = time.monotonic() - started
    finally:
        await resolver.close()
    return {"names": len(names), "failed": dict(resolver.stats.failures),
            "cold_seconds": round(cold_s, 3), "cold_lookups_per_s": round(len(names) / cold_s),
            "warm_lookups_per_s": round(len(names) / warm_s),
            "most_in_flight": resolver.stats.most_in_flight,
            "mean_lookup_ms": round(resolver.stats.seconds / max(1, resolver.stats.lookups)
                                    * 1000, 2)}


async def crawl_run(address: str, port: int, names: list[str], work: Path,
                    concurrency: int) -> dict[str, Any]:
    """Crawl one page on each of the hosts, one worker in this process."""
    from crawler.bench.servers import BenchRedis
    from crawler.config import Settings, load_settings
    from crawler.discovery.seeds import seed
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout
    from crawler.worker import Worker

    with BenchRedis(work) as valkey:
        settings = load_settings(base=Settings(), overrides={
            "redis_url": valkey.url, "crawl": "dnsbench", "home": str(work / "home"),
            "concurrency": concurrency, "delay": 0.0, "allow_private": True, "scope": "host",
            "dns_servers": (address,)})
        client = await connect(settings)
        try:
            settings = await crawl_layout(client, settings)
            seeds = "\n".join(f"http://{n}:{port}/" for n in names)
            await seed(client, settings, _bytes_io(seeds))
            worker = Worker(client, settings, quiet=True)
            started = time.monotonic()
            await worker.run()
            seconds = time.monotonic() - started
        finally:
            await client.aclose()
    assert worker.fetcher is not None and worker.fetcher.dns is not None
    stats = worker.fetcher.dns.stats
    pages = worker.counters.pages
    return {"hosts": len(names), "pages": pages, "errors": worker.counters.errors,
            "seconds": round(seconds, 2), "pages_per_s": round(pages / seconds),
            "lookups": stats.lookups, "lookups_per_s": round(stats.lookups / seconds),
            "cache_hit_rate": round(stats.hit_rate, 3), "dns_failures": stats.failures,
            "mean_lookup_ms": round(stats.seconds / max(1, stats.lookups) * 1000, 2),
            "dns_share_of_fetch_slots": round(stats.seconds / (concurrency * seconds), 4)}


def _bytes_io(text: str) -> BinaryIO:
    import io

    return io.BytesIO(text.encode())


def run_dns_bench(hosts: int = 10_000, concurrency: int = 200, dns_concurrency: int = 256,
                  crawl: bool = True, out: str | None = None, echo: Any = print
                  ) -> dict[str, Any]:
    import uvloop

    names = [f"h{i}.test" for i in range(hosts)]
    report: dict[str, Any] = {"hosts": hosts}
    dns_proc, address = _start(["-m", "crawler.bench.dnsserver", str(hosts)])
    try:
        report["lookups"] = uvloop.run(lookup_run(address, names, dns_concurrency))
        echo(_line("lookups only", report["lookups"]))
        if crawl:
            web_proc, web_port = _start(["-m", "crawler.bench.dns", "--serve-web"])
            try:
                with tempfile.TemporaryDirectory(prefix="dnsbench") as work:
                    report["crawl"] = uvloop.run(crawl_run(address, int(web_port), names,
                                                           Path(work), concurrency))
            finally:
                _stop(web_proc)
            echo(_line("crawl", report["crawl"]))
    finally:
        served = _stop(dns_proc).splitlines()
    report["dns_server"] = json.loads(served[-1]) if served else {}
    if "crawl" in report:
        needed, capacity = report["crawl"]["lookups_per_s"], report["lookups"][
            "cold_lookups_per_s"]
        report["dns_bound"] = needed > 0.5 * capacity
        echo(f"the crawl needed {needed} lookups/s of the {capacity}/s the resolver does "
             f"alone; its fetch slots spent {report['crawl']['dns_share_of_fetch_slots']:.1%} "
             f"of their time on DNS: {'DNS-bound' if report['dns_bound'] else 'not DNS-bound'}")
    if out:
        write_report(out, report)
    return report


def _line(label: str, figures: dict[str, Any]) -> str:
    return f"{label}: " + ", ".join(f"{k} {v}" for k, v in figures.items())


# -- the web server (its own process) ------------------------------------------------------


def serve_web() -> None:
    """A page on / and 404 elsewhere, on every address of WEB_IPS; prints the port."""
    import uvloop
    from aiohttp import web

    from crawler.bench.sitegen import free_port

    async def page(_request: web.Request) -> web.Response:
        return web.Response(body=PAGE, content_type="text/html")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port(WEB_IPS[0])
        for ip in WEB_IPS:
            await web.TCPSite(runner, ip, port, backlog=1024).start()
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    uvloop.run(main())


if __name__ == "__main__" and sys.argv[1:] == ["--serve-web"]:
    serve_web()
