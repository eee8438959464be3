"""Local sealed segments as sync sees them: list, measure the backlog, prune what is safe.

Stdlib only. Which names are sealed segments is storage's rule, so the caller passes
it in (``is_sealed``), keeping this package free of storage imports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final

from dccd_actors.sync.ledger import Ledger

__all__ = ["SealedFiles", "backlog", "prune_local", "sealed_files"]

SealedFiles = dict[str, tuple[int, float]]
"""Relative posix path → (size in bytes, mtime in epoch s)."""

_META_DIR: Final = ".dccd"

logger = logging.getLogger("dccd_actors.sync")


def sealed_files(root: Path, is_sealed: Callable[[str], bool]) -> SealedFiles:
    """Sealed files ``root/{exchange}/{pair}/{name}`` accepted by ``is_sealed(name)``.

    Live segments, temporary files and the ``.dccd`` folder are never listed.

    Example::

        >>> sealed_files(Path("data"), lambda n: n.endswith(".h5") and ".live" not in n)
        {'binance/BTC-USDT/20260101T000000Z.h5': (81234, 1767225600.0)}   # doctest: +SKIP
    """
    found: SealedFiles = {}
    for path in root.glob("*/*/*"):
        rel = path.relative_to(root)
        if rel.parts[0] == _META_DIR or not is_sealed(path.name):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed since the listing
            continue
        found[rel.as_posix()] = (stat.st_size, stat.st_mtime)
    return found


def backlog(
    ledger: Ledger, remote: str, sealed: SealedFiles, now: float | None = None
) -> dict[str, Any]:
    """Files and bytes not yet verified on ``remote``, and the age of the oldest (``sync_lag_s``).

    Example::

        >>> backlog(ledger, "nas:", sealed)                                # doctest: +SKIP
        {'files_pending': 1, 'bytes_pending': 81234, 'sync_lag_s': 3600.0}
    """
    now = time.time() if now is None else now
    pending = [
        (size, mtime)
        for rel, (size, mtime) in sealed.items()
        if not ledger.is_verified(remote, rel, size)
    ]
    oldest = min((mtime for _, mtime in pending), default=now)
    return {
        "files_pending": len(pending),
        "bytes_pending": sum(size for size, _ in pending),
        "sync_lag_s": max(0.0, now - oldest),
    }


def prune_local(
    root: Path,
    sealed: SealedFiles,
    ledger: Ledger,
    remotes: Collection[str],
    keep_days: float,
    now: float | None = None,
) -> list[str]:
    """Delete sealed files older than ``keep_days`` that the ledger holds verified on EVERY remote.

    With no remotes nothing is deleted. Returns the relative paths removed.

    Example::

        >>> prune_local(Path("data"), sealed, ledger, ["nas:"], keep_days=7)  # doctest: +SKIP
        ['binance/BTC-USDT/20260101T000000Z.h5']
    """
    if not remotes:
        return []
    cutoff = (time.time() if now is None else now) - keep_days * 86_400
    removed = []
    for rel, (size, mtime) in sorted(sealed.items()):
        if mtime >= cutoff or not ledger.verified_everywhere(remotes, rel, size):
            continue
        try:
            (root / rel).unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("sync: cannot remove local %s: %s", rel, exc)
            continue
        removed.append(rel)
        logger.info("sync: removed local %s (verified on every remote)", rel)
    return removed
