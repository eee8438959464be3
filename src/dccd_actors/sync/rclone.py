"""rclone for the sync actor: find it, build commands, run them with a timeout, redact output.

Stdlib only. One :class:`PushJob` copies an explicit list of sealed segments to one
remote with ``rclone copy --files-from-raw --immutable`` (never ``sync``, which deletes
remote files missing locally) and then verifies them with ``rclone check --one-way``,
sizes plus hashes where both sides share a hash. Only files that ``check`` reports as
matching count as verified.

Everything that leaves this module as text passes through :func:`redact`, because
rclone repeats a remote string (connection-string parameters, URL credentials
included) in its error messages.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

__all__ = ["PushJob", "PushResult", "find_rclone", "redact", "remote_secrets"]

# Secret-looking connection-string / env parameters: ``pass=…``, ``secret_access_key=…``,
# ``RCLONE_CONFIG_X_TOKEN=…``. Values may be quoted with ' or " (doubled to escape).
_SECRET_PARAM: Final = re.compile(
    r"(?i)(?P<key>[a-z0-9_-]*(?:pass|secret|token|key|auth|credential|sas_url|signature)"
    r"[a-z0-9_-]*\s*=\s*)(?P<value>'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^\s,:'\"]+)"
)
_URL_USERINFO: Final = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@", re.I
)
_MASK: Final = "***"
_MIN_LITERAL: Final = 4  # shorter secrets are masked by the patterns only, not everywhere
_NO_COMMON_HASH: Final = "No common hash found"
_LOG_PREFIX: Final = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\s+(?:[A-Z]+\s*:\s*)?")
_ERROR_CHARS: Final = 400
_MIN_RATE: Final = 1024 * 1024  # bytes/s a push is granted on top of its timeout


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask credentials: URL user:pass, secret-looking ``key=value`` parameters, known secrets.

    Example::

        >>> redact(":webdav,url='http://bob:hunter2@host/',pass=XyZ123:data")
        ":webdav,url='http://***@host/',pass=***:data"
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_LITERAL:
            text = text.replace(secret, _MASK)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{_MASK}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m['key']}{_MASK}", text)


def remote_secrets(remote: str) -> tuple[str, ...]:
    """The secret values written inside a remote string (to mask them literally anywhere).

    Example::

        >>> remote_secrets(":s3,secret_access_key='a,b':bucket")
        ('a,b',)
    """
    found: list[str] = []
    for match in _SECRET_PARAM.finditer(remote):
        value = match["value"]
        if value[:1] in "'\"" and len(value) >= 2:
            value = value[1:-1].replace(value[0] * 2, value[0])
        found.append(value)
    for match in _URL_USERINFO.finditer(remote):
        userinfo = match["userinfo"]
        found.append(userinfo)
        if ":" in userinfo:
            found.append(userinfo.split(":", 1)[1])
    return tuple(v for v in found if v)


def find_rclone(binary: str | None = None) -> str | None:
    """The rclone executable to use, or None when there is none (sync is then unavailable).

    ``binary`` is a path, a name looked up on PATH, or None for ``rclone`` on PATH.

    Example::

        >>> find_rclone("/nonexistent/rclone") is None
        True
    """
    name = binary or "rclone"
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


def copy_command(
    binary: str, files_from: Path, local: Path, remote: str, *, immutable: bool = True
) -> list[str]:
    """``rclone copy`` of exactly the listed files; ``--immutable`` refuses to overwrite.

    ``immutable=False`` is only for files whose own earlier push was interrupted: the
    remote copy may be our truncated upload, and rclone 1.60 writes local/sftp
    destinations in place.

    Example::

        >>> copy_command("rclone", Path("/t/l"), Path("/d"), "r:b")[:4]
        ['rclone', 'copy', '--files-from-raw=/t/l', '--immutable']
    """
    return [
        binary,
        "copy",
        f"--files-from-raw={files_from}",  # raw: no comment or whitespace processing
        *(["--immutable"] if immutable else []),
        "--no-traverse",  # a few new files into a big remote: do not list all of it
        "--ask-password=false",  # never wait on a prompt for an encrypted config
        "--",  # a remote string starting with '-' is still a path
        str(local),
        remote,
    ]


def check_command(
    binary: str, files_from: Path, local: Path, remote: str, report: Path
) -> list[str]:
    """``rclone check --one-way`` of the listed files; per-file results go to ``report``.

    Example::

        >>> check_command("rclone", Path("/l"), Path("/d"), "r:", Path("/c"))[1:3]
        ['check', '--one-way']
    """
    return [
        binary,
        "check",
        "--one-way",
        f"--files-from-raw={files_from}",
        f"--combined={report}",
        "--ask-password=false",
        "--",
        str(local),
        remote,
    ]


@dataclass(frozen=True)
class PushResult:
    """What one push achieved: the files verified on the remote (relative path → size).

    ``method`` says how they were verified: ``"hash"`` or ``"size"`` (the remote shares
    no hash with the local disk, so rclone compared sizes only). ``interrupted`` is
    True when rclone was killed (timeout, stop) or its state is unknown: the remote
    may then hold partial files.

    Example::

        >>> PushResult(True, {"a/b/x.h5": 10}, "hash", None, 0.5).summary()["bytes"]
        10
    """

    ok: bool
    verified: Mapping[str, int] = field(default_factory=dict)
    method: str | None = None
    error: str | None = None
    duration_s: float = 0.0
    interrupted: bool = False

    def summary(self) -> dict[str, Any]:
        """The per-remote summary returned by ``SyncNow``."""
        return {
            "ok": self.ok,
            "files": len(self.verified),
            "bytes": sum(self.verified.values()),
            "error": self.error,
            "duration_s": round(self.duration_s, 3),
            "verify": self.method,
        }


@dataclass(frozen=True)
class _Outcome:
    returncode: int | None
    stderr: str
    timed_out: bool = False
    cancelled: bool = False


class PushJob:
    """Copy then verify ``files`` (relative path → size) from ``local`` to ``remote``.

    :meth:`run` blocks its caller (a worker thread) for at most its budget plus the
    kill grace; the budget is ``timeout`` plus one second per MiB to push, so that a
    large daily segment on a slow link is not killed mid-upload at every attempt.
    :meth:`cancel` and :meth:`kill` may be called from any other thread and leave no
    rclone process behind. Files in ``resume`` (interrupted before) are copied
    without ``--immutable``.

    Example::

        >>> job = PushJob("rclone", Path("data"), "/mnt/backup", {"binance/BTC-USDT/x.h5": 10},
        ...               timeout=60)                                  # doctest: +SKIP
        >>> job.run().ok                                               # doctest: +SKIP
        True
    """

    def __init__(
        self,
        binary: str,
        local: Path,
        remote: str,
        files: Mapping[str, int],
        *,
        timeout: float,
        secrets: Iterable[str] = (),
        kill_grace: float = 2.0,
        resume: Collection[str] = (),
    ) -> None:
        self.binary, self.local, self.remote = binary, Path(local), remote
        self.files = dict(files)
        self.resume = set(resume) & set(self.files)
        self.budget = timeout + sum(self.files.values()) / _MIN_RATE
        self.kill_grace = kill_grace
        self.secrets = tuple(secrets) + remote_secrets(remote)
        self.result: PushResult | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._cancelled = False

    def run(self) -> PushResult:
        """Copy, then check; never raises. Sets :attr:`result` and :attr:`done`."""
        start = time.monotonic()
        try:
            result = self._push(start + self.budget)
        except Exception as exc:  # a worker thread must always report back
            error = self._clean(f"sync crashed: {exc!r}")
            result = PushResult(False, error=error, interrupted=True)
        self.result = replace(result, duration_s=time.monotonic() - start)
        self.done.set()
        return self.result

    def cancel(self) -> None:
        """Stop: start nothing new and send SIGTERM to a running rclone."""
        with self._lock:
            self._cancelled = True
            proc = self._proc
        if proc is not None:
            _signal(proc, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL a running rclone (after :meth:`cancel` had its grace period)."""
        self.cancel()
        with self._lock:
            proc = self._proc
        if proc is not None:
            _signal(proc, signal.SIGKILL)

    # -- internals ------------------------------------------------------------------
    def _push(self, deadline: float) -> PushResult:
        with tempfile.TemporaryDirectory(prefix="dccd-sync-") as tmp:
            listing, report = Path(tmp) / "files.txt", Path(tmp) / "check.txt"
            copies: list[_Outcome] = []
            for name, files, immutable in (
                ("new", set(self.files) - self.resume, True),
                ("resume", self.resume, False),
            ):
                if not files:
                    continue
                part = Path(tmp) / f"{name}.txt"
                part.write_text("".join(f"{rel}\n" for rel in sorted(files)))
                command = copy_command(
                    self.binary, part, self.local, self.remote, immutable=immutable
                )
                copies.append(self._run(command, deadline))
                if copies[-1].timed_out or copies[-1].cancelled:
                    return PushResult(
                        False, error=self._failure("copy", copies[-1]), interrupted=True
                    )
            listing.write_text("".join(f"{rel}\n" for rel in sorted(self.files)))
            command = check_command(self.binary, listing, self.local, self.remote, report)
            check = self._run(command, deadline)
            verified = self._matched(report)
        method = "size" if _NO_COMMON_HASH in check.stderr else "hash"
        if len(verified) == len(self.files) and not (check.timed_out or check.cancelled):
            return PushResult(True, verified, method)
        failed = next((c for c in copies if c.returncode), None)
        error = self._failure("copy", failed) if failed else self._failure("check", check)
        # Every copy ended on its own, so no partial upload: not "interrupted" even if
        # the check was; unverified files are simply pushed (immutably) again.
        return PushResult(False, verified, method if verified else None, error)

    def _matched(self, report: Path) -> dict[str, int]:
        try:
            lines = report.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return {}
        matched = {line[2:] for line in lines if line.startswith("= ")}
        return {rel: size for rel, size in self.files.items() if rel in matched}

    def _run(self, command: list[str], deadline: float) -> _Outcome:
        with self._lock:
            if self._cancelled:
                return _Outcome(None, "", cancelled=True)
            # A session of its own: a Ctrl-C in the user's terminal reaches Python, which
            # stops us in order; killpg also reaches helpers rclone started (sftp's ssh).
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=True,
            )
            self._proc = proc
        try:
            try:
                _, stderr = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                _signal(proc, signal.SIGTERM)
                try:
                    _, stderr = proc.communicate(timeout=self.kill_grace)
                except subprocess.TimeoutExpired:
                    _signal(proc, signal.SIGKILL)
                    _, stderr = proc.communicate()
        finally:
            with self._lock:
                self._proc = None
                cancelled = self._cancelled
        return _Outcome(proc.returncode, stderr or "", timed_out, cancelled and not timed_out)

    def _failure(self, step: str, outcome: _Outcome) -> str:
        if outcome.cancelled:
            return f"rclone {step} stopped: the sync actor is stopping"
        if outcome.timed_out:
            return f"rclone {step} timed out after {self.budget:.0f} s and was terminated"
        lines = [_LOG_PREFIX.sub("", line).strip() for line in outcome.stderr.splitlines()]
        errors = [
            text
            for line, text in zip(outcome.stderr.splitlines(), lines, strict=True)
            if " ERROR " in line and _NO_COMMON_HASH not in line and "Attempt " not in line
        ]
        fatal = [text for text in lines if text.startswith("Failed")]
        # The first per-file error names the file and the cause; a fatal line alone
        # (e.g. "Failed to create file system") is the whole story.
        detail = errors[0] if errors else (fatal[-1] if fatal else "")
        detail = detail or f"exit status {outcome.returncode}"
        if len(errors) > 1:
            detail += f" (+{len(errors) - 1} more errors)"
        return self._clean(f"rclone {step} failed: {detail}")

    def _clean(self, text: str) -> str:
        return redact(text, self.secrets)[:_ERROR_CHARS]


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    """Signal rclone's process group, unless it has already been reaped (pid reuse)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
