"""The cycle collector, tuned for a worker process.

A worker allocates a few container objects a page (a response, a record, a
tree's Python proxies) and frees nearly all of them by reference counting.
With CPython's default thresholds the collector still ran about once every
10 pages, and each full or middle collection walked every long-lived object
of the process: modules, settings, the client's connection pools. On
``crawl bench`` that was 4% of the worker's CPU a page (0.54 s of 12.5 s over
6,000 pages, timed with ``gc.callbacks``), for no garbage found.

``gc.freeze()`` moves what start-up made into a generation no collection
walks, and a higher first threshold makes young collections rare. Cyclic
garbage (an exception and its traceback, say) is still collected, only
later. Only a worker process does this: a library caller's own process keeps
its collector as it was (``Worker.run`` does not call it).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net container allocations between young collections (CPython's default is 700)."""


def tune_gc_for_crawling() -> None:
    """Freeze what exists now and raise the young generation's threshold."""
    gc.collect()  # what start-up left as garbage is not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
