"""File layout: ``{local_path}/{exchange}/{BASE-QUOTE}/{start}.live.h5`` and ``{start}.h5``.

Every path is built from validated parts and checked to stay inside the data folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from dccd_actors.errors import StorageError

__all__ = ["LIVE_SUFFIX", "SEALED_SUFFIX", "SegmentName", "list_segments", "pair_dir", "stream_dir"]

LIVE_SUFFIX: Final = ".live.h5"
SEALED_SUFFIX: Final = ".h5"
TMP_SUFFIX: Final = ".h5.tmp"
META_DIR: Final = ".dccd"
_TIME_FORMAT: Final = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:_(\d+))?(\.live\.h5|\.h5)$")
_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def pair_dir(pair: str) -> str:
    """``"BTC/USDT"`` → ``"BTC-USDT"``."""
    return pair.replace("/", "-")


def stream_dir(root: Path, exchange: str, pair: str) -> Path:
    """The folder of one stream's segments, refusing anything that could escape ``root``."""
    name = pair_dir(pair)
    if not _PART.match(exchange) or not _PART.match(name):
        raise StorageError(f"unsafe stream path parts: exchange={exchange!r} pair={pair!r}")
    path = root / exchange / name
    if root.resolve() not in path.resolve().parents:
        raise StorageError(f"stream path {path} escapes the data folder {root}")
    return path


@dataclass(frozen=True, order=True)
class SegmentName:
    """A segment file's start time (ns), collision index and whether it is live."""

    start_ns: int
    index: int
    live: bool

    @classmethod
    def parse(cls, filename: str) -> SegmentName | None:
        match = _NAME.match(filename)
        if match is None:
            return None
        start = datetime.strptime(match.group(1), _TIME_FORMAT).replace(tzinfo=UTC)
        return cls(
            int(start.timestamp()) * 1_000_000_000,
            int(match.group(2) or 0),
            match.group(3) == LIVE_SUFFIX,
        )

    def filename(self) -> str:
        stamp = datetime.fromtimestamp(self.start_ns // 1_000_000_000, UTC).strftime(_TIME_FORMAT)
        index = f"_{self.index}" if self.index else ""
        return f"{stamp}{index}{LIVE_SUFFIX if self.live else SEALED_SUFFIX}"

    def sealed(self) -> SegmentName:
        return SegmentName(self.start_ns, self.index, False)


def new_live_name(folder: Path, start_ns: int) -> SegmentName:
    """A live segment name for ``start_ns`` that collides with no existing segment."""
    second = start_ns // 1_000_000_000 * 1_000_000_000
    index = 0
    while True:
        name = SegmentName(second, index, True)
        if (
            not (folder / name.filename()).exists()
            and not (folder / name.sealed().filename()).exists()
        ):
            return name
        index += 1


def list_segments(folder: Path) -> list[tuple[SegmentName, Path]]:
    """Segments of one stream folder in time order (a sealed and a live twin: sealed wins)."""
    if not folder.is_dir():
        return []
    found: dict[tuple[int, int], tuple[SegmentName, Path]] = {}
    for path in folder.iterdir():
        name = SegmentName.parse(path.name)
        if name is None:
            continue
        key = (name.start_ns, name.index)
        if key not in found or found[key][0].live:
            found[key] = (name, path)
    return [found[k] for k in sorted(found)]


def iter_live_files(root: Path) -> list[Path]:
    """Every ``*.live.h5`` under the data folder (leftovers after a crash)."""
    return sorted(p for p in root.glob(f"*/*/*{LIVE_SUFFIX}") if META_DIR not in p.parts)
