"""``crawl bench memory``: what each kind of frontier state costs in Valkey, and seeding speed.

On a fresh embedded Valkey (append-only, as a crawl runs it), measured with
``MEMORY USAGE`` of every key (``crawler.status.memory_by_kind``):

1. seed N 76-character URLs (H hosts, 100 directories a host) from this
   process: URLs/s, the slowest add calls (SLOWLOG), bytes per queued URL
   (queue entries, prefix tables and host state) and per seen URL; then, as a
   control, as many calls of a fixed pure-Lua script as long as the mean add
   call: the calls over 2 ms the machine makes of any script;
2. seed one URL on each of 10,000 more hosts: bytes per live host;
3. finish 10,000 URLs with records of the usual size: bytes per result in
   the stream, and again after ``crawl export --drain`` took them out; each
   with the revisit state ``recrawl = true`` keeps (an ETag, a title): bytes
   per done URL that recrawl adds, and with a sitemap's lastmod, and with
   ``revisit_adaptive``'s interval and schedule entry.

Only loopback and a temporary directory are used.
"""

from __future__ import annotations

import asyncio
import io
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from crawler.bench.report import write_report

URL_LENGTH = 76
SLOW_MICROS = 2000


def url_76(i: int, hosts: int) -> str:
    h, j = i % hosts, i // hosts
    url = (f"https://www.site-{h:05d}.example.com/catalog/section-{j % 100:02d}/"
           f"item-{i:07d}.html?r={i % 97:02d}")
    assert len(url) == URL_LENGTH
    return url


