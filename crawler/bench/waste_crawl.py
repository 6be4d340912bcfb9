"""One in-process crawl of ``crawl bench waste``'s sites: its settings, and its run.

Shared by ``crawler.bench.waste`` and the child processes of
``crawler.bench.waste_instructions``, which count a crawl's instructions.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from crawler.config import Settings


def site_settings(url: str, crawl: str, **changes: Any) -> Settings:
    return Settings(redis_url=url, crawl=crawl, allow_private=True, delay=0.0, max_per_host=4,
                    concurrency=32, max_duration=300.0, **changes)


async def crawl_site(settings: Settings, seeds: list[str]) -> dict[str, Any]:
    """Seed and run one in-process worker to the end; its records, round trips and CPU."""
    from redis.asyncio import Redis

    from crawler.discovery.seeds import seed
    from crawler.observe.status import held_hosts
    from crawler.results import iter_results
    from crawler.store.layout import crawl_layout
    from crawler.worker import Worker

    redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
    try:
        settings = await crawl_layout(redis, settings)
        await seed(redis, settings, io.BytesIO("\n".join(seeds).encode()))
        worker = Worker(redis, settings)
        cpu, wall = time.process_time(), time.monotonic()
        await worker.run()
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        records = [json.loads(text) async for text in iter_results(redis, settings)]
        held = [f"{h.host}: {h.reason}" for h in await held_hosts(redis, settings)]
        return {"records": records, "round_trips": worker.frontier.round_trips,
                "cpu_s": cpu, "wall_s": wall, "settings": settings, "held": held}
    finally:
        await redis.aclose()
