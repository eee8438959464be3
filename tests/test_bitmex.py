"""BitMEX realtime: recorded 2021 frames, post-2023 rows, property tests and a fake over sockets.

Readings of PROTOCOLS.md §6 facts marked [unverified] are named in the test names
(``unverified_*``): the error reply shape, and the ``trdType`` field of newer trades.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websocket import (
    WebSocket,
    WebSocketConnectionClosedException,
    WebSocketTimeoutException,
    create_connection,
)

from dccd_actors import Collector, StreamJob, open_store
from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
    SECOND,
    BookDeltas,
    BookInvalid,
    BookValid,
    Event,
    Reconnect,
    Send,
    Trades,
    VenueError,
    iso_to_ns,
)
from dccd_actors.exchanges.bitmex import BitmexAdapter, venue_symbol
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT
from dccd_actors.testing.bitmex import FakeBitmex
from tests.helpers import config, rebuild_book, wait_for_book_samples, wait_until

SUB_XBT = '{"op":"subscribe","args":["orderBookL2:XBTUSD","trade:XBTUSD"]}'
UNSUB_BOOK = '{"op":"unsubscribe","args":["orderBookL2:XBTUSD"]}'
SUB_BOOK = '{"op":"subscribe","args":["orderBookL2:XBTUSD"]}'
UUID1 = "39744121-c20e-44ba-8cc8-a6b8cdf72885"
UUID2 = "0ddc259b-355e-9a79-002b-aed7e089f69a"
T0 = 1_700_000_000 * SECOND


# -- helpers ----------------------------------------------------------------------------
def frame(table: str, action: str, rows: list[Any], symbol: str = "XBTUSD") -> str:
    msg: dict[str, Any] = {"table": table, "action": action, "data": rows}
    if action == "partial":
        msg["keys"] = ["symbol", "id", "side"] if table == "orderBookL2" else []
        msg["filter"] = {"symbol": symbol}
    return json.dumps(msg)


def brow(
    ident: int,
    side: str,
    size: Any = None,
    price: Any = None,
    ts: str | None = None,
    symbol: str = "XBTUSD",
) -> dict[str, Any]:
    row: dict[str, Any] = {"symbol": symbol, "id": ident, "side": side}
    for key, value in (("size", size), ("price", price), ("timestamp", ts)):
        if value is not None:
            row[key] = value
    return row


def trow(
    uid: str,
    side: str = "Buy",
    price: float = 100.0,
    size: float = 2.0,
    ts: str = "2021-07-22T22:36:10.014Z",
) -> dict[str, Any]:
    return {
        "timestamp": ts,
        "symbol": "XBTUSD",
        "side": side,
        "size": size,
        "price": price,
        "tickDirection": "PlusTick",
        "trdMatchID": uid,
    }


def live_adapter() -> BitmexAdapter:
    """An adapter with a live XBTUSD book: bids 99 (id 1) and 98 (id 2), ask 101 (id 3)."""
    a = BitmexAdapter("BTC/USD")
    a.on_open()
    rows = [brow(3, "Sell", 5, 101.0), brow(1, "Buy", 10, 99.0), brow(2, "Buy", 20, 98.0)]
    a.receive(frame("orderBookL2", "partial", rows), T0)
    return a


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def delta_rows(events: list[Event]) -> list[tuple[int, int, int, int, float, float, int]]:
    return [row for e in of(events, BookDeltas) for row in e.rows]


def book_dicts(a: BitmexAdapter) -> tuple[dict[float, float], dict[float, float]]:
    bids, asks = a.book.top(10**9)
    return dict(bids), dict(asks)


# -- URL, subscribe, control messages ---------------------------------------------------
def test_url_subscribe_and_symbols() -> None:
    a = BitmexAdapter("BTC/USD")
    assert a.url() == "wss://ws.bitmex.com/realtime"
    assert a.on_open() == [Send(SUB_XBT)]
    assert BitmexAdapter("BTC/USD", url="ws://127.0.0.1:9/").url() == "ws://127.0.0.1:9/realtime"
    whole = BitmexAdapter("BTC/USD", url="ws://127.0.0.1:9/realtime")  # path given: not doubled
    assert whole.url() == "ws://127.0.0.1:9/realtime"
    assert BitmexAdapter("BTC/USD", url="wss://h/proxy").url() == "wss://h/proxy/realtime"
    trades_only = BitmexAdapter("ETH/USDT", ["trades"])
    assert trades_only.on_open() == [Send('{"op":"subscribe","args":["trade:ETHUSDT"]}')]
    assert [venue_symbol(p) for p in ("BTC/USD", "ETH/USDT", "BTC/USDT")] == [
        "XBTUSD",
        "ETHUSDT",
        "XBTUSDT",
    ]


def test_welcome_acks_and_pong_give_nothing(fixtures_dir: Path) -> None:
    a = BitmexAdapter("BTC/USD")
    a.on_open()
    newer = {
        "info": "Welcome to the BitMEX Realtime API.",
        "version": "2026",
        "timestamp": "2026-04-01T00:00:00.000Z",
        "heartbeatEnabled": False,
        "limit": {},
    }
    assert a.receive(json.dumps(newer), T0) == []
    lines = (fixtures_dir / "bitmex" / "bitmex.ws.jsonl").read_text().splitlines()
    frames = [json.loads(line)["frame"] for line in lines]
    control = [text for text in frames if "table" not in json.loads(text)]
    assert len(control) == 31  # verification.json control_frames
    assert all(a.receive(text, T0) == [] for text in control)
    assert a.receive("pong", T0) == []
    assert a.receive("ping", T0) == [Send("pong")]  # the venue may ping us too (§0.1)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2021-07-22T22:36:10.014Z", 1626993370_014000000),
        ("2021-07-22T22:36:10.014123456789Z", 1626993370_014123456),
        ("2021-07-22T22:36:10Z", 1626993370_000000000),
        ("2021-07-22T22:36:10.014+00:00", 1626993370_014000000),
        ("2021-07-23T00:36:10.5+02:00", 1626993370_500000000),
        ("2021-07-22t22:36:10.014z", 1626993370_014000000),
    ],
)
def test_rfc3339_times_keep_their_offset_and_nanoseconds(text: str, ns: int) -> None:
    assert iso_to_ns(text) == ns


def test_a_trade_id_that_is_not_a_uuid_is_kept_as_sent() -> None:
    a = BitmexAdapter("BTC/USD", ["trades"])
    a.on_open()
    a.receive(frame("trade", "partial", []), T0)
    [trades] = a.receive(frame("trade", "insert", [trow("00000000"), trow(UUID1)]), T0)
    assert isinstance(trades, Trades) and [r[3] for r in trades.rows] == [
        b"00000000",
        UUID1.encode(),
    ]


def test_unverified_error_reply_shape_gives_venue_error() -> None:
    a = BitmexAdapter("BTC/USD")
    err = {"status": 400, "error": "Unknown table: foo", "meta": {}, "request": {"op": "x"}}
    assert a.receive(json.dumps(err), T0) == [VenueError("bitmex error 400: Unknown table: foo")]
    [error] = a.receive('{"success":false,"error":"denied"}', T0)
    assert isinstance(error, VenueError) and "denied" in error.message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("not json", "not_json"),
        ("[1,2]", "unexpected"),
        ('{"hello":1}', "unknown"),
        (frame("quote", "insert", [{"symbol": "XBTUSD", "bidPrice": 1.0}]), "unknown"),
        (
            frame("orderBookL2", "insert", [brow(9, "Buy", 1, 99.5, symbol="ETHUSD")]),
            "wrong_symbol",
        ),
        (frame("orderBookL2", "insert", ["row"]), "bad_field"),
        (frame("orderBookL2", "insert", [brow(9, "Buy", 1, [99.5])]), "bad_field"),
        (frame("orderBookL2", "insert", [brow(9, "Buy", "abc", 99.5)]), "bad_field"),
        (frame("orderBookL2", "insert", [brow(9, "Buy", 1, -99.5)]), "bad_field"),
        (frame("orderBookL2", "insert", [brow(9, "Buy", 1, math.nan)]), "bad_field"),
        (frame("orderBookL2", "insert", [brow(9, "Hold", 1, 99.5)]), "bad_field"),
        (frame("orderBookL2", "update", [brow(1, "Buy", True)]), "bad_field"),
        (frame("orderBookL2", "merge", [brow(1, "Buy", 1)]), "unknown"),
        (frame("trade", "insert", [trow("x" * 37)]), "bad_field"),  # wider than trade_uid
        (frame("trade", "insert", [trow("")]), "bad_field"),
        (frame("trade", "insert", [trow(UUID1, price=math.inf)]), "bad_field"),
        (frame("trade", "insert", [{**trow(UUID1), "timestamp": "yesterday"}]), "bad_field"),
        (frame("trade", "delete", [trow(UUID1)]), "unknown"),
    ],
)
def test_malformed_frames_raise_parse_error(text: str, kind: str) -> None:
    a = live_adapter()
    a.receive(frame("trade", "partial", []), T0)
    with pytest.raises(ParseError) as info:
        a.receive(text, T0 + 1)
    assert info.value.kind == kind


def test_malformed_live_book_message_discards_book_then_resyncs() -> None:
    a = live_adapter()
    with pytest.raises(ParseError):
        a.receive(frame("orderBookL2", "update", [brow(1, "Buy", "lots")]), T0 + 1)
    assert a.book_top(5) is None  # untrusted from the moment it could not apply a message
    events = a.keepalive(T0 + 2)
    assert [type(e) for e in events] == [BookInvalid, Send, Send]
    assert [e.text for e in of(events, Send)] == [UNSUB_BOOK, SUB_BOOK]
    assert a.keepalive(T0 + 3) == []


# -- trades -----------------------------------------------------------------------------
def test_trades_first_partial_is_history_later_partial_fills_gap_unverified_trdtype() -> None:
    uid3, old = "00000000-006d-1000-0000-000b0d5f4e41", "8f8fe9db-eb13-26a5-dea2-a398d89e04a8"
    ts1, ts2, ts3 = (f"2021-07-22T22:36:1{n}.014Z" for n in (1, 2, 3))
    a = BitmexAdapter("BTC/USD")
    a.on_open()
    assert a.receive(frame("trade", "insert", [trow(UUID2)]), T0) == []  # before its partial
    # The first partial predates this adapter (another connection may have stored it).
    assert a.receive(frame("trade", "partial", [trow(UUID1, ts=ts1)]), T0 + 1) == []
    newer = {**trow(UUID2, "Sell", 17.297, 52, ts2), "trdType": "Regular"}  # newer field ignored
    events = a.receive(frame("trade", "insert", [trow(UUID1, ts=ts1), newer, newer]), T0 + 2)
    assert events == [Trades([(iso_to_ns(ts2), T0 + 2, -1, UUID2.encode(), 17.297, 52.0, -1, 0)])]
    a.on_open()  # a reconnect reusing the adapter: the replayed partial fills the gap only
    history = [
        trow(old, ts="2021-07-22T22:36:09.000Z"),
        trow(UUID1, ts=ts1),
        newer,
        trow(uid3, ts=ts3),
    ]
    events = a.receive(frame("trade", "partial", history), T0 + 3)
    assert [r[3] for e in of(events, Trades) for r in e.rows] == [uid3.encode()]


# -- book: post-2023 rows ---------------------------------------------------------------
def test_post_2023_rows_timestamps_price_moves_and_flags() -> None:
    a = BitmexAdapter("BTC/USD")
    a.on_open()
    ts1, ts2 = "2023-05-19T08:51:44.911Z", "2023-05-19T08:51:45.911Z"
    assert a.receive(frame("orderBookL2", "update", [brow(1, "Buy", 5, 26902, ts1)]), T0) == []
    events = a.receive(
        frame(
            "orderBookL2",
            "partial",
            [brow(7, "Buy", 42800, 26902, ts1), brow(8, "Sell", 10, 26903, ts1)],
        ),
        T0,
    )
    assert [type(e) for e in events] == [BookDeltas, BookValid]
    assert delta_rows(events) == [
        (iso_to_ns(ts1), T0, -1, BID, 26902.0, 42800.0, FLAG_SNAPSHOT),
        (iso_to_ns(ts1), T0, -1, ASK, 26903.0, 10.0, FLAG_SNAPSHOT | FLAG_LAST),
    ]
    n2 = iso_to_ns(ts2)
    events = a.receive(frame("orderBookL2", "update", [brow(7, "Buy", 5, 26901.5, ts2)]), T0 + 1)
    assert delta_rows(events) == [
        (n2, T0 + 1, -1, BID, 26902.0, 0.0, 0),
        (n2, T0 + 1, -1, BID, 26901.5, 5.0, FLAG_LAST),
    ]
    events = a.receive(frame("orderBookL2", "delete", [brow(8, "Sell", None, 26903, ts2)]), T0 + 2)
    assert delta_rows(events) == [(n2, T0 + 2, -1, ASK, 26903.0, 0.0, FLAG_LAST)]
    top = a.book_top(5)
    assert top is not None and (top.ts_event, top.ts_recv, top.bids, top.asks) == (
        n2,
        T0 + 2,
        [(26901.5, 5.0)],
        [],
    )


def test_legacy_rows_take_price_from_the_id_map() -> None:
    a = live_adapter()
    events = a.receive(frame("orderBookL2", "update", [brow(1, "Buy", 7), brow(2, "Buy", 8)]), T0)
    assert delta_rows(events) == [
        (-1, T0, -1, BID, 99.0, 7.0, 0),
        (-1, T0, -1, BID, 98.0, 8.0, FLAG_LAST),
    ]
    events = a.receive(frame("orderBookL2", "delete", [brow(1, "Buy")]), T0)
    assert delta_rows(events) == [(-1, T0, -1, BID, 99.0, 0.0, FLAG_LAST)]
    # Legacy ids encode the price, so a bid and an ask at one price share an id: keys are (id, side).
    events = a.receive(frame("orderBookL2", "insert", [brow(3, "Buy", 1, 100.0)]), T0)
    assert delta_rows(events) == [(-1, T0, -1, BID, 100.0, 1.0, FLAG_LAST)]


@pytest.mark.parametrize(
    ("action", "row", "detail"),
    [
        ("update", brow(42, "Buy", 1), "update of unknown id 42"),
        ("delete", brow(42, "Sell"), "delete of unknown id 42"),
        ("update", brow(3, "Buy", 1), "update of unknown id 3"),  # id 3 is an ask
        ("insert", brow(1, "Buy", 1, 97.0), "insert of existing id 1"),
    ],
)
def test_integrity_failure_resubscribes_and_waits_for_partial(
    action: str, row: dict[str, Any], detail: str
) -> None:
    a = live_adapter()
    events = a.receive(frame("orderBookL2", action, [row]), T0 + 1)
    assert [type(e) for e in events] == [BookInvalid, Send, Send]
    invalid = events[0]
    assert isinstance(invalid, BookInvalid)
    assert invalid.cause == "resync" and detail in invalid.detail
    assert [e.text for e in of(events, Send)] == [UNSUB_BOOK, SUB_BOOK]
    assert a.book_top(5) is None
    assert a.receive('{"success":true,"unsubscribe":"orderBookL2:XBTUSD"}', T0 + 2) == []
    assert a.receive(frame("orderBookL2", "update", [brow(1, "Buy", 3)]), T0 + 2) == []
    events = a.receive(frame("orderBookL2", "partial", [brow(5, "Buy", 1, 50.0)]), T0 + 3)
    assert [type(e) for e in events] == [BookDeltas, BookValid]
    assert book_dicts(a) == ({50.0: 1.0}, {})


def test_crossed_book_resynced_after_three_messages_and_a_second() -> None:
    a = live_adapter()
    cross = frame("orderBookL2", "insert", [brow(9, "Buy", 1, 102.0)])
    assert of(a.receive(cross, T0), BookDeltas)  # crossed after 1 message: kept
    uncross = frame("orderBookL2", "delete", [brow(3, "Sell")])
    assert of(a.receive(uncross, T0), BookDeltas) and not a.book.crossed()
    a.receive(frame("orderBookL2", "insert", [brow(10, "Sell", 1, 100.0)]), T0)  # crossed: 1
    for size in range(2, 9):  # a burst of one-row messages within the second: kept
        update = frame("orderBookL2", "update", [brow(10, "Sell", size)])
        assert of(a.receive(update, T0), BookDeltas)
    events = a.receive(frame("orderBookL2", "update", [brow(10, "Sell", 9)]), T0 + SECOND)
    assert [type(e) for e in events] == [BookInvalid, Send, Send]
    assert isinstance(events[0], BookInvalid)
    assert "crossed for 9 messages and 1.0 s" in events[0].detail


# -- recorded frames (legacy format, ten symbols on one connection) ------------------------
def split_by_symbol(msg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One message per symbol: multi-symbol data rows routed to each symbol's adapter."""
    symbols = {row["symbol"] for row in msg["data"]} or {msg["filter"]["symbol"]}
    return {s: {**msg, "data": [r for r in msg["data"] if r["symbol"] == s]} for s in symbols}


