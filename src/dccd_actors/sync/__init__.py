"""Pushing sealed segments to rclone remotes: commands and results (``rclone``), the ledger.

Stdlib only; the actor that drives it lives in :mod:`dccd_actors.actors.sync`.

Example::

    >>> from dccd_actors.sync import redact
    >>> redact("http://user:pw@nas.local/data")
    'http://***@nas.local/data'
"""

from __future__ import annotations

from dccd_actors.sync.ledger import LAST_SYNC_FILE, LEDGER_FILE, Ledger, update_last_sync
from dccd_actors.sync.rclone import PushJob, PushResult, find_rclone, redact, remote_secrets

__all__ = [
    "LAST_SYNC_FILE",
    "LEDGER_FILE",
    "Ledger",
    "PushJob",
    "PushResult",
    "find_rclone",
    "redact",
    "remote_secrets",
    "update_last_sync",
]
