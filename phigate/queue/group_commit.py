"""Group commit: several accepted messages per transaction (one fsync), each caller
released only once the transaction holding its message is durable.

Submission enqueues from worker threads (``asyncio.to_thread``). The first caller to find
no commit under way becomes the leader: it takes everything queued so far, writes it in one
transaction and commits; callers that arrive meanwhile wait, and the next of them leads
the next batch with everything that queued up behind it. Nobody waits for a timer: a lone
message is committed at once, and batches form only when commits are the bottleneck (the
shape of InnoDB's and PostgreSQL's group commit). ``write`` returning is the commit being
durable (SQLite ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``), so a caller
that returns can send its ``250``.

If a batch fails (disk full, a constraint), its members are written one by one, so each
gets its own outcome and one bad message does not refuse the others.

``write`` returns one result per item (in order), handed back to that item's caller: the
queue's delivery outcomes use it for "did this owner still hold the lease".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from phigate.observability import timing

T = TypeVar("T")
R = TypeVar("R")

#: Most messages in one transaction: bounds the time the write lock is held and the
#: memory of one flush (bodies are up to the maximum message size each).
MAX_BATCH = 64


@dataclass(eq=False)  # compared by identity
class _Waiter(Generic[T, R]):
    item: T
    #: perf_counter when a leader took it into a batch (the ``commit_queued`` stage's end).
    taken: float = 0.0
    done: bool = False
    error: BaseException | None = None
    result: R | None = None


class GroupCommit(Generic[T, R]):
    """``submit(item)`` returns ``item``'s result once ``write([... item ...])`` committed,
    or raises what writing ``item`` raised."""

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], *,
                 max_batch: int = MAX_BATCH) -> None:
        self._write = write
        self._max_batch = max(1, max_batch)
        self._changed = threading.Condition()
        self._queued: list[_Waiter[T, R]] = []
        self._leading = False
        #: Transactions committed and items in them (tests and diagnostics).
        self.commits = 0
        self.items = 0

    @property
    def waiting(self) -> int:
        """Callers queued behind the commit under way."""
        with self._changed:
            return len(self._queued)

    def submit(self, item: T) -> R:
        waiter: _Waiter[T, R] = _Waiter(item)
        submitted = time.perf_counter()
        with self._changed:
            self._queued.append(waiter)
            while self._leading and not waiter.done:
                self._changed.wait()
            if not waiter.done:
                # Lead: this batch includes us (we are still queued: nobody took us).
                self._leading = True
                batch = self._queued[:self._max_batch]
                del self._queued[:self._max_batch]
                if waiter not in batch:  # more than max_batch ahead of us: take ours too
                    self._queued.remove(waiter)
                    batch.append(waiter)
                taken = time.perf_counter()
                for member in batch:
                    member.taken = taken
        if not waiter.done:
            try:
                self._commit(batch)
            finally:
                with self._changed:
                    for member in batch:
                        member.done = True
                    self._leading = False
                    self._changed.notify_all()
        # Debug timing (phigate.observability.timing): queued behind a commit under way,
        # then in the batch being written.
        timing.note("commit_queued", waiter.taken - submitted)
        timing.note("commit_write", time.perf_counter() - waiter.taken)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result  # type: ignore[return-value]  # set by the commit

    def _commit(self, batch: list[_Waiter[T, R]]) -> None:
        timing.note_count("commit_batch", len(batch))  # the leader's record only
        try:
            results = self._write([member.item for member in batch])
        except BaseException as error:
            if len(batch) == 1:
                batch[0].error = error
                return
            for member in batch:  # each alone: one bad message does not refuse the rest
                try:
                    (member.result,) = self._write([member.item])
                except BaseException as own:  # handed to its own caller
                    member.error = own
                else:
                    self._count(1)
            return
        for member, result in zip(batch, results, strict=True):
            member.result = result
        self._count(len(batch))

    def _count(self, items: int) -> None:
        self.commits += 1
        self.items += items
