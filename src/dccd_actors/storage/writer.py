"""The segment writer: routes batches to live segments, rotates, seals, recovers.

Plain object used by the storage actor (one thread); it holds no actor logic.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py

from dccd_actors.errors import StorageError
from dccd_actors.records import gaps_array
from dccd_actors.storage.layout import iter_live_files, list_segments, new_live_name, stream_dir
from dccd_actors.storage.segment import LiveSegment, SegmentInfo, live_segment, recover_tail, seal

__all__ = ["SegmentWriter"]

logger = logging.getLogger("dccd_actors.storage")

StreamKey = tuple[str, str]


_ROTATION_GRACE_NS = 3_000_000_000
_HOUR_NS = 3_600_000_000_000
_DAY_NS = 24 * _HOUR_NS


def period_end_ns(start_ns: int, rotation: str) -> int:
    """The next rotation boundary (00:00 UTC or the next hour) after ``start_ns``; exact integers,
    since UTC days and hours are whole multiples from the epoch."""
    period = _HOUR_NS if rotation == "hourly" else _DAY_NS
    return (start_ns // period + 1) * period


def _earliest_ts_recv(datasets: dict[str, Any]) -> int:
    firsts = [
        int(a["ts_recv"][0])
        for n, a in datasets.items()
        if a is not None and len(a) and n != "gaps"
    ]
    return min(firsts) if firsts else 0


class SegmentWriter:
    """Owns every live segment of one data folder."""

    def __init__(
        self, root: Path, rotation: str = "daily", compression: str | None = "gzip"
    ) -> None:
        self.root = root
        self.rotation = rotation
        self.compression = None if compression in (None, "none") else compression
        self.segments: dict[StreamKey, LiveSegment] = {}
        self.sealed: list[Path] = []
        self.rows_written = 0
        self.bytes_written = 0
        self._crash_gaps: dict[StreamKey, tuple[int, str]] = {}
        self._seen: set[StreamKey] = set()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create data folder {root}: {exc.strerror or exc}") from exc
        if not os.access(root, os.W_OK):
            raise StorageError(f"data folder {root} is not writable")

    def recover(self) -> list[Path]:
        """Seal every leftover ``*.live.h5`` no writer in this process owns (a crash)."""
        recovered = []
        for path in iter_live_files(self.root):
            if live_segment(path) is not None:
                continue
            key = (path.parent.parent.name, path.parent.name.replace("-", "/"))
            try:
                last = recover_tail(path)
                sealed = seal(path, self.compression, "crash")
            except StorageError as exc:
                bad = path.with_name(path.name + ".corrupt")
                os.replace(path, bad)
                logger.error("leftover segment %s unreadable, kept as %s: %s", path, bad, exc)
                continue
            self._crash_gaps[key] = (last, f"process ended without stop; recovered {path.name}")
            recovered.append(sealed)
            logger.warning("sealed leftover live segment %s after a crash", path)
        return recovered

    def append(
        self,
        key: StreamKey,
        info: SegmentInfo,
        datasets: dict[str, Any],
        journal: str | None = None,
    ) -> int:
        """Append one stream's batch (None entries skipped), flush, return rows written.

        The batch goes to the segment of its earliest ``ts_recv``, so rows received before a
        rotation boundary stay in the old segment even when they arrive just after it.
        """
        now = _earliest_ts_recv(datasets) or time.time_ns()
        segment = self._segment(key, info, now)
        rows = 0
        for name, arr in datasets.items():
            if arr is not None and len(arr):
                segment.append(name, arr)
                rows += len(arr)
                self.bytes_written += arr.nbytes
        if journal:
            segment.append_journal(journal)
        segment.flush()
        self.rows_written += rows
        return rows

    def rotate_due(self, now_ns: int | None = None) -> list[Path]:
        """Seal segments whose period ended more than a grace period ago (late batches)."""
        now = (now_ns or time.time_ns()) - _ROTATION_GRACE_NS
        due = [
            k for k, s in self.segments.items() if now >= period_end_ns(s.start_ns, self.rotation)
        ]
        return [self.seal(k, "rotation") for k in due]

    def seal(self, key: StreamKey, reason: str) -> Path:
        segment = self.segments.pop(key)
        segment.close()
        sealed = seal(segment.path, self.compression, reason)
        self.sealed.append(sealed)
        return sealed

    def seal_all(self, reason: str) -> list[Path]:
        return [self.seal(key, reason) for key in list(self.segments)]

    def close(self) -> None:
        for segment in self.segments.values():
            segment.close()
        self.segments.clear()

    def _segment(self, key: StreamKey, info: SegmentInfo, now: int) -> LiveSegment:
        segment = self.segments.get(key)
        if segment is not None and now >= period_end_ns(segment.start_ns, self.rotation):
            self.seal(key, "rotation")
            segment = None
        if segment is None:
            folder = stream_dir(self.root, key[0], key[1])
            name = new_live_name(folder, now)
            segment = LiveSegment(folder / name.filename(), info, name.start_ns)
            self.segments[key] = segment
            if key not in self._seen:
                self._seen.add(key)
                self._record_restart_gap(key, folder, segment, now)
        return segment

    def _record_restart_gap(
        self, key: StreamKey, folder: Path, segment: LiveSegment, now: int
    ) -> None:
        """The interval since the previous run of this stream ended (stop or crash)."""
        if key in self._crash_gaps:
            last, detail = self._crash_gaps.pop(key)
            if last > 0:
                segment.append("gaps", gaps_array([(last, now, "crash", detail)]))
            return
        previous = [p for n, p in list_segments(folder) if not n.live and p != segment.path]
        if not previous:
            return
        try:
            with h5py.File(previous[-1], "r") as f:
                reason = str(f.attrs.get("end_reason", ""))
                last = int(f.attrs.get("last_ts_recv", -1))
        except OSError:
            return
        if reason and last > 0:  # the previous run ended after its last segment (stop or crash)
            cause = "crash" if reason == "crash" else "stop"
            segment.append(
                "gaps",
                gaps_array(
                    [(last, now, cause, f"collector not running since {previous[-1].name}")]
                ),
            )
