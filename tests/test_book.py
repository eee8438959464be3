"""OrderBook: any delta sequence equals a rebuild from scratch; top-N and truncation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from dccd_actors.exchanges.book import ASK, BID, OrderBook
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT

prices = st.integers(min_value=1, max_value=400).map(lambda i: i / 4)
sizes = st.one_of(st.just(0.0), st.integers(min_value=1, max_value=10_000).map(lambda i: i / 100))
deltas = st.lists(st.tuples(st.sampled_from([BID, ASK]), prices, sizes), max_size=300)


@given(deltas)
def test_any_delta_sequence_equals_a_rebuild_from_scratch(
    updates: list[tuple[int, float, float]],
) -> None:
    book = OrderBook()
    truth: dict[int, dict[float, float]] = {BID: {}, ASK: {}}
    for side, price, size in updates:
        existed = book.set(side, price, size)
        assert existed == (price in truth[side])
        if size == 0.0:
            truth[side].pop(price, None)
        else:
            truth[side][price] = size
    rebuilt = OrderBook()
    for side in (BID, ASK):
        for price, size in truth[side].items():
            rebuilt.set(side, price, size)
    assert book.top(10_000) == rebuilt.top(10_000)
    assert book.bid_prices() == sorted(truth[BID], reverse=True)
    assert book.ask_prices() == sorted(truth[ASK])
    best_bid = max(truth[BID].items(), default=None)
    assert book.best_bid() == best_bid
    best_ask = min(truth[ASK].items(), default=None)
    assert book.best_ask() == best_ask


@given(deltas, st.integers(min_value=1, max_value=20))
def test_truncate_keeps_the_best_levels(
    updates: list[tuple[int, float, float]], depth: int
) -> None:
    book = OrderBook()
    for side, price, size in updates:
        book.set(side, price, size)
    bids, asks = book.top(depth)
    book.truncate(depth)
    assert book.top(10_000) == (bids, asks)
    assert book.bid_count <= depth and book.ask_count <= depth


def test_snapshot_rows_flag_every_row_and_mark_the_last() -> None:
    book = OrderBook()
    book.set(BID, 10.0, 1.0, "10.0", "1")
    book.set(BID, 9.5, 2.0)
    book.set(ASK, 11.0, 3.0)
    rows = book.snapshot_rows(5, 6, 7)
    assert [(r[3], r[4], r[5]) for r in rows] == [
        (BID, 10.0, 1.0),
        (BID, 9.5, 2.0),
        (ASK, 11.0, 3.0),
    ]
    assert [r[6] for r in rows] == [FLAG_SNAPSHOT, FLAG_SNAPSHOT, FLAG_SNAPSHOT | FLAG_LAST]
    assert book.top_text(1) == ([("10.0", "1")], [("", "")])


def test_empty_snapshot_still_records_the_reset() -> None:
    (row,) = OrderBook().snapshot_rows(1, 2, 3)
    assert row[3] == 0 and math.isnan(row[4]) and row[6] == FLAG_SNAPSHOT | FLAG_LAST


def test_crossed_detects_bid_at_or_above_ask() -> None:
    book = OrderBook()
    book.set(BID, 10.0, 1.0)
    book.set(ASK, 10.5, 1.0)
    assert not book.crossed()
    book.set(BID, 10.5, 1.0)
    assert book.crossed()


@given(deltas)
def test_apply_equals_setting_each_level_in_order(updates: list[tuple[int, float, float]]) -> None:
    one_call, level_by_level = OrderBook(), OrderBook()
    half = len(updates) // 2
    one_call.apply(updates[:half])
    one_call.apply(updates[half:])
    for side, price, size in updates:
        level_by_level.set(side, price, size)
    assert one_call.top(10_000) == level_by_level.top(10_000)
    assert (one_call.best_bid(), one_call.best_ask()) == (
        level_by_level.best_bid(),
        level_by_level.best_ask(),
    )


@given(deltas)
def test_apply_side_equals_setting_each_level_in_order(
    updates: list[tuple[int, float, float]],
) -> None:
    by_side, level_by_level = OrderBook(), OrderBook()
    for start in range(0, len(updates), 7):  # messages of up to 7 levels, split by side
        message = updates[start : start + 7]
        for side in (BID, ASK):
            by_side.apply_side(side, [_Level(p, s) for sd, p, s in message if sd == side])
        for side in (BID, ASK):
            for sd, price, size in message:
                if sd == side:
                    level_by_level.set(side, price, size)
    assert by_side.top(10_000) == level_by_level.top(10_000)
    assert by_side.bid_count == level_by_level.bid_count
    assert by_side.ask_count == level_by_level.ask_count


@dataclass(frozen=True)
class _Level:
    px: float
    sz: float


@dataclass(frozen=True)
class _Text:
    px: str
    sz: str


@given(deltas)
def test_apply_side_texts_equals_setting_each_level_with_its_texts(
    updates: list[tuple[int, float, float]],
) -> None:
    by_side, level_by_level = OrderBook(), OrderBook()
    for start in range(0, len(updates), 7):
        message = updates[start : start + 7]
        for side in (BID, ASK):
            mine = [(p, s) for sd, p, s in message if sd == side]
            by_side.apply_side_texts(
                side, [_Level(p, s) for p, s in mine], [_Text(f"{p}", f"{s}") for p, s in mine]
            )
            for price, size in mine:
                level_by_level.set(side, price, size, f"{price}", f"{size}")
    assert by_side.top(10_000) == level_by_level.top(10_000)
    assert by_side.top_text(10_000) == level_by_level.top_text(10_000)
    assert (by_side.bid_count, by_side.ask_count) == (
        level_by_level.bid_count,
        level_by_level.ask_count,
    )
