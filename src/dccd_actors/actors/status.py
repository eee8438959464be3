"""Status rows: immutable snapshots answered from the manager's own state."""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from dccd_actors.actors.messages import StreamStats

__all__ = ["CollectorStatus", "StreamStatus", "stream_row"]


@dataclass(frozen=True)
class StreamStatus:
    """One stream's state; also readable as a mapping (``row["state"]``).

    ``state`` is one of ``starting`` (connecting), ``running``, ``backoff`` (waiting to
    restart), ``parked`` (too many restarts; retried every ``park_interval``), ``stopped`` and
    ``stop_timeout`` (did not stop within its deadline). The collector's own state
    (``running``, ``stopped``, ``failed``) is on the list that ``status()`` returns.
    """

    exchange: str
    pair: str
    state: str
    gen: int
    restarts: int
    since: float
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
    consecutive_errors: int = 0
    last_error: str = ""
    last_exit_cause: str = ""
    last_frame_age_s: float | None = None
    next_retry_in_s: float | None = None
    book_live: bool = False
    bytes_written: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def keys(self) -> list[str]:
        return list(asdict(self))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def stream_row(stats: StreamStats, **child: Any) -> StreamStatus:
    """A status row: the stream's own counters plus what the manager knows of the child."""
    values = {name: getattr(stats, name) for name in _FROM_STATS}
    values["malformed_by_kind"] = dict(stats.malformed_by_kind)
    return StreamStatus(**values, **child)


_FROM_STATS = tuple(
    f.name for f in fields(StreamStatus) if f.name in StreamStats.__dataclass_fields__
)

_COLUMNS = (
    "exchange",
    "pair",
    "state",
    "gen",
    "frames",
    "trades",
    "book_rows",
    "gaps",
    "resyncs",
    "malformed",
    "last_frame_age_s",
    "last_error",
)


class CollectorStatus(list[StreamStatus]):
    """The per-stream rows (a list), plus the collector's ``state`` (``running``,
    ``stopped``, ``failed``), ``error``, ``storage`` figures and ``sync`` figures (as
    ``Collector.sync_status()`` gives them, as of the last push; empty without remotes)."""

    def __init__(
        self,
        streams: list[StreamStatus],
        state: str = "running",
        error: str = "",
        storage: dict[str, Any] | None = None,
        sync: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(streams)
        self.state = state
        self.error = error
        self.storage = storage or {}
        self.sync = sync or {}

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
        rows = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_fmt(getattr(s, c)))}</td>" for c in _COLUMNS)
            + "</tr>"
            for s in self
        )
        caption = f"collector {html.escape(self.state)}" + (
            f": {html.escape(self.error)}" if self.error else ""
        )
        return f"<table><caption>{caption}</caption><tr>{head}</tr>{rows}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)