def pair_for(symbol: str) -> str:
    """Fixture symbol → pair; dated futures (XRPU21) become BASE/contract code."""
    base, quote = next(
        ((symbol[: -len(q)], q) for q in ("USDT", "USD") if symbol.endswith(q)),
        (symbol[:-3], symbol[-3:]),
    )
    return f"{'BTC' if base == 'XBT' else base}/{quote}"


def test_recorded_legacy_frames_match_verification(fixtures_dir: Path) -> None:
    expected = json.loads((fixtures_dir / "verification.json").read_text())["bitmex"]
    lines = (fixtures_dir / "bitmex" / "bitmex.ws.jsonl").read_text().splitlines()
    adapters: dict[str, BitmexAdapter] = {}
    ref: dict[str, dict[tuple[int, int], float]] = {}  # independent id → price map
    counts: Counter[str] = Counter()
    trades: list[tuple[int, int, int, bytes, float, float, int, int]] = []
    expected_trades: dict[bytes, tuple[int, float, float, int]] = {}
    trade_frames: list[tuple[str, dict[str, Any]]] = []
    for line in lines:
        record = json.loads(line)
        msg, ts_recv = json.loads(record["frame"]), int(record["t"] * SECOND)
        if msg.get("table") not in ("orderBookL2", "trade"):
            continue
        for symbol, sub in split_by_symbol(msg).items():
            a = adapters.get(symbol)
            if a is None:
                a = adapters[symbol] = BitmexAdapter(pair_for(symbol))
                a.on_open()
            assert a.symbol == symbol
            action, is_book = sub["action"], sub["table"] == "orderBookL2"
            if is_book and action != "partial" and not a.book_live:
                counts["rows_before_partial"] += len(sub["data"])
            events = a.receive(json.dumps(sub), ts_recv)
            counts["invalid"] += len(of(events, BookInvalid))
            counts["valid"] += len(of(events, BookValid))
            counts["crossed"] += a.book.crossed()
            trades += [row for e in of(events, Trades) for row in e.rows]
            if not is_book:
                trade_frames.append((symbol, sub))
                for r in sub["data"]:
                    side = 1 if r["side"] == "Buy" else -1
                    expected_trades.setdefault(
                        r["trdMatchID"].encode(),
                        (iso_to_ns(r["timestamp"]), r["price"], r["size"], side),
                    )
                continue
            book = ref.setdefault(symbol, {})
            keys = [(r["id"], BID if r["side"] == "Buy" else ASK) for r in sub["data"]]
            if action == "partial":
                book.clear()
            if action in ("partial", "insert"):
                book.update((k, float(r["price"])) for k, r in zip(keys, sub["data"], strict=True))
            rows = delta_rows(events)
            if action in ("update", "delete"):
                counts[f"{action}_frames"] += 1
                counts[f"{action}_rows"] += len(rows)
                # legacy update/delete rows carry no price: the adapter's must be the partial's
                assert [(r[3], r[4]) for r in rows] == [(k[1], book[k]) for k in keys]
                assert all(r[0] == -1 for r in rows)  # and no timestamp
            if action == "delete":
                for k in keys:
                    del book[k]
    assert len(adapters) == 10
    assert counts["valid"] == expected["book_partial_frames"] == 10
    assert counts["update_frames"] == expected["book_delta_frames_update"]
    assert counts["delete_frames"] == expected["book_delta_frames_delete"]
    assert counts["update_rows"] == expected["updates_applied"] == 1490
    assert counts["delete_rows"] == expected["deletes_applied"] == 543
    assert counts["invalid"] == 0  # 0 unknown ids, 0 duplicate inserts, no persisting cross
    assert expected["update_of_unknown_id"] == expected["insert_of_existing_id"] == 0
    assert counts["crossed"] == expected["crossed_book_states"] == 0
    assert counts["rows_before_partial"] == expected["rows_dropped_before_partial"] == 0
    for symbol, a in adapters.items():
        bids, asks = book_dicts(a)
        assert len(bids) + len(asks) == len(ref[symbol]) > 0
        assert set(bids) | set(asks) == set(ref[symbol].values())
    # trades: each first partial (10) is history, not stored; the 7 inserts hold 17 trades
    assert expected["trade_frames_partial"] == 10 and expected["trade_frames_insert"] == 7
    history = {
        r["trdMatchID"].encode()
        for _, m in trade_frames
        if m["action"] == "partial"
        for r in m["data"]
    }
    assert [r[3] for r in trades] == [uid for uid in expected_trades if uid not in history]
    assert len(trades) == len({r[3] for r in trades}) == 17
    # every recorded trade row, partial ones too, parses with its UUID kept exactly
    fresh: dict[str, BitmexAdapter] = {}
    for symbol, msg in trade_frames:
        if symbol not in fresh:
            fresh[symbol] = BitmexAdapter(pair_for(symbol), ["trades"])
            fresh[symbol].on_open()
            fresh[symbol].receive(frame("trade", "partial", [], symbol), 0)
        events = fresh[symbol].receive(json.dumps({**msg, "action": "insert"}), 0)
        trades += [row for e in of(events, Trades) for row in e.rows]
    assert len(trades) == 17 + 27
    assert {r[3] for r in trades} == set(expected_trades)
    for ts_event, _, trade_id, uid, price, amount, side, flags in trades:
        assert (trade_id, flags, len(uid)) == (-1, 0, 36)
        assert (ts_event, price, amount, side) == expected_trades[uid]


