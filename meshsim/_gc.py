"""Python's cyclic garbage collector, tuned for long simulation runs.

A run allocates millions of short-lived objects (timers, messages, heap
entries) that reference counting frees, while the model (instances, views,
records) is long-lived.  With CPython's default thresholds (700, 10, 10) the
timers that outlive a few young collections are promoted, and every full
collection then walks the whole model: at 178,000 registry instances that
was a third of the run's time.  :func:`fewer_collections` raises the young
threshold for the duration of a block and restores the previous thresholds;
cycles are still collected, only less often.

>>> import gc
>>> before = gc.get_threshold()
>>> with fewer_collections():
...     gc.get_threshold()[0]
200000
>>> gc.get_threshold() == before
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["fewer_collections"]

#: young-generation allocations between collections during a run (CPython's default is 700)
RUN_THRESHOLD = (200_000, 20, 100)


@contextmanager
def fewer_collections(thresholds: tuple[int, int, int] = RUN_THRESHOLD) -> Iterator[None]:
    """Run a block with the collector's ``thresholds`` (see module doc); the old ones come back after."""
    old = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*old)
