"""Consume a crawl's results in a consumer group of your own: run several, they share the work.

Each result goes to one consumer; a consumer acknowledges a batch once it is
handled, and a consumer killed before that loses nothing: after IDLE_MS
another one takes its batch over (XAUTOCLAIM). One Redis server; on a
cluster, read each stream on its own (they live in different slots).
Usage: python examples/consumer.py redis://localhost:6379/0 [CRAWL] [GROUP]
"""
import contextlib
import json
import os
import socket
import sys

import redis

url = sys.argv[1]
crawl = sys.argv[2] if len(sys.argv) > 2 else "default"
group = sys.argv[3] if len(sys.argv) > 3 else "downstream"
IDLE_MS, me = int(os.environ.get("IDLE_MS", 60_000)), f"{socket.gethostname()}:{os.getpid()}"
r = redis.Redis.from_url(url, decode_responses=True)
layout = json.loads(r.hget(f"crawl:{{{crawl}}}:meta", "layout"))
tags = layout.get("shard_tags") or [f"{crawl}:{s}" for s in range(layout["shards"])]
streams = [f"crawl:{{{tag}}}:results" for tag in tags]
for stream in streams:
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: another consumer made it
        r.xgroup_create(stream, group, id="0", mkstream=True)


def handle(record: dict) -> None:  # your code here
    print(record["url"], record["status"], record.get("title"), flush=True)


while True:
    batches = [(s, r.xautoclaim(s, group, me, IDLE_MS, count=100)[1]) for s in streams]
    batches += r.xreadgroup(group, me, {s: ">" for s in streams}, count=100, block=2000)
    for stream, entries in batches:
        for _entry_id, fields in entries:
            handle(json.loads(fields["r"]))
        if entries:
            r.xack(stream, group, *[entry_id for entry_id, _ in entries])
