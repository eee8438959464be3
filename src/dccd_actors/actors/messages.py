"""Messages between actors: small frozen dataclasses, told, never asked actor to actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dccd_actors.records import RecordArray
from dccd_actors.storage.segment import SegmentInfo

StreamKey = tuple[str, str]
"""(exchange, pair)"""


@dataclass(frozen=True, slots=True)
class FramesReceived:
    """Frames read since the last hand-off: ``(ts_recv_ns, frames)`` per socket read, in order."""

    chunks: list[tuple[int, list[str | bytes]]]
    reader_id: int


@dataclass(frozen=True, slots=True)
class Connected:
    conn: Any  # dccd_actors._ws.Connection
    reader_id: int


@dataclass(frozen=True, slots=True)
class ReaderDied:
    reason: str
    reader_id: int
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotFetched:
    body: str
    ts_recv: int
    fetch_id: int


@dataclass(frozen=True, slots=True)
class SnapshotFailed:
    reason: str
    fetch_id: int


@dataclass(frozen=True, slots=True)
class Tick:
    pass


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Counters a stream reports to the manager with every heartbeat."""

    frames: int = 0
    trades: int = 0
    book_rows: int = 0
    snapshots: int = 0
    gaps: int = 0
    resyncs: int = 0
    malformed: int = 0
    malformed_by_kind: dict[str, int] = field(default_factory=dict)
    last_malformed: str = ""
    venue_errors: int = 0
    last_venue_error: str = ""
    last_frame_ns: int = 0
    last_data_ns: int = 0
    connected: bool = False
    book_live: bool = False
    bytes_written: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None


def add_stats(total: StreamStats, current: StreamStats) -> StreamStats:
    """Counters of earlier generations plus the current one (times: the latest)."""
    kinds = dict(total.malformed_by_kind)
    for kind, count in current.malformed_by_kind.items():
        kinds[kind] = kinds.get(kind, 0) + count
    summed = {
        name: getattr(total, name) + getattr(current, name)
        for name in (
            "frames",
            "trades",
            "book_rows",
            "snapshots",
            "gaps",
            "resyncs",
            "malformed",
            "venue_errors",
            "bytes_written",
        )
    }
    return StreamStats(
        **summed,
        malformed_by_kind=kinds,
        last_malformed=current.last_malformed or total.last_malformed,
        last_venue_error=current.last_venue_error or total.last_venue_error,
        last_frame_ns=max(total.last_frame_ns, current.last_frame_ns),
        last_data_ns=max(total.last_data_ns, current.last_data_ns),
        connected=current.connected,
        book_live=current.book_live,
        latency_p50_ms=current.latency_p50_ms,
        latency_p99_ms=current.latency_p99_ms,
    )


@dataclass(frozen=True, slots=True)
class Heartbeat:
    key: StreamKey
    gen: int
    stats: StreamStats


@dataclass(frozen=True, slots=True)
class SyncStats:
    """The sync actor's figures (``Collector.sync_status()``), told after every push and tick,
    so that the manager's status and ``metrics.json`` carry them without an ``ask``."""

    gen: int
    stats: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child ended; ``cause`` is a gap cause (disconnect, stale, ...) or ``stopped``."""

    key: StreamKey | str
    gen: int
    cause: str
    error: str
    last_frame_ns: int = 0
    stats: StreamStats | None = None  # a stream's final counters
    open_gap: tuple[int, str, str] | None = None  # (start_ns, cause, detail) not yet closed
    planned: bool = False  # the venue asked for a new connection: restart now, not a failure


@dataclass(frozen=True, slots=True)
class Append:
    """Rows of one stream for storage; arrays are never mutated after the tell."""

    key: StreamKey
    info: SegmentInfo
    trades: RecordArray | None = None
    book_deltas: RecordArray | None = None
    book_snapshots: RecordArray | None = None
    gaps: RecordArray | None = None
    journal: list[tuple[int, str, Any]] | None = None  # raw inputs, when StorageConfig.raw

    def datasets(self) -> dict[str, Any]:
        return {
            "trades": self.trades,
            "book_deltas": self.book_deltas,
            "book_snapshots": self.book_snapshots,
            "gaps": self.gaps,
        }


@dataclass(frozen=True, slots=True)
class StorageStats:
    open_segments: int = 0
    sealed_segments: int = 0
    rows_written: int = 0
    bytes_written: int = 0
    appends: int = 0
    backlog: int = 0
    last_error: str = ""
    last_flush_ns: int = 0
