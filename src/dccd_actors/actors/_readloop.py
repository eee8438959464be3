"""One thread reads every stream's socket and hands the frames over in timed batches.

A thread per stream costs two thread wake-ups per socket read (the reader's and the
actor's), and at 50 streams in 10 ms bursts those wake-ups, not parsing, were most of
the CPU (PERF.md §7, benchmarks/RESULTS.md). Here one selector thread reads whichever
sockets are ready, stamps each read with its receive time at once, and tells each stream
actor what it has read at most every ``handoff_interval`` (or as soon as
``_HANDOFF_FRAMES`` are waiting). So ``ts_recv`` stays the time of the read while an
actor wakes a few times per second instead of once per read.

Backpressure stays per stream: a stream whose unprocessed frames exceed its limit is
taken out of the selector (the kernel buffer fills and TCP slows the venue) and put back
once its actor has caught up. Handshakes run in short-lived threads, so a venue that
hangs while connecting never holds the loop.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import pykka

from dccd_actors._ws import Chunk, Connection, FrameTooLarge, connect
from dccd_actors.actors._reader import tell_unless_dead
from dccd_actors.actors.messages import Connected, FramesReceived, ReaderDied
from dccd_actors.errors import ConnectionLost

__all__ = ["Inflight", "ReadLoop"]

logger = logging.getLogger(__name__)

_HANDOFF_FRAMES: Final = 2_000  # hand over early when this many frames wait (bounded batches)
_RESUME_READS: Final = 64  # socket reads at most when a paused stream resumes


class Inflight:
    """Frames handed to a stream actor and not yet processed.

    Two counters with one writer each (the loop adds, the actor marks done), so no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.added = 0  # written by the read loop only
        self.finished = 0  # written by the actor thread only
        self.last_recv_ns = 0  # written by the loop: the watchdog judges receipt, not backlog
        self.on_room: Callable[[], None] | None = None  # set by the loop while reading is paused

    @property
    def count(self) -> int:
        return self.added - self.finished

    def done(self, n: int) -> None:
        self.finished += n
        on_room = self.on_room
        if on_room is not None and self.added - self.finished <= self.limit:
            on_room()  # only while paused: wake the loop so that reading resumes at once


@dataclass(eq=False)
class _Watch:
    conn: Connection
    ref: pykka.ActorRef[Any]
    reader_id: int
    inflight: Inflight
    stop: threading.Event
    chunks: list[Chunk] = field(default_factory=list)
    pending: int = 0  # frames in chunks
    paused: bool = False


