"""The rows a stream actor has produced since its last flush, and the batch they become."""

from __future__ import annotations

from typing import Any

import numpy as np

from dccd_actors.actors._journal import Journal
from dccd_actors.actors.messages import Append, StreamKey
from dccd_actors.exchanges._base import BaseAdapter, DeltaRow, TradeRow, snapshot_row
from dccd_actors.records import book_snapshot_dtype, deltas_array, gaps_array, trades_array
from dccd_actors.storage.segment import SegmentInfo

__all__ = ["GapRow", "RowBuffer"]

GapRow = tuple[int, int, str, str]
"""(start_ns, end_ns, cause, detail)"""


class RowBuffer:
    """Trades, book deltas, book samples and gaps waiting for the next ``Append``.

    The lists are public because the stream actor's hot path extends them directly.
    With a raw journal, samples, checkpoints and gaps are journaled here too.
    """

    def __init__(
        self, key: StreamKey, info: SegmentInfo, depth: int, journal: Journal | None
    ) -> None:
        self.key, self.info, self.depth, self.journal = key, info, depth, journal
        self.trades: list[TradeRow] = []
        self.deltas: list[DeltaRow] = []
        self.snapshots: list[tuple[Any, ...]] = []
        self.gaps: list[GapRow] = []

    @property
    def rows(self) -> int:
        """Trade and delta rows held (the ones that can pile up)."""
        return len(self.trades) + len(self.deltas)

    def add_gap(self, row: GapRow) -> None:
        self.gaps.append(row)
        if self.journal is not None:
            self.journal.gap(row)

    def sample_book(self, adapter: BaseAdapter, now: int) -> bool:
        """A top-``depth`` book row at ``now``; False while the adapter holds no book."""
        if self.journal is not None:
            self.journal.sample(now)
        top = adapter.book_top(self.depth)
        if top is None:
            return False
        self.snapshots.append(snapshot_row(top, now, self.depth))
        return True

    def checkpoint(self, adapter: BaseAdapter, now: int) -> None:
        """The whole trusted book as a SNAPSHOT run, to open a new segment with."""
        if self.journal is not None:
            self.journal.checkpoint(now)
        self.deltas.extend(adapter.checkpoint_rows(now))

    def take(self) -> Append | None:
        """Everything held, as one storage batch (None when there is nothing); then empty."""
        journal = self.journal.drain() if self.journal is not None else None
        if not (self.trades or self.deltas or self.snapshots or self.gaps or journal):
            return None
        message = Append(
            self.key,
            self.info,
            trades=trades_array(self.trades) if self.trades else None,
            book_deltas=deltas_array(self.deltas) if self.deltas else None,
            book_snapshots=np.array(self.snapshots, dtype=book_snapshot_dtype(self.depth))
            if self.snapshots
            else None,
            gaps=gaps_array(self.gaps) if self.gaps else None,
            journal=journal or None,
        )
        self.trades, self.deltas, self.snapshots, self.gaps = [], [], [], []
        return message

    def put_back(self, message: Append) -> None:
        """Rows of a batch storage could not take, ahead of the newer ones."""
        if message.trades is not None:
            self.trades[:0] = [tuple(row) for row in message.trades.tolist()]
        if message.book_deltas is not None:
            self.deltas[:0] = [tuple(row) for row in message.book_deltas.tolist()]
