"""Consume a crawl's results in a consumer group of your own: run several, they share the work.

Each result goes to one consumer; a consumer acknowledges a batch once it is
handled, and a consumer killed before that loses nothing: after IDLE_MS
another one takes its batch over (XAUTOCLAIM). Works on one server and on a
cluster: each shard's stream is read on its own (on a cluster they live in
different slots, which one XREADGROUP cannot span).
Usage: python examples/consumer.py redis://localhost:6379/0 [CRAWL] [GROUP]
"""
import contextlib
import json
import os
import socket
import sys
import time

import redis

url = sys.argv[1]
crawl = sys.argv[2] if len(sys.argv) > 2 else "default"
group = sys.argv[3] if len(sys.argv) > 3 else "downstream"
IDLE_MS, me = int(os.environ.get("IDLE_MS", 60_000)), f"{socket.gethostname()}:{os.getpid()}"
r = redis.Redis.from_url(url, decode_responses=True)
if r.info("cluster").get("cluster_enabled"):  # any node will do: the client finds the rest
    r = redis.RedisCluster.from_url(url, decode_responses=True)
layout = json.loads(r.hget(f"crawl:{{{crawl}}}:meta", "layout"))
tags = layout.get("shard_tags") or [f"{crawl}:{s}" for s in range(layout["shards"])]
streams = [f"crawl:{{{tag}}}:results" for tag in tags]
for stream in streams:
    with contextlib.suppress(redis.ResponseError):  # BUSYGROUP: another consumer made it
        r.xgroup_create(stream, group, id="0", mkstream=True)


def handle(record: dict) -> None:  # your code here
    print(record["url"], record["status"], record.get("title"), flush=True)


while True:
    got = 0
    for stream in streams:
        entries = r.xautoclaim(stream, group, me, IDLE_MS, count=100)[1]
        entries += [e for _, new in r.xreadgroup(group, me, {stream: ">"}, count=100)
                    for e in new]
        for _entry_id, fields in entries:
            handle(json.loads(fields["r"]))
        if entries:
            r.xack(stream, group, *[entry_id for entry_id, _ in entries])
        got += len(entries)
    if not got:
        time.sleep(0.5)  # every stream is empty for now
