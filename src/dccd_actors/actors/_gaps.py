"""The gap a stream has open: an interval it cannot vouch for, until data flows again.

A resync (``BookInvalid``) or an outage opens it; the data that follows closes it as a
gap row in the stream's ``RowBuffer``. One outage stays one row: a later cause inside
an open interval does not restart it, and an interval still open when a generation ends
is handed over to the manager, which gives it to the next generation.
"""

from __future__ import annotations

import time

from dccd_actors.actors._rowbuffer import RowBuffer
from dccd_actors.actors._streamstate import StreamCounters

__all__ = ["OpenGap", "PendingGap"]

PendingGap = tuple[int, str, str]
"""(start_ns, cause, detail) of an interval that is open until data flows again."""


class OpenGap:
    """At most one open interval of one stream (``pending``), and how it ends.

    Trades close it, unless the stream records a book: then only a valid book does,
    since trades flowing say nothing about the book's continuity.
    """

    def __init__(
        self,
        rows: RowBuffer,
        counters: StreamCounters,
        pending: PendingGap | None,
        *,
        book: bool,
    ) -> None:
        self.pending = pending
        self._rows, self._counters, self._book = rows, counters, book

    def open(self, start_ns: int, cause: str, detail: str) -> None:
        """Open an interval at ``start_ns``, unless one is open already (it keeps its start)."""
        if self.pending is None:
            self.pending = (start_ns, cause, detail)

    def close(self, end_ns: int, *, book_event: bool) -> None:
        """Write the open interval as a gap row ending at ``end_ns``, if this event ends it."""
        if self.pending is None or (not book_event and self._book):
            return
        start, cause, detail = self.pending
        self._rows.add_gap((start, max(end_ns, start), cause, detail))
        self._counters.gaps += 1
        self.pending = None

    def close_at_stop(self) -> None:
        """Write the open interval as a gap row ending now, marked as still open at stop."""
        if self.pending is not None:
            start, cause, detail = self.pending
            self._rows.add_gap((start, time.time_ns(), cause, detail + " (still open at stop)"))
            self.pending = None

    def hand_over(self) -> PendingGap | None:
        """The open interval, for the next generation to continue; none is left open here."""
        pending, self.pending = self.pending, None
        return pending
