"""The manager actor: starts, watches and restarts every child; answers status.

pykka has no supervision, so children report ``ChildExited`` themselves and the
manager also polls ``is_alive()`` every tick. Streams restart one-for-one with
backoff, park after too many restarts, and never disturb their siblings;
storage restarts rest-for-one (the streams restart with the new storage) and
escalates to ``failed`` after too many failures. The manager never asks a child.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka

from dccd_actors.actors._children import Child, last_stored_trade, new_adapter
from dccd_actors.actors._health import Alerter, storage_status, write_metrics
from dccd_actors.actors._reader import start_ticker
from dccd_actors.actors._readloop import ReadLoop
from dccd_actors.actors._stopping import stop_in_order
from dccd_actors.actors.messages import (
    ChildExited,
    Heartbeat,
    StreamKey,
    StreamStats,
    SyncStats,
    Tick,
    add_stats,
)
from dccd_actors.actors.policy import Backoff
from dccd_actors.actors.status import CollectorStatus
from dccd_actors.actors.storage import StorageActor
from dccd_actors.actors.stream import PendingGap, StreamActor
from dccd_actors.actors.sync import SyncActor
from dccd_actors.config import CollectorConfig, StreamJob
from dccd_actors.exchanges._base import BaseAdapter
from dccd_actors.storage.layout import META_DIR

__all__ = ["AddStream", "ManagerActor", "StopChildren"]

logger = logging.getLogger("dccd_actors.manager")

_NOTICE_GRACE_S = 0.5


@dataclass(frozen=True)
class AddStream:
    job: StreamJob


@dataclass(frozen=True)
class StopChildren:
    timeout: float


class ManagerActor(pykka.ThreadingActor):
    """Supervises storage and the streams of one collector."""

    use_daemon_thread = True

    def __init__(
        self,
        config: CollectorConfig,
        *,
        rng: random.Random | None = None,
        tick_interval: float = 0.05,
        storage_slow_down: float = 0.0,
        stream_slow_down: float = 0.0,
    ) -> None:
        super().__init__()
        self.config, self.policy = config, config.policy
        self.rng = rng or random.Random()
        self.children: dict[StreamKey, Child] = {}
        self.storage: pykka.ActorRef[Any] | None = None
        self.storage_gen = 0
        self.storage_failures: deque[float] = deque()
        self.storage_start_at: float | None = None
        self.sync: pykka.ActorRef[Any] | None = None
        self.sync_gen = 0
        self.sync_start_at: float | None = None
        self.sync_backoff = Backoff(self.policy, self.rng)
        self.state = "running"
        self.error = ""
        self.stopping = False
        self._tick_interval = tick_interval
        self._storage_slow_down = storage_slow_down  # fault injection for tests (slow disk)
        self._stream_slow_down = stream_slow_down  # fault injection for tests (slow consumer)
        self._stop_ticker = threading.Event()
        self._reads = ReadLoop(self.policy.handoff_interval)
        self._connects: dict[str, deque[float]] = {}
        self.alerter = Alerter(config.alerts)
        self._metrics_path = Path(config.storage.local_path) / META_DIR / "metrics.json"
        self._next_health = 0.0
        self._stored_trades: dict[StreamKey, int | None] = {}
        self.sync_stats: dict[str, Any] = {}  # the sync actor's latest figures (SyncStats)

    # -- lifecycle ------------------------------------------------------------------
    def on_start(self) -> None:
        # before storage starts sealing what a crash left, while nothing writes the folder
        self._stored_trades = {
            key: last_stored_trade(self.config.storage.local_path, key)
            for job in self.config.stream_jobs
            for key in ((job.exchange, pair) for pair in job.pairs)
        }
        self._start_storage()
        self._start_sync()
        for job in self.config.stream_jobs:
            self._add(job)
        start_ticker(self.actor_ref, self._tick_interval, self._stop_ticker, "manager:ticker")

    def on_stop(self) -> None:
        self._stop_ticker.set()
        if not self.stopping:
            self._stop_children(self.policy.stop_timeout)
        self._reads.close()
        write_metrics(self._metrics_path, self._status())  # with the children's final counters

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._stop_ticker.set()
        self.error = f"manager crashed: {exception_value!r}"
        self.state = "failed"
        self._stop_children(self.policy.stop_timeout)
        self._reads.close()

    # -- messages -------------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        match message:
            case Heartbeat():
                self._on_heartbeat(message)
            case SyncStats(gen=gen, stats=stats):
                if gen == self.sync_gen:
                    self.sync_stats = stats
            case ChildExited():
                self._on_exit(message)
            case Tick():
                self._on_tick()
            case "status":
                return self._status()
            case "storage_ref":
                return self.storage
            case "sync_ref":
                return self.sync
            case AddStream(job=job):
                return self._add(job)
            case StopChildren(timeout=timeout):
                return self._stop_children(timeout)
            case _:
                return super().on_receive(message)
        return None

    def _add(self, job: StreamJob) -> list[StreamKey]:
        added = []
        for pair in job.pairs:
            key = (job.exchange, pair)
            if key in self.children and self.children[key].state not in ("stopped", "stop_timeout"):
                raise ValueError(f"stream {job.exchange} {pair} is already being collected")
            self.children[key] = Child(
                key, job, Backoff(self.policy, self.rng), self._new_adapter(job, pair)
            )
            self._start_stream(self.children[key])
            added.append(key)
        return added

    # -- streams --------------------------------------------------------------------
    def _new_adapter(self, job: StreamJob, pair: str) -> BaseAdapter:
        key = (job.exchange, pair)
        if key in self._stored_trades:  # read at start, before storage ran
            return new_adapter(job, pair, self._stored_trades.pop(key))
        # a stream added at run time, or a fresh adapter for a hung generation
        return new_adapter(job, pair, last_stored_trade(self.config.storage.local_path, key))

    def _start_stream(self, child: Child) -> None:
        if child.previous is not None and child.previous.is_alive():
            # never two generations on one adapter; a hung one gets a fresh adapter instead
            if time.monotonic() - child.start_at < self.policy.stop_timeout:
                return
            child.adapter = self._new_adapter(child.job, child.key[1])
        child.previous = None
        if self.storage is None or not self._may_connect(child.key[0]):
            child.state, child.start_at = "backoff", time.monotonic() + 0.2
            return
        child.gen += 1
        child.dead_since = 0.0
        child.state, child.since, child.last_heartbeat = "starting", time.time(), time.monotonic()
        child.earlier = add_stats(child.earlier, child.stats)
        child.stats = StreamStats()
        child.ref = StreamActor.start(
            manager=self.actor_ref,
            storage=self.storage,
            reads=self._reads,
            job=child.job,
            pair=child.key[1],
            gen=child.gen,
            policy=self.policy,
            flush_interval=self.config.storage.flush_interval,
            pending_gap=child.pending_gap,
            raw=self.config.storage.raw,
            rotation=self.config.storage.rotation,
            adapter=child.adapter,
            slow_down=self._stream_slow_down,
        )
        child.pending_gap = None

    def _may_connect(self, exchange: str) -> bool:
        """A per-exchange limit on new connections per second, so restarts never burst."""
        now = time.monotonic()
        recent = self._connects.setdefault(exchange, deque())
        while recent and now - recent[0] > 1.0:
            recent.popleft()
        if len(recent) >= self.policy.connects_per_second:
            return False
        recent.append(now)
        return True

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        child = self.children.get(beat.key)
        if child is None or beat.gen != child.gen or child.state not in ("starting", "running"):
            return
        child.stats = beat.stats
        child.last_heartbeat = time.monotonic()
        if child.state == "starting" and beat.stats.connected:
            child.state, child.since = "running", time.time()
        flowing = beat.stats.last_data_ns or beat.stats.frames
        if flowing and child.backoff.healthy(time.monotonic()):
            child.consecutive_errors = 0
            self.alerter.review(self._status())

    def _on_exit(self, exited: ChildExited) -> None:
        if exited.key == "storage":
            self._on_storage_exit(exited)
            return
        if exited.key == "sync":
            self._on_sync_exit(exited)
            return
        child = self.children.get(exited.key)  # type: ignore[arg-type]
        if child is None or exited.gen != child.gen:
            return
        if exited.stats is not None:  # final counters, including the rows flushed on stop
            child.stats = exited.stats
        if self.stopping or child.state not in ("starting", "running"):
            return
        self._schedule_restart(
            child, exited.cause, exited.error, exited.last_frame_ns, exited.open_gap, exited.planned
        )

    def _schedule_restart(
        self,
        child: Child,
        cause: str,
        error: str,
        last_frame_ns: int,
        open_gap: PendingGap | None = None,
        planned: bool = False,
    ) -> None:
        if child.schedule_restart(self.policy, cause, error, last_frame_ns, open_gap, planned):
            self.alerter.review(self._status())

    # -- storage --------------------------------------------------------------------
    def _start_storage(self) -> None:
        self.storage_gen += 1
        self.storage = StorageActor.start(
            manager=self.actor_ref,
            config=self.config.storage,
            gen=self.storage_gen,
            slow_down=self._storage_slow_down,
        )
        self.storage_start_at = None

    def _on_storage_exit(self, exited: ChildExited) -> None:
        if exited.gen != self.storage_gen or self.stopping or exited.cause == "stopped":
            return
        now = time.monotonic()
        self.error = f"storage failed: {exited.error}"
        logger.error("storage failed: %s", exited.error)
        self.storage = None
        self.storage_failures.append(now)
        while self.storage_failures and now - self.storage_failures[0] > self.policy.storage_window:
            self.storage_failures.popleft()
        for child in self.children.values():  # rest-for-one: streams hold the dead storage ref
            if child.ref is not None and child.state in ("starting", "running"):
                child.ref.stop(block=False)
                child.previous, child.ref = child.ref, None
                child.pending_gap = (
                    child.stats.last_frame_ns or time.time_ns(),
                    "disconnect",
                    "storage restart",
                )
                child.state, child.start_at = "backoff", now + self.policy.min_backoff / 2
        if len(self.storage_failures) >= self.policy.storage_max_restarts:
            self.state = "failed"
            logger.error(
                "storage failed %d times in %.0f s; collector stopped",
                len(self.storage_failures),
                self.policy.storage_window,
            )
            self._stop_children(self.policy.stop_timeout)
            return
        self.storage_start_at = now + min(self.policy.min_backoff / 2, 10.0)

    # -- sync -----------------------------------------------------------------------
    def _start_sync(self) -> None:
        self.sync_gen += 1
        self.sync = SyncActor.start(
            manager=self.actor_ref, config=self.config.storage, gen=self.sync_gen
        )
        self.sync_start_at = None

    def _on_sync_exit(self, exited: ChildExited) -> None:
        """One-for-one: sync failing never touches collection; it restarts with backoff."""
        if exited.gen != self.sync_gen or self.stopping or exited.cause == "stopped":
            return
        logger.error("sync failed: %s", exited.error)  # already redacted by the sync actor
        self.sync = None
        self.sync_start_at = time.monotonic() + self.sync_backoff.next_delay(time.monotonic())

    # -- ticks ----------------------------------------------------------------------
    def _on_tick(self) -> None:
        if self.stopping or self.state == "failed":
            return
        now = time.monotonic()
        if (
            self.storage is None
            and self.storage_start_at is not None
            and now >= self.storage_start_at
        ):
            self._start_storage()
        elif self.storage is not None and not self.storage.is_alive():
            self._on_storage_exit(
                ChildExited("storage", self.storage_gen, "failed", "storage died")
            )
        if self.sync is None and self.sync_start_at is not None and now >= self.sync_start_at:
            self._start_sync()
        elif self.sync is not None and not self.sync.is_alive():
            self._on_sync_exit(ChildExited("sync", self.sync_gen, "failed", "sync actor died"))
        for child in self.children.values():
            self._check_child(child, now)
        if now >= self._next_health:
            self._next_health = now + 1.0
            self._report_health()

    def _report_health(self) -> None:
        status = self._status()
        write_metrics(self._metrics_path, status)
        self.alerter.review(status)
        if status.storage.get("backlog_warning"):
            logger.warning("storage backlog %s messages", status.storage.get("backlog"))

    def _check_child(self, child: Child, now: float) -> None:
        if child.state in ("backoff", "parked") and now >= child.start_at:
            self._start_stream(child)
        elif child.state in ("starting", "running") and child.ref is not None:
            if not child.ref.is_alive():
                # its own ChildExited may still be queued behind this tick: give it a moment
                child.dead_since = child.dead_since or now
                if now - child.dead_since > _NOTICE_GRACE_S:
                    self._schedule_restart(
                        child, "disconnect", "stream actor died without notice", 0
                    )
            elif now - child.last_heartbeat > self.policy.stale_timeout + 5.0:
                child.ref.stop(block=False)  # hung: its own watchdog could not run
                self._schedule_restart(child, "stale", "stream actor stopped answering", 0)

    def _status(self) -> CollectorStatus:
        now_ns, now = time.time_ns(), time.monotonic()
        rows = [child.status_row(now_ns, now) for child in self.children.values()]
        storage = storage_status(self.storage, self.storage_gen, self.policy.backlog_warning)
        return CollectorStatus(rows, self.state, self.error, storage, self.sync_stats)

    # -- stop -----------------------------------------------------------------------
    def _stop_children(self, timeout: float) -> dict[str, str]:
        """Stop sync, the streams in parallel under one deadline, then storage; the outcome."""
        self.stopping = True
        summary = stop_in_order(
            self.sync, self.children.values(), self.storage, timeout, self.policy.seal_timeout
        )
        self.sync = self.storage = None
        if self.state != "failed":
            self.state = "stopped"
        self._report_health()
        return summary
