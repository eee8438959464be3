"""Replay several recorded streams as one sequence merged by ``ts_recv``.

Each stream is read segment by segment in chunks of ``chunk_rows`` and the streams are
heap-merged, so memory stays at about one chunk per stream whatever the range.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np

from dccd_actors.storage._access import SegmentHandle, with_segment

__all__ = ["DATASETS", "ReplayRecord", "StreamSpec", "check_specs", "replay"]

#: ``(exchange, pair, dataset)``
StreamSpec = tuple[str, str, str]
DATASETS: Final = ("trades", "book_deltas", "book_snapshots")


class ReplayRecord(NamedTuple):
    """One replayed row: which stream it comes from and the row itself (a numpy record).

    Example::

        >>> for exchange, pair, dataset, row in store.replay(specs):   # doctest: +SKIP
        ...     ...
    """

    exchange: str
    pair: str
    dataset: str
    row: np.void

    @property
    def ts_recv(self) -> int:
        """The row's local receive time (ns), the merge key."""
        return int(self.row["ts_recv"])


def check_specs(streams: Iterable[StreamSpec]) -> list[StreamSpec]:
    """Validate ``(exchange, pair, dataset)`` triples; returns them as a list.

    Example::

        >>> check_specs([("binance", "BTC/USDT", "trades")])
        [('binance', 'BTC/USDT', 'trades')]
    """
    specs = []
    for spec in streams:
        if not (isinstance(spec, tuple | list) and len(spec) == 3):
            raise ValueError(f"stream {spec!r} is invalid: expected (exchange, pair, dataset)")
        exchange, pair, dataset = spec
        if dataset not in DATASETS:
            raise ValueError(f"dataset={dataset!r} is invalid: expected one of {list(DATASETS)}")
        specs.append((str(exchange), str(pair), str(dataset)))
    return specs


def _rows(
    index: int, paths: list[Path], name: str, lo: int | None, hi: int | None, chunk_rows: int
) -> Iterator[tuple[int, int, int, np.void]]:
    """``(ts_recv, stream index, row number, row)`` of one stream, chunk by chunk."""
    number = 0
    for path in paths:
        bounds = with_segment(path, lambda h: h.span(name, lo, hi) if h.has(name) else (0, 0))
        if bounds is None:
            continue
        for a in range(bounds[0], bounds[1], chunk_rows):
            b = min(a + chunk_rows, bounds[1])
            chunk = with_segment(path, partial(SegmentHandle.read, name=name, lo=a, hi=b))
            if chunk is None:
                break
            for ts, row in zip(chunk["ts_recv"].tolist(), chunk, strict=True):
                yield ts, index, number, row
                number += 1


def replay(
    streams: Iterable[StreamSpec],
    paths: list[list[Path]],
    start: int | None = None,
    end: int | None = None,
    chunk_rows: int = 65_536,
) -> Iterator[ReplayRecord]:
    """Rows of ``streams`` with ``start <= ts_recv < end``, merged by ``ts_recv``.

    ``paths[i]`` are the segments of ``streams[i]`` in time order. Ties keep the order of
    ``streams``, and each stream keeps its recorded order.

    Example::

        >>> recs = replay([("binance", "BTC/USDT", "trades")],
        ...               [store.segments("binance", "BTC/USDT")])    # doctest: +SKIP
    """
    specs = check_specs(streams)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows={chunk_rows!r} is invalid: expected a positive int")
    if len(paths) != len(specs):
        raise ValueError("replay needs one list of segment paths per stream")
    sources = [
        _rows(i, seg, spec[2], start, end, chunk_rows)
        for i, (spec, seg) in enumerate(zip(specs, paths, strict=True))
    ]
    return (ReplayRecord(*specs[index], row) for _, index, _, row in heapq.merge(*sources))
