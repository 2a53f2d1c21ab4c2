"""After start-up, a ``web`` or ``worker`` process freezes what it built and collects its young generation less
often, and still collects the garbage cycles it makes afterwards. Run in a fresh interpreter: freezing the test
process's own heap would keep its garbage forever."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.infra.heap import YOUNG_THRESHOLD

PROGRAM = """
import gc, json, weakref
from shared.infra.heap import settle_after_startup

class Node:
    pass

built_at_startup = [Node() for _ in range(1000)]
settle_after_startup()
frozen, threshold = gc.get_freeze_count(), gc.get_threshold()
cycle = Node()
cycle.self = cycle
alive = weakref.ref(cycle)
del cycle
gc.collect()
print(json.dumps({"frozen": frozen, "threshold": threshold, "cycle_alive": alive() is not None}))
"""


def test_settling_freezes_the_startup_heap_and_still_collects_cycles() -> None:
    answer = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True, timeout=60)
    settled = json.loads(answer.stdout)
    assert settled["frozen"] >= 1000  # at least what "start-up" built
    assert settled["threshold"][0] == YOUNG_THRESHOLD
    assert settled["cycle_alive"] is False
