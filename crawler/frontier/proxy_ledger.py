"""Proxy counts shared by every worker (``proxies = [...]``): one hash per crawl, one script.

Workers add their counts with ``report`` (``lua/proxy.lua``: atomic, and safe
to send twice, by the worker's sequence number); the reply says which
proxies rest and how long, in every worker's name. ``read_proxies`` gives
``crawl status`` and the metrics the counts. The rules are in
``crawler.net.proxies``.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from crawler.frontier.scripts import ScriptRunner
from crawler.store import keys


class ProxyLedger:
    """One worker's side of the crawl's proxy counts."""

    def __init__(self, scripts: ScriptRunner, crawl: str, worker: str, *, burst: int,
                 rest_base: float, rest_max: float) -> None:
        self.scripts = scripts
        self.key = keys.proxies_key(crawl)
        self.worker = worker
        self.limits = [burst, int(rest_base * 1000), int(rest_max * 1000)]

    async def report(self, seq: int, rows: list[tuple[str, int, int, bool, int, bool]]
                     ) -> dict[str, float]:
        args: list[object] = [self.worker, seq, *self.limits]
        for name, requests, failures, succeeded, tail, rest_now in rows:
            args += [name, requests, failures, int(succeeded), tail, int(rest_now)]
        [reply] = await self.scripts.run([("proxy", [self.key], args)])
        return {_s(reply[i]): int(reply[i + 1]) / 1000 for i in range(0, len(reply), 2)}


@dataclass(frozen=True, slots=True)
class ProxyFigures:
    """One proxy's counts, every worker's together."""

    name: str
    requests: int
    failures: int
    rested: int  # rests so far
    rests_for: float  # seconds until it wakes, 0 if awake


async def read_proxies(redis: Redis, crawl: str, now_ms: int) -> list[ProxyFigures]:
    """Every proxy any worker reported on, by name."""
    raw = await redis.hgetall(keys.proxies_key(crawl))
    fields = {_s(k): int(float(_s(v))) for k, v in raw.items()}
    names = sorted({k.rsplit("|", 1)[0] for k in fields if "|" in k and not k.startswith("w:")})
    return [ProxyFigures(name, fields.get(f"{name}|requests", 0),
                         fields.get(f"{name}|failures", 0), fields.get(f"{name}|rested", 0),
                         max(0, fields.get(f"{name}|until", 0) - now_ms) / 1000)
            for name in names]


def _s(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
