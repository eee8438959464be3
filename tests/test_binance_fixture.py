"""The Binance adapter on the recorded real session (fixtures/binance)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import BookDeltas, BookValid, FetchSnapshot
from dccd_actors.exchanges.binance import BinanceAdapter
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT

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
    for event in events:
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
