"""The sync actor: every ``sync_interval`` s, push sealed segments to each rclone remote.

Each remote's push (``rclone copy`` then ``rclone check``) runs in a worker thread of
its own, so a remote that fails or hangs never delays another and the actor always
answers. Workers never touch the actor's state: they ``tell`` ``_PushDone`` and the
actor thread alone updates the ledger, ``last_sync.json`` and the local clean-up.

Ordinary rclone failures are expected: logged (redacted), kept in stats and the
ledger, retried at the next tick. Only unexpected exceptions crash the actor, which
then reports ``ChildExited("sync", gen, "failed", error)`` like storage does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pykka

from dccd_actors.actors._reader import start_ticker
from dccd_actors.actors._syncrequest import Request, Summary, SyncNow, request_sync
from dccd_actors.actors.messages import ChildExited, SyncStats, Tick
from dccd_actors.config import StorageConfig
from dccd_actors.storage.layout import META_DIR, SegmentName
from dccd_actors.sync.files import SealedFiles, backlog, prune_local, sealed_files
from dccd_actors.sync.ledger import LAST_SYNC_FILE, LEDGER_FILE, Ledger, update_last_sync
from dccd_actors.sync.rclone import PushJob, PushResult, find_rclone, redact, remote_secrets

__all__ = ["SyncActor", "SyncNow", "request_sync"]

logger = logging.getLogger("dccd_actors.sync")

_JOIN_AFTER_KILL: Final = 5.0


@dataclass(frozen=True, slots=True)
class _PushDone:
    name: str
    run_id: int


@dataclass
class _Remote:
    name: str  # redacted: safe in logs, stats, the ledger
    target: str = field(repr=False)  # as configured: may hold credentials
    job: PushJob | None = None
    thread: threading.Thread | None = None
    run_id: int = 0
    attached: list[Request] = field(default_factory=list)  # answered by the running push
    queued: list[Request] = field(default_factory=list)  # need a push started after it
    ticks_skipped: int = 0
    last_result: dict[str, Any] | None = None


class SyncActor(pykka.ThreadingActor):
    """Pushes sealed segments to every configured remote, verified, never blocking collection.

    Example::

        >>> ref = SyncActor.start(manager=manager_ref, config=storage_config, gen=1)  # doctest: +SKIP
        >>> request_sync(ref)                                                       # doctest: +SKIP
        {'/mnt/backup': {'ok': True, 'files': 2, 'bytes': 81234, 'error': None, ...}}
        >>> ref.ask("stats", timeout=2)["remotes"]["/mnt/backup"]["files_pending"]  # doctest: +SKIP
        0
    """

    use_daemon_thread = True

    def __init__(
        self,
        *,
        manager: pykka.ActorRef[Any],
        config: StorageConfig,
        gen: int,
        rclone: str | None = None,
        timeout: float = 300.0,
        stop_grace: float = 2.0,
    ) -> None:
        super().__init__()
        self.manager, self.config, self.gen = manager, config, gen
        self.root = Path(config.local_path).resolve()
        self.timeout, self.stop_grace = timeout, stop_grace
        self.binary = find_rclone(rclone)
        self._wanted = rclone or "rclone on PATH"
        self.secrets: tuple[str, ...] = ()
        self.remotes: dict[str, _Remote] = {}
        for remote in config.remotes:
            self.secrets += remote_secrets(remote.remote)
        for remote in config.remotes:
            name = redact(remote.remote, self.secrets)
            if name in self.remotes:  # same destination, at most other credentials
                logger.warning("sync: remote %s is listed twice; using the first", name)
            self.remotes.setdefault(name, _Remote(name, remote.remote))
        self.ledger: Ledger | None = None
        self.detail = ""
        self._stop_ticker = threading.Event()
        self._stopping = False
        self._exited = False

    # -- lifecycle ------------------------------------------------------------------
    def on_start(self) -> None:
        try:
            meta = self.root / META_DIR
            meta.mkdir(parents=True, exist_ok=True)
            self.ledger = Ledger(meta / LEDGER_FILE)
        except Exception as exc:
            self._report("failed", repr(exc))
            self.stop()
            return
        if not self.remotes:
            self.detail = "no remotes configured: sync is disabled"
        elif self.binary is None:
            self.detail = f"rclone not found ({self._wanted}): sync is unavailable"
        elif self.config.sync_interval <= 0:
            self.detail = "sync_interval is 0: periodic sync is disabled (sync_now still pushes)"
        if self.detail:  # said once, here; stats carry it from now on
            level = logging.WARNING if self.binary is None and self.remotes else logging.INFO
            logger.log(level, "%s", self.detail)
        if self.remotes and self.binary is not None and self.config.sync_interval > 0:
            start_ticker(
                self.actor_ref, self.config.sync_interval, self._stop_ticker, "sync:ticker"
            )
        self._publish()

    def on_receive(self, message: Any) -> Any:
        match message:
            case Tick():
                self._on_tick()
            case _PushDone(name=name, run_id=run_id):
                self._on_done(name, run_id)
            case SyncNow():
                return self._sync_now()
            case "stats":
                return self._stats()
            case _:
                return super().on_receive(message)
        return None

    def on_stop(self) -> None:
        try:
            self._shutdown(self.stop_grace, "the sync actor stopped")
        finally:  # the manager must hear of the exit even if recording the last push fails
            self._report("stopped", "")

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        error = self._redact(repr(exception_value))
        try:
            self._shutdown(0.0, f"the sync actor failed: {error}")
        finally:
            self._report("failed", error)

    def _publish(self) -> None:
        """Tell the manager the current figures (for status and metrics.json)."""
        if self.remotes:
            with contextlib.suppress(pykka.ActorDeadError):
                self.manager.tell(SyncStats(self.gen, self._stats()))

    def _report(self, cause: str, error: str) -> None:
        if self._exited:
            return
        self._exited = True
        with contextlib.suppress(pykka.ActorDeadError):
            self.manager.tell(ChildExited("sync", self.gen, cause, error))

    # -- pushes ---------------------------------------------------------------------
    def _on_tick(self) -> None:
        for remote in self.remotes.values():
            if remote.thread is not None:  # previous push still running: skip, not pile up
                remote.ticks_skipped += 1
                logger.debug("sync [%s]: previous push still running, tick skipped", remote.name)
            else:
                self._start(remote, [])

    def _sync_now(self) -> pykka.ThreadingFuture[Summary]:
        future: pykka.ThreadingFuture[Summary] = pykka.ThreadingFuture()
        if not self.remotes:
            future.set({})
            return future
        request = Request(future, set(self.remotes))
        for remote in self.remotes.values():
            if remote.thread is not None:  # its file list predates this request: push again
                remote.queued.append(request)
            else:
                self._start(remote, [request])
        return future

    def _start(self, remote: _Remote, requests: list[Request]) -> None:
        remote.run_id += 1
        remote.attached = requests
        if self._stopping:
            self._finish(remote, PushResult(False, error="the sync actor is stopping"), False)
            return
        if self.binary is None:
            error = f"rclone not found ({self._wanted})"
            self._finish(remote, PushResult(False, error=error), True)
            return
        sealed = _sealed(self.root)
        files = {
            rel: size
            for rel, (size, _) in sealed.items()
            if not self._ledger.is_verified(remote.name, rel, size)
        }
        if not files:
            self._finish(remote, PushResult(True), True)
            return
        resume = self._ledger.inflight(remote.name)
        self._ledger.start_push(remote.name, files)
        self._ledger.save()
        job = PushJob(
            self.binary,
            self.root,
            remote.target,
            files,
            timeout=self.timeout,
            secrets=self.secrets,
            kill_grace=self.stop_grace,
            resume=resume,
        )
        remote.job = job
        remote.thread = threading.Thread(
            target=_work,
            args=(job, self.actor_ref, _PushDone(remote.name, remote.run_id)),
            name=f"sync:{remote.name}"[:60],
            daemon=True,
        )
        logger.debug("sync [%s]: pushing %d files", remote.name, len(files))
        remote.thread.start()

    def _on_done(self, name: str, run_id: int) -> None:
        remote = self.remotes.get(name)  # an older run's notice (run_id) is stale: ignore it
        if remote and remote.run_id == run_id and remote.job and remote.job.result:
            self._finish(remote, remote.job.result, True)

    def _finish(self, remote: _Remote, result: PushResult, record: bool) -> None:
        pushed = remote.job.files if remote.job is not None else {}
        remote.job, remote.thread = None, None
        summary = result.summary()
        remote.last_result = summary
        if record:
            self._record(remote, result, summary, pushed)
        for request in remote.attached:
            request.add(remote.name, summary)
        remote.attached = []
        if remote.queued and not self._stopping:
            requests, remote.queued = remote.queued, []
            self._start(remote, requests)
        if not self._stopping:
            self._publish()

    def _record(
        self, remote: _Remote, result: PushResult, summary: dict[str, Any], pushed: Iterable[str]
    ) -> None:
        meta = self.root / META_DIR
        self._ledger.record(
            remote.name,
            result.verified,
            result.method,
            result.error,
            pushed=pushed,
            interrupted=result.interrupted,
        )
        self._ledger.save()
        update_last_sync(meta / LAST_SYNC_FILE, list(self.remotes), remote.name, summary)
        if result.error:
            logger.warning("sync [%s]: %s", remote.name, self._redact(result.error))
        elif result.verified:
            logger.info(
                "sync [%s]: %d files, %d bytes pushed and verified (%s) in %.1f s",
                remote.name,
                summary["files"],
                summary["bytes"],
                result.method,
                result.duration_s,
            )
        if (days := self.config.keep_local_days) is not None:  # only after verification
            prune_local(self.root, _sealed(self.root), self._ledger, list(self.remotes), days)

    # -- stop -----------------------------------------------------------------------
    def _shutdown(self, grace: float, reason: str) -> None:
        """Give running pushes ``grace`` s, then SIGTERM, then SIGKILL; answer every waiter."""
        self._stop_ticker.set()
        self._stopping = True
        running = [
            (r, r.job, r.thread)
            for r in self.remotes.values()
            if r.job is not None and r.thread is not None
        ]
        deadline = time.monotonic() + grace
        for _, _, thread in running:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [(job, thread) for _, job, thread in running if thread.is_alive()]
        for job, _ in late:
            job.cancel()
        deadline = time.monotonic() + max(grace, 0.5)
        for job, thread in late:
            if not job.done.wait(max(0.0, deadline - time.monotonic())):
                job.kill()
            thread.join(_JOIN_AFTER_KILL)
        for remote, job, thread in running:
            if thread.is_alive():
                logger.error("sync [%s]: worker did not end after SIGKILL", remote.name)
            elif job.result is not None and self.ledger is not None:
                self._finish(remote, job.result, True)  # finished in the grace period: keep it
        stopped = PushResult(False, error=reason).summary()
        for remote in self.remotes.values():
            for request in remote.attached + remote.queued:
                request.add(remote.name, stopped)
            remote.attached, remote.queued = [], []

    # -- stats ----------------------------------------------------------------------
    def _stats(self) -> dict[str, Any]:
        sealed, now = _sealed(self.root), time.time()
        remotes: dict[str, dict[str, Any]] = {}
        for remote in self.remotes.values():
            info = self._ledger.info(remote.name)
            remotes[remote.name] = {
                "state": self._state(remote),
                "last_success": info.last_success_at,
                "last_error": info.last_error,
                **backlog(self._ledger, remote.name, sealed, now),
                "files_verified": self._ledger.verified_count(remote.name),
                "ticks_skipped": remote.ticks_skipped,
                "last_result": remote.last_result,
            }
        states = {r["state"] for r in remotes.values()}
        return {
            "state": "running" if "running" in states else self._state(None),
            "detail": self.detail,
            "rclone": self.binary,
            "sync_interval": self.config.sync_interval,
            "remotes": remotes,
        }

    def _state(self, remote: _Remote | None) -> str:
        if remote is not None and remote.thread is not None:
            return "running"
        if not self.remotes:
            return "disabled"
        if self.binary is None:
            return "unavailable"
        return "disabled" if self.config.sync_interval <= 0 else "idle"

    @property
    def _ledger(self) -> Ledger:
        if self.ledger is None:  # on_start failed; the actor is stopping
            raise RuntimeError("sync ledger is not loaded")
        return self.ledger

    def _redact(self, text: str) -> str:
        return redact(text, self.secrets)


def _work(job: PushJob, ref: pykka.ActorRef[Any], done: _PushDone) -> None:
    """Worker thread body: run the push, then tell the actor (gone already: fine)."""
    job.run()
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(done)


def _sealed(root: Path) -> SealedFiles:
    return sealed_files(root, _is_sealed_name)


def _is_sealed_name(name: str) -> bool:
    """A sealed segment, or the sealed raw journal that travels with it."""
    if name.endswith(_JOURNAL_SUFFIX):
        name = name[: -len(_JOURNAL_SUFFIX)] + ".h5"
    parsed = SegmentName.parse(name)
    return parsed is not None and not parsed.live


_JOURNAL_SUFFIX = ".raw.jsonl.gz"
