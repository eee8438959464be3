"""The raw journal of one stream: every input of the stream actor, in order.

With ``StorageConfig.raw`` on, the stream records each frame with its
``ts_recv``, each REST snapshot body, each (re)connection, each book sample
and each gap row. Replaying these through the same adapter re-derives the
segment exactly (``dccd_actors.reprocess``), e.g. after a parser fix.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Journal", "journal_lines"]

Entry = tuple[int, str, Any]


class Journal:
    """Entries buffered between flushes; storage appends them beside the segment."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def frame(self, ts_recv: int, text: str | bytes) -> None:
        if isinstance(text, bytes):
            self.entries.append((ts_recv, "binary", text.hex()))
        else:
            self.entries.append((ts_recv, "frame", text))

    def rest(self, ts_recv: int, body: str) -> None:
        self.entries.append((ts_recv, "rest", body))

    def opened(self, ts_recv: int, url: str) -> None:
        self.entries.append((ts_recv, "open", url))

    def sample(self, ts_recv: int) -> None:
        self.entries.append((ts_recv, "sample", True))

    def checkpoint(self, ts_recv: int) -> None:
        self.entries.append((ts_recv, "checkpoint", True))

    def gap(self, row: tuple[int, int, str, str]) -> None:
        self.entries.append((row[0], "gap", list(row)))

    def drain(self) -> list[Entry]:
        entries, self.entries = self.entries, []
        return entries


def journal_lines(entries: list[Entry]) -> str:
    """JSON lines; frames use the ``frame`` key, as the recorded fixtures do."""
    return "".join(
        json.dumps({"t": ts, kind: value}, separators=(",", ":")) + "\n"
        for ts, kind, value in entries
    )
