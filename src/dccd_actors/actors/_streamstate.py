"""Mutable per-stream counters, rate-limited logging of bad input, and their snapshot."""

from __future__ import annotations

import logging
import time
from typing import Final

from dccd_actors.actors.messages import StreamKey, StreamStats

logger = logging.getLogger("dccd_actors.stream")

_LOG_EVERY_NS: Final = 60_000_000_000


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

    def snapshot(self) -> StreamStats:
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
        )