class ReadLoop:
    """The selector thread of one collector; ``open()`` adds a stream's connection.

    Example::

        >>> loop = ReadLoop(handoff_interval=0.1)  # doctest: +SKIP
        >>> loop.open(url, 8 << 20, actor_ref, 1, Inflight(20_000), threading.Event(), "btc")
        >>> loop.close()
    """

    def __init__(self, handoff_interval: float = 0.1, name: str = "dccd:read-loop") -> None:
        self._interval = handoff_interval
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self._arrivals: list[_Watch] = []
        self._watches: set[_Watch] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------------
    def open(
        self,
        url: str,
        max_frame_bytes: int,
        ref: pykka.ActorRef[Any],
        reader_id: int,
        inflight: Inflight,
        stop: threading.Event,
        name: str,
    ) -> None:
        """Connect in a thread, tell ``Connected``, then read the socket in the loop."""

        def run() -> None:
            try:
                conn = connect(url, max_frame_bytes=max_frame_bytes)
            except ConnectionLost as exc:
                tell_unless_dead(ref, ReaderDied(str(exc), reader_id))
                return
            if stop.is_set() or not tell_unless_dead(ref, Connected(conn, reader_id)):
                conn.close()
                return
            self._arrive(_Watch(conn, ref, reader_id, inflight, stop))

        threading.Thread(target=run, name=f"{name}:connect", daemon=True).start()

    def close(self, timeout: float = 2.0) -> None:
        """Stop the loop and close every connection it still reads."""
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(timeout)

    def _arrive(self, watch: _Watch) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._arrivals.append(watch)
        if closed:
            watch.conn.close()
        else:
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full wake-up pipe already means "wake up"
            self._wake_w.send(b"\0")

    # -- the loop thread ------------------------------------------------------------------
    def _run(self) -> None:
        next_handoff = time.monotonic() + self._interval
        while not self._closed:
            timeout = max(0.0, next_handoff - time.monotonic())
            for key, _ in self._selector.select(timeout):
                self._guarded(self._admit if key.data is None else self._read, key.data)
            now = time.monotonic()
            if now >= next_handoff:
                next_handoff = now + self._interval
                for watch in list(self._watches):
                    self._guarded(self._hand_off_due, watch)
        for watch in list(self._watches):
            self._drop(watch, ReaderDied("read loop stopped", watch.reader_id))
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _admit(self, _: object = None) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        with self._lock:
            arrivals, self._arrivals = self._arrivals, []
        for watch in [w for w in self._watches if w.paused]:  # woken by Inflight.on_room?
            self._resume(watch)
        for watch in arrivals:
            if not watch.conn.adopt():
                continue
            self._watches.add(watch)
            self._register(watch)
            self._read(watch)  # TLS may already hold decrypted bytes the selector cannot see

    def _read(self, watch: _Watch) -> None:
        if watch not in self._watches:  # dropped earlier in this round of the selector
            return
        try:
            chunks = watch.conn.read_ready()
        except ConnectionLost as exc:
            too_large = isinstance(exc, FrameTooLarge)
            self._drop(watch, ReaderDied(str(exc), watch.reader_id, too_large=too_large))
            return
        # the watchdog judges the connection: a ping from the venue proves it alive
        last_control = watch.conn.last_control_ns
        if not chunks:
            watch.inflight.last_recv_ns = max(watch.inflight.last_recv_ns, last_control)
            return
        watch.chunks.extend(chunks)
        watch.pending += sum(len(frames) for _, frames in chunks)
        watch.inflight.last_recv_ns = max(chunks[-1][0], last_control)
        if watch.pending >= _HANDOFF_FRAMES:
            self._hand_off(watch)
            if watch not in self._watches:
                return
        if watch.inflight.count + watch.pending > watch.inflight.limit:
            self._unregister(watch)
            watch.paused = True
            watch.inflight.on_room = self._wake

    def _guarded(self, step: Callable[[Any], None], watch: _Watch | None) -> None:
        """One step for one stream; a bug in it ends that stream's connection, not the loop."""
        try:
            step(watch)
        except Exception as exc:
            logger.exception("read loop: unexpected error")
            if watch is not None and watch in self._watches:
                self._drop(watch, ReaderDied(f"read loop error: {exc!r}", watch.reader_id))

    def _hand_off_due(self, watch: _Watch) -> None:
        if watch not in self._watches:
            return
        if watch.stop.is_set():
            self._drop(watch, None)
            return
        self._hand_off(watch)
        if watch in self._watches:
            self._resume(watch)

    def _resume(self, watch: _Watch) -> None:
        """Read a paused stream again once its actor has room; what is read goes at once."""
        if not watch.paused or watch.inflight.count > watch.inflight.limit:
            return
        watch.paused = False
        watch.inflight.on_room = None
        self._register(watch)
        for _ in range(_RESUME_READS):  # what the kernel held meanwhile, up to the limit again
            pending = watch.pending
            self._read(watch)
            if watch.paused or watch.pending == pending or watch not in self._watches:
                break
        if watch in self._watches:
            self._hand_off(watch)

    def _hand_off(self, watch: _Watch) -> None:
        if not watch.chunks:
            return
        chunks, watch.chunks = watch.chunks, []
        watch.inflight.added += watch.pending
        watch.pending = 0
        if not tell_unless_dead(watch.ref, FramesReceived(chunks, watch.reader_id)):
            self._drop(watch, None)

    def _drop(self, watch: _Watch, died: ReaderDied | None) -> None:
        """Stop reading a connection: frames read so far first, then the reason, then close."""
        if watch not in self._watches:
            return
        self._watches.discard(watch)
        if watch.chunks:
            self._hand_off(watch)
        if died is not None and not watch.stop.is_set():
            tell_unless_dead(watch.ref, died)
        if not watch.paused:
            self._unregister(watch)
        watch.conn.release()

    def _register(self, watch: _Watch) -> None:
        self._selector.register(watch.conn, selectors.EVENT_READ, watch)

    def _unregister(self, watch: _Watch) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(watch.conn)
