"""Hostile and broken input never takes the collector down and never corrupts a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dccd_actors import Collector, RestartPolicy, StreamJob, open_store
from dccd_actors.testing import FakeBinance
from tests.helpers import config, rebuild_book, wait_until

PAIR = "BTC/USDT"


def _trade(**fields: object) -> str:
    data = {
        "e": "trade",
        "E": 1,
        "s": "BTCUSDT",
        "t": 1,
        "p": "1.0",
        "q": "1.0",
        "T": 1,
        "m": False,
        **fields,
    }
    return json.dumps({"stream": "btcusdt@trade", "data": data})


def _hostile_frames() -> list[tuple[str, str | bytes]]:
    """(expected kind, frame): every kind of garbage a venue or a middlebox could send."""
    far_future_ms = 4_102_444_800_000  # 2100-01-01
    kinds: list[tuple[str, str | bytes]] = [
        ("not_json", "this is not json"),
        ("not_json", '{"stream":"btcusdt@trade","data":{"e":"trade"'),  # truncated
        ("binary", b"\x00\x01\x02binary frame"),
        ("unexpected", "[1, 2, 3]"),
        ("unknown", json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline"}})),
        ("bad_field", _trade(p=["1.0"])),  # a price that is a list
        ("bad_field", _trade(q="abc")),  # a size of letters
        ("bad_field", _trade(p="-5.0")),  # negative price
        ("bad_field", _trade(p="NaN")),
        ("bad_field", _trade(t="x")),
        ("future_timestamp", _trade(T=far_future_ms)),
        ("wrong_symbol", _trade(s="ETHBTC")),
    ]
    return kinds


def test_a_thousand_hostile_frames_are_counted_and_good_data_is_stored_exactly(
    tmp_path: Path,
) -> None:
    hostile = _hostile_frames()
    rounds = 1000 // len(hostile) + 1
    with FakeBinance([PAIR], seed=31) as fake:
        job = StreamJob("binance", [PAIR], ["trades", "book"], url=fake.url, rest_url=fake.rest_url)
        with Collector(config(tmp_path, [job])) as c:
            wait_until(lambda: c.status()[0].book_live and len(fake.sent_trades[PAIR]) > 10)
            for _ in range(rounds):
                for _, frame in hostile:
                    assert fake.broadcast_raw(frame) == 1
            expected: dict[str, int] = {}
            for kind, _ in hostile:
                expected[kind] = expected.get(kind, 0) + rounds
            wait_until(lambda: c.status()[0].malformed_by_kind == expected)
            wait_until(lambda: len(fake.sent_trades[PAIR]) > 60)
            fake.pause()
            wait_until(lambda: _last_seq(tmp_path) == fake.last_update_id(PAIR))
            row = c.status()[0]
            assert (
                row.state == "running" and row.gen == 1 and row.malformed == rounds * len(hostile)
            )
            assert row.last_malformed
        store = open_store(tmp_path)
        trades = store.trades("binance", PAIR)
        assert trades["trade_id"].tolist() == [t.trade_id for t in fake.sent_trades[PAIR]]
        assert trades["price"].tolist() == [float(t.price) for t in fake.sent_trades[PAIR]]
        assert rebuild_book(store.book_deltas("binance", PAIR)) == fake.book(PAIR)
        assert len(store.gaps("binance", PAIR)) == 0


def test_a_gigantic_frame_closes_the_connection_and_is_counted(tmp_path: Path) -> None:
    policy = RestartPolicy(min_backoff=0.05, max_backoff=0.1, max_frame_bytes=64 * 1024)
    with FakeBinance([PAIR], seed=32) as fake:
        job = StreamJob("binance", [PAIR], ["trades", "book"], url=fake.url, rest_url=fake.rest_url)
        with Collector(config(tmp_path, [job], policy=policy)) as c:
            wait_until(lambda: c.status()[0].book_live)
            fake.broadcast_raw(_trade(p="1" * 200_000))
            wait_until(lambda: c.status()[0].gen == 2 and c.status()[0].book_live)
            row = c.status()[0]
            assert row.malformed_by_kind.get("too_large") == 1
            assert row.last_exit_cause == "disconnect"
        gaps = open_store(tmp_path).gaps("binance", PAIR)
        assert gaps["cause"].tolist() == ["disconnect"] and "exceeds" in gaps["detail"][0]


def test_depth_levels_that_are_not_numbers_turn_into_a_resync(tmp_path: Path) -> None:
    with FakeBinance([PAIR], seed=33) as fake:
        job = StreamJob("binance", [PAIR], ["book"], url=fake.url, rest_url=fake.rest_url)
        with Collector(config(tmp_path, [job])) as c:
            wait_until(lambda: c.status()[0].book_live)
            fake.pause()
            wait_until(lambda: _last_seq(tmp_path) == fake.last_update_id(PAIR))
            nxt = fake.last_update_id(PAIR) + 1
            bad = {
                "e": "depthUpdate",
                "E": 1,
                "s": "BTCUSDT",
                "U": nxt,
                "u": nxt,
                "b": [["x", "1"]],
                "a": [],
            }
            fake.update_ids[PAIR] += 1  # the venue moved on; our copy of that update was corrupt
            fake.broadcast_raw(json.dumps({"stream": "btcusdt@depth@100ms", "data": bad}))
            fake.resume()
            wait_until(lambda: c.status()[0].resyncs == 1 and c.status()[0].book_live)
            fake.pause()
            wait_until(lambda: _last_seq(tmp_path) == fake.last_update_id(PAIR))
        store = open_store(tmp_path)
        assert store.gaps("binance", PAIR)["cause"].tolist() == ["seq_gap"]
        assert rebuild_book(store.book_deltas("binance", PAIR)) == fake.book(PAIR)
        assert np.all(np.diff(store.book_deltas("binance", PAIR)["ts_recv"]) >= 0)


def _last_seq(path: Path) -> int:
    deltas = open_store(path).book_deltas("binance", PAIR)
    return int(deltas["seq"][-1]) if len(deltas) else -1
