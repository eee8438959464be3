"""The stream actor's row buffer: book rows given as tuples or by side come out in order."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dccd_actors.actors._rowbuffer import RowBuffer
from dccd_actors.exchanges._base import BookLevels, DeltaRow, Level
from dccd_actors.records import FLAG_LAST, deltas_array, levels_array
from dccd_actors.storage.segment import SegmentInfo

INFO = SegmentInfo("binance", "BTC/USDT", "BTCUSDT", 5, 1.0)
levels = st.lists(
    st.tuples(st.floats(1.0, 1e6), st.sampled_from([0.0, 0.5, 2.0, 1e-8])), max_size=6
)
messages = st.lists(
    st.tuples(st.booleans(), levels, levels), min_size=1, max_size=30
)  # (added as tuples?, bids, asks)


def _levels(i: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> BookLevels:
    return BookLevels(
        1000 + i, 2000 + i, 3000 + i, [Level(*b) for b in bids], [Level(*a) for a in asks]
    )


@settings(max_examples=60, deadline=None)
@given(messages)
def test_any_mix_of_tuples_and_levels_is_stored_in_arrival_order(
    batch: list[tuple[bool, list[tuple[float, float]], list[tuple[float, float]]]],
) -> None:
    buffer = RowBuffer(("binance", "BTC/USDT"), INFO, 5, None)
    expected: list[DeltaRow] = []
    for i, (as_tuples, bids, asks) in enumerate(batch):
        message = _levels(i, bids, asks)
        if as_tuples:
            buffer.add_deltas(message.rows())
        else:
            buffer.add_levels(message)
        expected += message.rows()
    assert buffer.rows == len(expected)
    taken = buffer.take()
    if not expected:
        assert taken is None
        return
    assert taken is not None and taken.book_deltas is not None
    assert np.array_equal(taken.book_deltas, deltas_array(expected))
    assert buffer.rows == 0 and buffer.take() is None


def test_a_batch_put_back_comes_before_newer_rows() -> None:
    buffer = RowBuffer(("binance", "BTC/USDT"), INFO, 5, None)
    first, second = _levels(1, [(100.0, 1.0)], [(101.0, 2.0)]), _levels(2, [(99.0, 0.0)], [])
    buffer.add_levels(first)
    batch = buffer.take()
    assert batch is not None
    buffer.add_levels(second)
    buffer.put_back(batch)  # storage could not take it: it goes first next time
    again = buffer.take()
    assert again is not None and again.book_deltas is not None
    assert again.book_deltas.tolist() == first.rows() + second.rows()


def test_levels_array_flags_the_last_row_of_each_message_only() -> None:
    array = levels_array([_levels(0, [(1.0, 1.0), (2.0, 0.0)], []), _levels(1, [], []),
                          _levels(2, [], [(3.0, 1.0)])])  # fmt: skip
    assert array["flags"].tolist() == [0, FLAG_LAST, FLAG_LAST]
    assert array["side"].tolist() == [1, 1, -1] and array["seq"].tolist() == [3000, 3000, 3002]
