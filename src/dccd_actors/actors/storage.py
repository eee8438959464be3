"""The storage actor: the one thread that writes HDF5, in message order."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pykka

from dccd_actors.actors._journal import journal_lines
from dccd_actors.actors._reader import start_ticker
from dccd_actors.actors.messages import Append, ChildExited, StorageStats, Tick
from dccd_actors.config import StorageConfig
from dccd_actors.storage.writer import SegmentWriter

__all__ = ["SealAll", "StorageActor"]

logger = logging.getLogger("dccd_actors.storage")


class SealAll:
    """Ask: seal every live segment now (they rotate into new ones); returns sealed paths."""


class StorageActor(pykka.ThreadingActor):
    """Appends batches to live segments, rotates and seals them; seals everything on stop."""

    use_daemon_thread = True

    def __init__(
        self,
        *,
        manager: pykka.ActorRef[Any],
        config: StorageConfig,
        gen: int,
        slow_down: float = 0.0,
    ) -> None:
        super().__init__()
        self.manager, self.config, self.gen = manager, config, gen
        self.writer: SegmentWriter | None = None
        self._appends = 0
        self._last_error = ""
        self._stop_ticker = threading.Event()
        self._exited = False
        self._slow_down = slow_down  # test hook: seconds added to every append

    def on_start(self) -> None:
        try:
            self.writer = SegmentWriter(
                Path(self.config.local_path), self.config.rotation, self.config.compression
            )
            self.writer.recover()
        except Exception as exc:
            self._report("failed", repr(exc))
            self.stop()
            return
        start_ticker(self.actor_ref, 1.0, self._stop_ticker, "storage:ticker")

    def on_receive(self, message: Any) -> Any:
        try:
            return self._receive(message)
        except SystemExit as exc:  # pykka would stop every actor in the process on a BaseException
            raise RuntimeError(f"SystemExit({exc.code!r}) raised inside the storage actor") from exc

    def _receive(self, message: Any) -> Any:
        match message:
            case Append():
                return self._append(message)
            case Tick():
                if self.writer is not None:
                    self.writer.rotate_due()
            case SealAll():
                return [] if self.writer is None else self.writer.seal_all("sync")
            case "stats":
                return self._stats()
            case _:
                return super().on_receive(message)
        return None

    def _append(self, message: Append) -> int:
        if self.writer is None:
            return 0
        if self._slow_down:
            time.sleep(self._slow_down)
        self._appends += 1
        journal = journal_lines(message.journal) if message.journal else None
        return self.writer.append(message.key, message.info, message.datasets(), journal)

    def _stats(self) -> StorageStats:
        writer = self.writer
        return StorageStats(
            open_segments=0 if writer is None else len(writer.segments),
            sealed_segments=0 if writer is None else len(writer.sealed),
            rows_written=0 if writer is None else writer.rows_written,
            bytes_written=0 if writer is None else writer.bytes_written,
            appends=self._appends,
            backlog=_inbox_size(self.actor_inbox),
            last_error=self._last_error,
        )

    def on_stop(self) -> None:
        self._stop_ticker.set()
        if self.writer is not None:
            try:
                self.writer.seal_all("stop")
            except Exception as exc:
                logger.error("sealing on stop failed: %r", exc)
                self.writer.close()
        self._report("stopped", "")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        self._stop_ticker.set()
        if self.writer is not None:
            self.writer.close()
        self._report("failed", repr(exception_value))

    def _report(self, cause: str, error: str) -> None:
        if self._exited:
            return
        self._exited = True
        with contextlib.suppress(pykka.ActorDeadError):
            self.manager.tell(ChildExited("storage", self.gen, cause, error))


def _inbox_size(inbox: Any) -> int:
    """Messages waiting in an actor's inbox (a queue.Queue for ThreadingActor)."""
    return int(inbox.qsize())
