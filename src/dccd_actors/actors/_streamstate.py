"""Mutable per-stream counters, rate-limited logging of bad input, and their snapshot."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Final

import numpy as np

from dccd_actors.actors.messages import StreamKey, StreamStats
from dccd_actors.records import RecordArray

logger = logging.getLogger("dccd_actors.stream")

_LOG_EVERY_NS: Final = 60_000_000_000
_LATENCY_WINDOW_NS: Final = 60_000_000_000
_LATENCY_SAMPLES: Final = 200  # per batch: enough for a p99 over a minute, bounded memory
_LATENCY_REFRESH_NS: Final = 2_000_000_000


class StreamCounters:
    """Counters owned by one stream actor thread."""

    def __init__(self, key: StreamKey) -> None:
        self.key = key
        self.frames = self.trades = self.book_rows = self.snapshots = 0
        self.gaps = self.resyncs = self.malformed = self.venue_errors = 0
        self.malformed_by_kind: dict[str, int] = {}
        self.last_malformed = ""
        self.last_venue_error = ""
        self.last_error = ""
        self.last_frame_ns = self.last_data_ns = 0
        self.connected = self.book_live = False
        self._logged_at: dict[str, int] = {}
        self.bytes_written = 0
        self._latency: deque[tuple[int, np.ndarray[Any, Any]]] = deque()
        self._latency_at = 0
        self._latency_cache: tuple[float | None, float | None] = (None, None)

    def count_malformed(self, kind: str, example: str) -> None:
        self.malformed += 1
        self.malformed_by_kind[kind] = self.malformed_by_kind.get(kind, 0) + 1
        self.last_malformed = f"{kind}: {example[:200]}"
        self._log_limited(kind, "%s: bad frame (%s), skipped: %.200s", self.key, kind, example)

    def note_venue_error(self, text: str) -> None:
        self.venue_errors += 1
        self.last_venue_error = text[:300]
        self.last_error = text[:300]
        self._log_limited("venue:" + text[:40], "%s: venue error: %s", self.key, text[:300])

    def note_error(self, text: str) -> None:
        self.last_error = text[:300]

    def _log_limited(self, kind: str, fmt: str, *args: object) -> None:
        now = time.monotonic_ns()
        if now - self._logged_at.get(kind, -_LOG_EVERY_NS) >= _LOG_EVERY_NS:
            self._logged_at[kind] = now
            logger.warning(fmt, *args)

    def record_batch(self, now_ns: int, *arrays: RecordArray | None) -> None:
        """Count bytes handed to storage and keep receive latencies of the last minute."""
        for arr in arrays:
            if arr is None or not len(arr):
                continue
            self.bytes_written += arr.nbytes
            if "ts_event" in (arr.dtype.names or ()):
                event = arr["ts_event"]
                lat = (arr["ts_recv"] - event)[event > 0]
                if len(lat):
                    self._latency.append((now_ns, lat[:: max(1, len(lat) // _LATENCY_SAMPLES)]))
        while self._latency and now_ns - self._latency[0][0] > _LATENCY_WINDOW_NS:
            self._latency.popleft()

    def latency_ms(self) -> tuple[float | None, float | None]:
        """p50 and p99 of ``ts_recv - ts_event`` over the last minute, in ms (recomputed at
        most every 2 s: a percentile over a minute of samples is not free)."""
        now = time.monotonic_ns()
        fresh = now - self._latency_at < _LATENCY_REFRESH_NS
        if fresh and (self._latency_cache[0] is not None or not self._latency):
            return self._latency_cache
        self._latency_at = now
        if not self._latency:
            self._latency_cache = (None, None)
        else:
            samples = np.concatenate([lat for _, lat in self._latency]) / 1e6
            p50, p99 = np.percentile(samples, [50, 99])
            self._latency_cache = (float(p50), float(p99))
        return self._latency_cache

    def snapshot(self) -> StreamStats:
        p50, p99 = self.latency_ms()
        return StreamStats(
            frames=self.frames,
            trades=self.trades,
            book_rows=self.book_rows,
            snapshots=self.snapshots,
            gaps=self.gaps,
            resyncs=self.resyncs,
            malformed=self.malformed,
            malformed_by_kind=dict(self.malformed_by_kind),
            last_malformed=self.last_malformed,
            venue_errors=self.venue_errors,
            last_venue_error=self.last_venue_error or self.last_error,
            last_frame_ns=self.last_frame_ns,
            last_data_ns=self.last_data_ns,
            connected=self.connected,
            book_live=self.book_live,
            bytes_written=self.bytes_written,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
        )
