"""How the manager stops every child: sync, then the streams together, then storage.

The order matters. Sync goes first so a running push gets its grace period and is
ended before anything else stops. The streams stop in parallel under one deadline and
flush their last rows to storage as they go, so storage stops last, with ``seal_timeout``
more to seal the segments. The manager keeps its own state (``stopping``, the refs it
drops, its ``state``); this module stops the actors and notes how each one ended.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import pykka

from dccd_actors.actors._children import Child

__all__ = ["stop_in_order"]

_SYNC_STOP_S: Final = 6.0


def stop_in_order(
    sync: pykka.ActorRef[Any] | None,
    children: Iterable[Child],
    storage: pykka.ActorRef[Any] | None,
    timeout: float,
    seal_timeout: float,
) -> dict[str, str]:
    """Stop the children in order; "stopped" or "stop_timeout" per child, by name.

    Each stream's record gets its outcome as its ``state``; a stream that was not
    running is "stopped" unless an earlier stop already timed out on it.
    """
    summary: dict[str, str] = {}
    if sync is not None:  # first: a running push gets its grace period, then is ended
        summary["sync"] = _wait(sync.stop(block=False), time.monotonic() + _SYNC_STOP_S)
    deadline = time.monotonic() + timeout
    stopping: list[tuple[Child, pykka.Future[Any]]] = []  # all asked first, then all awaited
    for child in children:
        if child.ref is not None and child.ref.is_alive():
            child.state = "stopping"
            stopping.append((child, child.ref.stop(block=False)))
        elif child.state != "stop_timeout":
            child.state = "stopped"
    for child, future in stopping:
        summary[f"{child.key[0]} {child.key[1]}"] = child.state = _wait(future, deadline)
    if storage is not None:
        storage_deadline = max(deadline, time.monotonic()) + seal_timeout
        summary["storage"] = _wait(storage.stop(block=False), storage_deadline)
    return summary


def _wait(future: pykka.Future[Any], deadline: float) -> str:
    try:
        future.get(timeout=max(0.01, deadline - time.monotonic()))
        return "stopped"
    except pykka.Timeout:
        return "stop_timeout"
