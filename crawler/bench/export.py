"""``crawl bench export``: exporting N results in every format, peak memory and speed.

On a fresh embedded Valkey in a temporary directory: N synthetic records of
the usual size (a page's URL, title, counts and timing; one in ten with an
error, one in five with hook ``data``) go straight into the results stream,
then ``crawl export`` runs once per format as a child process. Its peak RSS
comes from the kernel (``wait4``'s ``ru_maxrss``), so it is the whole
process's high-water mark, interpreter and libraries included. An export
that held every record in memory would grow with N; a paged one does not.
Parquet runs a second time with ``--data-schema`` (the records' data is the
example hooks' headings and description), writing ``data`` as a struct.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from crawler.bench.report import write_report
from crawler.results.formats import FORMATS

FILES = {"jsonl": "r.jsonl", "jsonl.gz": "r.jsonl.gz", "csv": "r.csv", "parquet": "r.parquet"}
DATA_SCHEMA = {"headings": "list<string>", "description": "string"}


def synthetic_record(i: int) -> str:
    from crawler.results import dumps, make_record

    url = f"https://www.site-{i % 1000:04d}.example.com/catalog/item-{i:08d}.html"
    record = make_record(url=url, depth=i % 7, attempts=1, worker="node1:4230:b33acf",
                         final_url=url, status=200, title=f"Product {i}: a title of usual length",
                         links=60, content_type="text/html", size=27_000, elapsed=0.081,
                         error=("timeout", "read timed out after 20 s") if i % 10 == 0 else None)
    if i % 5 == 0:
        record["data"] = {"headings": ["Overview", "Details"], "description": "A page."}
    return dumps(record)


def fill(url: str, n: int, crawl: str) -> None:
    """N records in shard 0's results stream of ``crawl``, a pipeline of 5000 at a time."""
    import redis as sync_redis

    from crawler.store import keys

    client = sync_redis.Redis.from_url(url)
    client.hset(keys.meta_key(crawl), "layout", json.dumps(
        {"shards": 1, "dedup_bucket_bits": 0, "expected_urls": max(n, 1000)}))
    stream = keys.ShardKeys(crawl, 0).results
    for start in range(0, n, 5000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(n, start + 5000)):
            pipe.xadd(stream, {"r": synthetic_record(i)})
        pipe.execute()
    client.close()


def run_export(url: str, crawl: str, path: Path, *extra: str) -> dict[str, Any]:
    """``crawl export`` as a child; its wall time, CPU, peak RSS and the file's size."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "crawler", "export", "--redis", url,
                             "--crawl", crawl, str(path), *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"export to {path.name} exited {proc.returncode}: {err}")
    seconds = time.monotonic() - started
    return {"seconds": round(seconds, 1), "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "file_mb": round(path.stat().st_size / 2**20, 1)}


def run_export_bench(n: int, formats: tuple[str, ...] = FORMATS, out: str | None = None,
                     echo: Any = print) -> dict[str, Any]:
    from crawler.store.server import ensure_server, stop_server

    report: dict[str, Any] = {"results": n, "formats": {}}
    with tempfile.TemporaryDirectory(prefix="crawlexport") as tmp:
        url = ensure_server(tmp)
        try:
            started = time.monotonic()
            fill(url, n, "exportbench")
            echo(f"wrote {n} results into the stream in {time.monotonic() - started:.0f} s")
            schema = Path(tmp) / "data-schema.json"
            schema.write_text(json.dumps(DATA_SCHEMA))
            runs: list[tuple[str, str, tuple[str, ...]]] = [
                (fmt, FILES[fmt], ()) for fmt in formats]
            if "parquet" in formats:
                runs.append(("parquet+schema", "s.parquet", ("--data-schema", str(schema))))
            for fmt, name, extra in runs:
                path = Path(tmp) / name
                figures = run_export(url, "exportbench", path, *extra)
                report["formats"][fmt] = figures
                path.unlink()
                echo(f"{fmt:>14}: {figures['seconds']:6.1f} s, {figures['cpu_s']:6.1f} s CPU, "
                     f"peak RSS {figures['peak_rss_mb']:6.1f} MB, file {figures['file_mb']} MB")
        finally:
            stop_server(tmp)
    if out:
        write_report(out, report)
    return report
