"""Health outputs of the manager: ``metrics.json``, webhook alerts, storage's status figures.

Alerts are POSTed in background threads with a timeout, so a failing webhook
never slows the manager; the webhook URL never appears in logs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import pykka

from dccd_actors.actors.status import CollectorStatus, StreamStatus
from dccd_actors.actors.storage import _inbox_size
from dccd_actors.config import AlertConfig

__all__ = ["Alerter", "storage_status", "write_metrics"]

logger = logging.getLogger("dccd_actors.health")

_POST_TIMEOUT_S: Final = 5.0


def write_metrics(path: Path, status: CollectorStatus) -> None:
    """Write ``metrics.json`` atomically (readers never see a half-written file)."""
    now = time.time()
    body = {
        "written_at": now,
        "pid": os.getpid(),
        "collector": {"state": status.state, "error": status.error},
        "storage": status.storage,
        "sync": status.sync,
        "streams": [asdict(row) for row in status],
    }
    tmp = path.with_suffix(".json.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(body, indent=1, default=str))
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("cannot write %s: %s", path, exc)


def storage_status(
    storage: pykka.ActorRef[Any] | None, gen: int, backlog_warning: int
) -> dict[str, Any]:
    """Storage's figures in the status: its generation, whether it runs, and its backlog.

    The backlog is read from storage's inbox, not asked, so it is current even while
    storage is too busy to answer; past ``backlog_warning`` messages it is flagged.
    """
    status: dict[str, Any] = {"gen": gen, "running": storage is not None}
    if storage is not None:
        backlog = _inbox_size(storage.actor_inbox)
        status["backlog"] = backlog
        status["backlog_warning"] = backlog > backlog_warning
    return status


class Alerter:
    """Decides when to alert (errors, parked, failed, recovered) and posts to the webhook.

    Example::

        >>> alerter = Alerter(AlertConfig(webhook_url=None))
        >>> alerter.review(CollectorStatus([]))   # without a URL nothing is sent
        []
    """

    def __init__(self, config: AlertConfig, min_interval: float = 60.0) -> None:
        self.config = config
        self.min_interval = min_interval
        self.sent: list[str] = []
        self._alerted: dict[tuple[str, str], str] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self._failed_sent = False

    def review(self, status: CollectorStatus) -> list[str]:
        """Compare the status with what was already alerted; post new alerts; return them."""
        messages = [m for row in status if (m := self._review_stream(row))]
        if status.state == "failed" and not self._failed_sent:
            self._failed_sent = True
            messages.append(f"dccd_actors collector FAILED: {status.error}")
        for message in messages:
            self._post(message)
        return messages

    def _review_stream(self, row: StreamStatus) -> str | None:
        key = (row.exchange, row.pair)
        name = f"{row.exchange} {row.pair}"
        previous = self._alerted.get(key)
        if row.state == "parked" and previous != "parked":
            return self._mark(
                key, "parked", f"{name} PARKED after {row.restarts} restarts: {row.last_error}"
            )
        limit = self.config.max_consecutive_errors
        if row.consecutive_errors >= limit and previous is None:
            return self._mark(
                key,
                "failing",
                f"{name}: {row.consecutive_errors} consecutive errors: {row.last_error}",
            )
        if previous is not None and row.state == "running" and row.consecutive_errors == 0:
            del self._alerted[key]
            return f"{name} recovered"
        return None

    def _mark(self, key: tuple[str, str], kind: str, message: str) -> str | None:
        now = time.monotonic()
        if (
            now - self._last_sent.get(key, -1e9) < self.min_interval
            and self._alerted.get(key) == kind
        ):
            return None
        self._alerted[key] = kind
        self._last_sent[key] = now
        return message

    def _post(self, text: str) -> None:
        self.sent.append(text)
        url = self.config.webhook_url
        if not url:
            return
        body = json.dumps(
            {"text": text, "content": text}
        ).encode()  # Slack reads text, Discord content

        def post() -> None:
            request = urllib.request.Request(
                url, body, {"Content-Type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=_POST_TIMEOUT_S):
                    pass
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", None) or type(exc).__name__
                logger.warning("alert webhook failed (%s); alert was: %s", reason, text)

        threading.Thread(target=post, name="alert-webhook", daemon=True).start()
