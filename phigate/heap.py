"""The start-up heap of a long-running process, kept out of garbage collection.

CPython's full (generation 2) collection walks every object the collector tracks. What a
process builds at start-up lives as long as it does: in a scanner worker the spaCy model,
the lexicons and the compiled patterns, ~200,000 objects; in ``serve`` SQLAlchemy's
mappers, aiosmtpd, the metrics registry. A full collection in a scanner worker took
~200 ms of CPU (``bench/relay_vs_postfix.py --timings``, issue 16: the two slowest scans
of a 1,000-message run, one in each worker ~25 messages in, and the messages of ten
clients queued behind both workers meanwhile: 0.5-0.8 s acceptances).

:func:`freeze_start_up_heap` moves that heap into the permanent generation
(:func:`gc.freeze`), which collections skip: a full collection then walks only what was
allocated since (the caches, the session objects). Garbage frozen would never be freed,
so it collects first; objects frozen are still freed by reference counting when their
last reference goes.
"""

from __future__ import annotations

import gc


def freeze_start_up_heap() -> int:
    """Collect, then freeze everything the collector tracks; returns how many objects are
    frozen (call it once start-up is over: the model loaded, the services built)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
