"""Order-book apply at 1000 levels per side, best bid and ask read after every message.

Ours: ``dccd_actors.exchanges.book.OrderBook`` as the adapters drive it, ``apply(levels)`` per
message (the headline), and for comparison ``set()`` per level update; ``best_bid()`` and
``best_ask()`` after every message. Baseline, in the same run and interleaved: a plain
reference of the same design (two ascending lists searched with ``bisect``, asks negated so both
tops sit at the list end, plus a price → size dict) with ``set()`` per update, the best
representation in PERF.md §6 (3.0 M updates/s there). Target: ours ≥ 1 x the reference and
≥ 3 M updates/s. All three books must end identical.

    python benchmarks/bench_book.py [--quick] [--updates N]
"""

from __future__ import annotations

import sys
import time
from bisect import bisect_left, insort
from collections.abc import Callable
from typing import Any

import _common as c
from frames import BID, BookScript, book_script

TARGET = 1.0
TARGET_ABS = 3_000_000


class ReferenceBook:
    """The sorted-list + bisect reference (PERF.md §6, ``list_bisect``)."""

    __slots__ = ("ask_keys", "asks", "bid_keys", "bids")

    def __init__(self) -> None:
        self.bid_keys: list[float] = []
        self.ask_keys: list[float] = []  # negated prices
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}

    def set(self, side: int, price: float, size: float) -> None:
        if side == BID:
            levels, keys, key = self.bids, self.bid_keys, price
        else:
            levels, keys, key = self.asks, self.ask_keys, -price
        if size == 0.0:
            if price in levels:
                del levels[price]
                del keys[bisect_left(keys, key)]
            return
        if price not in levels:
            insort(keys, key)
        levels[price] = size

    def best_bid(self) -> tuple[float, float] | None:
        if not self.bid_keys:
            return None
        price = self.bid_keys[-1]
        return price, self.bids[price]

    def best_ask(self) -> tuple[float, float] | None:
        if not self.ask_keys:
            return None
        price = -self.ask_keys[-1]
        return price, self.asks[price]


def batch_apply(book: Any) -> Callable[[list[tuple[int, float, float]]], None]:
    """``book.apply``; versions before it existed applied a message with ``set`` per level."""
    apply: Callable[[list[tuple[int, float, float]]], None] | None = getattr(book, "apply", None)
    if apply is not None:
        return apply
    book_set = book.set

    def set_each(levels: list[tuple[int, float, float]]) -> None:
        for side, price, size in levels:
            book_set(side, price, size)

    return set_each


def run_apply(script: BookScript) -> float:
    """``OrderBook.apply`` per message: level updates per second (snapshot untimed)."""
    from dccd_actors.exchanges.book import OrderBook

    book = OrderBook()
    batch_apply(book)(script.snapshot)
    apply, best_bid, best_ask = batch_apply(book), book.best_bid, book.best_ask
    messages = script.messages
    t0 = time.perf_counter()
    for message in messages:
        apply(message)
        best_bid()
        best_ask()
    elapsed = time.perf_counter() - t0
    return script.updates / elapsed


def run(make: type, script: BookScript) -> float:
    """``set`` per level update: level updates per second (the snapshot is loaded untimed)."""
    book = make()
    for side, price, size in script.snapshot:
        book.set(side, price, size)
    book_set, best_bid, best_ask = book.set, book.best_bid, book.best_ask
    messages = script.messages
    t0 = time.perf_counter()
    for message in messages:
        for side, price, size in message:
            book_set(side, price, size)
        best_bid()
        best_ask()
    elapsed = time.perf_counter() - t0
    return script.updates / elapsed


def check_same_book(script: BookScript) -> int:
    """All books end in the same state; returns the levels per side at the end."""
    from dccd_actors.exchanges.book import OrderBook

    ours, batched, ref = OrderBook(), OrderBook(), ReferenceBook()
    apply = batch_apply(batched)
    apply(script.snapshot)
    for side, price, size in script.snapshot + [u for m in script.messages for u in m]:
        ours.set(side, price, size)
        ref.set(side, price, size)
    for message in script.messages:
        apply(message)
    bids = [(p, ref.bids[p]) for p in reversed(ref.bid_keys)]
    asks = [(-k, ref.asks[-k]) for k in reversed(ref.ask_keys)]
    if not ours.top(10_000) == batched.top(10_000) == (bids, asks):
        raise AssertionError("OrderBook.set, OrderBook.apply and the reference disagree")
    return (len(bids) + len(asks)) // 2


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--updates", type=int, default=None, help="level updates per run")
    args = p.parse_args(argv)
    from dccd_actors.exchanges.book import OrderBook

    updates = args.updates or (100_000 if args.quick else 500_000)
    script = book_script(1000, updates // 10, 10)
    depth = check_same_book(script)
    runs = c.runs_of(args)
    ours = c.Series("dccd_actors OrderBook.apply per message", "updates/s")
    per_set = c.Series("dccd_actors OrderBook.set per update", "updates/s")
    ref = c.Series("sorted list + bisect reference, set per update", "updates/s")
    results = c.interleave(
        {
            ours.name: lambda: run_apply(script),
            per_set.name: lambda: run(OrderBook, script),
            ref.name: lambda: run(ReferenceBook, script),
        },
        runs,
        args.seed,
    )
    ours.values, per_set.values = results[ours.name], results[per_set.name]
    ref.values = results[ref.name]
    ratio = ours.median / ref.median
    kinds = [u for m in script.messages for u in m]
    deletes = sum(1 for u in kinds if u[2] == 0.0) / len(kinds)
    body = c.series_table([ours, per_set, ref], ref) + (
        f"\n\n{script.updates:,} level updates per run in messages of 10, best bid and ask "
        f"after every message; 1000 levels per side at the start, {depth} at the end; "
        f"{deletes:.0%} deletes; the three books end identical. {c.machine()}."
    )
    met = ratio >= TARGET and ours.median >= TARGET_ABS
    row = c.Row(
        "book apply 1000 levels + BBO",
        "updates/s",
        ours.median,
        ours.min,
        ours.max,
        "sorted list + bisect",
        ref.median,
        ratio,
        f">= {TARGET:g}x and >= 3M/s",
        met,
        runs,
        (f"{ours.median / 1e6:.2f} M/s" + ("" if ours.median >= TARGET_ABS else " < 3 M/s"))
        + f"; set() per update {per_set.median / ref.median:.2f}x",
    )
    c.emit(args, "Order book apply, 1000 levels, BBO after every message", body, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
