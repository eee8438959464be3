"""An L2 order book: price levels per side, best bid/ask always at hand.

Both sides are kept as ascending Python lists searched with ``bisect`` (bids by
price, asks by negated price) so that the best level of each side sits at the
end of its list, where inserts and deletes are cheapest (see PERF.md §6), plus
a dict from price to size. The exact wire texts ``(price_text, size_text)`` are
kept in a separate dict (by bid price or negated ask price), only for venues whose
checksums are computed over the wire text, so that the others pay nothing for them.

Example::

    >>> book = OrderBook()
    >>> book.set(BID, 100.0, 2.0); book.set(ASK, 101.0, 1.0)
    False
    False
    >>> book.best_bid(), book.best_ask()
    ((100.0, 2.0), (101.0, 1.0))
    >>> book.set(BID, 100.0, 0.0)  # size 0 deletes the level
    True
    >>> book.best_bid() is None
    True
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT, PricedLevel

__all__ = ["ASK", "BID", "OrderBook"]

BID: Final = 1
ASK: Final = -1

Texts = tuple[str, str]
"""(price_text, size_text) stored per price where a venue sends them."""
_NO_TEXT: Final[Texts] = ("", "")


class LevelText(Protocol):
    """A level's exact wire text (``px``, ``sz``), for checksums over the text."""

    @property
    def px(self) -> str: ...

    @property
    def sz(self) -> str: ...


