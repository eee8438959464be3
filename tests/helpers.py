"""Small helpers shared by the end-to-end tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from dccd_actors import CollectorConfig, RestartPolicy, StorageConfig, StreamJob
from dccd_actors.exchanges._base import BookDeltas, BookLevels
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT

FAST_POLICY = RestartPolicy(
    min_backoff=0.05,
    max_backoff=0.4,
    jitter=0.2,
    reset_after=5.0,
    max_restarts=10,
    restart_window=60.0,
    park_interval=2.0,
    stale_timeout=5.0,
    stop_timeout=5.0,
)


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it is truthy; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s: {condition}")


def config(
    path: Path, jobs: list[StreamJob], policy: RestartPolicy = FAST_POLICY, **storage: Any
) -> CollectorConfig:
    storage.setdefault("flush_interval", 0.1)
    return CollectorConfig(
        storage=StorageConfig(local_path=path, **storage), stream_jobs=jobs, policy=policy
    )


def rebuild_book(deltas: np.ndarray) -> tuple[dict[float, float], dict[float, float]]:
    """Replay stored deltas from the last SNAPSHOT run: ``({bid: size}, {ask: size})``."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    in_snapshot = False  # inside a snapshot run that has not reached its LAST row
    for row in deltas:
        snap = bool(row["flags"] & FLAG_SNAPSHOT)
        if snap and not in_snapshot:
            bids.clear()
            asks.clear()
        in_snapshot = snap and not row["flags"] & FLAG_LAST
        side, price, size = int(row["side"]), float(row["price"]), float(row["size"])
        if side == 0:
            continue
        levels = bids if side == 1 else asks
        if size == 0.0:
            levels.pop(price, None)
        else:
            levels[price] = size
    return bids, asks


@contextmanager
def silent_tcp_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers (a hung venue)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def wait_for_book_samples(path: Path, exchange: str, pairs: list[str], count: int = 2) -> None:
    """Wait until every pair has ``count`` book samples stored (one per ``time_step``)."""
    from dccd_actors import open_store

    wait_until(
        lambda: all(len(open_store(path).book_snapshots(exchange, p)) >= count for p in pairs)
    )


def as_deltas(events: list[Any]) -> list[Any]:
    """Adapter events with each ``BookLevels`` replaced by the ``BookDeltas`` it stands for."""
    return [BookDeltas(e.rows()) if isinstance(e, BookLevels) else e for e in events]
