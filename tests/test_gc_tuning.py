"""A worker process's cycle collector (crawler.worker.gc_tuning): rarer, never off."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import gc
from crawler.worker.gc_tuning import YOUNG_THRESHOLD, tune_gc_for_crawling
tune_gc_for_crawling()
assert gc.isenabled()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD
assert gc.get_freeze_count() > 0
collections = []
gc.callbacks.append(lambda phase, info: phase == "stop" and collections.append(info))
for _ in range(20 * YOUNG_THRESHOLD):  # cyclic garbage, as an exception's traceback makes
    cycle = []
    cycle.append(cycle)
del cycle
young = len(gc.get_objects(generation=0))
print(len(collections), young)
"""


def test_cyclic_garbage_is_still_collected_after_tuning() -> None:
    out = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    collections, young = int(out[0]), int(out[1])
    assert collections >= 10  # 1M cycles made: the collector ran, at least every 50,000
    assert young <= 50_000 + 1_000  # and what is left is at most one threshold's worth
