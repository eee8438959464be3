"""Pushes asked for by the user: the ``SyncNow`` ask, ``request_sync``, and their replies.

The sync actor must keep answering while rclone runs, so a ``SyncNow`` is answered at
once with a future; a ``Request`` collects the summary of each remote's push started for
it and sets that future when the last one has ended. ``dccd_actors.actors.sync``
re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import pykka

__all__ = ["Request", "Summary", "SyncNow", "request_sync"]

Summary = dict[str, dict[str, Any]]
_ASK_TIMEOUT: Final = 2.0


@dataclass(frozen=True, slots=True)
class SyncNow:
    """Ask: push every remote now. The reply is a future of the per-remote summary.

    The actor must keep answering while a push runs, so it cannot hold the reply
    until rclone ends; it replies at once with a ``pykka.ThreadingFuture`` that is
    set when every remote's push started for this request has ended.
    :func:`request_sync` does both steps.

    Example::

        >>> summary = sync_ref.ask(SyncNow(), timeout=2).get(timeout=600)   # doctest: +SKIP
        >>> summary["nas:crypto"]["ok"]                                     # doctest: +SKIP
        True
    """


def request_sync(ref: pykka.ActorRef[Any], timeout: float = 600.0) -> Summary:
    """From the user's thread: ask ``SyncNow`` and wait for the per-remote summary.

    Raises ``pykka.Timeout`` after ``timeout`` s and ``pykka.ActorDeadError`` if the
    actor is not running.

    Example::

        >>> request_sync(sync_ref)["/mnt/backup"]["files"]                  # doctest: +SKIP
        3
    """
    future: pykka.Future[Summary] = ref.ask(SyncNow(), block=True, timeout=_ASK_TIMEOUT)
    return future.get(timeout=timeout)


@dataclass
class Request:
    """One ``SyncNow`` waiting on the remotes in ``remaining``; answered when none is left."""

    future: pykka.ThreadingFuture[Summary]
    remaining: set[str]
    results: Summary = field(default_factory=dict)

    def add(self, name: str, summary: dict[str, Any]) -> None:
        self.results[name] = summary
        self.remaining.discard(name)
        if not self.remaining:
            self.future.set(dict(self.results))
