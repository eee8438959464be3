"""The public face: :class:`Collector` runs the actors; :func:`open_store` reads the files."""

from __future__ import annotations

import atexit
import fcntl
import logging
import logging.handlers
import os
import sys
import threading
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import pykka

from dccd_actors.actors.manager import AddStream, ManagerActor, StopChildren
from dccd_actors.actors.status import CollectorStatus
from dccd_actors.actors.storage import SealAll
from dccd_actors.actors.stream import make_adapter
from dccd_actors.actors.sync import request_sync
from dccd_actors.config import CollectorConfig, StreamJob
from dccd_actors.errors import CollectorFailed, ConfigError, StorageError
from dccd_actors.storage.layout import META_DIR
from dccd_actors.storage.reader import Store

__all__ = ["Collector", "open_store"]

logger = logging.getLogger("dccd_actors")

_ASK_TIMEOUT = 2.0
_live_collectors: weakref.WeakSet[Collector] = weakref.WeakSet()


def _ask(ref: pykka.ActorRef[Any], message: object, timeout: float = _ASK_TIMEOUT) -> Any:
    """Ask from the user's thread, always with a timeout."""
    return ref.ask(message, block=True, timeout=timeout)


def open_store(path: str | Path) -> Store:
    """Open a data folder for reading (sealed and live segments).

    Example::

        >>> store = open_store("data")                             # doctest: +SKIP
        >>> trades = store.trades("binance", "BTC/USDT")            # doctest: +SKIP
        >>> trades["price"].mean()                                  # doctest: +SKIP
    """
    return Store(path)


