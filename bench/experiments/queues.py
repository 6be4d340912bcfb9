"""``python -m bench.experiments.queues``:
A host queue as today's LIST beside a ZSET (per-host priorities).

Issue 13 asks whether a sorted set per host, which would let a host's URLs be
claimed by priority, costs little enough over the FIFO lists claim.lua pops
today. On a fresh embedded Valkey, with queue entries shaped as add.lua
writes them (a header byte, a prefix byte, then file name and query), for
hosts of 100 URLs (both structures in their compact listpack form) and of
10,000 (quicklist beside skiplist):

- bytes per queued URL (``MEMORY USAGE`` of the queues);
- server time per URL to push them all and to pop them all, in one Lua call
  each (RPUSH/LPOP beside ZADD/ZPOPMIN, scored band x 2^32 + sequence so
  that equal priorities stay first in, first out).

Only loopback and a temporary directory are used.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

PUSH_LIST = """
for i = 1, tonumber(ARGV[1]) do
  redis.call('RPUSH', KEYS[1],
             string.char(2, 7) .. string.format('item-%07d.html?r=%02d', i, i % 97))
end
return 0"""
PUSH_ZSET = """
for i = 1, tonumber(ARGV[1]) do
  local band = i % 4
  redis.call('ZADD', KEYS[1], band * 4294967296 + i,
             string.char(2, 7) .. string.format('item-%07d.html?r=%02d', i, i % 97))
end
return 0"""
POP_LIST = "while redis.call('LPOP', KEYS[1]) do end return 0"
POP_ZSET = "while #redis.call('ZPOPMIN', KEYS[1]) > 0 do end return 0"


def _measure(client: Any, per_host: int, total: int) -> dict[str, Any]:
    hosts = max(1, total // per_host)
    out: dict[str, Any] = {"per_host": per_host, "hosts": hosts}
    for kind, push, pop in (("list", PUSH_LIST, POP_LIST), ("zset", PUSH_ZSET, POP_ZSET)):
        names = [f"bench:{kind}:{h}" for h in range(hosts)]
        started = time.perf_counter()
        for name in names:
            client.eval(push, 1, name, per_host)
        pushed = time.perf_counter() - started
        size = sum(int(client.memory_usage(name, samples=0) or 0) for name in names)
        encoding = client.object("encoding", names[0])
        started = time.perf_counter()
        for name in names:
            client.eval(pop, 1, name)
        popped = time.perf_counter() - started
        urls = hosts * per_host
        out[kind] = {"encoding": encoding.decode() if isinstance(encoding, bytes) else encoding,
                     "bytes_per_url": round(size / urls, 1),
                     "push_us_per_url": round(pushed / urls * 1e6, 2),
                     "pop_us_per_url": round(popped / urls * 1e6, 2)}
    return out


def run_queues(total: int, out: str | None, echo: Any = print) -> dict[str, Any]:
    import redis

    from crawler.store.server import ensure_server, stop_server

    report: dict[str, Any] = {"urls": total, "shapes": []}
    with tempfile.TemporaryDirectory(prefix="crawlq") as tmp:
        url = ensure_server(tmp)
        client = redis.Redis.from_url(url)
        try:
            for per_host in (100, 10_000):
                shape = _measure(client, per_host, total)
                report["shapes"].append(shape)
                for kind in ("list", "zset"):
                    f = shape[kind]
                    echo(f"{per_host:>6} URLs a host, {kind} ({f['encoding']}): "
                         f"{f['bytes_per_url']} B a URL, push {f['push_us_per_url']} µs, "
                         f"pop {f['pop_us_per_url']} µs")
        finally:
            client.close()
            stop_server(tmp)
    echo(json.dumps(report, indent=1))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=1))
    return report


def main() -> None:
    """``python bench/experiments/queues.py [--urls N] [--out FILE]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--urls", type=int, default=200_000, help="queued URLs in each shape")
    parser.add_argument("--out", default="bench/results/queues-latest.json",
                        help="JSON report path ('' for none)")
    args = parser.parse_args()
    run_queues(args.urls, args.out or None)


if __name__ == "__main__":
    main()