# -- property: deltas == rebuild from scratch -------------------------------------------
ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(["set", "set", "delete"]),
        st.integers(0, 11),
        st.integers(1, 9),
        st.integers(1, 500),
        st.booleans(),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(st.integers(0, 11), max_size=12, unique=True),
    ops=ops_strategy,
    legacy=st.booleans(),
    batch=st.booleans(),
)
def test_property_deltas_equal_rebuild(
    initial: list[int], ops: list[tuple[str, int, int, int, bool]], legacy: bool, batch: bool
) -> None:
    # ids 0..5 are bids, 6..11 asks; bids below 50, asks above, so the book never crosses.
    # Legacy ids encode the price; newer ones are arbitrary, so two ids may share a level.
    def price_of(ident: int, tick: int) -> float:
        if legacy:
            return 40.0 + ident if ident < 6 else 60.0 + ident
        return 40.0 + tick / 2 if ident < 6 else 60.0 + tick / 2

    def side_of(ident: int) -> str:
        return "Buy" if ident < 6 else "Sell"

    state = {i: (price_of(i, i % 9 + 1), 10.0 + i) for i in initial}
    partial = [brow(i, side_of(i), s, p) for i, (p, s) in state.items()]
    messages: list[tuple[str, list[dict[str, Any]]]] = []
    for kind, ident, tick, size, move in ops:
        if ident in state and kind == "delete":
            old_price = state.pop(ident)[0]
            action, price = "delete", None if legacy else old_price
            row = brow(ident, side_of(ident), None, price)
        else:
            action = "update" if ident in state else "insert"
            old = state.get(ident, (price_of(ident, tick), 0.0))[0]
            price = old if legacy or not move else price_of(ident, tick)
            state[ident] = (price, float(size))
            shown = None if legacy and action == "update" else price
            row = brow(ident, side_of(ident), size, shown)
        if batch and messages and messages[-1][0] == action:
            messages[-1][1].append(row)
        else:
            messages.append((action, [row]))
    a = BitmexAdapter("BTC/USD")
    a.on_open()
    events = a.receive(frame("orderBookL2", "partial", partial), T0)
    for action, rows in messages:
        events += a.receive(frame("orderBookL2", action, rows), T0)
    assert not of(events, BookInvalid)
    rebuilt = BitmexAdapter("BTC/USD")
    rebuilt.on_open()
    final = [brow(i, side_of(i), s, p) for i, (p, s) in state.items()]
    rebuilt.receive(frame("orderBookL2", "partial", final), T0)
    assert a.book.top(100) == rebuilt.book.top(100)
    # replaying the stored rows from the SNAPSHOT rows rebuilds the same book
    replay: dict[tuple[int, float], float] = {}
    for stored in delta_rows(events):
        level, level_size = (stored[3], stored[4]), stored[5]
        if level_size == 0:
            replay.pop(level, None)
        elif level[0] != 0:  # side 0 marks an empty snapshot
            replay[level] = level_size
    bids, asks = book_dicts(a)
    assert replay == {
        **{(BID, p): s for p, s in bids.items()},
        **{(ASK, p): s for p, s in asks.items()},
    }


