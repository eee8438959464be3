"""Helper threads beside an actor: the ticker and REST fetches (sockets: ``_readloop.py``)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any, Final

import pykka

from dccd_actors.actors.messages import SnapshotFailed, SnapshotFetched, Tick

__all__ = ["start_fetch", "start_ticker", "tell_unless_dead"]

_REST_TIMEOUT_S: Final = 10.0


def start_ticker(
    ref: pykka.ActorRef[Any], interval: float, stop: threading.Event, name: str
) -> threading.Thread:
    """Tell ``Tick`` every ``interval`` seconds until ``stop`` is set or the actor dies."""

    def run() -> None:
        while not stop.wait(interval):
            if not tell_unless_dead(ref, Tick()):
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
            tell_unless_dead(ref, SnapshotFetched(body, time.time_ns(), fetch_id))
        except (urllib.error.URLError, OSError, UnicodeDecodeError, ValueError) as exc:
            tell_unless_dead(ref, SnapshotFailed(f"GET {url}: {exc}", fetch_id))

    threading.Thread(target=run, name=f"fetch-{fetch_id}", daemon=True).start()


def tell_unless_dead(ref: pykka.ActorRef[Any], message: object) -> bool:
    """``ref.tell(message)``; False instead of ``ActorDeadError`` when the actor has stopped."""
    try:
        ref.tell(message)
        return True
    except pykka.ActorDeadError:
        return False
