"""Re-derive HDF5 segments from raw journals with the current adapters.

A journal (``StorageConfig(raw=True)``) holds every input of a stream actor:
frames with their ``ts_recv``, REST snapshot bodies, connections, book samples
and gap rows. Feeding them through today's adapter yields the segment the
collector would have written with today's parser.

Example::

    >>> from dccd_actors import reprocess
    >>> reprocess("data", "rederived")        # doctest: +SKIP
    [PosixPath('rederived/binance/BTC-USDT/20261127T000000Z.h5')]
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dccd_actors.errors import ParseError, StorageError
from dccd_actors.exchanges import adapter_class
from dccd_actors.exchanges._base import (
    BookDeltas,
    BookLevels,
    Trades,
    from_the_future,
    snapshot_row,
)
from dccd_actors.records import book_snapshot_dtype, deltas_array, gaps_array, trades_array
from dccd_actors.storage.layout import SegmentName
from dccd_actors.storage.segment import LiveSegment, SegmentInfo, seal, segment_attrs

__all__ = ["read_journal", "reprocess"]

_JOURNAL_SUFFIX = ".raw.jsonl.gz"


def read_journal(path: str | Path) -> Iterator[dict[str, Any]]:
    """Entries of a journal in order; a torn tail (crash mid-write) ends the iteration quietly."""
    decoder = zlib.decompressobj(wbits=31)
    pending = b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                pending += decoder.decompress(chunk)
            except zlib.error:
                break
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line:
                    yield json.loads(line)
            while decoder.eof and decoder.unused_data:  # several gzip members (one per session)
                rest = decoder.unused_data
                decoder = zlib.decompressobj(wbits=31)
                pending += decoder.decompress(rest)


def reprocess(
    raw_dir: str | Path, out_dir: str | Path, compression: str | None = "gzip"
) -> list[Path]:
    """Re-derive every journaled segment under ``raw_dir`` into ``out_dir``; return the new files."""
    raw_root, out_root = Path(raw_dir), Path(out_dir)
    written = []
    for folder in sorted({j.parent for j in raw_root.glob(f"*/*/*{_JOURNAL_SUFFIX}")}):
        adapter = None  # one adapter per stream: its book carries over segment boundaries
        for journal in sorted(folder.glob(f"*{_JOURNAL_SUFFIX}"), key=_start_of):
            out_folder = out_root / folder.relative_to(raw_root)
            path, adapter = _reprocess_one(journal, out_folder, compression, adapter)
            written.append(path)
    return written


def _start_of(journal: Path) -> tuple[int, int]:
    name = SegmentName.parse(journal.name[: -len(_JOURNAL_SUFFIX)] + ".h5")
    return (name.start_ns, name.index) if name else (0, 0)


def _segment_info(journal: Path) -> tuple[SegmentInfo, int]:
    stem = journal.name[: -len(_JOURNAL_SUFFIX)]
    segment = journal.with_name(stem + ".h5")
    name = SegmentName.parse(stem + ".h5")
    if not segment.exists() or name is None:
        raise StorageError(
            f"journal {journal} has no segment {segment} to take its attributes from"
        )
    attrs = segment_attrs(segment)
    info = SegmentInfo(
        str(attrs["exchange"]),
        str(attrs["symbol"]),
        str(attrs["venue_symbol"]),
        int(attrs["depth"]),
        float(attrs["time_step"]),
        str(attrs.get("channels", "trades,book")),
    )
    return info, name.start_ns


def _reprocess_one(
    journal: Path, out_folder: Path, compression: str | None, adapter: Any
) -> tuple[Path, Any]:
    info, start_ns = _segment_info(journal)
    if adapter is None:
        adapter = adapter_class(info.exchange)(info.pair, info.channels.split(","))
    rows: dict[str, list[Any]] = {"trades": [], "book_deltas": [], "book_snapshots": [], "gaps": []}
    for entry in read_journal(journal):
        _replay_entry(adapter, entry, info.depth, rows)
    stem = journal.name[: -len(_JOURNAL_SUFFIX)].removesuffix(".live")
    out_folder.mkdir(parents=True, exist_ok=True)
    segment = LiveSegment(out_folder / f"{stem}.live.h5", info, start_ns)
    try:
        segment.append(
            "trades", trades_array(rows["trades"]) if rows["trades"] else trades_array([])
        )
        segment.append(
            "book_deltas",
            deltas_array(rows["book_deltas"]) if rows["book_deltas"] else deltas_array([]),
        )
        if rows["book_snapshots"]:
            segment.append(
                "book_snapshots",
                np.array(rows["book_snapshots"], dtype=book_snapshot_dtype(info.depth)),
            )
        if rows["gaps"]:
            segment.append("gaps", gaps_array(rows["gaps"]))
        segment.flush()
    finally:
        segment.close()
    return seal(segment.path, compression, "reprocess"), adapter


def _replay_entry(
    adapter: Any, entry: dict[str, Any], depth: int, rows: dict[str, list[Any]]
) -> None:
    ts = int(entry["t"])
    try:
        if "frame" in entry:
            events = adapter.receive(entry["frame"], ts)
        elif "rest" in entry:
            events = adapter.receive_snapshot(entry["rest"], ts)
        elif "open" in entry:
            events = adapter.on_open()
        elif "sample" in entry:
            top = adapter.book_top(depth)
            if top is not None:
                rows["book_snapshots"].append(snapshot_row(top, ts, depth))
            return
        elif "checkpoint" in entry:
            rows["book_deltas"].extend(adapter.checkpoint_rows(ts))
            return
        elif "gap" in entry:
            start, end, cause, detail = entry["gap"]
            rows["gaps"].append((int(start), int(end), str(cause), str(detail)))
            return
        else:
            return
    except ParseError:
        return
    except Exception:
        return
    for event in events:
        if isinstance(event, Trades) and not from_the_future(event.rows, ts):
            rows["trades"].extend(event.rows)
        elif isinstance(event, BookDeltas | BookLevels):
            deltas = event.rows if isinstance(event, BookDeltas) else event.rows()
            if from_the_future(deltas, ts):
                deltas = [(-1, *row[1:]) for row in deltas]
            rows["book_deltas"].extend(deltas)