class OrderBook:
    """Price-level book; ``set`` with size 0 deletes a level."""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "_texts")

    def __init__(self) -> None:
        self._bid_keys: list[float] = []
        self._ask_keys: list[float] = []  # negated prices
        self._bids: dict[float, float] = {}
        self._asks: dict[float, float] = {}
        self._texts: dict[float, Texts] = {}  # by key: bid price, or negated ask price

    def clear(self) -> None:
        """Remove every level of both sides."""
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._bids.clear()
        self._asks.clear()
        self._texts.clear()

    def set(
        self, side: int, price: float, size: float, price_text: str = "", size_text: str = ""
    ) -> bool:
        """Set the level at ``price`` to ``size`` (0 deletes); return whether it existed."""
        if side == BID:
            levels = self._bids
            keys = self._bid_keys
            key = price
        else:
            levels = self._asks
            keys = self._ask_keys
            key = -price
        if size:  # not 0.0: insert or modify
            if price in levels:
                levels[price] = size
                existed = True
            else:
                insort(keys, key)
                levels[price] = size
                existed = False
            if price_text or size_text:
                self._texts[key] = (price_text, size_text)
            elif self._texts:
                self._texts.pop(key, None)
            return existed
        if levels.pop(price, None) is None:
            return False
        del keys[bisect_left(keys, key)]
        if self._texts:
            self._texts.pop(key, None)
        return True

    def apply(self, levels: Iterable[tuple[int, float, float]]) -> None:
        """``set(side, price, size)`` for every level in order, without texts.

        The same result as calling :meth:`set` level by level, at less cost per level: this
        is the hot path of venues that send no checksum (Binance diff depth).
        """
        if self._texts:  # rare: a venue mixing texts and none; keep set()'s bookkeeping
            for side, price, size in levels:
                self.set(side, price, size)
            return
        bids, bid_keys = self._bids, self._bid_keys
        asks, ask_keys = self._asks, self._ask_keys
        for side, price, size in levels:
            if side == BID:
                if size:  # not 0.0: insert or modify
                    if price not in bids:
                        insort(bid_keys, price)
                    bids[price] = size
                elif bids.pop(price, None) is not None:
                    del bid_keys[bisect_left(bid_keys, price)]
            elif size:
                if price not in asks:
                    insort(ask_keys, -price)
                asks[price] = size
            elif asks.pop(price, None) is not None:
                del ask_keys[bisect_left(ask_keys, -price)]

    def apply_side(self, side: int, levels: Iterable[PricedLevel]) -> None:
        """``set(side, level.px, level.sz)`` for every level of one side, in order.

        The same result as :meth:`apply`, for venues whose messages come split by side.
        """
        if self._texts:
            for level in levels:
                self.set(side, level.px, level.sz)
            return
        sizes, keys = (self._bids, self._bid_keys) if side == BID else (self._asks, self._ask_keys)
        sign = 1.0 if side == BID else -1.0
        if not sizes:  # a snapshot: fill the side, then sort its keys once
            for level in levels:
                if level.sz:
                    sizes[level.px] = level.sz
                else:  # deleted again in the same message
                    sizes.pop(level.px, None)
            keys[:] = sorted(sizes) if side == BID else sorted([-price for price in sizes])
            return
        for level in levels:
            price, size = level.px, level.sz
            if size:  # not 0.0: insert or modify
                if price not in sizes:
                    insort(keys, price * sign)
                sizes[price] = size
            elif sizes.pop(price, None) is not None:
                del keys[bisect_left(keys, price * sign)]

    def apply_side_texts(
        self,
        side: int,
        levels: Sequence[PricedLevel],
        texts: Sequence[LevelText],
    ) -> None:
        """:meth:`apply_side` keeping each level's wire texts for checksums.

        The same result as ``set(side, level.px, level.sz, text.px, text.sz)`` level by level.
        """
        bid = side == BID
        sizes, keys = (self._bids, self._bid_keys) if bid else (self._asks, self._ask_keys)
        book_texts = self._texts
        if not sizes:  # a snapshot: fill the side, then sort its keys once
            for level, text in zip(levels, texts, strict=True):
                price = level.px
                if level.sz:
                    sizes[price] = level.sz
                    book_texts[price if bid else -price] = (text.px, text.sz)
                elif sizes.pop(price, None) is not None:  # deleted again in the same message
                    del book_texts[price if bid else -price]
            keys[:] = sorted(sizes) if bid else sorted([-price for price in sizes])
            return
        for level, text in zip(levels, texts, strict=True):
            price, size = level.px, level.sz
            key = price if bid else -price
            if size:  # not 0.0: insert or modify
                if price not in sizes:
                    insort(keys, key)
                sizes[price] = size
                book_texts[key] = (text.px, text.sz)
            elif sizes.pop(price, None) is not None:
                del keys[bisect_left(keys, key)]
                book_texts.pop(key, None)

    def size_at(self, side: int, price: float) -> float:
        """Size at ``price`` on ``side``, 0.0 when there is no such level."""
        return (self._bids if side == BID else self._asks).get(price, 0.0)

    def best_bid(self) -> tuple[float, float] | None:
        """Best bid as ``(price, size)``, or None when the side is empty."""
        keys = self._bid_keys
        if not keys:
            return None
        price = keys[-1]
        return price, self._bids[price]

    def best_ask(self) -> tuple[float, float] | None:
        """Best ask as ``(price, size)``, or None when the side is empty."""
        keys = self._ask_keys
        if not keys:
            return None
        price = -keys[-1]
        return price, self._asks[price]

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
        bids, asks = self._bids, self._asks
        return (
            [(p, bids[p]) for p in self.bid_prices(n)],
            [(p, asks[p]) for p in self.ask_prices(n)],
        )

    def top_text(self, n: int) -> tuple[list[Texts], list[Texts]]:
        """The best ``n`` levels per side as the exact wire texts, best first."""
        texts = self._texts  # keyed like the key lists: bid price, negated ask price
        return (
            [texts.get(key, _NO_TEXT) for key in self._bid_keys[-1 : -n - 1 : -1]],
            [texts.get(key, _NO_TEXT) for key in self._ask_keys[-1 : -n - 1 : -1]],
        )

    def truncate(self, depth: int) -> None:
        """Keep only the best ``depth`` levels per side (Kraken sends no out-of-scope deletes)."""
        texts = self._texts
        for keys, levels, sign in (
            (self._bid_keys, self._bids, 1.0),
            (self._ask_keys, self._asks, -1.0),
        ):
            excess = len(keys) - depth
            if excess > 0:
                for key in keys[:excess]:
                    del levels[key * sign]
                    if texts:
                        texts.pop(key, None)
                del keys[:excess]

    def snapshot_rows(
        self, ts_event: int, ts_recv: int, seq: int
    ) -> list[tuple[int, int, int, int, float, float, int]]:
        """The whole book as ``book_deltas`` rows flagged SNAPSHOT, the last one also LAST.

        An empty book still yields one marker row (side 0, price NaN, size 0) so that
        the reset it stands for is recorded.
        """
        bids, asks = self._bids, self._asks
        rows = [(ts_event, ts_recv, seq, BID, p, bids[p], FLAG_SNAPSHOT) for p in self.bid_prices()]
        rows += [
            (ts_event, ts_recv, seq, ASK, p, asks[p], FLAG_SNAPSHOT) for p in self.ask_prices()
        ]
        if not rows:
            return [(ts_event, ts_recv, seq, 0, float("nan"), 0.0, FLAG_SNAPSHOT | FLAG_LAST)]
        last = rows[-1]
        rows[-1] = (*last[:6], FLAG_SNAPSHOT | FLAG_LAST)
        return rows
