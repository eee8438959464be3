"""Row-level read access to one segment, whoever is writing it, and a read counter.

Every read of segment rows in ``storage/`` goes through :class:`SegmentHandle`, so
:func:`count_rows_read` sees them all (tests use it to prove range reads stay small).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import h5py
import numpy as np

from dccd_actors.errors import StorageError
from dccd_actors.records import GAPS, RecordArray
from dccd_actors.storage.layout import LIVE_SUFFIX, SEALED_SUFFIX
from dccd_actors.storage.segment import LiveSegment, live_segment

__all__ = ["GAPS_TEXT", "SegmentHandle", "count_rows_read", "read_gaps", "with_segment"]

T = TypeVar("T")

_RETRY_S: Final = 10.0
_CHUNK_CACHE_BYTES: Final = 32 * 1024 * 1024
#: The gap ledger as readers return it: ``cause`` and ``detail`` as text.
GAPS_TEXT: Final = np.dtype(
    [("start_ns", "<i8"), ("end_ns", "<i8"), ("cause", "U16"), ("detail", "U160")]
)
_counters_lock = threading.Lock()
_counters: list[Counter[str]] = []


@contextlib.contextmanager
def count_rows_read() -> Iterator[Counter[str]]:
    """Count rows read from segment files, per dataset, while the block runs.

    Example::

        >>> with count_rows_read() as rows:                          # doctest: +SKIP
        ...     store.trades("binance", "BTC/USDT", "2026-11-27T10:00", "2026-11-27T10:01")
        >>> rows["trades"]                                            # doctest: +SKIP
        3051
    """
    counter: Counter[str] = Counter()
    with _counters_lock:
        _counters.append(counter)
    try:
        yield counter
    finally:
        with _counters_lock:
            _counters.remove(counter)


def _note(name: str, rows: int) -> None:
    if _counters:
        with _counters_lock:
            for counter in _counters:
                counter[name] += rows


class SegmentHandle:
    """One segment open for reading: an in-process writer's handle or an h5py file."""

    def __init__(self, path: Path, live: LiveSegment | None, f: h5py.File | None) -> None:
        self.path = path
        self._live = live
        self._file = f

    @property
    def attrs(self) -> dict[str, Any]:
        """File attributes (empty for a segment this process is writing)."""
        return {} if self._file is None else dict(self._file.attrs)

    def has(self, name: str) -> bool:
        """Whether the segment holds dataset ``name``."""
        if self._live is not None:
            return name in self._live.rows
        assert self._file is not None
        return name in self._file

    def count(self, name: str) -> int:
        """Rows in one dataset (0 if the segment lacks it)."""
        if self._live is not None:
            return int(self._live.rows.get(name, 0))
        assert self._file is not None
        if name not in self._file:
            return 0
        return int(self._file[name].shape[0])

    def read(self, name: str, lo: int, hi: int) -> RecordArray:
        """Rows ``lo:hi`` of one dataset."""
        hi = max(lo, hi)
        if self._live is not None:
            rows = self._live.read(name, lo, hi)
        else:
            assert self._file is not None
            rows = self._file[name][lo:hi]
        _note(name, len(rows))
        return rows

    def field(self, name: str, field: str, lo: int, hi: int) -> np.ndarray[Any, Any]:
        """One field of rows ``lo:hi`` (reads only that field from a file)."""
        hi = max(lo, hi)
        if self._live is not None:
            values: np.ndarray[Any, Any] = self._live.read(name, lo, hi)[field]
        else:
            assert self._file is not None
            values = self._file[name].fields([field])[lo:hi][field]
        _note(name, len(values))
        return values

    def ts(self, name: str, i: int) -> int:
        """``ts_recv`` of row ``i``."""
        return int(self.field(name, "ts_recv", i, i + 1)[0])

    def bisect(self, name: str, ts: int, lo: int = 0, hi: int | None = None) -> int:
        """The first row in ``lo:hi`` whose ``ts_recv >= ts`` (rows are in ``ts_recv`` order)."""
        hi = self.count(name) if hi is None else hi
        while lo < hi:
            mid = (lo + hi) // 2
            if self.ts(name, mid) < ts:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def span(self, name: str, lo: int | None, hi: int | None) -> tuple[int, int]:
        """Row bounds ``[a, b)`` of ``lo <= ts_recv < hi`` (None: open-ended)."""
        n = self.count(name)
        if n == 0 or (hi is not None and self.ts(name, 0) >= hi):
            return 0, 0
        if lo is not None and self.ts(name, n - 1) < lo:
            return n, n
        a = 0 if lo is None else self.bisect(name, lo, 0, n)
        b = n if hi is None else self.bisect(name, hi, a, n)
        return a, b


@contextlib.contextmanager
def _open(path: Path) -> Iterator[SegmentHandle]:
    live = live_segment(path)
    if live is not None:
        with live.lock:
            yield SegmentHandle(path, live, None)
        return
    if not path.exists():
        raise FileNotFoundError(path)
    swmr = path.name.endswith(LIVE_SUFFIX)
    try:  # a chunk cache larger than one sealed chunk: bisection probes mostly hit it
        f = h5py.File(path, "r", swmr=swmr, rdcc_nbytes=_CHUNK_CACHE_BYTES)
    except OSError as exc:
        raise StorageError(f"cannot open {path} for reading: {exc}") from exc
    try:
        if swmr:
            for name in f:
                f[name].refresh()
        yield SegmentHandle(path, None, f)
    finally:
        f.close()


def with_segment(path: Path, use: Callable[[SegmentHandle], T]) -> T | None:
    """Run ``use`` on an open segment; a live one sealed meanwhile is read from its twin.

    Returns None when a live segment vanished and no sealed twin appeared.
    """
    twin = path.with_name(path.name[: -len(LIVE_SUFFIX)] + SEALED_SUFFIX)
    deadline = time.monotonic() + _RETRY_S
    while True:
        try:
            with _open(path) as handle:
                return use(handle)
        except (FileNotFoundError, StorageError, ValueError, KeyError, RuntimeError, OSError):
            if not path.name.endswith(LIVE_SUFFIX):
                raise
        # sealing renames the twin into place, then unlinks the live file
        gone = not path.exists()
        if twin.exists():
            with _open(twin) as handle:
                return use(handle)
        if gone or time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def read_gaps(paths: list[Path]) -> RecordArray:
    """The gap ledger rows of these segments, sorted by ``start_ns``, text decoded."""
    parts = [with_segment(p, lambda h: h.read("gaps", 0, h.count("gaps"))) for p in paths]
    rows = [p for p in parts if p is not None and len(p)]
    raw = np.concatenate(rows) if rows else np.empty(0, dtype=GAPS)
    raw = raw[np.argsort(raw["start_ns"], kind="stable")]
    out = np.empty(len(raw), dtype=GAPS_TEXT)
    out["start_ns"], out["end_ns"] = raw["start_ns"], raw["end_ns"]
    if len(raw):
        out["cause"] = np.char.decode(raw["cause"], "utf-8", "replace")
        out["detail"] = np.char.decode(raw["detail"], "utf-8", "replace")
    return out
