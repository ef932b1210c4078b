"""phigate.heap: the start-up heap frozen out of garbage collection, garbage collected first.

In a fresh interpreter (freezing this one would keep the test run's own garbage forever)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent("""
    import gc, weakref
    from phigate.heap import freeze_start_up_heap

    class Node:
        pass

    garbage = Node()
    garbage.self = garbage  # a cycle: only the collector frees it
    dead = weakref.ref(garbage)
    del garbage
    kept = [[i] for i in range(50_000)]  # the start-up heap (lists: tracked objects)
    frozen = freeze_start_up_heap()
    assert dead() is None, "garbage was frozen"
    assert frozen == gc.get_freeze_count() >= 50_000, frozen
    # What collections walk now is what came after, not the frozen heap.
    assert len(gc.get_objects()) < 1_000, len(gc.get_objects())
    print("ok")
""")


def test_the_start_up_heap_is_frozen_after_its_garbage_is_collected() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