async def _measure(url: str, n: int, hosts: int, echo: Any) -> dict[str, Any]:
    from crawler.config import Settings
    from crawler.discovery.seeds import seed
    from crawler.frontier import Frontier
    from crawler.observe.status import memory_by_kind
    from crawler.results import dumps, make_record
    from crawler.results.export import drain
    from crawler.store.connection import connect
    from crawler.store.layout import crawl_layout

    base = Settings(redis_url=url, crawl="mem", expected_urls=max(n, 1_000_000),
                    max_per_host=1000, delay=0)
    client = await connect(base)
    settings = await crawl_layout(client, base)
    await client.config_set("slowlog-log-slower-than", SLOW_MICROS // 2)
    await client.config_set("slowlog-max-len", 100_000)
    await client.slowlog_reset()
    await client.config_resetstat()  # the mean add call counts seeding alone
    out: dict[str, Any] = {"urls": n, "hosts": hosts, "url_length": URL_LENGTH}
    try:
        lines = "\n".join(url_76(i, hosts) for i in range(n)).encode()
        started = time.monotonic()
        report = await seed(client, settings, io.BytesIO(lines))
        seconds = time.monotonic() - started
        slow: Any = await client.slowlog_get(100_000)
        evalsha = (await client.info("commandstats")).get("cmdstat_evalsha", {})
        calls, usec = evalsha.get("calls", 0), evalsha.get("usec", 0)
        memory = (await memory_by_kind(client, settings))["bytes"]
        out["seed"] = {"added": report.added, "seconds": round(seconds, 2),
                       "urls_per_s": round(n / seconds),
                       "add_calls": calls,
                       "mean_call_ms": round(usec / max(1, calls) / 1000, 3),
                       "calls_over_2ms": sum(e["duration"] > SLOW_MICROS for e in slow),
                       "slowest_call_ms": round(max((e["duration"] for e in slow), default=0)
                                                / 1000, 2)}
        out["seed"]["control"] = await _jitter_control(client, calls, usec / max(1, calls))
        echo(f"seeding: {out['seed']['urls_per_s']} URLs/s, {calls} add calls of "
             f"{out['seed']['mean_call_ms']} ms on average, {out['seed']['calls_over_2ms']} "
             f"over 2 ms; control: {out['seed']['control']['calls_over_2ms']} over 2 ms")
        out["bytes_per_queued_url"] = round((memory["queued"] + memory["hosts"]) / n, 1)
        out["bytes_per_queued_url_parts"] = {"queue_and_prefixes": round(memory["queued"] / n, 1),
                                             "host_state": round(memory["hosts"] / n, 2)}
        # These URLs have a query and a path each of its own: each path's count for
        # trap_query_budget (tq:<host>, counted with the near-duplicate index) stays
        # for the crawl's life, done or not.
        out["bytes_per_url_query_budget_counts"] = round(memory["near_dups"] / n, 1)
        out["bytes_per_seen_url"] = round(memory["seen"] / n, 2)
        echo(f"seeded {n} URLs at {out['seed']['urls_per_s']}/s; "
             f"{out['bytes_per_queued_url']} B a queued URL, {out['bytes_per_seen_url']} B seen, "
             f"{out['bytes_per_url_query_budget_counts']} B of query-budget counts")

        extra_hosts = 10_000
        await seed(client, settings, io.BytesIO("\n".join(
            f"https://solo-{h:05d}.example.org/index.html" for h in range(extra_hosts)).encode()))
        after = (await memory_by_kind(client, settings))["bytes"]
        per_url_entry = memory["queued"] / n
        grown = after["queued"] + after["hosts"] - memory["queued"] - memory["hosts"]
        out["bytes_per_live_host"] = round(grown / extra_hosts - per_url_entry, 1)

        results = 10_000
        frontier = Frontier(client, settings)
        done = 0
        while done < results:
            leases = (await frontier.claim(min(1000, results - done), "bench")).leases
            for lease in leases:
                record = make_record(url=lease.url, depth=0, attempts=1, worker="node1:123:abcdef",
                                     final_url=lease.url, status=200,
                                     title="A product page title of usual length", links=60,
                                     content_type="text/html", size=27_000, elapsed=0.081)
                await frontier.complete(lease, dumps(record))
            done += len(leases)
        with_results = (await memory_by_kind(client, settings))["bytes"]
        out["bytes_per_result_until_drained"] = round(with_results["results"] / results, 1)
        with tempfile.TemporaryDirectory() as tmp:
            await drain(client, settings, Path(tmp) / "r.jsonl")
        out["bytes_of_results_after_drain"] = (await memory_by_kind(client, settings))[
            "bytes"]["results"]
        echo(f"{out['bytes_per_live_host']} B a live host; "
             f"{out['bytes_per_result_until_drained']} B a result until drained, "
             f"{out['bytes_of_results_after_drain']} B of results after the drain")
        out["bytes_per_done_url_recrawl"] = await _recrawl_state_bytes(client, settings)
        echo(f"recrawl state a done URL: {out['bytes_per_done_url_recrawl']}")
    finally:
        await client.aclose()
    return out


_CONTROL_LUA = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i % 7 end return x"


async def _jitter_control(client: Any, calls: int, mean_micros: float) -> dict[str, Any]:
    """The same number of calls of a script of fixed work (pure Lua: no key, no reply
    to build, no garbage) as long as the mean add call: the calls over 2 ms that the
    machine itself makes (its scheduler, other processes), which no call size avoids."""
    sha = await client.script_load(_CONTROL_LUA)
    await client.config_resetstat()
    for _ in range(10):
        await client.evalsha(sha, 0, 100_000)
    per_loop = (await client.info("commandstats"))["cmdstat_evalsha"]["usec"] / 1_000_000
    loops = max(1, round(mean_micros / max(per_loop, 1e-3)))
    await client.config_resetstat()
    await client.slowlog_reset()
    for start in range(0, calls, 100):
        pipe = client.pipeline(transaction=False)
        for _ in range(min(100, calls - start)):
            pipe.evalsha(sha, 0, loops)
        await pipe.execute()
    slow: Any = await client.slowlog_get(100_000)
    usec = (await client.info("commandstats"))["cmdstat_evalsha"]["usec"]
    return {"calls": calls, "mean_call_ms": round(usec / max(1, calls) / 1000, 3),
            "calls_over_2ms": sum(e["duration"] > SLOW_MICROS for e in slow),
            "slowest_call_ms": round(max((e["duration"] for e in slow), default=0) / 1000, 2)}


async def _recrawl_state_bytes(client: Any, settings: Any) -> dict[str, dict[str, float]]:
    """Bytes a done URL's recrawl state adds (an ETag and a title of usual length), by how
    many done URLs its host has: its host's hash, as complete.lua writes it; with a
    sitemap's lastmod; with an adaptive interval and its place in the revisit schedule;
    with the WARC capture a 304's revisit record refers to."""
    from crawler.discovery.recrawl import RevisitState, revisit_field
    from crawler.pages.warc import new_capture
    from crawler.store import keys

    shard = keys.all_shards(settings.crawl, settings.shards, settings.shard_tags)[0]
    now = int(time.time())
    plain = RevisitState(now, 1, 0, 1, 'e"5f2a-1b3c4d5e6f7a8b"',
                         "A product page title of usual length")
    variants = {"plain": plain, "lastmod": replace(plain, lastmod=now - 86400),
                "adaptive": replace(plain, interval=86400),
                "warc": replace(plain, capture=new_capture()[2])}
    out: dict[str, dict[str, float]] = {}
    for name, state in variants.items():
        out[name] = {}
        for per_host in (1, 100, 10_000):
            hosts = max(1, 10_000 // per_host)
            names = [url_76(h, hosts).split("/")[2] for h in range(hosts)]
            pipe = client.pipeline(transaction=False)
            for i in range(hosts * per_host):
                url = url_76(i, hosts)
                host = url.split("/", 3)[2]
                pipe.hset(shard.revisits(host), revisit_field(host, url), state.dump())
                pipe.sadd(shard.recrawl_hosts, host)
                if state.interval:  # what complete.lua schedules
                    pipe.zadd(shard.revisits_due(host), {revisit_field(host, url): now + i})
                    pipe.zadd(shard.due_hosts, {host: now})
            await pipe.execute()
            used = [shard.recrawl_hosts, shard.due_hosts]
            used += [k for host in names for k in (shard.revisits(host),
                                                   shard.revisits_due(host))]
            total = 0
            for key in used:
                total += int(await client.memory_usage(key, samples=0) or 0)
            out[name][f"{per_host}_per_host"] = round(total / (hosts * per_host), 1)
            await client.delete(*used)
    return out


def run_memory(n: int, hosts: int, out: str | None, echo: Any = print) -> dict[str, Any]:
    from crawler.store.server import scratch_server

    with scratch_server("crawlmem") as (url, _):
        report = asyncio.run(_measure(url, n, hosts, echo))
    echo(json.dumps(report, indent=1))
    if out:
        write_report(out, report)
    return report
