"""The Binance adapter on the recorded real session (fixtures/binance)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
    SECOND,
    BookDeltas,
    BookInvalid,
    BookValid,
    FetchSnapshot,
    Reconnect,
)
from dccd_actors.exchanges.binance import BinanceAdapter
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT
from tests.helpers import as_deltas

SYMBOLS = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR"}


def _replay(fixtures_dir: Path) -> dict[str, object]:
    ws = [json.loads(line) for line in (fixtures_dir / "binance/binance.ws.jsonl").open()]
    http = [json.loads(line) for line in (fixtures_dir / "binance/binance.http.jsonl").open()]
    adapters = {sym: BinanceAdapter(pair, ["book"]) for sym, pair in SYMBOLS.items()}
    fetches = {sym: a.on_open() for sym, a in adapters.items()}
    timeline = [(r["t"], "ws", r["frame"]) for r in ws] + [(r["t"], "http", r) for r in http]
    timeline.sort(key=lambda item: item[0])
    tickers: dict[tuple[str, int], dict[str, str]] = {}
    result: dict[str, object] = {"valid": {}, "rows": {s: [] for s in SYMBOLS}, "ticker": [0, 0]}
    for t, kind, payload in timeline:
        ts = int(t * 1e9)
        if kind == "http":
            symbol = payload["url"].split("symbol=")[1].split("&")[0]  # type: ignore[index]
            events = adapters[symbol].receive_snapshot(payload["body"], ts)  # type: ignore[index]
            _collect(result, symbol, events)
            continue
        msg = json.loads(payload)
        stream, data = msg["stream"], msg["data"]
        symbol = stream.split("@")[0].upper()
        if "@depth" in stream:
            _collect(result, symbol, adapters[symbol].receive(payload, ts))
            ticker = tickers.pop((symbol, adapters[symbol]._local_id), None)
            if ticker is not None:
                _check_ticker(result, adapters[symbol], ticker)
        elif stream.endswith("@bookTicker"):
            tickers[(symbol, int(data["u"]))] = (
                data  # real time: arrives before its 100 ms depth event
            )
    result["adapters"] = adapters
    result["fetches"] = fetches
    return result


def _collect(result: dict[str, object], symbol: str, events: list[object]) -> None:
    for event in as_deltas(events):
        if isinstance(event, BookDeltas):
            result["rows"][symbol].extend(event.rows)  # type: ignore[index]
        elif isinstance(event, BookValid):
            result["valid"][symbol] = event.ts_recv  # type: ignore[index]


def _check_ticker(result: dict[str, object], adapter: BinanceAdapter, data: dict[str, str]) -> None:
    if not adapter.book_live or int(data["u"]) != adapter._local_id:
        return
    top = (adapter.book.best_bid(), adapter.book.best_ask())
    expected = ((float(data["b"]), float(data["B"])), (float(data["a"]), float(data["A"])))
    result["ticker"][0 if top == expected else 1] += 1  # type: ignore[index]


def test_every_symbol_asks_for_the_rest_snapshot_at_open(fixtures_dir: Path) -> None:
    result = _replay(fixtures_dir)
    fetches = result["fetches"]
    assert fetches["NKNUSDT"] == [  # type: ignore[index]
        FetchSnapshot("https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000")
    ]


def test_four_rest_snapshots_bridge_the_diff_stream(fixtures_dir: Path) -> None:
    result = _replay(fixtures_dir)
    assert set(result["valid"]) == set(SYMBOLS)  # type: ignore[arg-type]
    adapters = result["adapters"]
    expected_ids = {
        "NKNUSDT": 499869752,
        "BLZETH": 281916627,
        "LRCBTC": 259345543,
        "RUNEEUR": 15602511,
    }
    for symbol, last_id in expected_ids.items():
        rows = result["rows"][symbol]  # type: ignore[index]
        snapshot = [r for r in rows if r[6] & FLAG_SNAPSHOT]
        assert {r[2] for r in snapshot} == {last_id}
        assert snapshot[-1][6] == FLAG_SNAPSHOT | FLAG_LAST
        assert adapters[symbol].book_live  # type: ignore[index]
        assert not adapters[symbol].book.crossed()  # type: ignore[index]


def test_168_of_168_continuity_checks_pass(fixtures_dir: Path) -> None:
    result = _replay(fixtures_dir)
    adapters = result["adapters"]
    counts = {s: a.continuity_checks for s, a in adapters.items()}  # type: ignore[attr-defined]
    assert counts == {"NKNUSDT": 148, "BLZETH": 8, "LRCBTC": 12, "RUNEEUR": 0}
    assert sum(counts.values()) == 168
    assert all(a.book_live for a in adapters.values())  # type: ignore[attr-defined]


def test_nknusdt_first_event_starts_exactly_after_the_snapshot(fixtures_dir: Path) -> None:
    rows = _replay(fixtures_dir)["rows"]["NKNUSDT"]  # type: ignore[index]
    first_delta = next(r for r in rows if not r[6] & FLAG_SNAPSHOT)
    assert first_delta[2] == 499869754  # u of the event with U == lastUpdateId + 1


def test_best_bid_ask_equals_book_ticker_26_of_26(fixtures_dir: Path) -> None:
    matches, mismatches = _replay(fixtures_dir)["ticker"]  # type: ignore[misc]
    assert (matches, mismatches) == (26, 0)


def test_trade_frames_map_side_from_buyer_is_maker(fixtures_dir: Path) -> None:
    lines = (fixtures_dir / "supplementary/binance_trade_examples.jsonl").read_text().splitlines()
    for line in lines:
        frame = json.loads(line)["frame"]
        data = json.loads(frame)
        data = data.get("data", data)
        adapter = BinanceAdapter(f"{data['s'][:3]}/{data['s'][3:]}", ["trades"])
        (event,) = adapter.receive(frame, 5)
        (row,) = event.rows  # type: ignore[union-attr]
        assert row[0] == data["T"] * 1_000_000
        assert row[2] == data["t"]
        assert row[4] == float(data["p"]) and row[5] == float(data["q"])
        assert row[6] == (-1 if data["m"] else 1)


def test_an_unusable_rest_snapshot_is_asked_for_again_at_the_next_update() -> None:
    adapter = BinanceAdapter("BTC/USDT", ["book"], rest_url="http://127.0.0.1:9")
    [fetch] = adapter.on_open()
    depth = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 11, "u": 12,
             "b": [["100.0", "1.0"]], "a": []}  # fmt: skip
    frame = json.dumps({"stream": "btcusdt@depth@100ms", "data": depth})
    assert adapter.receive(frame, 1) == []  # buffered while the snapshot is on its way
    with pytest.raises(ParseError, match="soon"):
        adapter.receive_snapshot('{"lastUpdateId": "soon"}', 2)
    depth.update(U=13, u=13)
    assert adapter.receive(json.dumps({"stream": "btcusdt@depth@100ms", "data": depth}), 3) == [
        fetch
    ]
    events = adapter.receive_snapshot('{"lastUpdateId": 12, "bids": [], "asks": []}', 4)
    assert BookValid(4) in events and adapter.book.best_bid() == (100.0, 1.0)


# -- the snapshot bridge, sans IO (PROTOCOLS §1.6) ------------------------------------
SNAP_ROWS = [(BID, 99.0, 2.0, FLAG_SNAPSHOT), (ASK, 101.0, 3.0, FLAG_SNAPSHOT | FLAG_LAST)]


def _diff(first: int, last: int, bid: str = "100.0") -> str:
    depth = {"e": "depthUpdate", "E": 7, "s": "BTCUSDT", "U": first, "u": last,
             "b": [[bid, "1.0"]], "a": []}  # fmt: skip
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": depth})


def _snapshot(last_id: int) -> str:
    return json.dumps(
        {"lastUpdateId": last_id, "bids": [["99.0", "2.0"]], "asks": [["101.0", "3.0"]]}
    )


def _opened() -> tuple[BinanceAdapter, FetchSnapshot]:
    adapter = BinanceAdapter("BTC/USDT", ["book"], rest_url="http://127.0.0.1:9")
    [fetch] = adapter.on_open()
    assert isinstance(fetch, FetchSnapshot)
    return adapter, fetch


def _bridge(snap_ns: int, last_id: int, event_ns: int, u: int) -> list[object]:
    """What a bridge returns: the snapshot rows, the event's row, then BookValid."""
    rows = [(-1, snap_ns, last_id, side, p, q, f) for side, p, q, f in SNAP_ROWS]
    rows.append((7 * MS, event_ns, u, BID, 100.0, 1.0, FLAG_LAST))
    return [BookDeltas(rows), BookValid(snap_ns)]


