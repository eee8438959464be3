"""Real rclone on loopback for the sync tests: a WebDAV server, config files, small segments."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pykka

from dccd_actors.actors.messages import ChildExited, SyncStats

RCLONE = shutil.which("rclone") or "/usr/bin/rclone"
_STARTED = re.compile(r"started on \[?http://127\.0\.0\.1:(\d+)/")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a remote that is down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def obscure(secret: str) -> str:
    """rclone's reversible obscuring, as rclone.conf stores passwords."""
    out = subprocess.run(
        [RCLONE, "obscure", secret], check=True, capture_output=True, text=True, timeout=10
    )
    return out.stdout.strip()


def write_config(path: Path, sections: dict[str, dict[str, str]]) -> Path:
    """An rclone.conf with one ``[name]`` section per entry."""
    text = "".join(
        f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items()) + "\n"
        for name, options in sections.items()
    )
    path.write_text(text)
    return path


def webdav_section(port: int, user: str, password: str) -> dict[str, str]:
    return {
        "type": "webdav",
        "url": f"http://127.0.0.1:{port}/",
        "vendor": "other",
        "user": user,
        "pass": obscure(password),
    }


@contextmanager
def webdav_server(
    root: Path, *, user: str, password: str, port: int = 0, timeout: float = 15.0
) -> Iterator[int]:
    """``rclone serve webdav root`` on 127.0.0.1 with basic auth; yields its port.

    The server is terminated (then killed) on exit, whatever happened in the block.
    """
    root.mkdir(parents=True, exist_ok=True)
    empty_config = root.parent / f".serve-{root.name}.conf"
    empty_config.write_text("")
    proc = subprocess.Popen(
        [
            RCLONE,
            "serve",
            "webdav",
            str(root),
            f"--addr=127.0.0.1:{port}",
            f"--user={user}",
            f"--pass={password}",
            f"--config={empty_config}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:  # keep draining so the server never blocks on its log
            match = _STARTED.search(line)
            if match and not found:
                found.append(int(match.group(1)))
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(timeout) or not found:
            raise RuntimeError(f"rclone serve webdav did not start (exit {proc.poll()})")
        yield found[0]
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        reader.join(5)


def rclone_processes(fragment: str) -> list[int]:
    """Pids of running rclone processes whose command line mentions ``fragment``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "rclone" in cmdline and fragment in cmdline and " serve " not in cmdline:
            pids.append(int(entry.name))
    return pids


def write_segment(root: Path, rel: str, rows: int = 50, seed: int = 0, age_s: float = 0.0) -> Path:
    """A small sealed-looking HDF5 file at ``root/rel``; mtime ``age_s`` seconds ago."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        f.create_dataset("trades", data=rng.normal(size=rows), compression="gzip")
        f.attrs["exchange"] = rel.split("/")[0]
    if age_s:
        stat = path.stat()
        os.utime(path, (stat.st_atime - age_s, stat.st_mtime - age_s))
    return path


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative posix path → bytes), hidden folders excluded."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


class RecordingManager(pykka.ThreadingActor):
    """Stands in for the manager: records every ``ChildExited`` it is told, takes ``SyncStats``."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self.exits: list[ChildExited] = []

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            self.exits.append(message)
            return None
        if isinstance(message, SyncStats):  # figures for status; these tests ask the actor
            return None
        if message == "exits":
            return list(self.exits)
        return super().on_receive(message)
