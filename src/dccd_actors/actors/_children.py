"""What the manager keeps per stream: its supervision record, status row and adapter.

The record also decides, when a generation ends, when the next one starts (backoff or
parking); the manager decides when a generation has ended and starts the next.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pykka

from dccd_actors.actors.messages import StreamKey, StreamStats, add_stats
from dccd_actors.actors.policy import Backoff
from dccd_actors.actors.status import StreamStatus, stream_row
from dccd_actors.actors.stream import PendingGap, make_adapter
from dccd_actors.config import RestartPolicy, StreamJob
from dccd_actors.exchanges._base import BaseAdapter
from dccd_actors.storage.reader import Store

__all__ = ["Child", "last_stored_trade", "new_adapter"]

logger = logging.getLogger("dccd_actors.manager")

_RESTART_CAUSES: Final = ("disconnect", "stale", "seq_gap", "checksum", "resync")


@dataclass
class Child:
    """One stream across its generations (restarts), as the manager supervises it."""

    key: StreamKey
    job: StreamJob
    backoff: Backoff
    adapter: BaseAdapter
    previous: pykka.ActorRef[Any] | None = None  # the last generation, until it is gone
    dead_since: float = 0.0  # when polling first found the actor dead without a notice
    gen: int = 0
    ref: pykka.ActorRef[Any] | None = None
    state: str = "starting"
    since: float = field(default_factory=time.time)
    start_at: float = 0.0
    restarts: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    last_exit_cause: str = ""
    stats: StreamStats = field(default_factory=StreamStats)
    earlier: StreamStats = field(default_factory=StreamStats)  # summed over past generations
    last_heartbeat: float = field(default_factory=time.monotonic)
    pending_gap: PendingGap | None = None

    def status_row(self, now_ns: int, now: float) -> StreamStatus:
        """This stream's row of ``Collector.status()``: counters summed over generations."""
        stats = add_stats(self.earlier, self.stats)
        waiting = self.state in ("backoff", "parked")
        return stream_row(
            stats,
            exchange=self.key[0],
            pair=self.key[1],
            state=self.state,
            gen=self.gen,
            restarts=self.restarts,
            since=self.since,
            consecutive_errors=self.consecutive_errors,
            last_error=stats.last_venue_error or self.last_error,
            last_exit_cause=self.last_exit_cause,
            last_frame_age_s=(now_ns - stats.last_frame_ns) / 1e9 if stats.last_frame_ns else None,
            next_retry_in_s=max(0.0, self.start_at - now) if waiting else None,
        )

    def schedule_restart(
        self,
        policy: RestartPolicy,
        cause: str,
        error: str,
        last_frame_ns: int,
        open_gap: PendingGap | None = None,
        planned: bool = False,
    ) -> bool:
        """Record that this generation ended and when the next one starts.

        A venue's planned reconnect starts again at once; a failure waits out the
        backoff, or parks the stream after too many restarts. The gap opened here (or
        the one the generation handed over) lasts until the next one's data flows.
        True when a failure was counted, so the manager reviews its alerts.
        """
        now = time.monotonic()
        cause = cause if cause in _RESTART_CAUSES else "disconnect"
        self.previous, self.ref = self.ref, None
        self.restarts += 1
        self.last_error, self.last_exit_cause = error, cause
        start = last_frame_ns or self.stats.last_frame_ns or time.time_ns()
        if self.pending_gap is None:
            self.pending_gap = open_gap or (start, cause, error[:150])
        if planned:  # a venue's maintenance notice: no failure, so no backoff and no parking
            self.state, self.start_at = "backoff", now
            logger.info("%s reconnecting at the venue's request: %s", self.key, error)
            return False
        self.consecutive_errors += 1
        delay = self.backoff.next_delay(now)
        if self.backoff.exceeded(now):
            self.state, self.start_at = "parked", now + policy.park_interval
            logger.error(
                "%s parked after %d restarts in %.0f s: %s",
                self.key,
                len(self.backoff.failures),
                policy.restart_window,
                error,
            )
        else:
            self.state, self.start_at = "backoff", now + delay
            logger.warning(
                "%s exited (%s: %s); restarting in %.2f s", self.key, cause, error, delay
            )
        return True


def new_adapter(job: StreamJob, pair: str, last_trade_id: int | None) -> BaseAdapter:
    """An adapter told the newest trade already stored, so venue replays are skipped."""
    adapter = make_adapter(job, pair)
    if last_trade_id is not None and "trades" in job.channels:
        adapter.resume_trades(last_trade_id)
    return adapter


def last_stored_trade(root: str | Path, key: StreamKey) -> int | None:
    """The newest stored trade id of a stream, None when there is none or it is unreadable."""
    try:
        return Store(root).last_trade_id(*key)
    except OSError as exc:
        logger.warning("%s %s: stored trades unreadable (%s)", key[0], key[1], exc)
        return None