def test_a_snapshot_one_before_the_first_buffered_event_bridges_it() -> None:
    adapter, _ = _opened()
    assert adapter.receive(_diff(11, 12), 1) == []
    # lastUpdateId == U - 1: U <= lastUpdateId + 1 <= u holds, no refetch
    assert adapter.receive_snapshot(_snapshot(10), 2) == _bridge(2, 10, 2, 12)
    assert adapter.book_live and adapter._local_id == 12


def test_a_snapshot_before_any_event_is_held_then_bridged_by_the_next_event() -> None:
    adapter, _ = _opened()
    assert adapter.receive_snapshot(_snapshot(10), 2) == []
    assert not adapter.book_live and adapter.book_top(5) is None
    assert adapter.receive(_diff(9, 10), 3) == []  # older than the snapshot: dropped
    assert not adapter.book_live
    assert adapter.receive(_diff(10, 12), 4) == _bridge(2, 10, 4, 12)
    assert adapter.book_live and adapter.continuity_checks == 0  # a bridge, not a check
    [rows] = as_deltas(adapter.receive(_diff(13, 13, bid="98.0"), 5))
    assert isinstance(rows, BookDeltas) and rows.rows[0][2:6] == (13, BID, 98.0, 1.0)
    assert adapter.continuity_checks == 1


