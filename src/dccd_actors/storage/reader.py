"""Read what was recorded: across sealed and live segments, for any time range.

Ranges select rows by ``ts_recv`` (local receive time, ns), which never goes
backwards within a stream; each segment is searched by bisection, so reading a
minute of a day reads about a minute's rows. Research reads (:meth:`Store.book_at`,
:meth:`Store.bars`, :meth:`Store.coverage`, :meth:`Store.replay`) live in
``rebuild.py``, ``research.py`` and ``replay.py``; the methods here are thin wrappers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np

from dccd_actors.errors import StorageError
from dccd_actors.records import (
    BOOK_DELTAS,
    GAPS,
    TRADES,
    RecordArray,
    book_snapshot_dtype,
)
from dccd_actors.storage._access import SegmentHandle, read_gaps, with_segment
from dccd_actors.storage._time import TimeLike, to_ns
from dccd_actors.storage.frames import Records, records
from dccd_actors.storage.layout import META_DIR, list_segments, stream_dir
from dccd_actors.storage.rebuild import Book, book_at
from dccd_actors.storage.replay import ReplayRecord, StreamSpec, check_specs, replay
from dccd_actors.storage.research import Interval, bars, coverage

__all__ = ["Store", "StreamInfo", "to_ns"]

_DATA: Final = ("trades", "book_deltas", "book_snapshots")
_NEXT_SLACK: Final = 2_000_000_000


@dataclass(frozen=True)
class StreamInfo:
    """One recorded stream: segments, channels present, first/last ``ts_recv``, row counts.

    ``channels`` holds ``"trades"`` and/or ``"book"`` (book deltas or snapshots recorded);
    ``first_ts_recv``/``last_ts_recv`` are -1 when nothing is recorded yet.

    Example::

        >>> info = store.streams()[0]                              # doctest: +SKIP
        >>> info.pair, info.channels, info.trades                  # doctest: +SKIP
        ('BTC/USDT', ('trades', 'book'), 5120)
    """

    exchange: str
    pair: str
    segments: int
    live_segments: int
    channels: tuple[str, ...] = ()
    first_ts_recv: int = -1
    last_ts_recv: int = -1
    trades: int = 0
    book_deltas: int = 0
    book_snapshots: int = 0
    gaps: int = 0


def _counts(handle: SegmentHandle) -> dict[str, int]:
    return {name: handle.count(name) for name in (*_DATA, "gaps")}


def _edge(handle: SegmentHandle, last: bool) -> int:
    """The first (or last) ``ts_recv`` of any dataset in the segment, -1 if empty."""
    found = [
        handle.ts(name, handle.count(name) - 1 if last else 0)
        for name in _DATA
        if handle.count(name)
    ]
    return (max(found) if last else min(found)) if found else -1


class Store:
    """A data folder opened for reading.

    Example::

        >>> store = open_store("data")                        # doctest: +SKIP
        >>> store.trades("binance", "BTC/USDT", start="2026-11-27")  # doctest: +SKIP
        >>> store.book_at("binance", "BTC/USDT", "2026-11-27T12:00:00Z").bids[:3]  # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise StorageError(f"no data folder at {self.root}")

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def stream_keys(self) -> list[tuple[str, str]]:
        """Every recorded ``(exchange, pair)``, from the folder names only.

        Example::

            >>> store.stream_keys()                                # doctest: +SKIP
            [('binance', 'BTC/USDT'), ('binance', 'ETH/USDT')]
        """
        out = []
        for ex_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != META_DIR):
            for pair_dir in sorted(p for p in ex_dir.iterdir() if p.is_dir()):
                if list_segments(pair_dir):
                    out.append((ex_dir.name, pair_dir.name.replace("-", "/")))
        return out

    def streams(self) -> list[StreamInfo]:
        """Every recorded stream with channels, first/last ``ts_recv`` and row counts.

        Cheap: reads dataset shapes and the first/last rows only.
        ``to_pandas(store.streams())`` gives a DataFrame.

        Example::

            >>> [(s.pair, s.trades, s.channels) for s in store.streams()]  # doctest: +SKIP
            [('BTC/USDT', 5120, ('trades', 'book'))]
        """
        return [self._stream_info(exchange, pair) for exchange, pair in self.stream_keys()]

    def _stream_info(self, exchange: str, pair: str) -> StreamInfo:
        listed = list_segments(stream_dir(self.root, exchange, pair))
        counts = dict.fromkeys((*_DATA, "gaps"), 0)
        per_segment = []
        for _, path in listed:
            got = with_segment(path, _counts) or {}
            per_segment.append((path, got))
            for name, rows in got.items():
                counts[name] += rows
        filled = [path for path, got in per_segment if any(got.get(n) for n in _DATA)]
        first = with_segment(filled[0], lambda h: _edge(h, False)) if filled else None
        last = with_segment(filled[-1], lambda h: _edge(h, True)) if filled else None
        channels: tuple[str, ...] = ("trades",) if counts["trades"] else ()
        if counts["book_deltas"] or counts["book_snapshots"]:
            channels += ("book",)
        return StreamInfo(
            exchange,
            pair,
            len(listed),
            sum(1 for n, _ in listed if n.live),
            channels,
            -1 if first is None else first,
            -1 if last is None else last,
            **counts,
        )

    def segments(self, exchange: str, pair: str) -> list[Path]:
        """Segment files of one stream in time order.

        Example::

            >>> [p.name for p in store.segments("binance", "BTC/USDT")]  # doctest: +SKIP
            ['20261127T000000Z.h5', '20261128T000000Z.live.h5']
        """
        return [p for _, p in list_segments(stream_dir(self.root, exchange, pair))]

    def _candidates(self, exchange: str, pair: str, lo: int | None) -> list[Path]:
        """Segments that may hold rows with ``ts_recv >= lo``.

        A segment's rows were all appended before the next segment was created, so
        they precede the next segment's name (to the second) and can be skipped unread.
        """
        listed = list_segments(stream_dir(self.root, exchange, pair))
        return [
            path
            for i, (_, path) in enumerate(listed)
            if lo is None or i + 1 == len(listed) or listed[i + 1][0].start_ns + _NEXT_SLACK > lo
        ]

    def last_trade_id(self, exchange: str, pair: str) -> int | None:
        """The id of the newest stored trade of a stream (None when there is none).

        Reads one row of the newest segment holding trades; a segment that cannot be opened
        (a live file a crash left behind, not sealed yet) is passed over.

        Example::

            >>> store.last_trade_id("okx", "BTC/USDT")  # doctest: +SKIP
            338476309
        """
        for path in reversed(self.segments(exchange, pair)):
            try:
                with open_h5(path) as f:
                    trades = f.get("trades")
                    if trades is not None and len(trades):
                        return int(trades[len(trades) - 1]["trade_id"])
            except (OSError, KeyError, ValueError):
                continue
        return None

    def trades(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> Records:
        """Every trade with ``start <= ts_recv < end``, in order (``records.TRADES``).

        Example::

            >>> t = store.trades("binance", "BTC/USDT",
            ...                  "2026-11-27T10:00", "2026-11-27T10:01")  # doctest: +SKIP
            >>> t["price"].max(), t.to_pandas()["ts_recv"].iloc[0]  # doctest: +SKIP
        """
        return self._read("trades", exchange, pair, start, end)

    def book_deltas(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> Records:
        """Book rows (``records.BOOK_DELTAS``); SNAPSHOT-flagged runs replace the book.

        Example::

            >>> d = store.book_deltas("binance", "BTC/USDT", "2026-11-27T10")  # doctest: +SKIP
            >>> d[d["side"] == 1]["price"]                          # doctest: +SKIP
        """
        return self._read("book_deltas", exchange, pair, start, end)

    def book_snapshots(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> Records:
        """One row per ``time_step`` with the top ``depth`` levels per side.

        Example::

            >>> s = store.book_snapshots("binance", "BTC/USDT")    # doctest: +SKIP
            >>> (s["bid_price"][:, 0] + s["ask_price"][:, 0]) / 2  # doctest: +SKIP
        """
        return self._read("book_snapshots", exchange, pair, start, end)

    def gaps(
        self, exchange: str, pair: str, start: TimeLike = None, end: TimeLike = None
    ) -> Records:
        """Intervals where data may be missing that overlap ``[start, end)``; text fields as str.

        Example::

            >>> store.gaps("binance", "BTC/USDT")[["cause", "detail"]]  # doctest: +SKIP
        """
        lo, hi = to_ns(start), to_ns(end)
        # a gap is written when it closes, so none ending after lo sits in an earlier segment
        rows = read_gaps(self._candidates(exchange, pair, lo))
        if lo is not None:
            rows = rows[rows["end_ns"] >= lo]
        if hi is not None:
            rows = rows[rows["start_ns"] < hi]
        return records(rows)

    # -- research reads: see rebuild.py, research.py, replay.py --------------------------
    def book_at(self, exchange: str, pair: str, t: TimeLike, depth: int | None = 25) -> Book:
        """The book the collector held at local time ``t`` (compared with ``ts_recv``).

        Rebuilt from the last SNAPSHOT run at or before ``t``; ``depth=None`` keeps every
        level. Raises ``GapError`` when ``t`` lies in a recorded gap or no snapshot precedes
        it. See :func:`dccd_actors.storage.rebuild.book_at`.

        Example::

            >>> book = store.book_at("binance", "BTC/USDT", "2026-11-27T12:00Z")  # doctest: +SKIP
            >>> book.bids[0], book.asks[0]                      # doctest: +SKIP
            (array([30000.01, 0.5]), array([30000.02, 1.25]))
        """
        t_ns = to_ns(t)
        if t_ns is None:
            raise TypeError("book_at needs a time t")
        return book_at(self.segments(exchange, pair), t_ns, depth, f"{exchange} {pair}")

    def bars(
        self,
        exchange: str,
        pair: str,
        interval: Interval,
        start: TimeLike = None,
        end: TimeLike = None,
    ) -> Records:
        """OHLCV bars of trades bucketed by ``ts_event`` (``ts_recv`` where it is -1).

        ``interval`` is seconds (a number) or a string such as ``"1s"``, ``"1min"``,
        ``"5min"``, ``"1h"``, ``"1d"``. See :func:`dccd_actors.storage.research.bars`.

        Example::

            >>> b = store.bars("binance", "BTC/USDT", "1min", start="2026-11-27")  # doctest: +SKIP
            >>> b[["ts", "open", "close", "vwap"]].to_pandas()      # doctest: +SKIP
        """
        lo, hi = to_ns(start), to_ns(end)
        slack = 60_000_000_000  # read by ts_recv a minute wider: venue and local clocks differ
        trades = self.trades(
            exchange, pair, None if lo is None else lo - slack, None if hi is None else hi + slack
        )
        return bars(trades, interval, lo, hi)

    def coverage(
        self,
        exchange: str | None = None,
        pair: str | None = None,
        start: TimeLike = None,
        end: TimeLike = None,
    ) -> Records:
        """Per stream and UTC day: rows, span, recorded and missing seconds (gap ledger).

        See :func:`dccd_actors.storage.research.coverage` for the fields.

        Example::

            >>> cov = store.coverage("binance")                      # doctest: +SKIP
            >>> cov[["pair", "day", "recorded_s", "missing_s"]]      # doctest: +SKIP
        """
        keys = [
            (ex, p) for ex, p in self.stream_keys() if exchange in (None, ex) and pair in (None, p)
        ]
        streams = [(ex, p, self.segments(ex, p), self.gaps(ex, p)) for ex, p in keys]
        return coverage(streams, to_ns(start), to_ns(end))

    def replay(
        self,
        streams: Iterable[StreamSpec],
        start: TimeLike = None,
        end: TimeLike = None,
        chunk_rows: int = 65_536,
    ) -> Iterator[ReplayRecord]:
        """Rows of several streams merged by ``ts_recv``, read in chunks (bounded memory).

        ``streams`` are ``(exchange, pair, dataset)`` with dataset one of ``trades``,
        ``book_deltas``, ``book_snapshots``. Ties keep the order of ``streams``.

        Example::

            >>> for rec in store.replay([("binance", "BTC/USDT", "trades"),
            ...                          ("okx", "BTC/USDT", "book_deltas")]):  # doctest: +SKIP
            ...     print(rec.exchange, rec.dataset, rec.ts_recv, rec.row["price"])
        """
        specs = check_specs(streams)
        paths = [self._candidates(ex, p, to_ns(start)) for ex, p, _ in specs]
        return replay(specs, paths, to_ns(start), to_ns(end), chunk_rows)

    def _read(self, name: str, exchange: str, pair: str, start: TimeLike, end: TimeLike) -> Records:
        lo, hi = to_ns(start), to_ns(end)
        parts = []
        dtype = None
        for path in self._candidates(exchange, pair, lo):
            part = with_segment(path, lambda h: _read_range(h, name, lo, hi))
            if part is not None:
                dtype = part.dtype
                if len(part):
                    parts.append(part)
        if not parts:
            return records(np.empty(0, dtype=dtype if dtype is not None else _empty(name)))
        return records(np.concatenate(parts))


def _read_range(
    handle: SegmentHandle, name: str, lo: int | None, hi: int | None
) -> RecordArray | None:
    if not handle.has(name):
        return None
    return handle.read(name, *handle.span(name, lo, hi))


def _empty(name: str) -> np.dtype[Any]:
    return {"trades": TRADES, "book_deltas": BOOK_DELTAS, "gaps": GAPS}.get(
        name, book_snapshot_dtype(1)
    )


def open_h5(path: str | Path) -> h5py.File:
    """Open one segment file read-only (SWMR for live ones); close it when done."""
    p = Path(path)
    return h5py.File(p, "r", swmr=p.name.endswith(".live.h5"))
