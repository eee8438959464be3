"""The rows a stream actor has produced since its last flush, and the batch they become."""

from __future__ import annotations

from typing import Any

import numpy as np

from dccd_actors.actors._journal import Journal
from dccd_actors.actors.messages import Append, StreamKey
from dccd_actors.exchanges._base import BaseAdapter, BookLevels, DeltaRow, TradeRow, snapshot_row
from dccd_actors.records import (
    RecordArray,
    book_snapshot_dtype,
    deltas_array,
    gaps_array,
    levels_array,
    trades_array,
)
from dccd_actors.storage.segment import SegmentInfo

__all__ = ["GapRow", "RowBuffer"]

GapRow = tuple[int, int, str, str]
"""(start_ns, end_ns, cause, detail)"""


class RowBuffer:
    """Trades, book deltas, book samples and gaps waiting for the next ``Append``.

    The lists are public because the stream actor's hot path extends them directly.
    Book rows come as tuples (``add_deltas``) or by side (``add_levels``, not built until
    the flush); a run of either becomes one array when the other kind comes, so the order
    is kept. With a raw journal, samples, checkpoints and gaps are journaled here too.
    """

    def __init__(
        self, key: StreamKey, info: SegmentInfo, depth: int, journal: Journal | None
    ) -> None:
        self.key, self.info, self.depth, self.journal = key, info, depth, journal
        self.trades: list[TradeRow] = []
        self.deltas: list[DeltaRow] = []
        self.levels: list[BookLevels] = []
        self._level_rows = 0
        self._book_runs: list[RecordArray] = []  # earlier runs of rows, in order
        self.snapshots: list[tuple[Any, ...]] = []
        self.gaps: list[GapRow] = []

    @property
    def rows(self) -> int:
        """Trade and book rows held (the ones that can pile up)."""
        runs = sum(len(run) for run in self._book_runs)
        return len(self.trades) + len(self.deltas) + self._level_rows + runs

    def add_deltas(self, rows: list[DeltaRow]) -> None:
        """Book rows as tuples, after every row held so far."""
        if self.levels:
            self._close_levels()
        self.deltas.extend(rows)

    def add_levels(self, levels: BookLevels) -> None:
        """One message's book rows by side, after every row held so far."""
        if self.deltas:
            self._book_runs.append(deltas_array(self.deltas))
            self.deltas = []
        self.levels.append(levels)
        self._level_rows += len(levels)

    def _close_levels(self) -> None:
        self._book_runs.append(levels_array(self.levels))
        self.levels, self._level_rows = [], 0

    def _take_book_deltas(self) -> RecordArray | None:
        """Every book row held, in order, as one array (None when there is none); then none."""
        if self.levels:
            self._close_levels()
        if self.deltas:
            self._book_runs.append(deltas_array(self.deltas))
            self.deltas = []
        runs, self._book_runs = [run for run in self._book_runs if len(run)], []
        if not runs:
            return None
        return runs[0] if len(runs) == 1 else np.concatenate(runs)

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
        self.add_deltas(adapter.checkpoint_rows(now))

    def take(self) -> Append | None:
        """Everything held, as one storage batch (None when there is nothing); then empty."""
        journal = self.journal.drain() if self.journal is not None else None
        book_deltas = self._take_book_deltas()
        if not (self.trades or book_deltas is not None or self.snapshots or self.gaps or journal):
            return None
        message = Append(
            self.key,
            self.info,
            trades=trades_array(self.trades) if self.trades else None,
            book_deltas=book_deltas,
            book_snapshots=np.array(self.snapshots, dtype=book_snapshot_dtype(self.depth))
            if self.snapshots
            else None,
            gaps=gaps_array(self.gaps) if self.gaps else None,
            journal=journal or None,
        )
        self.trades, self.snapshots, self.gaps = [], [], []
        return message

    def put_back(self, message: Append) -> None:
        """Rows of a batch storage could not take, ahead of the newer ones."""
        if message.trades is not None:
            self.trades[:0] = [tuple(row) for row in message.trades.tolist()]
        if message.book_deltas is not None:
            self._book_runs.insert(0, message.book_deltas)
