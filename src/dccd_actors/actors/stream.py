"""The stream actor: one connection to one venue for one pair.

It owns the adapter (sans-IO protocol state), the connection, and the ticker and
REST-fetch helper threads; the collector's read loop reads its socket and hands the
frames over in timed batches (``_readloop.py``). Rows are buffered (``_rowbuffer.py``)
and handed to storage every ``flush_interval`` (``_output.py``); a resync or an outage
is a gap row (``_gaps.py``). Any failure ends the actor with a ``ChildExited`` to the
manager, which owns restarts.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Final

import pykka

from dccd_actors import _ws
from dccd_actors.actors._gaps import OpenGap, PendingGap
from dccd_actors.actors._journal import Journal
from dccd_actors.actors._output import StreamOutput
from dccd_actors.actors._reader import SnapshotFetches, start_ticker
from dccd_actors.actors._readloop import Inflight, ReadLoop
from dccd_actors.actors._rowbuffer import RowBuffer
from dccd_actors.actors._streamstate import StreamCounters
from dccd_actors.actors.messages import (
    Connected,
    FramesReceived,
    ReaderDied,
    SnapshotFailed,
    SnapshotFetched,
    Tick,
)
from dccd_actors.actors.storage import _inbox_size
from dccd_actors.config import RestartPolicy, StreamJob
from dccd_actors.errors import ConnectionLost, ParseError
from dccd_actors.exchanges import adapter_class
from dccd_actors.exchanges._base import (
    MAX_AHEAD_NS,
    BaseAdapter,
    BookDeltas,
    BookInvalid,
    BookLevels,
    BookValid,
    Event,
    FetchSnapshot,
    Reconnect,
    Send,
    TradeRow,
    Trades,
    VenueError,
    from_the_future,
)
from dccd_actors.storage.segment import SegmentInfo

__all__ = ["PendingGap", "StreamActor", "make_adapter"]

logger = logging.getLogger("dccd_actors.stream")

_PING_INTERVAL_NS: Final = 20_000_000_000
_MAX_BUFFERED_ROWS: Final = 50_000


def make_adapter(job: StreamJob, pair: str) -> BaseAdapter:
    """The venue adapter for one pair of a job (raises ConfigError for a pair it cannot map)."""
    return adapter_class(job.exchange)(pair, job.channels, url=job.url, rest_url=job.rest_url)


class StreamActor(pykka.ThreadingActor):
    """Collects one (exchange, pair); see the module docstring."""

    use_daemon_thread = True

    def __init__(
        self,
        *,
        manager: pykka.ActorRef[Any],
        storage: pykka.ActorRef[Any],
        reads: ReadLoop,
        job: StreamJob,
        pair: str,
        gen: int,
        policy: RestartPolicy,
        flush_interval: float,
        pending_gap: PendingGap | None = None,
        tick_interval: float = 0.5,
        raw: bool = False,
        rotation: str = "daily",
        adapter: BaseAdapter | None = None,
        slow_down: float = 0.0,
    ) -> None:
        super().__init__()
        self._journal = Journal() if raw else None
        self.key = (job.exchange, pair)
        self.job, self.gen, self.policy = job, gen, policy
        self.manager, self.storage, self._reads = manager, storage, reads
        # the manager hands the same adapter to every generation, so trades a venue replays
        # on reconnect (snapshots, partials) are recognised; on_open resets connection state
        self.adapter = adapter or make_adapter(job, pair)
        venue_symbol = str(getattr(self.adapter, "symbol", pair))
        self.info = SegmentInfo(
            job.exchange,
            pair,
            venue_symbol,
            job.depth,
            float(job.time_step),
            ",".join(job.channels),
        )
        self.counters = StreamCounters(self.key)
        self._tick_interval = min(tick_interval, flush_interval / 2)
        self._stop_threads = threading.Event()
        self._inflight = Inflight(policy.max_inflight_frames)
        self._conn: _ws.Connection | None = None
        self._rows = RowBuffer(self.key, self.info, job.depth, self._journal)
        self._gap = OpenGap(self._rows, self.counters, pending_gap, book="book" in job.channels)
        self._out = StreamOutput(
            key=self.key,
            gen=gen,
            job=job,
            rows=self._rows,
            counters=self.counters,
            adapter=self.adapter,
            storage=storage,
            manager=manager,
            flush_interval=flush_interval,
            rotation=rotation,
        )
        self._held = 0
        self._slow_down = slow_down  # fault injection: seconds added to every batch of frames
        self._last_ts_recv = 0
        self._fetches = SnapshotFetches(self.actor_ref, self._stop_threads)
        self._exited = False
        self._connected_ns = 0
        self._connect_started_ns = 0
        self._last_ping_ns = time.time_ns()

    # -- lifecycle ----------------------------------------------------------------
    def on_start(self) -> None:
        name = f"{self.key[0]}:{self.key[1]}#{self.gen}"
        start_ticker(self.actor_ref, self._tick_interval, self._stop_threads, f"{name}:ticker")
        self._connect_started_ns = time.time_ns()
        self._reads.open(
            self.adapter.url(),
            self.policy.max_frame_bytes,
            self.actor_ref,
            self.gen,
            self._inflight,
            self._stop_threads,
            f"{name}:reader",
        )

    def _on_connected(self, conn: _ws.Connection) -> None:
        if self._exited:
            conn.close()
            return
        self._conn = conn
        self._connected_ns = time.time_ns()
        self.counters.connected = True
        logger.info("%s:%s connected (generation %d)", self.key[0], self.key[1], self.gen)
        now = time.time_ns()
        if self._journal is not None:
            self._journal.opened(now, self.adapter.url())
        self._dispatch(self.adapter.on_open(), now)

    def on_stop(self) -> None:
        self._close()
        self._report("stopped", "")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        handover = self._gap.hand_over()
        self._close()
        self._report("disconnect", f"stream actor crashed: {exception_value!r}", handover)

    def _close(self) -> None:
        self._stop_threads.set()
        if self._conn is not None:
            self._conn.close()
        self._gap.close_at_stop()
        self._out.flush()

    def _report(
        self, cause: str, error: str, open_gap: PendingGap | None = None, planned: bool = False
    ) -> None:
        if self._exited:
            return
        self._exited = True
        self._out.exited(cause, error, open_gap, planned)

    def _exit(self, cause: str, detail: str, planned: bool = False) -> None:
        """End this generation; the manager restarts it (with backoff unless ``planned``)."""
        logger.warning("%s %s: %s", self.key, cause, detail)
        # an interval already open (a resync that led here) continues into the next generation,
        # so one outage stays one gap row
        handover = self._gap.hand_over()
        self._close()
        self._report(cause, detail, handover, planned)
        self.stop()

    # -- messages -----------------------------------------------------------------
    def on_receive(self, message: Any) -> Any:
        try:
            return self._receive(message)
        except SystemExit as exc:  # pykka would stop every actor in the process on a BaseException
            raise RuntimeError(f"SystemExit({exc.code!r}) raised inside the stream actor") from exc

    def _receive(self, message: Any) -> Any:
        match message:
            case FramesReceived():
                self._on_frames(message)
            case Tick():
                self._on_tick()
            case Connected(conn=conn, reader_id=reader_id):
                if reader_id == self.gen:
                    self._on_connected(conn)
            case ReaderDied(reason=reason, reader_id=reader_id, too_large=too_large):
                if reader_id == self.gen and not self._exited:
                    if too_large:
                        self.counters.count_malformed("too_large", reason)
                    self._exit("disconnect", reason)
            case SnapshotFetched(body=body, ts_recv=fetched_ns, fetch_id=fetch_id):
                if fetch_id == self._fetches.id:
                    ts_recv = self._monotonic(fetched_ns)
                    if self._journal is not None:
                        self._journal.rest(ts_recv, body)
                    self._guarded(
                        lambda: self.adapter.receive_snapshot(body, ts_recv), body, ts_recv
                    )
            case SnapshotFailed(reason=reason, fetch_id=fetch_id):
                if fetch_id == self._fetches.id:
                    self.counters.note_error(reason)
                    self._dispatch(self.adapter.snapshot_failed(reason), time.time_ns())
            case _:
                return super().on_receive(message)
        return None

    def _on_frames(self, message: FramesReceived) -> None:
        if message.reader_id != self.gen or self._exited:
            return
        if self._slow_down:
            time.sleep(self._slow_down)
        for stamp, frames in message.chunks:
            self._on_read(stamp, frames)
            if self._exited:
                break
        self._release(sum(len(frames) for _, frames in message.chunks))
        if self._rows.rows > _MAX_BUFFERED_ROWS:
            self._out.flush()
        # while frames flow, hand-offs (every policy.handoff_interval) keep flushes and book
        # samples on time; the slower ticker only has to cover quiet streams
        self._due_work(time.time_ns())

    def _on_read(self, stamp: int, frames: list[str | bytes]) -> None:
        ts_recv = self._monotonic(stamp)
        counters = self.counters
        counters.frames += len(frames)
        counters.last_frame_ns = ts_recv
        receive = self.adapter.receive
        journal = self._journal
        for frame in frames:  # the hot loop: what _guarded does, inline
            if journal is not None:
                journal.frame(ts_recv, frame)
            if type(frame) is not str:
                counters.count_malformed("binary", repr(frame[:200]))
                continue
            try:
                events = receive(frame, ts_recv)
            except ParseError as exc:
                counters.count_malformed(exc.kind, exc.excerpt)
                continue
            except Exception as exc:
                counters.count_malformed("adapter_error", f"{exc!r} on {frame[:160]!r}")
                continue
            if events:
                self._dispatch(events, ts_recv)
                if self._exited:
                    return

    def _monotonic(self, ts_recv: int) -> int:
        """Receive times never go backwards within a stream (readers bisect on them): the
        REST fetch thread and the socket reader stamp independently and their tells can race."""
        self._last_ts_recv = max(self._last_ts_recv, ts_recv)
        return self._last_ts_recv

    def _release(self, frames: int) -> None:
        """Let the reader go on, unless storage is far behind: then hold it (TCP backpressure)."""
        self._held += frames
        if _inbox_size(self.storage.actor_inbox) <= self.policy.backlog_warning * 10:
            self._inflight.done(self._held)
            self._held = 0

    def _guarded(self, call: Any, frame: str, ts_recv: int) -> None:
        try:
            events = call()
        except ParseError as exc:
            self.counters.count_malformed(exc.kind, exc.excerpt)
            return
        except Exception as exc:
            self.counters.count_malformed("adapter_error", f"{exc!r} on {frame[:160]!r}")
            return
        if events:
            self._dispatch(events, ts_recv)

    def _dispatch(self, events: list[Event], ts_recv: int) -> None:
        for event in events:
            if type(event) is Trades:  # the common case first, without a match
                self._on_trades(event.rows, ts_recv)
                continue
            match event:
                case BookLevels():
                    if event.ts_event > ts_recv + MAX_AHEAD_NS:  # as for BookDeltas below
                        self.counters.count_malformed("future_timestamp", repr(event)[:200])
                        event = dataclasses.replace(event, ts_event=-1)
                    self._rows.add_levels(event)
                    self.counters.last_data_ns = ts_recv
                case BookDeltas(rows=rows):
                    if from_the_future(rows, ts_recv):
                        # the book moved, so the rows are kept; the implausible venue time is not
                        self.counters.count_malformed("future_timestamp", repr(rows[-1]))
                        rows = [(-1, *row[1:]) for row in rows]
                    self._rows.add_deltas(rows)
                    self.counters.last_data_ns = ts_recv
                case Send(text=text):
                    self._send(text)
                case FetchSnapshot(url=url):
                    self._fetches.start(url)
                case BookInvalid(cause=cause, detail=detail):
                    self.counters.resyncs += 1
                    self.counters.note_error(f"{cause}: {detail}")
                    self._gap.open(self.counters.last_data_ns or ts_recv, cause, detail)
                case BookValid(ts_recv=valid_ns):
                    self._fetches.succeeded()
                    self._gap.close(valid_ns, book_event=True)
                case Reconnect(cause=cause, detail=detail, planned=planned):
                    self._exit(cause, detail, planned)
                    return
                case VenueError(message=text):
                    self.counters.note_venue_error(text)

    def _on_trades(self, rows: list[TradeRow], ts_recv: int) -> None:
        if from_the_future(rows, ts_recv):
            self.counters.count_malformed("future_timestamp", repr(rows[0]))
            return
        self._rows.trades.extend(rows)
        self.counters.last_data_ns = ts_recv
        if self._gap.pending is not None:
            self._gap.close(ts_recv, book_event=False)

    def _send(self, text: str) -> None:
        if self._conn is None:
            return
        try:
            self._conn.send(text)
        except ConnectionLost as exc:
            self._exit("disconnect", str(exc))

    # -- time-driven work ---------------------------------------------------------
    def _on_tick(self) -> None:
        if self._exited:
            return
        now = time.time_ns()
        if self._conn is not None:
            self._keepalive(now)
        elif now - self._connect_started_ns > self.policy.stale_timeout * 1e9:
            self._exit("disconnect", "connection not established within stale_timeout")
        if self._exited:
            return
        self._out.rotate_if_due(now)
        self._due_work(now)
        if self._held:
            self._release(0)
        self._out.heartbeat(now, connected=self._conn is not None)

    def _due_work(self, now: int) -> None:
        """The book sample and the flush, if due (``StreamOutput``); none after the exit."""
        if not self._exited:
            self._out.due_work(now)

    def _keepalive(self, now: int) -> None:
        # a slow consumer is not a silent venue: frames read but not yet processed count too
        last = max(self.counters.last_frame_ns, self._inflight.last_recv_ns, self._connected_ns)
        if now - last > self.policy.stale_timeout * 1e9:
            self._exit("stale", f"no frame for {(now - last) / 1e9:.1f} s")
            return
        # frames read but not processed yet: the adapter's clock stays at the last frame it saw,
        # so a backlog here is never taken for a silent venue (its silence limits are short)
        behind = self._inflight.count > 0
        clock = max(self.counters.last_frame_ns, self._connected_ns) if behind else now
        self._dispatch(self.adapter.keepalive(min(now, clock)), now)
        if now - self._last_ping_ns > _PING_INTERVAL_NS and self._conn is not None:
            self._last_ping_ns = now
            try:
                self._conn.ping()
            except ConnectionLost as exc:
                self._exit("disconnect", str(exc))