@settings(max_examples=200, deadline=None)
@given(
    field=st.sampled_from(["id", "side", "size", "price", "timestamp", "symbol"]),
    value=st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
        lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids),
        max_leaves=5,
    ),
    action=st.sampled_from(["partial", "insert", "update", "delete"]),
)
def test_property_hostile_rows_raise_only_parse_error(field: str, value: Any, action: str) -> None:
    a = live_adapter()
    row = {**brow(1 if action != "insert" else 9, "Buy", 4, 99.0), field: value}
    try:
        events = a.receive(frame("orderBookL2", action, [row]), T0)
    except ParseError:
        return
    assert all(isinstance(e, BookDeltas | BookValid | BookInvalid | Send) for e in events)


# -- real sockets against the fake ------------------------------------------------------
class Client:
    """Drives one adapter over a websocket-client connection, as the stream actor would."""

    def __init__(self, adapter: BitmexAdapter) -> None:
        self.adapter = adapter
        self.ws: WebSocket | None = None
        self.events: list[Event] = []
        self.texts: list[str] = []

    def connect(self) -> None:
        self.ws = create_connection(self.adapter.url(), timeout=5)
        self.act(self.adapter.on_open())

    def act(self, events: list[Event]) -> None:
        self.events += events
        for event in events:
            if isinstance(event, Send):
                assert self.ws is not None
                self.ws.send(event.text)

    def pump(self, until: Callable[[], bool], timeout: float = 10.0) -> None:
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        self.ws.settimeout(0.05)
        while not until():
            assert time.monotonic() < deadline, "condition not reached in time"
            try:
                text = self.ws.recv()
            except WebSocketTimeoutException:
                continue
            assert isinstance(text, str) and text
            self.texts.append(text)
            self.act(self.adapter.receive(text, time.time_ns()))

    def pump_for(self, seconds: float) -> int:
        """Receive for ``seconds``; returns how many frames came."""
        before = len(self.texts)
        end = time.monotonic() + seconds
        self.pump(lambda: time.monotonic() >= end, timeout=seconds + 5)
        return len(self.texts) - before

    def sync(self) -> None:
        """Round-trip a ping: every frame the fake sent before it has then been received."""
        assert self.ws is not None
        pongs = self.texts.count("pong")
        self.ws.send("ping")
        self.pump(lambda: self.texts.count("pong") > pongs)

    def drain_until_closed(self) -> None:
        assert self.ws is not None
        self.ws.settimeout(5)
        try:
            while text := self.ws.recv():
                assert isinstance(text, str)
                self.texts.append(text)
                self.act(self.adapter.receive(text, time.time_ns()))
        except (WebSocketConnectionClosedException, ConnectionError):
            pass
        self.ws.close()

    def count(self, kind: type[Any]) -> int:
        return len(of(self.events, kind))

    def trade_rows(self) -> list[tuple[int, int, int, bytes, float, float, int, int]]:
        return [row for e in of(self.events, Trades) for row in e.rows]


