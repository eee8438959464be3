"""Read what was recorded: across sealed and live segments, for any time range.

Ranges select rows by ``ts_recv`` (local receive time, ns), which never goes
backwards within a stream; each segment is searched by bisection, so reading a
minute of a day reads about a minute's rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dccd_actors.errors import StorageError
from dccd_actors.records import GAPS, RecordArray
from dccd_actors.storage.layout import META_DIR, list_segments, stream_dir
from dccd_actors.storage.segment import live_segment, open_for_read

__all__ = ["Store", "StreamInfo", "to_ns"]

TimeLike = int | float | str | datetime | date | np.datetime64 | None


def to_ns(value: TimeLike) -> int | None:
    """ns since the epoch from an int (ns), ISO string, datetime/date or numpy datetime64."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    if isinstance(value, date):
        return (
            int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
            * 1_000_000_000
        )
    raise TypeError(f"cannot read {value!r} as a time")


@dataclass(frozen=True)
class StreamInfo:
    """One recorded stream: where it is and how many segments it has."""

    exchange: str
    pair: str
    segments: int
    live_segments: int


def _bisect(
    path: Path, name: str, n: int, ts: int, reader: Callable[[int, int], RecordArray]
) -> int:
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if int(reader(mid, mid + 1)["ts_recv"][0]) < ts:
            lo = mid + 1
        else:
            hi = mid
    return lo


class Store:
    """A data folder opened for reading.

    Example::

        >>> store = open_store("data")                        # doctest: +SKIP
        >>> store.trades("binance", "BTC/USDT", start="2026-11-27")  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise StorageError(f"no data folder at {self.root}")

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def streams(self) -> list[StreamInfo]:
        """Every recorded (exchange, pair)."""
        out = []
        for ex_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != META_DIR):
            for pair_dir in sorted(p for p in ex_dir.iterdir() if p.is_dir()):
                segments = list_segments(pair_dir)
                if segments:
                    out.append(
                        StreamInfo(
                            ex_dir.name,
                            pair_dir.name.replace("-", "/"),
                            len(segments),
                            sum(1 for n, _ in segments if n.live),
                        )
                    )
        return out

    def segments(self, exchange: str, pair: str) -> list[Path]:
        """Segment files of one stream in time order."""
        return [p for _, p in list_segments(stream_dir(self.root, exchange, pair))]

    def trades(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> RecordArray:
        """Every trade with ``start <= ts_recv < end``, in order (``records.TRADES``)."""
        return self._read("trades", exchange, pair, start, end)

    def book_deltas(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> RecordArray:
        """Book rows (``records.BOOK_DELTAS``); SNAPSHOT-flagged runs replace the book."""
        return self._read("book_deltas", exchange, pair, start, end)

    def book_snapshots(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> RecordArray:
        """One row per ``time_step`` with the top ``depth`` levels per side."""
        return self._read("book_snapshots", exchange, pair, start, end)

    def gaps(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> RecordArray:
        """Intervals where data may be missing that overlap ``[start, end)``; text fields as str."""
        rows = self._read("gaps", exchange, pair, None, None)
        lo, hi = to_ns(start), to_ns(end)
        if lo is not None:
            rows = rows[rows["end_ns"] >= lo]
        if hi is not None:
            rows = rows[rows["start_ns"] < hi]
        out = np.empty(
            len(rows),
            dtype=[("start_ns", "<i8"), ("end_ns", "<i8"), ("cause", "U16"), ("detail", "U160")],
        )
        out["start_ns"], out["end_ns"] = rows["start_ns"], rows["end_ns"]
        out["cause"] = np.char.decode(rows["cause"], "utf-8") if len(rows) else []
        out["detail"] = np.char.decode(rows["detail"], "utf-8", "replace") if len(rows) else []
        return out

    def _read(
        self, name: str, exchange: str, pair: str, start: TimeLike, end: TimeLike
    ) -> RecordArray:
        lo, hi = to_ns(start), to_ns(end)
        parts = []
        dtype = None
        for path in self.segments(exchange, pair):
            part = _read_any(path, name, lo, hi)
            if part is not None:
                dtype = part.dtype
                if len(part):
                    parts.append(part)
        if not parts:
            return np.empty(
                0, dtype=dtype if dtype is not None else (GAPS if name == "gaps" else _empty(name))
            )
        return np.concatenate(parts)


def _empty(name: str) -> np.dtype[Any]:
    from dccd_actors.records import BOOK_DELTAS, TRADES, book_snapshot_dtype

    return {"trades": TRADES, "book_deltas": BOOK_DELTAS}.get(name, book_snapshot_dtype(1))


def _read_any(path: Path, name: str, lo: int | None, hi: int | None) -> RecordArray | None:
    """Read a segment; a live one sealed while we looked is read from its sealed twin."""
    try:
        return _read_segment(path, name, lo, hi)
    except (FileNotFoundError, StorageError, ValueError, OSError):
        if not path.name.endswith(".live.h5"):
            raise
    twin = path.with_name(path.name.replace(".live.h5", ".h5"))
    for _ in range(50):  # sealing renames the twin into place just before unlinking the live file
        if twin.exists():
            return _read_segment(twin, name, lo, hi)
        time.sleep(0.01)
    return None


def _read_segment(path: Path, name: str, lo: int | None, hi: int | None) -> RecordArray | None:
    segment = live_segment(path)
    if segment is not None:
        n = segment.rows[name]
        live = segment
        return _slice(path, name, n, lo, hi, lambda a, b: live.read(name, a, b))
    if not path.exists():
        raise FileNotFoundError(path)
    with open_for_read(path) as f:
        if name not in f:
            return None
        ds = f[name]
        if path.name.endswith(".live.h5"):
            ds.refresh()
        n = ds.shape[0]

        def read(a: int, b: int) -> RecordArray:
            return ds[a:b]  # type: ignore[no-any-return]

        return _slice(path, name, n, lo, hi, read)


def _slice(
    path: Path,
    name: str,
    n: int,
    lo: int | None,
    hi: int | None,
    read: Callable[[int, int], RecordArray],
) -> RecordArray:
    if name == "gaps" or n == 0:
        return read(0, n)
    a = 0 if lo is None else _bisect(path, name, n, lo, read)
    b = n if hi is None else _bisect(path, name, n, hi, read)
    return read(a, max(a, b))


def open_h5(path: str | Path) -> h5py.File:
    """Open one segment file read-only (SWMR for live ones); close it when done."""
    p = Path(path)
    return h5py.File(p, "r", swmr=p.name.endswith(".live.h5"))