def test_a_held_snapshot_older_than_the_stream_is_fetched_again_without_a_gap() -> None:
    adapter, fetch = _opened()
    assert adapter.receive_snapshot(_snapshot(10), 2) == []
    events = adapter.receive(_diff(12, 13), 3)  # U > lastUpdateId + 1: updates 11 are lost
    assert events == [fetch]  # no BookInvalid: the book was never live
    assert not adapter.book_live and adapter.book.bid_count == 0
    assert adapter.receive(_diff(14, 14, bid="98.0"), 4) == []  # buffered, fetch in flight
    valid = adapter.receive_snapshot(_snapshot(12), 5)
    assert [r[2] for r in valid[0].rows] == [12, 12, 13, 14]  # type: ignore[attr-defined]
    assert valid[1] == BookValid(5) and adapter._local_id == 14
    assert not any(isinstance(e, BookInvalid) for e in events + valid)


def test_a_quiet_symbol_trusts_a_held_snapshot_after_one_second() -> None:
    adapter, _ = _opened()
    adapter.receive_snapshot(_snapshot(10), 2 * SECOND)
    assert adapter.keepalive(3 * SECOND) == []  # held 1 s, not more
    [deltas, valid] = adapter.keepalive(3 * SECOND + 1)
    expected = [(-1, 2 * SECOND, 10, side, p, q, f) for side, p, q, f in SNAP_ROWS]
    assert deltas == BookDeltas(expected) and valid == BookValid(2 * SECOND)
    assert adapter.book_live and adapter.keepalive(9 * SECOND) == []
    [invalid, refetch] = adapter.receive(_diff(12, 12), 10 * SECOND)
    assert isinstance(invalid, BookInvalid) and invalid.cause == "seq_gap"  # live: a real gap
    assert isinstance(refetch, FetchSnapshot)


def test_a_held_snapshot_does_not_survive_a_new_connection() -> None:
    adapter, _ = _opened()
    adapter.receive_snapshot(_snapshot(10), 2)
    adapter.on_open()
    assert adapter.keepalive(10 * SECOND) == [] and not adapter.book_live


# -- other messages ------------------------------------------------------------------
@pytest.mark.parametrize(
    "frame",
    [
        '{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}',
        '{"stream":"!serverShutdown","data":{"E":1770123456789}}',  # §1.1 leaves data open
        '{"stream":"!serverShutdown","data":null}',
        '{"e":"serverShutdown","E":1770123456789}',
    ],
)
def test_server_shutdown_in_any_layout_asks_for_a_new_connection(frame: str) -> None:
    [event] = BinanceAdapter("BTC/USDT").receive(frame, 1)
    assert event == Reconnect("disconnect", "serverShutdown announced by Binance", planned=True)


def test_recorded_agg_trade_and_book_ticker_frames_of_unsubscribed_streams_are_ignored(
    fixtures_dir: Path,
) -> None:
    ws = [json.loads(line)["frame"] for line in (fixtures_dir / "binance/binance.ws.jsonl").open()]
    frames = [f for f in ws if "@aggTrade" in f or "@bookTicker" in f]
    assert len(frames) > 50
    adapter = BinanceAdapter("NKN/USDT", ["trades", "book"])
    for frame in frames:
        assert adapter.receive(frame, 1) == []
        raw = json.dumps(json.loads(frame)["data"])  # the uncombined layout
        assert adapter.receive(raw, 1) == []


# real payloads (PROTOCOLS §1.5 and §1.6, from fixtures/binance/binance.ws.jsonl)
AGG_TRADE = {"e": "aggTrade", "E": 1633998523963, "s": "NKNUSDT", "a": 15683430,
             "p": "0.35280000", "q": "58.00000000", "f": 19862790, "l": 19862790,
             "T": 1633998523963, "m": False, "M": True}  # fmt: skip
BOOK_TICKER = {"u": 499869768, "s": "NKNUSDT", "b": "0.35210000", "B": "672.00000000",
               "a": "0.35260000", "A": "3199.00000000"}  # fmt: skip


@pytest.mark.parametrize(
    ("stream", "data", "kind"),
    [
        ("nknusdt@aggTrade", {**AGG_TRADE, "p": "-0.35"}, "bad_field"),
        ("nknusdt@aggTrade", {**AGG_TRADE, "T": "soon"}, "bad_field"),
        ("nknusdt@aggTrade", {"e": "aggTrade", "s": "NKNUSDT"}, "bad_field"),
        ("nknusdt@bookTicker", {**BOOK_TICKER, "b": "x"}, "bad_field"),
        ("nknusdt@bookTicker", {"u": 1}, "bad_field"),
        ("nknusdt@kline_1m", {"e": "kline"}, "unknown"),  # not a kind we know
    ],
)
def test_malformed_frames_of_unsubscribed_streams_are_still_parse_errors(
    stream: str, data: dict[str, object], kind: str
) -> None:
    with pytest.raises(ParseError) as caught:
        BinanceAdapter("NKN/USDT").receive(json.dumps({"stream": stream, "data": data}), 1)
    assert caught.value.kind == kind
