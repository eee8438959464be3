"""Rebuild the exact L2 book a collector held at a local time from ``book_deltas``.

The search goes backwards from ``t``: bisect each segment on ``ts_recv``, scan the
``flags`` field in growing chunks for the last SNAPSHOT row, then its run start (the
row after the previous non-SNAPSHOT row or the previous run's LAST row). Only the rows
from that run start to ``t`` are replayed, in bounded chunks, vectorised: the last row
of each ``(side, price)`` wins and size 0 removes the level. Side 0 rows are the
markers of an empty snapshot and carry no level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dccd_actors.errors import GapError
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT, RecordArray
from dccd_actors.storage._access import SegmentHandle, read_gaps, with_segment
from dccd_actors.storage.layout import LIVE_SUFFIX, SegmentName

__all__ = ["Book", "book_at"]

FloatArray = npt.NDArray[np.float64]
_NAME: Final = "book_deltas"
_SCAN_FIRST: Final = 4096
_SCAN_MAX: Final = 1 << 20
_FOLD_ROWS: Final = 1 << 20
_ENDED: Final = ("stop", "crash")
_LEVEL: Final = np.dtype([("side", "i1"), ("price", "<f8"), ("size", "<f8")])
#: A segment's rows can predate its name (batches wait in buffers): search this much later.
_NAME_SLACK_NS: Final = 3_600_000_000_000


@dataclass(frozen=True, eq=False)
class Book:
    """An L2 book: ``bids``/``asks`` of shape (n, 2) ``[price, size]``, best first.

    ``seq``, ``ts_event`` and ``ts_recv`` are those of the last ``book_deltas`` row applied.

    Example::

        >>> import numpy as np
        >>> b = Book(np.array([[99.0, 1.0]]), np.array([[101.0, 2.0]]), 7, -1, 5)
        >>> b.as_dicts()
        ({99.0: 1.0}, {101.0: 2.0})
    """

    bids: FloatArray
    asks: FloatArray
    seq: int
    ts_event: int
    ts_recv: int

    def as_dicts(self) -> tuple[dict[float, float], dict[float, float]]:
        """``({bid price: size}, {ask price: size})``."""
        return (
            dict(zip(self.bids[:, 0].tolist(), self.bids[:, 1].tolist(), strict=True)),
            dict(zip(self.asks[:, 0].tolist(), self.asks[:, 1].tolist(), strict=True)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Book):
            return NotImplemented
        return (
            (self.seq, self.ts_event, self.ts_recv) == (other.seq, other.ts_event, other.ts_recv)
            and np.array_equal(self.bids, other.bids)
            and np.array_equal(self.asks, other.asks)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        bid = self.bids[0].tolist() if len(self.bids) else None
        ask = self.asks[0].tolist() if len(self.asks) else None
        return (
            f"Book(seq={self.seq}, ts_recv={self.ts_recv}, {len(self.bids)} bids best {bid}, "
            f"{len(self.asks)} asks best {ask})"
        )


def _iso(ns: int) -> str:
    return f"{np.datetime64(int(ns), 'ns')}Z"


def _gap_text(gap: Any) -> str:
    return (
        f"[{_iso(gap['start_ns'])}, {_iso(gap['end_ns'])}] "
        f"cause={gap['cause']!s} ({gap['detail']!s})"
    )


def _last_where(
    handle: SegmentHandle, hi: int, test: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.bool_]]
) -> int:
    """The last row below ``hi`` whose flags pass ``test``, -1 if none; scans backwards."""
    chunk, b = _SCAN_FIRST, hi
    while b > 0:
        a = max(0, b - chunk)
        hits = np.flatnonzero(test(handle.field(_NAME, "flags", a, b)))
        if len(hits):
            return a + int(hits[-1])
        b, chunk = a, min(chunk * 2, _SCAN_MAX)
    return -1


def _is_snapshot(flags: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    return np.asarray((flags & FLAG_SNAPSHOT) != 0, dtype=bool)


def _ends_run(flags: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    return np.asarray(((flags & FLAG_SNAPSHOT) == 0) | ((flags & FLAG_LAST) != 0), dtype=bool)


def _find(handle: SegmentHandle, t: int) -> tuple[int, int | None, int]:
    """``(hi, run_start, snapshot ts_recv)``: rows ``< hi`` have ``ts_recv <= t``."""
    n = handle.count(_NAME) if handle.has(_NAME) else 0
    hi = 0 if n == 0 or handle.ts(_NAME, 0) > t else handle.bisect(_NAME, t + 1, 0, n)
    j = _last_where(handle, hi, _is_snapshot)
    if j < 0:
        return hi, None, -1
    return hi, _last_where(handle, j, _ends_run) + 1, handle.ts(_NAME, j)


def _fold(state: RecordArray, rows: RecordArray) -> RecordArray:
    """Apply ``book_deltas`` rows to a book state; the last row per level wins."""
    rows = rows[rows["side"] != 0]
    levels = np.empty(len(rows), dtype=_LEVEL)
    levels["side"], levels["price"], levels["size"] = rows["side"], rows["price"], rows["size"]
    both = np.concatenate([state, levels])
    order = np.lexsort((np.arange(len(both)), both["price"], both["side"]))
    both = both[order]
    last = np.ones(len(both), dtype=bool)
    last[:-1] = (both["side"][1:] != both["side"][:-1]) | (both["price"][1:] != both["price"][:-1])
    both = both[last]
    return both[both["size"] != 0]  # type: ignore[no-any-return]


def _replay(
    handle: SegmentHandle, a: int, b: int, state: RecordArray
) -> tuple[RecordArray, RecordArray | None]:
    last = None
    for lo in range(a, b, _FOLD_ROWS):
        rows = handle.read(_NAME, lo, min(b, lo + _FOLD_ROWS))
        state = _fold(state, rows)
        last = rows[-1:]
    return state, last


def _levels(state: RecordArray, side: int, depth: int | None) -> FloatArray:
    rows = state[state["side"] == side]
    rows = rows[np.argsort(-side * rows["price"], kind="stable")][:depth]
    levels = np.column_stack([rows["price"], rows["size"]]).astype(np.float64)
    levels.setflags(write=False)  # a Book is frozen
    return levels


def _ended(path: Path, t: int) -> str | None:
    """Why nothing was held at ``t`` after the final segment (stopped or crashed), if so."""
    if path.name.endswith(LIVE_SUFFIX):
        return None
    attrs = with_segment(path, lambda h: h.attrs) or {}
    reason, last = str(attrs.get("end_reason", "")), int(attrs.get("last_ts_recv", -1))
    if reason in _ENDED and 0 <= last < t:
        return f"the recording ended ({reason}) at {_iso(last)}"
    return None


def _search(paths: list[Path], t: int) -> tuple[int, int, list[tuple[Path, int, int]]]:
    """``(segment index, snapshot ts_recv, row ranges to replay)``; index -1 if none found."""
    ranges: list[tuple[Path, int, int]] = []
    for k in range(len(paths) - 1, -1, -1):
        name = SegmentName.parse(paths[k].name)
        if name is not None and name.start_ns > t + _NAME_SLACK_NS:
            continue
        found = with_segment(paths[k], partial(_find, t=t))
        if found is None:
            continue
        hi, start, ts = found
        ranges.insert(0, (paths[k], 0 if start is None else start, hi))
        if start is not None:
            return k, ts, ranges
    return -1, -1, []


def book_at(paths: list[Path], t: int, depth: int | None = 25, label: str = "") -> Book:
    """The book held at local time ``t`` (ns; compared with ``ts_recv``), best ``depth`` levels.

    ``paths`` are one stream's segments in time order. Raises ``GapError`` when ``t`` lies
    strictly inside a recorded gap (at its end the book is rebuilt again), when a gap
    separates ``t`` from the last snapshot before it, after the final row of a recording
    that stopped or crashed (the ledger's stop gap starts there), or when no snapshot
    precedes ``t``.

    Example::

        >>> book = book_at(store.segments("binance", "BTC/USDT"), t)   # doctest: +SKIP
    """
    if depth is not None and depth < 1:
        raise ValueError(f"depth={depth!r} is invalid: expected a positive int or None")
    where = f"{label}: no exact book at {_iso(t)}"
    k, snap_ts, ranges = _search(paths, t)
    # gaps are written when they close: any that matters here sits in segment k or later
    gaps = read_gaps(paths[max(0, k - 1) :] if k >= 0 else paths)
    inside = gaps[(gaps["start_ns"] < t) & (t < gaps["end_ns"])]
    if len(inside):
        raise GapError(f"{where}: it falls inside the recorded gap {_gap_text(inside[0])}")
    ended = _ended(paths[-1], t) if paths else None
    if ended is not None:
        raise GapError(f"{where}: {ended}")
    if k < 0:
        raise GapError(f"{where}: no book snapshot was recorded at or before it")
    crossed = gaps[(gaps["end_ns"] > snap_ts) & (gaps["start_ns"] < t)]
    if len(crossed):
        raise GapError(
            f"{where}: the book was lost in the gap {_gap_text(crossed[0])} "
            f"and no snapshot was recorded between that gap and {_iso(t)}"
        )
    return _rebuild(ranges, depth)


def _rebuild(ranges: list[tuple[Path, int, int]], depth: int | None) -> Book:
    state: RecordArray = np.empty(0, dtype=_LEVEL)
    last: RecordArray | None = None
    for path, a, b in ranges:
        got = with_segment(path, partial(_replay, a=a, b=b, state=state))
        if got is not None:
            state = got[0]
            last = got[1] if got[1] is not None else last
    if last is None:  # pragma: no cover - a found snapshot always yields rows
        raise GapError("no book rows to replay")
    row = last[0]
    return Book(
        _levels(state, 1, depth),
        _levels(state, -1, depth),
        int(row["seq"]),
        int(row["ts_event"]),
        int(row["ts_recv"]),
    )
