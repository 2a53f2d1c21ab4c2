"""The garbage collector of a long-running ``web`` or ``worker`` process, set once it has started.

What a process builds while starting (modules, the catalog, compiled patterns, the app's routes) lives as long as
the process, yet CPython's collector walked all of it again at every full collection, and with its default
threshold (a young collection every 700 allocations) a busy process collected thousands of times a second. After
start-up, ``settle_after_startup`` moves everything alive into the permanent generation (``gc.freeze``), where no
collection looks, and lets the young generation grow to ``YOUNG_THRESHOLD`` objects before it is collected. Cycles
are still collected; only how often and what is walked change. Only the ``conduit web`` and ``conduit worker``
commands call it: a process that starts many apps or workers (the test suite) keeps the defaults.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations (net of deallocations) between collections of the youngest generation


def settle_after_startup() -> None:
    gc.collect()  # what start-up left as garbage is not frozen with the rest
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