@contextmanager
def serving(seed: int, **kwargs: Any) -> Iterator[FakeBitmex]:
    server = FakeBitmex(["BTC/USD"], seed=seed, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake() -> Iterator[FakeBitmex]:
    with serving(11, interval=0.01, history=200) as server:
        yield server


def test_fake_trades_match_truth_without_duplicates_after_reconnect(fake: FakeBitmex) -> None:
    client = Client(BitmexAdapter("BTC/USD", url=fake.url))
    client.connect()
    client.pump(lambda: client.adapter.book_live and len(client.trade_rows()) >= 20)
    fake.drop_connections()
    client.drain_until_closed()
    before_drop = {row[3] for row in client.trade_rows()}
    time.sleep(0.2)  # trades go on while we are away
    client.connect()  # same adapter: its trade-id memory spans the reconnect
    client.pump(lambda: client.count(BookValid) == 2 and len(fake.history_sent["BTC/USD"]) == 2)
    client.pump(lambda: len(client.trade_rows()) > len(before_drop) + 50)
    fake.pause()
    client.sync()

    uids = [row[3] for row in client.trade_rows()]
    assert len(uids) == len(set(uids))
    uid = fake.trade_uid
    sent = {uid("BTC/USD", t.trade_id).encode() for t in fake.sent_trades["BTC/USD"]}
    first, second = (
        {uid("BTC/USD", t.trade_id).encode() for t in h} for h in fake.history_sent["BTC/USD"]
    )
    assert set(uids) == sent | (second - first)  # the first partial is history: not stored
    assert second & before_drop  # the partial replayed trades already stored: deduplicated
    assert second - sent - first  # ... and trades of the gap: stored from the partial
    truth = {uid("BTC/USD", t.trade_id).encode(): t for t in fake.sent_trades["BTC/USD"]}
    for ts_event, _, trade_id, key, price, amount, side, _ in client.trade_rows():
        if key in truth:
            t = truth[key]
            assert (ts_event, trade_id, price, amount, side) == (
                t.ts_ms * MS,
                -1,
                float(t.price),
                float(t.amount),
                t.side,
            )
    assert book_dicts(client.adapter) == fake.book("BTC/USD")
    assert client.count(BookInvalid) == 0


def test_fake_unknown_id_resyncs_once(fake: FakeBitmex) -> None:
    client = Client(BitmexAdapter("BTC/USD", url=fake.url))
    client.connect()
    client.pump(lambda: client.adapter.book_live and client.count(BookDeltas) > 10)
    assert fake.inject_unknown_id("BTC/USD") == 1
    client.pump(lambda: client.count(BookValid) == 2)
    fake.pause()
    client.sync()
    assert client.count(BookInvalid) == 1
    i = next(n for n, e in enumerate(client.events) if isinstance(e, BookInvalid))
    invalid, unsub, sub = client.events[i : i + 3]
    assert isinstance(invalid, BookInvalid) and invalid.cause == "resync"
    assert "update of unknown id" in invalid.detail
    assert (unsub, sub) == (Send(UNSUB_BOOK), Send(SUB_BOOK))
    after = client.events[i + 3 :]
    first = next(e for e in after if isinstance(e, BookDeltas))
    assert all(r[6] & FLAG_SNAPSHOT for r in first.rows)  # nothing stored until the new partial
    assert after.index(first) < next(n for n, e in enumerate(after) if isinstance(e, BookValid))
    assert fake.book_partials_sent == 2
    assert book_dicts(client.adapter) == fake.book("BTC/USD")


def test_fake_unknown_symbol_unverified_error_text_gives_venue_errors(fake: FakeBitmex) -> None:
    client = Client(BitmexAdapter("FOO/BAR", url=fake.url))
    client.connect()
    client.pump(lambda: client.count(VenueError) == 2)
    assert all("FOOBAR" in e.message for e in of(client.events, VenueError))
    assert not client.adapter.book_live and not client.trade_rows()
    assert client.ws is not None
    client.ws.close()


def test_fake_keepalive_ping_pong_then_stale(fake: FakeBitmex) -> None:
    client = Client(BitmexAdapter("BTC/USD", url=fake.url))
    client.connect()
    client.pump(lambda: client.adapter.book_live)
    fake.pause()
    client.sync()
    a, last = client.adapter, client.adapter.last_recv_ns
    assert a.keepalive(last + 4 * SECOND) == []
    ping = a.keepalive(last + 5 * SECOND)
    assert ping == [Send("ping")]
    pongs = client.texts.count("pong")
    client.act(ping)
    client.pump(lambda: client.texts.count("pong") > pongs)
    pong = a.last_recv_ns
    assert a.keepalive(pong + 4 * SECOND) == []  # the pong cleared the ping, restarted the clock
    fake.go_silent(3)
    now = last + 10 * SECOND
    ping = a.keepalive(now)
    assert ping == [Send("ping")]  # idle again: a new ping, no reconnect
    client.act(ping)
    assert client.pump_for(0.3) == 0  # the silent fake never answers
    assert a.keepalive(now + 5 * SECOND - 1) == []
    assert a.keepalive(now + 5 * SECOND) == [
        Reconnect("stale", "bitmex: no pong within 5 s of a ping")
    ]
    assert client.ws is not None
    client.ws.close()


# -- end to end: fake venue → actors → HDF5 → open_store ---------------------------------
PAIR = "BTC/USD"


def _settle(fake: FakeBitmex, path: Path) -> None:
    """Stop the market; wait until storage holds every delivered trade and the venue's book."""
    fake.pause()
    wait_until(lambda: len(open_store(path).trades("bitmex", PAIR)) >= len(fake.sent_trades[PAIR]))
    wait_until(
        lambda: rebuild_book(open_store(path).book_deltas("bitmex", PAIR)) == fake.book(PAIR)
    )


def _assert_trades_equal(fake: FakeBitmex, stored: Any) -> None:
    sent = fake.sent_trades[PAIR]
    assert stored["trade_uid"].tolist() == [fake.trade_uid(PAIR, t.trade_id).encode() for t in sent]
    assert len(np.unique(stored["trade_uid"])) == len(stored)
    assert stored["trade_id"].tolist() == [-1] * len(sent)
    assert stored["price"].tolist() == [float(t.price) for t in sent]
    assert stored["amount"].tolist() == [float(t.amount) for t in sent]
    assert stored["side"].tolist() == [t.side for t in sent]
    assert stored["ts_event"].tolist() == [t.ts_ms * MS for t in sent]


def test_e2e_every_live_trade_once_and_an_unknown_id_is_one_resync_gap(tmp_path: Path) -> None:
    with serving(5) as fake:
        job = StreamJob("bitmex", [PAIR], ["trades", "book"], url=fake.url, time_step=0.2)
        with Collector(config(tmp_path, [job])) as collector:
            wait_until(lambda: len(fake.sent_trades[PAIR]) > 30 and collector.status()[0].book_live)
            assert fake.inject_unknown_id(PAIR) == 1
            wait_until(lambda: fake.book_partials_sent == 2)
            wait_until(lambda: collector.status()[0].book_live)
            wait_until(lambda: len(fake.sent_trades[PAIR]) > 60)
            _settle(fake, tmp_path)
            wait_for_book_samples(tmp_path, "bitmex", [PAIR])
            row = collector.status()[0]
            assert (row.state, row.gen, row.resyncs) == ("running", 1, 1)
        store = open_store(tmp_path)
        _assert_trades_equal(fake, store.trades("bitmex", PAIR))
        assert rebuild_book(store.book_deltas("bitmex", PAIR)) == fake.book(PAIR)
        gaps = store.gaps("bitmex", PAIR)
        assert gaps["cause"].tolist() == ["resync"]
        assert "unknown id" in gaps["detail"][0]
        snaps = store.book_snapshots("bitmex", PAIR)
        assert len(snaps) >= 2 and np.all(snaps["bid_price"][:, 0] < snaps["ask_price"][:, 0])


def test_e2e_dropped_connection_is_one_gap_and_the_partial_fills_it_without_duplicates(
    tmp_path: Path,
) -> None:
    with serving(6, history=500) as fake:
        job = StreamJob("bitmex", [PAIR], ["trades", "book"], url=fake.url)
        with Collector(config(tmp_path, [job])) as collector:
            wait_until(lambda: len(fake.sent_trades[PAIR]) > 20 and collector.status()[0].book_live)
            before = fake.connection_count
            fake.drop_connections()
            wait_until(lambda: fake.connection_count > before)
            wait_until(lambda: collector.status()[0].gen == 2 and collector.status()[0].book_live)
            wait_until(lambda: len(fake.history_sent[PAIR]) == 2)
            wait_until(lambda: len(fake.sent_trades[PAIR]) > 60)
            _settle(fake, tmp_path)
        store = open_store(tmp_path)
        # One adapter serves every generation, so the reconnect's partial fills the outage with
        # the trades it missed and replays none of those already stored.
        stored = store.trades("bitmex", PAIR)
        assert len(np.unique(stored["trade_uid"])) == len(stored)
        live = [fake.trade_uid(PAIR, t.trade_id).encode() for t in fake.sent_trades[PAIR]]
        history = {fake.trade_uid(PAIR, t.trade_id).encode() for t in fake.history_sent[PAIR][1]}
        uids = stored["trade_uid"].tolist()
        filled = [uid for uid in uids if uid not in set(live)]
        assert filled and set(filled) <= history
        assert [uid for uid in uids if uid in set(live)] == live
        assert (np.diff(stored["ts_event"]) >= 0).all()
        assert store.gaps("bitmex", PAIR)["cause"].tolist() == ["disconnect"]
        assert rebuild_book(store.book_deltas("bitmex", PAIR)) == fake.book(PAIR)
