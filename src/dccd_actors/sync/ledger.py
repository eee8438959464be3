"""The sync ledger: which sealed files each remote holds, pushed *and* verified.

Stdlib only. Two JSON files under ``{local_path}/.dccd/``, each rewritten atomically
(temporary file, fsync, ``os.replace``, fsync of the folder):

``sync_ledger.json``
    ``{"version": 1, "remotes": {name: {"files": {relpath: {"size", "verified_at",
    "method"}}, "inflight": {relpath: since}, "last_attempt_at", "last_success_at",
    "last_error"}}}``. A file listed for a remote (with the same size) is never pushed
    there again, so a restart resumes where the last run stopped. ``inflight`` holds
    files whose push was interrupted (killed, or the process died): only those may
    overwrite what the remote holds, since it can be our own truncated upload.
``last_sync.json``
    dccd's fields (``last_sync_at``, ``remotes``) plus ``per_remote``: the latest push to
    each remote (``ok``, ``files``, ``bytes``, ``duration_s``, ``errors``, ``at``).

Remote names are already redacted (no credentials end up on disk here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["LAST_SYNC_FILE", "LEDGER_FILE", "Ledger", "RemoteInfo", "update_last_sync"]

LEDGER_FILE: Final = "sync_ledger.json"
LAST_SYNC_FILE: Final = "last_sync.json"
_VERSION: Final = 1

logger = logging.getLogger("dccd_actors.sync")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that a crash leaves either the old or the new file.

    Example::

        >>> write_json_atomic(Path("/tmp/x.json"), {"a": 1})       # doctest: +SKIP
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself must survive a power loss
    finally:
        os.close(fd)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if missing; a damaged file is set aside, not fatal."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        logger.warning("%s is unreadable (%s); moved to %s, starting afresh", path, exc, aside)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class RemoteInfo:
    """What the ledger knows about one remote besides its files."""

    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None


class Ledger:
    """Per remote: the files verified there (relative path, size, when, how).

    Not thread-safe: the sync actor's thread is its only user.

    Example::

        >>> ledger = Ledger(Path("/tmp/meta/sync_ledger.json"))   # doctest: +SKIP
        >>> ledger.record("nas:", {"binance/BTC-USDT/20260101T000000Z.h5": 123}, "hash", None)
        >>> ledger.pending("nas:", {"binance/BTC-USDT/20260101T000000Z.h5": 123})
        []
        >>> ledger.save()
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._remotes: dict[str, dict[str, Any]] = {}
        data = _read_json(self.path)
        remotes = data.get("remotes") if data else None
        if isinstance(remotes, dict):
            for name, entry in remotes.items():
                if isinstance(entry, dict) and isinstance(entry.get("files"), dict):
                    self._remotes[str(name)] = entry

    def _entry(self, remote: str) -> dict[str, Any]:
        entry = self._remotes.setdefault(
            remote,
            {"files": {}, "last_attempt_at": None, "last_success_at": None, "last_error": None},
        )
        if not isinstance(entry.get("inflight"), dict):
            entry["inflight"] = {}
        return entry

    def is_verified(self, remote: str, rel: str, size: int) -> bool:
        """True if ``rel`` with this ``size`` was pushed to and verified on ``remote``."""
        entry = self._remotes.get(remote)
        found = entry["files"].get(rel) if entry else None
        return isinstance(found, dict) and found.get("size") == size

    def pending(self, remote: str, files: Mapping[str, int]) -> list[str]:
        """The files (relative path → size) not yet verified on ``remote``, sorted."""
        return sorted(rel for rel, size in files.items() if not self.is_verified(remote, rel, size))

    def verified_everywhere(self, remotes: Iterable[str], rel: str, size: int) -> bool:
        """True if ``rel`` is verified on every one of ``remotes`` (and there is at least one)."""
        names = list(remotes)
        return bool(names) and all(self.is_verified(r, rel, size) for r in names)

    def info(self, remote: str) -> RemoteInfo:
        """Last attempt, last success and last error of ``remote``."""
        entry = self._remotes.get(remote, {})
        return RemoteInfo(
            entry.get("last_attempt_at"), entry.get("last_success_at"), entry.get("last_error")
        )

    def verified_count(self, remote: str) -> int:
        """How many files the ledger holds as verified on ``remote``."""
        return len(self._remotes.get(remote, {}).get("files", {}))

    def inflight(self, remote: str) -> set[str]:
        """Files whose push to ``remote`` was interrupted and not verified since."""
        return set(self._entry(remote)["inflight"])

    def start_push(self, remote: str, files: Iterable[str], at: float | None = None) -> None:
        """Mark ``files`` in flight before rclone starts (call :meth:`save` next).

        Marked first so that even a crash of this process leaves the mark behind.
        """
        at = time.time() if at is None else at
        inflight = self._entry(remote)["inflight"]
        for rel in files:
            inflight.setdefault(rel, at)

    def record(
        self,
        remote: str,
        verified: Mapping[str, int],
        method: str | None,
        error: str | None,
        at: float | None = None,
        *,
        pushed: Iterable[str] = (),
        interrupted: bool = False,
    ) -> None:
        """Record one push: the files verified on ``remote`` and its error (None = success).

        A push that rclone finished by itself clears the in-flight marks of every file in
        ``pushed``; an ``interrupted`` one keeps the marks of the files not verified.
        """
        at = time.time() if at is None else at
        entry = self._entry(remote)
        for rel in verified if interrupted else set(pushed) | set(verified):
            entry["inflight"].pop(rel, None)
        for rel, size in verified.items():
            entry["files"][rel] = {"size": size, "verified_at": at, "method": method}
        entry["last_attempt_at"] = at
        entry["last_error"] = error
        if error is None:
            entry["last_success_at"] = at

    def save(self) -> None:
        """Write the ledger atomically."""
        write_json_atomic(self.path, {"version": _VERSION, "remotes": self._remotes})


def update_last_sync(
    path: Path,
    remotes: Sequence[str],
    name: str,
    summary: Mapping[str, Any],
    at: float | None = None,
) -> None:
    """Merge the latest push to ``name`` into ``last_sync.json``.

    ``last_sync_at`` (dccd's field) is the end of the latest successful push to any remote.

    Example::

        >>> update_last_sync(Path(".dccd/last_sync.json"), ["nas:"], "nas:",
        ...                  {"ok": True, "files": 1, "bytes": 10, "duration_s": 0.2})  # doctest: +SKIP
    """
    at = time.time() if at is None else at
    data = _read_json(path) or {}
    per_remote = data.get("per_remote")
    per_remote = per_remote if isinstance(per_remote, dict) else {}
    per_remote = {k: v for k, v in per_remote.items() if k in remotes}
    error = summary.get("error")
    per_remote[name] = {
        "ok": bool(summary.get("ok")),
        "files": int(summary.get("files", 0)),
        "bytes": int(summary.get("bytes", 0)),
        "duration_s": float(summary.get("duration_s", 0.0)),
        "errors": [error] if error else [],
        "at": at,
    }
    data["per_remote"] = per_remote
    data["remotes"] = list(remotes)
    if summary.get("ok"):
        data["last_sync_at"] = at
    data.setdefault("last_sync_at", None)
    write_json_atomic(path, data)
