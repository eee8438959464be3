"""Helper threads beside a stream actor: the socket reader, the ticker and REST fetches.

The reader hands frames over in batches (everything one socket read delivered),
so the actor hop costs one ``tell`` per read, not per frame (PERF.md §7). A
bounded in-flight count gives TCP backpressure when the actor falls behind; it
costs no lock unless the reader has to wait.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any, Final

import pykka

from dccd_actors._ws import FrameTooLarge, connect
from dccd_actors.actors.messages import (
    Connected,
    FramesReceived,
    ReaderDied,
    SnapshotFailed,
    SnapshotFetched,
    Tick,
)
from dccd_actors.errors import ConnectionLost

__all__ = ["Inflight", "start_fetch", "start_reader", "start_ticker"]

_REST_TIMEOUT_S: Final = 10.0


class Inflight:
    """Frames handed to the actor but not yet processed; the reader waits above ``limit``.

    Two counters with one writer each (the reader adds, the actor marks done), so the
    common case takes no lock; the condition is used only while the reader waits.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.added = 0  # written by the reader thread only
        self.finished = 0  # written by the actor thread only
        self.waits = 0
        self.last_recv_ns = 0  # written by the reader: the watchdog judges receipt, not backlog
        self._waiting = False
        self._cond = threading.Condition()

    @property
    def count(self) -> int:
        return self.added - self.finished

    def add(self, n: int, stop: threading.Event) -> None:
        self.added += n
        if self.added - self.finished <= self.limit:
            return
        with self._cond:
            self._waiting = True
            while self.added - self.finished > self.limit and not stop.is_set():
                self.waits += 1
                self._cond.wait(0.1)
            self._waiting = False

    def done(self, n: int) -> None:
        self.finished += n
        if self._waiting:
            with self._cond:
                self._cond.notify_all()


def start_reader(
    url: str,
    max_frame_bytes: int,
    ref: pykka.ActorRef[Any],
    reader_id: int,
    inflight: Inflight,
    stop: threading.Event,
    name: str,
) -> threading.Thread:
    """Connect, tell ``Connected``, then read frames until the connection ends.

    Connecting here rather than in the actor keeps the actor free to answer and
    to stop while a venue hangs during the handshake.
    """

    def run() -> None:
        try:
            conn = connect(url, max_frame_bytes=max_frame_bytes)
            if stop.is_set():
                conn.close()
                return
            ref.tell(Connected(conn, reader_id))
            while not stop.is_set():
                ts_recv, frames = conn.read_batch()
                ref.tell(FramesReceived(frames, ts_recv, reader_id))
                inflight.last_recv_ns = ts_recv
                inflight.add(len(frames), stop)
        except FrameTooLarge as exc:
            _tell(ref, ReaderDied(str(exc), reader_id, too_large=True))
        except ConnectionLost as exc:
            _tell(ref, ReaderDied(str(exc), reader_id))
        except pykka.ActorDeadError:
            pass
        except Exception as exc:
            _tell(ref, ReaderDied(f"reader crashed: {exc!r}", reader_id))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def start_ticker(
    ref: pykka.ActorRef[Any], interval: float, stop: threading.Event, name: str
) -> threading.Thread:
    """Tell ``Tick`` every ``interval`` seconds until ``stop`` is set or the actor dies."""

    def run() -> None:
        while not stop.wait(interval):
            if not _tell(ref, Tick()):
                return

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def start_fetch(
    ref: pykka.ActorRef[Any], url: str, fetch_id: int, delay: float, stop: threading.Event
) -> None:
    """GET ``url`` in a thread after ``delay`` s; tell the body or the failure."""

    def run() -> None:
        if stop.wait(delay):
            return
        try:
            with urllib.request.urlopen(url, timeout=_REST_TIMEOUT_S) as response:
                body = response.read().decode("utf-8")
            _tell(ref, SnapshotFetched(body, time.time_ns(), fetch_id))
        except (urllib.error.URLError, OSError, UnicodeDecodeError, ValueError) as exc:
            _tell(ref, SnapshotFailed(f"GET {url}: {exc}", fetch_id))

    threading.Thread(target=run, name=f"fetch-{fetch_id}", daemon=True).start()


def _tell(ref: pykka.ActorRef[Any], message: object) -> bool:
    try:
        ref.tell(message)
        return True
    except pykka.ActorDeadError:
        return False
