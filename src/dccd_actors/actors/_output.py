"""What a stream hands on, and when: rows to storage, counters and its exit to the manager.

Book samples fall on the ``time_step`` grid; a batch goes to storage every
``flush_interval`` (sooner when the actor's buffer is full or it stops); at each
rotation boundary the old segment's rows are flushed, then the new segment opens with
the whole book; the counters go to the manager at most every 0.25 s, so status never
costs the hot path, and once more with the ``ChildExited`` that ends the generation.
The stream actor decides when to look (its ticks and frame hand-offs) and when it has
ended; ``StreamOutput`` decides what is due and sends it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Final

import pykka

from dccd_actors.actors._gaps import PendingGap
from dccd_actors.actors._rowbuffer import RowBuffer
from dccd_actors.actors._streamstate import StreamCounters
from dccd_actors.actors.messages import ChildExited, Heartbeat, StreamKey
from dccd_actors.config import StreamJob
from dccd_actors.exchanges._base import BaseAdapter
from dccd_actors.storage.writer import period_end_ns

__all__ = ["StreamOutput"]

_HEARTBEAT_NS: Final = 250_000_000


class StreamOutput:
    """The time-driven output of one stream generation (all times in ns since the epoch)."""

    def __init__(
        self,
        *,
        key: StreamKey,
        gen: int,
        job: StreamJob,
        rows: RowBuffer,
        counters: StreamCounters,
        adapter: BaseAdapter,
        storage: pykka.ActorRef[Any],
        manager: pykka.ActorRef[Any],
        flush_interval: float,
        rotation: str,
    ) -> None:
        self.key, self.gen, self.rows, self.counters = key, gen, rows, counters
        self.adapter, self.storage, self.manager = adapter, storage, manager
        self._flush_ns = int(flush_interval * 1e9)
        self._step_ns = int(job.time_step * 1e9)
        self._sample_book = "book" in job.channels
        self._rotation = rotation
        self._next_rotation_ns = period_end_ns(time.time_ns(), rotation)
        self._last_flush_ns = time.time_ns()
        self._next_snapshot_ns = (time.time_ns() // self._step_ns + 1) * self._step_ns
        self._last_heartbeat_ns = 0

    def due_work(self, now: int) -> None:
        """The book sample of each ``time_step`` and the flush of each ``flush_interval``."""
        if now >= self._next_snapshot_ns and self._sample_book:
            self.counters.snapshots += self.rows.sample_book(self.adapter, now)
            self._next_snapshot_ns = (now // self._step_ns + 1) * self._step_ns
        if now - self._last_flush_ns >= self._flush_ns:
            self.flush()

    def rotate_if_due(self, now: int) -> None:
        """At a rotation boundary: flush the old rows, then start the new segment with the book."""
        if now < self._next_rotation_ns:
            return
        self._next_rotation_ns = period_end_ns(now, self._rotation)
        self.flush()
        self.rows.checkpoint(self.adapter, now)
        self.flush()

    def flush(self) -> None:
        """Hand every row held to storage; while storage is not running, keep them."""
        self._last_flush_ns = time.time_ns()
        message = self.rows.take()
        if message is None:
            return
        try:
            self.storage.tell(message)
        except pykka.ActorDeadError:
            self.counters.note_error("storage is not running; batch kept for the next flush")
            self.rows.put_back(message)
            return
        self.counters.record_batch(self._last_flush_ns, message.trades, message.book_deltas)
        self.counters.trades += 0 if message.trades is None else len(message.trades)
        self.counters.book_rows += 0 if message.book_deltas is None else len(message.book_deltas)

    def heartbeat(self, now: int, *, connected: bool) -> None:
        """At most every 0.25 s: counters to the manager."""
        if now - self._last_heartbeat_ns < _HEARTBEAT_NS:
            return
        self._last_heartbeat_ns = now
        # the adapter outlives generations: until this one has connected, its flag is stale
        self.counters.book_live = connected and self.adapter.book_live
        with contextlib.suppress(pykka.ActorDeadError):
            self.manager.tell(Heartbeat(self.key, self.gen, self.counters.snapshot()))

    def exited(self, cause: str, error: str, open_gap: PendingGap | None, planned: bool) -> None:
        """This generation's last word to the manager: why it ended, with its final counters."""
        stats = self.counters.snapshot()
        last_frame_ns = self.counters.last_frame_ns
        message = ChildExited(
            self.key, self.gen, cause, error, last_frame_ns, stats, open_gap, planned
        )
        with contextlib.suppress(pykka.ActorDeadError):
            self.manager.tell(message)
