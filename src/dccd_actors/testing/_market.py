"""A seeded random-walk market: the truth behind every fake exchange.

Prices live on a tick grid and are carried as exact decimal text, so fakes can
render them the way each venue does and compute checksums over the same text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["Market", "MarketTrade"]


@dataclass(frozen=True, slots=True)
class MarketTrade:
    trade_id: int
    price: Decimal
    amount: Decimal
    side: int  # +1 taker bought, -1 taker sold
    ts_ms: int


@dataclass
class Market:
    """Deterministic order book and trade generator for one pair.

    ``step`` returns the level changes (``(side, price, size)``, size 0 deletes)
    and the trades of one venue message interval. ``bids``/``asks`` map exact
    Decimal prices to Decimal sizes and always hold the current truth.
    """

    seed: int = 0
    mid: Decimal = Decimal("30000.00")
    tick: Decimal = Decimal("0.01")
    size_step: Decimal = Decimal("0.0001")
    levels: int = 40
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)
    next_trade_id: int = 1000
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        best_bid = self.mid - self.tick
        best_ask = self.mid + self.tick
        for i in range(self.levels):
            self.bids[best_bid - i * self.tick * 3] = self._size()
            self.asks[best_ask + i * self.tick * 3] = self._size()

    def _size(self) -> Decimal:
        return self.size_step * self._rng.randint(1, 50_000)

    def best_bid(self) -> Decimal:
        return max(self.bids)

    def best_ask(self) -> Decimal:
        return min(self.asks)

    def step(
        self, ts_ms: int, n_changes: int = 4, trade_prob: float = 0.6
    ) -> tuple[list[tuple[int, Decimal, Decimal]], list[MarketTrade]]:
        """Advance the market one message: some level changes, maybe a few trades."""
        changes: list[tuple[int, Decimal, Decimal]] = []
        trades: list[MarketTrade] = []
        if self._rng.random() < trade_prob:
            trades, consumed = self._trades(ts_ms)
            changes += consumed
        for _ in range(n_changes):
            changes.append(self._change())
        return changes, trades

    def _trades(self, ts_ms: int) -> tuple[list[MarketTrade], list[tuple[int, Decimal, Decimal]]]:
        side = self._rng.choice((1, -1))
        book = self.asks if side == 1 else self.bids
        price = self.best_ask() if side == 1 else self.best_bid()
        trades = []
        for _ in range(self._rng.randint(1, 3)):
            amount = min(book[price], self.size_step * self._rng.randint(1, 5000))
            trades.append(MarketTrade(self.next_trade_id, price, amount, side, ts_ms))
            self.next_trade_id += 1
            book[price] -= amount
            if book[price] <= 0:
                break
        change_side = -1 if side == 1 else 1  # a taker buy consumes asks
        remaining = book[price]
        changes = [(change_side, price, max(remaining, Decimal(0)))]
        if remaining <= 0:
            del book[price]
            if not book:  # never let a side run dry; the new level is a change like any other
                refill = price + side * self.tick * 5
                book[refill] = self._size()
                changes.append((change_side, refill, book[refill]))
        return trades, changes

    def _change(self) -> tuple[int, Decimal, Decimal]:
        side = self._rng.choice((1, -1))
        book = self.bids if side == 1 else self.asks
        best = self.best_bid() if side == 1 else self.best_ask()
        other = self.best_ask() if side == 1 else self.best_bid()
        roll = self._rng.random()
        if roll < 0.45 * len(book) / self.levels and len(book) > 5:
            price = self._rng.choice(sorted(book, reverse=side == 1)[: min(len(book), 30)])
            del book[price]
            return side, price, Decimal(0)
        offset = self._rng.randint(-2, 30) * self.tick
        price = best - side * offset
        if (side == 1 and price >= other) or (side == -1 and price <= other):
            price = best
        size = self._size()
        book[price] = size
        return side, price, size

    def top(self, n: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """Best ``n`` levels per side, best first."""
        bids = sorted(self.bids.items(), key=lambda kv: kv[0], reverse=True)[:n]
        asks = sorted(self.asks.items(), key=lambda kv: kv[0])[:n]
        return bids, asks
