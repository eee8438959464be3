"""An L2 order book: price levels per side, best bid/ask always at hand.

Both sides are kept as ascending Python lists searched with ``bisect`` (bids by
price, asks by negated price) so that the best level of each side sits at the
end of its list, where inserts and deletes are cheapest (see PERF.md §6), plus
a dict from price to ``(size, price_text, size_text)``. The exact texts are
kept only for venues whose checksums are computed over the wire text.

Example::

    >>> book = OrderBook()
    >>> book.set(BID, 100.0, 2.0); book.set(ASK, 101.0, 1.0)
    >>> book.best_bid(), book.best_ask()
    ((100.0, 2.0), (101.0, 1.0))
    >>> book.set(BID, 100.0, 0.0)  # size 0 deletes the level
    >>> book.best_bid() is None
    True
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Final

from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT

__all__ = ["ASK", "BID", "OrderBook"]

BID: Final = 1
ASK: Final = -1

Level = tuple[float, str, str]
"""(size, price_text, size_text) stored per price."""


class OrderBook:
    """Price-level book; ``set`` with size 0 deletes a level."""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids")

    def __init__(self) -> None:
        self._bid_keys: list[float] = []
        self._ask_keys: list[float] = []  # negated prices
        self._bids: dict[float, Level] = {}
        self._asks: dict[float, Level] = {}

    def clear(self) -> None:
        """Remove every level of both sides."""
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._bids.clear()
        self._asks.clear()

    def set(
        self, side: int, price: float, size: float, price_text: str = "", size_text: str = ""
    ) -> bool:
        """Set the level at ``price`` to ``size`` (0 deletes); return whether it existed."""
        if side == BID:
            levels, keys, key = self._bids, self._bid_keys, price
        else:
            levels, keys, key = self._asks, self._ask_keys, -price
        existed = price in levels
        if size == 0.0:
            if existed:
                del levels[price]
                del keys[bisect_left(keys, key)]
            return existed
        if not existed:
            insort(keys, key)
        levels[price] = (size, price_text, size_text)
        return existed

    def size_at(self, side: int, price: float) -> float:
        """Size at ``price`` on ``side``, 0.0 when there is no such level."""
        level = (self._bids if side == BID else self._asks).get(price)
        return 0.0 if level is None else level[0]

    def best_bid(self) -> tuple[float, float] | None:
        """Best bid as ``(price, size)``, or None when the side is empty."""
        if not self._bid_keys:
            return None
        price = self._bid_keys[-1]
        return price, self._bids[price][0]

    def best_ask(self) -> tuple[float, float] | None:
        """Best ask as ``(price, size)``, or None when the side is empty."""
        if not self._ask_keys:
            return None
        price = -self._ask_keys[-1]
        return price, self._asks[price][0]

    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        if not self._bid_keys or not self._ask_keys:
            return False
        return self._bid_keys[-1] >= -self._ask_keys[-1]

    @property
    def bid_count(self) -> int:
        return len(self._bid_keys)

    @property
    def ask_count(self) -> int:
        return len(self._ask_keys)

    def bid_prices(self, n: int | None = None) -> list[float]:
        """Bid prices, best first (all of them when ``n`` is None)."""
        keys = self._bid_keys
        stop = None if n is None or n >= len(keys) else len(keys) - n - 1
        return keys[-1:stop:-1] if keys else []

    def ask_prices(self, n: int | None = None) -> list[float]:
        """Ask prices, best first (all of them when ``n`` is None)."""
        keys = self._ask_keys
        stop = None if n is None or n >= len(keys) else len(keys) - n - 1
        return [-k for k in keys[-1:stop:-1]] if keys else []

    def top(self, n: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """The best ``n`` levels per side as ``(price, size)``, best first."""
        bids = [(p, self._bids[p][0]) for p in self.bid_prices(n)]
        asks = [(p, self._asks[p][0]) for p in self.ask_prices(n)]
        return bids, asks

    def top_text(self, n: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The best ``n`` levels per side as the exact wire texts, best first."""
        bids = [self._bids[p][1:] for p in self.bid_prices(n)]
        asks = [self._asks[p][1:] for p in self.ask_prices(n)]
        return bids, asks

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (Kraken sends no out-of-scope deletes)."""
        for keys, levels, sign in (
            (self._bid_keys, self._bids, 1.0),
            (self._ask_keys, self._asks, -1.0),
        ):
            excess = len(keys) - depth
            if excess > 0:
                for key in keys[:excess]:
                    del levels[key * sign]
                del keys[:excess]

    def snapshot_rows(
        self, ts_event: int, ts_recv: int, seq: int
    ) -> list[tuple[int, int, int, int, float, float, int]]:
        """The whole book as ``book_deltas`` rows flagged SNAPSHOT, the last one also LAST.

        An empty book still yields one marker row (side 0, price NaN, size 0) so that
        the reset it stands for is recorded.
        """
        rows = [
            (ts_event, ts_recv, seq, BID, p, self._bids[p][0], FLAG_SNAPSHOT)
            for p in self.bid_prices()
        ]
        rows += [
            (ts_event, ts_recv, seq, ASK, p, self._asks[p][0], FLAG_SNAPSHOT)
            for p in self.ask_prices()
        ]
        if not rows:
            return [(ts_event, ts_recv, seq, 0, float("nan"), 0.0, FLAG_SNAPSHOT | FLAG_LAST)]
        last = rows[-1]
        rows[-1] = (*last[:6], FLAG_SNAPSHOT | FLAG_LAST)
        return rows