class Collector:
    """Runs the collection in background threads; ``start()`` returns at once.

    Example::

        >>> cfg = CollectorConfig(storage=StorageConfig(local_path="data"),
        ...                       stream_jobs=[StreamJob("binance", ["BTC/USDT"], ["trades", "book"])])  # doctest: +SKIP
        >>> with Collector(cfg) as c:                               # doctest: +SKIP
        ...     time.sleep(10); print(c.status())
    """

    def __init__(self, config: CollectorConfig, **manager_options: Any) -> None:
        if not isinstance(config, CollectorConfig):
            raise ConfigError(f"config={config!r} is invalid: expected a CollectorConfig")
        for job in config.stream_jobs:  # a pair a venue cannot map fails here, not in a thread
            for pair in job.pairs:
                make_adapter(job, pair)
        self.config = config
        self._manager_options = manager_options
        self._manager: pykka.ActorRef[Any] | None = None
        self._lock_file: TextIO | None = None
        self._summary: dict[str, str] | None = None
        self._final_status: CollectorStatus | None = None
        self._stop_lock = threading.Lock()
        self._log_handler: logging.Handler | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> Collector:
        """Start storage and every stream in background threads; returns self."""
        if self._manager is not None:
            return self
        self._lock_folder()
        self._summary = None
        if self.config.log_file:
            self._log_handler = _file_log(
                Path(self.config.storage.local_path) / META_DIR / "dccd_actors.log"
            )
        self._manager = ManagerActor.start(self.config, **self._manager_options)
        _live_collectors.add(self)
        return self

    def stop(self, timeout: float | None = None) -> dict[str, str]:
        """Stop streams (in parallel), then storage, which seals every segment.

        Idempotent; returns per child ``stopped`` or ``stop_timeout``.
        """
        with self._stop_lock:
            if self._manager is None:
                return dict(self._summary or {})
            timeout = self.config.policy.stop_timeout if timeout is None else timeout
            manager, self._manager = self._manager, None
            summary: dict[str, str] = {}
            try:
                self._final_status = _ask(manager, "status")
                wait = timeout + self.config.policy.seal_timeout + 30
                summary = _ask(manager, StopChildren(timeout), wait)
                self._final_status = _ask(manager, "status")
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                logger.error("collector stop incomplete: %r", exc)
            finally:
                manager.stop(block=True, timeout=timeout)
                self._unlock_folder()
                _live_collectors.discard(self)
                if self._log_handler is not None:
                    logging.getLogger("dccd_actors").removeHandler(self._log_handler)
                    self._log_handler.close()
                    self._log_handler = None
            self._summary = summary
            return dict(summary)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._manager is not None and self._manager.is_alive()

    # -- control --------------------------------------------------------------------
    def status(self) -> CollectorStatus:
        """One row per stream (state, frames, trades, book rows, gaps, restarts, last frame age…)."""
        if self._manager is None:
            return self._final_status or CollectorStatus([], "stopped")
        try:
            status: CollectorStatus = _ask(self._manager, "status")
        except pykka.ActorDeadError:
            return self._final_status or CollectorStatus([], "stopped")
        return status

    def wait(self, timeout: float | None = None) -> CollectorStatus:
        """Block until the collector stops or fails (or ``timeout``); raise if it failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            status = self.status()
            if status.state == "failed":
                raise CollectorFailed(status.error or "collector failed")
            if status.state == "stopped" or not self.running:
                return status
            time.sleep(0.05)
        return self.status()

    def add_stream(self, job: StreamJob) -> None:
        """Start collecting another job's pairs while running."""
        if self._manager is None:
            raise RuntimeError("collector is not running; call start() first")
        for pair in job.pairs:
            make_adapter(job, pair)
        try:
            _ask(self._manager, AddStream(job))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def seal_now(self, timeout: float = 60.0) -> list[Path]:
        """Seal every live segment now; collection continues into new segments."""
        if self._manager is None:
            return []
        storage = _ask(self._manager, "storage_ref")
        if storage is None:
            raise StorageError("storage is not running")
        sealed: list[Path] = _ask(storage, SealAll(), timeout)
        return sealed

    def sync_now(self, timeout: float = 600.0) -> dict[str, Any]:
        """Seal live segments (collection goes on in new ones), push every sealed file not yet
        verified to each remote, and return ``{"sealed": [...], "remotes": {remote: summary}}``.

        Example::

            >>> c.sync_now()["remotes"]["/mnt/backup"]["ok"]   # doctest: +SKIP
            True
        """
        sealed = self.seal_now()
        if self._manager is None:
            return {"sealed": [], "remotes": {}}
        sync = _ask(self._manager, "sync_ref")
        remotes = request_sync(sync, timeout) if sync is not None else {}
        return {"sealed": [str(p) for p in sealed], "remotes": remotes}

    def sync_status(self) -> dict[str, Any]:
        """Per remote: state, last success, last error, files pending, sync lag."""
        if self._manager is None:
            return {}
        sync = _ask(self._manager, "sync_ref")
        return {} if sync is None else dict(_ask(sync, "stats"))

    def watch(self, seconds: float = 10.0, interval: float = 1.0) -> CollectorStatus:
        """Show live progress for ``seconds``: an updating table in Jupyter, lines elsewhere.

        Example::

            >>> c.watch(30)        # doctest: +SKIP
        """
        handle = _display_handle()
        deadline = time.monotonic() + seconds
        status = self.status()
        while True:
            status = self.status()
            if handle is not None:
                handle.update(_Html(status._repr_html_()))
            else:
                sys.stdout.write(_progress_line(status) + "\n")
                sys.stdout.flush()
            if time.monotonic() >= deadline or status.state != "running":
                return status
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    # -- one collector per folder -----------------------------------------------------
    def _lock_folder(self) -> None:
        meta = Path(self.config.storage.local_path) / META_DIR
        try:
            meta.mkdir(parents=True, exist_ok=True)
            handle = open(meta / "collector.lock", "w")  # noqa: SIM115 - held for the collector's life
        except OSError as exc:
            raise StorageError(
                f"cannot use data folder {self.config.storage.local_path}: {exc.strerror or exc}"
            ) from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise StorageError(
                f"another collector is already writing to {self.config.storage.local_path}"
            ) from None
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _unlock_folder(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __repr__(self) -> str:
        return f"Collector({len(self.config.stream_jobs)} jobs, {'running' if self.running else 'stopped'})"

    def _repr_html_(self) -> str:
        return self.status()._repr_html_()


def _file_log(path: Path) -> logging.Handler:
    """The opt-in rotating file log (10 MB x 5, as dccd had) on the package logger only."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=10 * 1024 * 1024, backupCount=5)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # the logger's level stays the user's choice: WARNING by default, INFO for lifecycle
    logging.getLogger("dccd_actors").addHandler(handler)
    return handler


class _Html:
    """Minimal object with an HTML repr for IPython's display."""

    def __init__(self, html: str) -> None:
        self.html = html

    def _repr_html_(self) -> str:
        return self.html


def _display_handle() -> Any:
    """An IPython display handle when running in a notebook kernel, else None."""
    try:
        import IPython
        import IPython.display
    except ImportError:
        return None
    get_ipython: Any = getattr(IPython, "get_ipython", None)
    display: Any = IPython.display.display
    shell = get_ipython() if get_ipython is not None else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return None
    return display(_Html(""), display_id=True)


def _progress_line(status: CollectorStatus) -> str:
    return " | ".join(
        f"{r.exchange}:{r.pair} {r.state} trades={r.trades} book={r.book_rows} gaps={r.gaps}"
        for r in status
    )


@atexit.register
def _stop_all_collectors() -> None:
    """A script that forgets ``stop()`` still seals its files on exit."""
    for collector in list(_live_collectors):
        try:
            collector.stop()
        except Exception:
            logger.exception("stopping a collector at exit failed")
