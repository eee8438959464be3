"""Helper threads beside an actor: the ticker and REST fetches (sockets: ``_readloop.py``)."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any, Final

import pykka

from dccd_actors.actors.messages import SnapshotFailed, SnapshotFetched, Tick

__all__ = ["SnapshotFetches", "start_fetch", "start_ticker", "tell_unless_dead"]

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


class SnapshotFetches:
    """One stream's REST snapshot fetches: only the newest one's answer counts (``id``).

    Repeated fetches back off (0.05 s doubling, at most 5 s), so a venue refusing the
    snapshot is not hammered; the stream calls ``succeeded`` once a book is valid.
    """

    def __init__(self, ref: pykka.ActorRef[Any], stop: threading.Event) -> None:
        self.ref, self.stop = ref, stop
        self.id = 0
        self.attempts = 0

    def start(self, url: str) -> None:
        """Fetch ``url`` after the current backoff; its answer supersedes every earlier one's."""
        self.id += 1
        delay = 0.0 if self.attempts == 0 else min(0.05 * 2**self.attempts, 5.0)
        self.attempts += 1
        start_fetch(self.ref, url, self.id, delay, self.stop)

    def succeeded(self) -> None:
        """The book is valid again: a later fetch starts at once."""
        self.attempts = 0


def tell_unless_dead(ref: pykka.ActorRef[Any], message: object) -> bool:
    """``ref.tell(message)``; False instead of ``ActorDeadError`` when the actor has stopped."""
    try:
        ref.tell(message)
        return True
    except pykka.ActorDeadError:
        return False
