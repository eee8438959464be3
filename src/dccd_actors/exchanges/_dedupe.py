"""Trade-id memory shared by the venues whose snapshots replay recent trades."""

from __future__ import annotations

from collections import deque

from dccd_actors.exchanges._base import TradeRow

__all__ = ["SeenTradeIds"]


class SeenTradeIds:
    """Integer trade ids already seen, so that trades a venue replays are stored once.

    The first snapshot a collection sees is only remembered: it is history that an earlier
    run may already hold. Later snapshots (after a reconnect) store the ids not seen yet,
    filling what the outage missed.

    With ``increasing=True`` (a venue that promises growing ids, e.g. Kraken's sequential
    ``trade_id``) every id up to the newest of the first snapshot, and up to the newest one
    forgotten from the bounded memory, counts as seen. With ``increasing=False`` (ids with no
    promised order, e.g. Bitfinex) only the remembered ids count: there is no cut-off, so a
    live trade with a lower id than an earlier one is still stored.

    Example::

        >>> seen = SeenTradeIds()
        >>> row = lambda i: (0, 0, i, b"", 1.0, 1.0, 1, 0)
        >>> seen.fresh([row(1), row(2)], snapshot=True), [r[2] for r in seen.fresh([row(2), row(3)], snapshot=False)]
        ([], [3])
        >>> unordered = SeenTradeIds(increasing=False)
        >>> unordered.fresh([row(9)], snapshot=True), [r[2] for r in unordered.fresh([row(9), row(4)], snapshot=False)]
        ([], [4])
    """

    def __init__(self, keep: int = 10_000, *, increasing: bool = True) -> None:
        self._keep = keep
        self._increasing = increasing
        self._ids: set[int] = set()
        self._order: deque[int] = deque()
        self._floor = -1  # ids at or below it count as seen (increasing ids only)
        self._baselined = False

    def fresh(self, rows: list[TradeRow], *, snapshot: bool) -> list[TradeRow]:
        """The rows to store, in order, each id at most once."""
        if snapshot and not self._baselined:
            self._baselined = True
            if self._increasing:
                self._floor = max([self._floor, *(row[2] for row in rows)])
            else:
                for row in rows:
                    self._add(row[2])
            return []
        return [row for row in rows if self._add(row[2])]

    def _add(self, trade_id: int) -> bool:
        if trade_id <= self._floor or trade_id in self._ids:
            return False
        self._ids.add(trade_id)
        self._order.append(trade_id)
        if len(self._order) > self._keep:
            old = self._order.popleft()
            self._ids.discard(old)
            if self._increasing:
                self._floor = max(self._floor, old)
        return True
