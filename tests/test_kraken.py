"""Kraken v2: recorded frames, book properties, and the adapter against FakeKraken over sockets."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
)
from dccd_actors.exchanges.book import ASK, BID, OrderBook
from dccd_actors.exchanges.kraken import KrakenAdapter, book_checksum, checksum_of
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT
from dccd_actors.testing.kraken import FakeKraken, book_frame, kraken_checksum
from tests.adapter_client import Client, settle
from tests.helpers import config, rebuild_book, wait_for_book_samples, wait_until

PAIR = "BTC/USD"


# -- helpers ------------------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeKraken]:
    with FakeKraken([PAIR, "ETH/USD"], seed=11, interval=0.01) as running:
        assert isinstance(running, FakeKraken)
        yield running
        settle(running)


def rebuild(events: list[Event]) -> OrderBook:
    """Replay stored rows only, as a reader would: a SNAPSHOT run resets the book."""
    book = OrderBook()
    in_snapshot = False
    for event in events:
        if not isinstance(event, BookDeltas):
            continue
        for _, _, _, side, price, size, flags in event.rows:
            if flags & FLAG_SNAPSHOT and not in_snapshot:
                book.clear()
            in_snapshot = bool(flags & FLAG_SNAPSHOT) and not flags & FLAG_LAST
            if side:
                book.set(side, price, size)
    return book


def truth_top(fake: FakeKraken, pair: str, n: int) -> tuple[list[Any], list[Any]]:
    bids, asks = fake.book(pair)
    return (
        sorted(bids.items(), reverse=True)[:n],
        sorted(asks.items())[:n],
    )


def frame(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


# -- contract basics ----------------------------------------------------------------
def test_url_symbol_and_subscriptions_are_v2() -> None:
    adapter = KrakenAdapter("XBT/USD", ["trades", "book"], url="ws://127.0.0.1:9/")
    assert adapter.symbol == "BTC/USD"  # v2 names BTC, not XBT
    assert adapter.url() == "ws://127.0.0.1:9/v2"
    assert KrakenAdapter("ETH/USDT").url() == "wss://ws.kraken.com/v2"
    sends = adapter.on_open()
    assert [json.loads(e.text) for e in sends if isinstance(e, Send)] == [
        {
            "method": "subscribe",
            "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10, "snapshot": True},
            "req_id": 1,
        },
        {
            "method": "subscribe",
            "params": {"channel": "trade", "symbol": ["BTC/USD"], "snapshot": True},
            "req_id": 2,
        },
    ]
    (only_trades,) = KrakenAdapter("ETH/USD", ["trades"]).on_open()
    assert isinstance(only_trades, Send) and '"channel":"trade"' in only_trades.text


# -- recorded frames ----------------------------------------------------------------
def test_v1_fixture_all_4269_checksums_pass_with_the_adapter_rule(fixtures_dir: Path) -> None:
    """The v1 recording (old framing, parsed here) verified with the adapter's CRC function."""
    books: dict[str, OrderBook] = {}
    passed: Counter[str] = Counter()
    failed = 0
    for line in (fixtures_dir / "kraken" / "kraken.ws.jsonl").read_text().splitlines():
        msg = json.loads(json.loads(line)["frame"])
        if not isinstance(msg, list) or not str(msg[-2]).startswith("book"):
            continue
        pair, parts = msg[-1], msg[1:-2]
        book = books.setdefault(pair, OrderBook())
        checksum = None
        for part in parts:
            if "as" in part or "bs" in part:
                book.clear()
            for key, side in (("as", ASK), ("bs", BID), ("a", ASK), ("b", BID)):
                for price, size, *_ in part.get(key, []):
                    book.set(side, float(price), float(size), price, size)
            checksum = part.get("c", checksum)
        book.truncate(1000)  # the recording subscribed depth 1000
        if checksum is not None:
            if book_checksum(book) == int(checksum):
                passed[pair] += 1
            else:
                failed += 1
    expected = json.loads((fixtures_dir / "verification.json").read_text())["kraken_v1"]
    assert failed == 0
    assert sum(passed.values()) == 4269
    assert {pair: {"passed": n} for pair, n in passed.items()} == expected["checksum_by_pair"]


def test_checksum_text_rule_drops_dot_and_leading_zeros() -> None:
    # PROTOCOLS.md §3.7: "0.00100000" -> "100000", "354.80000000" -> "35480000000".
    assert checksum_of([("354.80000000", "1.40000000")], [("0.05", "0.00100000")]) == zlib.crc32(
        b"35480000000140000000" + b"5100000"
    )


def test_v2_supplementary_frames_all_verify_through_the_adapter(fixtures_dir: Path) -> None:
    lines = (fixtures_dir / "supplementary" / "kraken_v2_book.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    verified = 0
    for pair, indexes in (("BTC/USD", [0]), ("BTC/USDT", [1]), ("ETH/USD", [2, 3])):
        adapter = KrakenAdapter(pair, ["book"])
        adapter.on_open()
        for index in indexes:
            events = adapter.receive(records[index]["frame"], 7)
            assert not any(isinstance(e, BookInvalid) for e in events), (pair, index)
            verified += 1
        assert adapter.book_live and adapter.book.bid_count == adapter.book.ask_count == 10
    assert verified == 4
    # The update (line 4): delete 1797.29, insert 1797.52, stamped with its own time.
    (deltas,) = events
    assert isinstance(deltas, BookDeltas)
    ts = 1746523046 * SECOND + 208075000
    assert deltas.rows == [
        (ts, 7, -1, ASK, 1797.29, 0.0, 0),
        (ts, 7, -1, ASK, 1797.52, 1.56601318, FLAG_LAST),
    ]
    assert book_checksum(adapter.book) == 3329440863


def test_v2_snapshot_keeps_trailing_zero_text_and_emits_snapshot_rows(fixtures_dir: Path) -> None:
    lines = (fixtures_dir / "supplementary" / "kraken_v2_book.jsonl").read_text().splitlines()
    adapter = KrakenAdapter("ETH/USD", ["book"])
    deltas, valid = adapter.receive(json.loads(lines[2])["frame"], 5)
    assert isinstance(deltas, BookDeltas) and valid == BookValid(5)
    assert len(deltas.rows) == 20 and all(r[6] & FLAG_SNAPSHOT for r in deltas.rows)
    assert deltas.rows[-1][6] == FLAG_SNAPSHOT | FLAG_LAST and deltas.rows[0][0] == -1
    bids, asks = adapter.book.top_text(10)
    assert ("1797.30", "139.09783403") in asks and ("1797.12", "0.80386470") in bids
    top = adapter.book_top(2)
    assert top is not None and top.bids[0] == (1797.24, 0.43393711) and top.seq == -1


# -- book maintenance ---------------------------------------------------------------
def _snapshot(
    n: int = 10, ts_ms: int | None = None
) -> tuple[str, dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    bids = {Decimal("100.0") - Decimal(i): Decimal("1.50000000") for i in range(n)}
    asks = {Decimal("101.0") + Decimal(i): Decimal("2.00000000") for i in range(n)}
    text = book_frame(
        "snapshot",
        PAIR,
        sorted(bids.items(), reverse=True),
        sorted(asks.items()),
        kraken_checksum(bids, asks, 1),
        1,
        ts_ms,
    )
    return text, bids, asks


def test_truncation_emits_deletes_so_stored_rows_rebuild_the_book() -> None:
    adapter = KrakenAdapter(PAIR, ["book"])
    text, bids, asks = _snapshot()
    events = adapter.receive(text, 1)
    bids[Decimal("100.5")] = Decimal("0.10000000")  # a better bid pushes 91.0 out of scope
    del bids[Decimal("91.0")]
    update = book_frame(
        "update",
        PAIR,
        [(Decimal("100.5"), Decimal("0.1"))],
        [],
        kraken_checksum(bids, asks, 1),
        1,
        1_700_000_000_000,
    )
    more = adapter.receive(update, 2)
    (deltas,) = more
    assert isinstance(deltas, BookDeltas)
    assert [(r[3], r[4], r[5], r[6]) for r in deltas.rows] == [
        (BID, 100.5, 0.1, 0),
        (BID, 91.0, 0.0, FLAG_LAST),
    ]
    assert deltas.rows[0][0] == 1_700_000_000_000 * MS
    assert rebuild(events + more).top(50) == adapter.book.top(50)


def test_checksum_mismatch_invalidates_resubscribes_and_ignores_deltas_until_snapshot() -> None:
    adapter = KrakenAdapter(PAIR, ["book", "trades"])
    adapter.on_open()
    adapter.receive(_snapshot()[0], 1)
    bad = book_frame("update", PAIR, [(Decimal("100.0"), Decimal("3"))], [], 12345, 1, 1)
    events = adapter.receive(bad, 2)
    assert [type(e) for e in events] == [BookInvalid, Send, Send]
    assert events[0] == BookInvalid("checksum", events[0].detail)  # type: ignore[union-attr]
    unsub, sub = (json.loads(e.text) for e in events[1:])  # type: ignore[union-attr]
    assert unsub == {
        "method": "unsubscribe",
        "params": {"channel": "book", "symbol": [PAIR], "depth": 10},
        "req_id": 3,
    }
    assert sub["method"] == "subscribe" and sub["params"]["channel"] == "book"
    assert not adapter.book_live and adapter.book_top(5) is None
    assert adapter.receive(bad, 3) == []  # untrusted: no rows, no second BookInvalid
    again = adapter.receive(_snapshot()[0], 4)
    assert [type(e) for e in again] == [BookDeltas, BookValid] and adapter.book_live


def test_book_entry_without_bids_or_asks_has_an_empty_side() -> None:
    """PROTOCOLS.md §3.6 never promises both sides in an entry: a missing one is empty."""
    adapter = KrakenAdapter(PAIR, ["book"])
    bids = {Decimal("100.0"): Decimal("1.50000000")}
    asks: dict[Decimal, Decimal] = {}
    snap = book_frame("snapshot", PAIR, bids.items(), [], kraken_checksum(bids, asks, 1), 1)
    deltas, valid = adapter.receive(snap.replace(',"asks":[]', ""), 1)
    assert isinstance(deltas, BookDeltas) and valid == BookValid(1)
    assert adapter.book.top(5) == ([(100.0, 1.5)], [])
    asks[Decimal("101.0")] = Decimal("2.00000000")
    update = book_frame(
        "update", PAIR, [], asks.items(), kraken_checksum(bids, asks, 1), 1, 1_700_000_000_000
    )
    (more,) = adapter.receive(update.replace('"bids":[],', ""), 2)
    assert isinstance(more, BookDeltas)
    assert more.rows == [(1_700_000_000_000 * MS, 2, -1, ASK, 101.0, 2.0, FLAG_LAST)]
    assert adapter.book_live and adapter.book.top(5) == ([(100.0, 1.5)], [(101.0, 2.0)])


def test_checksum_can_be_turned_off() -> None:
    adapter = KrakenAdapter(PAIR, ["book"], checksum=False)
    adapter.receive(_snapshot()[0], 1)
    bad = book_frame("update", PAIR, [(Decimal("100.0"), Decimal("3"))], [], 1, 1, 1)
    assert [type(e) for e in adapter.receive(bad, 2)] == [BookDeltas]


# -- trades and control frames ------------------------------------------------------
def _trade(trade_id: int, side: str = "buy", price: str = "30000.10") -> str:
    return (
        f'{{"symbol":"{PAIR}","side":"{side}","price":{price},"qty":0.50000000,'
        f'"ord_type":"limit","trade_id":{trade_id},"timestamp":"2023-09-25T07:48:36.925533Z"}}'
    )


def _trades_frame(kind: str, trades: list[str]) -> str:
    return f'{{"channel":"trade","type":"{kind}","data":[{",".join(trades)}]}}'


def test_trades_parse_side_and_time_and_a_first_snapshot_is_only_a_baseline() -> None:
    adapter = KrakenAdapter(PAIR, ["trades"])
    baseline = [_trade(5), _trade(3, "sell", "29999.90"), _trade(4)]
    assert adapter.receive(_trades_frame("snapshot", baseline), 9) == []  # history
    assert adapter.receive(_trades_frame("update", [_trade(5)]), 9) == []  # boundary repeat
    (live,) = adapter.receive(
        _trades_frame("update", [_trade(6), _trade(7, "sell", "29999.90")]), 9
    )
    assert isinstance(live, Trades)
    ts = 1695628116 * SECOND + 925533000
    assert live.rows == [
        (ts, 9, 6, b"", 30000.1, 0.5, 1, 0),
        (ts, 9, 7, b"", 29999.9, 0.5, -1, 0),
    ]
    adapter.on_open()  # the same instance on a new connection: its snapshot fills the gap
    (fill,) = adapter.receive(_trades_frame("snapshot", [_trade(i) for i in (9, 6, 7, 8)]), 10)
    assert isinstance(fill, Trades) and [r[2] for r in fill.rows] == [8, 9]
    assert adapter.receive(_trades_frame("update", [_trade(9)]), 11) == []


@pytest.mark.parametrize(
    "msg",
    [
        {"channel": "heartbeat"},
        {
            "channel": "status",
            "type": "update",
            "data": [{"system": "online", "api_version": "v2"}],
        },
        # PROTOCOLS §3.1 names the other states but no client action: nothing to do.
        {"channel": "status", "type": "update", "data": [{"system": "maintenance"}]},
        {
            "method": "subscribe",
            "result": {"channel": "book", "depth": 10, "symbol": PAIR},
            "success": True,
            "time_in": "x",
            "time_out": "y",
        },
        {"method": "pong", "req_id": 101, "time_in": "x", "time_out": "y"},
    ],
)
def test_acks_heartbeats_and_status_return_nothing(msg: dict[str, Any]) -> None:
    assert KrakenAdapter(PAIR).receive(frame(msg), 1) == []


def test_unverified_error_reply_text_becomes_venue_error() -> None:
    adapter = KrakenAdapter("XYZ/USD")
    reply = {
        "error": "Currency pair not supported XYZ/USD",
        "method": "subscribe",
        "req_id": 1,
        "success": False,
        "time_in": "x",
        "time_out": "y",
    }
    assert adapter.receive(frame(reply), 1) == [
        VenueError("kraken subscribe failed: Currency pair not supported XYZ/USD")
    ]
    (rate,) = adapter.receive('{"Error":"Exceeded msg rate"}', 2)
    assert isinstance(rate, VenueError) and "Exceeded msg rate" in rate.message


def test_error_reply_that_echoes_the_channel_is_a_venue_error() -> None:
    """Replies are routed on "method"/"success" before "channel", which they may echo."""
    adapter = KrakenAdapter("XYZ/USD")
    reply = {
        "method": "subscribe",
        "channel": "book",
        "error": "Currency pair not supported XYZ/USD",
        "success": False,
        "req_id": 1,
    }
    assert adapter.receive(frame(reply), 1) == [
        VenueError("kraken subscribe failed: Currency pair not supported XYZ/USD")
    ]
    nameless = {"channel": "book", "error": "Malformed request", "success": False}
    assert adapter.receive(frame(nameless), 2) == [
        VenueError("kraken request failed: Malformed request")
    ]


def _book(bids: str = "[]", asks: str = "[]", checksum: str = "1", symbol: str = PAIR) -> str:
    entry = f'{{"symbol":"{symbol}","bids":{bids},"asks":{asks},"checksum":{checksum}}}'
    return f'{{"channel":"book","type":"snapshot","data":[{entry}]}}'


def _tr(side: str = '"buy"', price: str = "1.0", stamp: str = '"2023-09-25T07:48:36Z"') -> str:
    trade = (
        f'{{"symbol":"{PAIR}","side":{side},"price":{price},"qty":1.0,"trade_id":1,'
        f'"timestamp":{stamp}}}'
    )
    return f'{{"channel":"trade","type":"update","data":[{trade}]}}'


V1_FRAME = '[992,{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},'


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("not json", "not_json"),
        ("[1,2]", "unexpected"),
        (V1_FRAME + '"book-1000","XMR/USD"]', "unexpected"),
        ('{"hello":1}', "unknown"),
        ('{"channel":"ohlc","type":"update","data":[]}', "unknown"),
        ('{"channel":"book","type":"weird","data":[]}', "unknown"),
        ('{"channel":"trade","type":"update","data":"x"}', "unknown"),
        ('{"method":"frobnicate","success":true}', "unknown"),
        (_book(bids='[{"price":1.5,"qty":2.0}]', symbol="ETH/USD"), "wrong_symbol"),
        (_book(bids='[{"price":[1],"qty":1.0}]'), "bad_field"),
        (_book(bids='[{"price":1.0,"qty":"abc"}]'), "bad_field"),
        (_book(bids='[{"price":1.0,"qty":"1.0"}]'), "bad_field"),
        (_book(bids='[{"price":-1.0,"qty":1.0}]'), "bad_field"),
        (_book(bids='[{"price":0,"qty":1.0}]'), "bad_field"),
        (_book(bids='[{"price":NaN,"qty":1.0}]'), "bad_field"),
        (_book(asks='[{"price":1e999,"qty":1.0}]'), "bad_field"),
        (_book(asks='[{"qty":1.0}]'), "bad_field"),
        (_book(checksum='"x"'), "bad_field"),
        (_book(checksum="-5"), "bad_field"),
        (_book(bids="{}"), "bad_field"),
        (_tr(side='"up"'), "bad_field"),
        (_tr(side="[1]"), "bad_field"),
        (_tr(price='"12"'), "bad_field"),
        (_tr(stamp='"yesterday"'), "bad_field"),
        (_tr(stamp="17"), "bad_field"),
    ],
)
def test_malformed_frames_raise_parse_error(text: str, kind: str) -> None:
    adapter = KrakenAdapter(PAIR)
    with pytest.raises(ParseError) as info:
        adapter.receive(text, 1)
    assert info.value.kind == kind and info.value.exchange == "kraken"


def test_keepalive_pings_only_after_five_seconds_of_silence() -> None:
    adapter = KrakenAdapter(PAIR)
    adapter.on_open()
    assert adapter.keepalive(100 * SECOND) == []  # starts the silence clock
    adapter.receive('{"channel":"heartbeat"}', 103 * SECOND)  # heartbeats count as life
    assert adapter.keepalive(107 * SECOND) == []
    (ping,) = adapter.keepalive(108 * SECOND + 1)
    assert isinstance(ping, Send) and json.loads(ping.text)["method"] == "ping"
    assert adapter.keepalive(109 * SECOND) == []  # at most one ping per 5 s


def test_keepalive_reconnects_after_ten_seconds_without_a_frame_other_than_a_pong() -> None:
    """PROTOCOLS.md §3.3: 5-10 s of silence is a dead connection, even if pings are answered."""
    adapter = KrakenAdapter(PAIR)
    adapter.on_open()
    assert adapter.keepalive(100 * SECOND) == []  # the connection opens: the clock starts
    adapter.receive('{"channel":"heartbeat"}', 101 * SECOND)
    (ping,) = adapter.keepalive(106 * SECOND)
    assert isinstance(ping, Send) and json.loads(ping.text)["method"] == "ping"
    pong = {"method": "pong", "req_id": 3, "time_in": "x", "time_out": "y"}
    assert adapter.receive(frame(pong), 106 * SECOND + 1) == []  # the socket lives, the feed not
    assert adapter.keepalive(111 * SECOND) == []  # 10 s since the heartbeat: not more
    assert adapter.keepalive(111 * SECOND + 1) == [
        Reconnect(
            "stale",
            "BTC/USD: no data, heartbeat or status frame for 10.0 s (pongs do not count; limit 10 s)",
        )
    ]
    adapter.on_open()  # a new connection that stays mute: counted from its first keepalive
    assert adapter.keepalive(200 * SECOND) == []
    (stale,) = adapter.keepalive(212 * SECOND)
    assert stale == Reconnect(
        "stale",
        "BTC/USD: no data, heartbeat or status frame for 12.0 s (pongs do not count; limit 10 s)",
    )


# -- properties ---------------------------------------------------------------------
SIDE = st.sampled_from([BID, ASK])
SIZE = st.one_of(st.just(0), st.integers(1, 10**9))  # deletes are frequent
INITIAL = st.lists(st.tuples(SIDE, st.integers(1, 40), st.integers(1, 10**9)), max_size=30)
MESSAGES = st.lists(
    st.lists(st.tuples(SIDE, st.integers(1, 40), SIZE), min_size=1, max_size=6), max_size=25
)


@settings(max_examples=60, deadline=None)
@given(initial=INITIAL, messages=MESSAGES)
def test_property_deltas_equal_rebuild_and_fake_checksum_equals_adapter_checksum(
    initial: list[tuple[int, int, int]], messages: list[list[tuple[int, int, int]]]
) -> None:
    def price(side: int, k: int) -> Decimal:
        return Decimal(30000) - side * Decimal(k) / 10  # bids below, asks above 30000

    def truncate(model: dict[int, dict[Decimal, Decimal]]) -> None:
        for side in (BID, ASK):
            keep = sorted(model[side], reverse=side == BID)[:10]
            model[side] = {p: model[side][p] for p in keep}

    model: dict[int, dict[Decimal, Decimal]] = {BID: {}, ASK: {}}
    for side, k, n in initial:
        model[side][price(side, k)] = Decimal(n) / 10**8
    truncate(model)
    adapter = KrakenAdapter(PAIR, ["book"])
    snap = book_frame(
        "snapshot",
        PAIR,
        sorted(model[BID].items()),
        sorted(model[ASK].items()),
        kraken_checksum(model[BID], model[ASK], 1),
        1,
    )
    events = adapter.receive(snap, 1)
    for i, message in enumerate(messages):
        changes: dict[int, list[tuple[Decimal, Decimal]]] = {BID: [], ASK: []}
        for side, k, n in message:
            p, size = price(side, k), Decimal(n) / 10**8
            changes[side].append((p, size))
            if size:
                model[side][p] = size
            else:
                model[side].pop(p, None)
        truncate(model)
        expected = kraken_checksum(model[BID], model[ASK], 1)
        text = book_frame("update", PAIR, changes[BID], changes[ASK], expected, 1, 1_000 + i)
        events += adapter.receive(text, 2 + i)
        assert book_checksum(adapter.book) == expected
    assert not any(isinstance(e, BookInvalid) for e in events)
    want = (
        sorted(((float(p), float(s)) for p, s in model[BID].items()), reverse=True),
        sorted((float(p), float(s)) for p, s in model[ASK].items()),
    )
    assert adapter.book.top(100) == want
    assert rebuild(events).top(100) == want


# -- real sockets against the fake --------------------------------------------------
def _as_rows(fake: FakeKraken, pair: str) -> list[tuple[int, int, float, float, int]]:
    return sorted(
        (t.ts_ms * MS, t.trade_id, float(t.price), float(t.amount), t.side)
        for t in fake.sent_trades[pair]
    )


def test_socket_trades_and_book_match_fake_with_no_duplicate_after_reconnect(
    fake: FakeKraken,
) -> None:
    client = Client(KrakenAdapter(PAIR, ["trades", "book"], url=fake.url))
    client.connect()
    assert client.pump(lambda: len(client.trades()) >= 60 and bool(client.of(BookValid)))
    fake.pause()  # no trade may happen unseen while we are away: sent_trades is the truth
    fake.drop_connections()
    client.pump(lambda: False, timeout=0.3)  # until the socket ends
    client.close()
    before = {r[2] for r in client.trades()}
    client.connect()  # same adapter instance: the trade snapshot replays what we have
    assert client.pump(lambda: len(client.of(BookValid)) >= 2)
    fake.resume()
    assert client.pump(lambda: len(client.trades()) >= len(before) + 30)
    fake.pause()  # returns once no tick is in flight
    client.drain()
    client.close()
    snapshots = [json.loads(f) for f in client.frames if '"channel":"trade","type":"snapshot"' in f]
    assert len(snapshots) == 2
    replayed = {t["trade_id"] for t in snapshots[1]["data"]}
    assert len(replayed) == 50 and replayed <= before  # the replay was all stored already
    ids = [r[2] for r in client.trades()]
    assert len(ids) == len(set(ids))
    got = sorted((r[0], r[2], r[4], r[5], r[6]) for r in client.trades())
    assert got == _as_rows(fake, PAIR)
    bids, asks = truth_top(fake, PAIR, 10)
    assert client.adapter.book.top(10) == (bids, asks)
    assert rebuild(client.events).top(100) == (bids, asks)
    assert not client.of(BookInvalid) and not client.of(VenueError)


def test_socket_corrupt_checksum_gives_one_invalid_then_a_fresh_snapshot(fake: FakeKraken) -> None:
    client = Client(KrakenAdapter(PAIR, ["book"], url=fake.url))
    client.connect()
    assert client.pump(lambda: len(client.of(BookDeltas)) >= 5)
    fake.corrupt_next_checksum(PAIR)
    assert client.pump(lambda: len(client.of(BookValid)) >= 2)
    assert client.pump(lambda: len(client.of(BookDeltas)) >= 15)
    fake.pause()  # returns once no tick is in flight
    client.drain()
    client.close()
    invalid = client.of(BookInvalid)
    assert len(invalid) == 1 and invalid[0].cause == "checksum"
    at = client.events.index(invalid[0])
    sends = [json.loads(e.text) for e in client.events[at + 1 : at + 3] if isinstance(e, Send)]
    assert [s["method"] for s in sends] == ["unsubscribe", "subscribe"]
    # Nothing of the untrusted book was emitted: the next rows are the new snapshot.
    after = [e for e in client.events[at:] if isinstance(e, BookDeltas | BookValid)]
    assert isinstance(after[0], BookDeltas) and after[0].rows[0][6] & FLAG_SNAPSHOT
    assert isinstance(after[1], BookValid)
    assert client.adapter.book.top(10) == truth_top(fake, PAIR, 10)


def test_socket_unknown_symbol_is_a_venue_error(fake: FakeKraken) -> None:
    client = Client(KrakenAdapter("XYZ/USD", ["trades", "book"], url=fake.url))
    client.connect()
    assert client.pump(lambda: len(client.of(VenueError)) >= 2, timeout=5)
    client.close()
    assert all("Currency pair not supported XYZ/USD" in e.message for e in client.of(VenueError))
    assert not client.of(BookDeltas) and not client.of(Trades)


def test_socket_status_on_connect_and_heartbeats_when_idle(fake: FakeKraken) -> None:
    client = Client(KrakenAdapter("ETH/USD", ["trades"], url=fake.url))
    client.connect()
    fake.wait_for_subscribers()
    assert client.pump(lambda: any(f.startswith('{"channel":"status"') for f in client.frames))
    fake.trade_probability = 0.0  # no trades: the trade channel goes idle
    fake.heartbeat_interval = 0.1
    assert client.pump(lambda: '{"channel":"heartbeat"}' in client.frames, timeout=5)
    client.close()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(["price", "qty", "symbol", "checksum", "bids", "asks", "data", "type"])


@settings(max_examples=300, deadline=None)
@given(value=JSON, field=FIELDS, kind=st.sampled_from(["book", "trade"]))
def test_property_hostile_fields_give_events_or_parse_error_only(
    value: Any, field: str, kind: str
) -> None:
    """Any JSON value put into any field either parses or raises ParseError, nothing else."""
    adapter = KrakenAdapter(PAIR)
    level = {"price": 1.5, "qty": 2.0}
    entry: dict[str, Any] = {"symbol": PAIR, "bids": [level], "asks": [], "checksum": 1}
    if kind == "trade":
        entry = {
            "symbol": PAIR,
            "side": "buy",
            "price": 1.5,
            "qty": 2.0,
            "trade_id": 7,
            "timestamp": "2023-09-25T07:48:36Z",
        }
    msg: dict[str, Any] = {"channel": kind, "type": "snapshot", "data": [entry]}
    for target in (msg, entry, level):
        if field in target:
            target[field] = value
    for text in (frame(msg), json.dumps(value)):
        try:
            events = adapter.receive(text, 1)
        except ParseError:
            continue
        assert isinstance(events, list)


# -- end to end: fake venue → actors → HDF5 → open_store ----------------------------
E2E_PAIRS = [PAIR, "ETH/USD"]


def _stored_trades_equal_sent(path: Path, fake: FakeKraken, pair: str) -> bool:
    return len(open_store(path).trades("kraken", pair)) == len(fake.sent_trades[pair])


def _stored_book_is_truth(path: Path, fake: FakeKraken, pair: str) -> bool:
    bids, asks = rebuild_book(open_store(path).book_deltas("kraken", pair))
    top_bids, top_asks = truth_top(fake, pair, 10)
    return (bids, asks) == (dict(top_bids), dict(top_asks))


def _stored_last_trade_is_sent_last(path: Path, fake: FakeKraken, pair: str) -> bool:
    ids = open_store(path).trades("kraken", pair)["trade_id"]
    return len(ids) > 0 and int(ids[-1]) == fake.sent_trades[pair][-1].trade_id


def _e2e_settle(path: Path, fake: FakeKraken, *, every_trade: bool = True) -> None:
    fake.pause()
    stored = _stored_trades_equal_sent if every_trade else _stored_last_trade_is_sent_last
    for pair in E2E_PAIRS:
        wait_until(lambda p=pair: stored(path, fake, p))  # type: ignore[misc]
        wait_until(lambda p=pair: _stored_book_is_truth(path, fake, p))  # type: ignore[misc]


def _assert_missing_trades_fall_in_gaps(path: Path, fake: FakeKraken, pair: str) -> None:
    """Trades the reconnect's snapshot could not replay (beyond 50) are inside the gap."""
    stored = open_store(path).trades("kraken", pair)
    ids = stored["trade_id"].tolist()
    assert len(set(ids)) == len(ids)  # never twice, although every reconnect replays 50
    sent = {t.trade_id: t for t in fake.sent_trades[pair]}
    assert set(ids) <= set(sent) and len(ids) > len(sent) - 50
    assert stored["price"].tolist() == [float(sent[i].price) for i in ids]
    assert stored["amount"].tolist() == [float(sent[i].amount) for i in ids]
    assert stored["side"].tolist() == [sent[i].side for i in ids]
    assert stored["ts_event"].tolist() == [sent[i].ts_ms * MS for i in ids]
    gaps = open_store(path).gaps("kraken", pair)
    for trade_id in set(sent) - set(ids):
        ts = sent[trade_id].ts_ms * MS
        assert any(g["start_ns"] - SECOND // 10 <= ts <= g["end_ns"] for g in gaps), trade_id


def _assert_stored_trades(path: Path, fake: FakeKraken, pair: str) -> None:
    stored = open_store(path).trades("kraken", pair)
    sent = fake.sent_trades[pair]
    assert len(set(stored["trade_id"].tolist())) == len(stored) == len(sent)
    assert stored["trade_id"].tolist() == [t.trade_id for t in sent]
    assert stored["price"].tolist() == [float(t.price) for t in sent]
    assert stored["amount"].tolist() == [float(t.amount) for t in sent]
    assert stored["side"].tolist() == [t.side for t in sent]
    assert stored["ts_event"].tolist() == [t.ts_ms * MS for t in sent]


def test_e2e_collector_stores_every_trade_once_and_the_venue_book(tmp_path: Path) -> None:
    with FakeKraken(E2E_PAIRS, seed=21) as fake:
        assert isinstance(fake, FakeKraken)
        job = StreamJob("kraken", E2E_PAIRS, ["trades", "book"], url=fake.url, time_step=0.2)
        with Collector(config(tmp_path, [job])) as collector:
            wait_until(lambda: all(len(fake.sent_trades[p]) > 40 for p in E2E_PAIRS))
            wait_until(lambda: all(r.book_live for r in collector.status()))
            _e2e_settle(tmp_path, fake)
            wait_for_book_samples(tmp_path, "kraken", E2E_PAIRS)
        settle(fake)
    store = open_store(tmp_path)
    for pair in E2E_PAIRS:
        _assert_stored_trades(tmp_path, fake, pair)
        assert len(store.gaps("kraken", pair)) == 0
        snaps = store.book_snapshots("kraken", pair)
        assert len(snaps) >= 2 and np.all(snaps["bid_price"][:, 0] < snaps["ask_price"][:, 0])


def test_e2e_reconnect_and_checksum_resync_are_gaps_and_no_trade_is_stored_twice(
    tmp_path: Path,
) -> None:
    with FakeKraken(E2E_PAIRS, seed=22) as fake:
        assert isinstance(fake, FakeKraken)
        job = StreamJob("kraken", E2E_PAIRS, ["trades", "book"], url=fake.url)
        with Collector(config(tmp_path, [job])) as collector:
            wait_until(lambda: all(r.book_live for r in collector.status()))
            wait_until(lambda: all(len(fake.sent_trades[p]) > 20 for p in E2E_PAIRS))
            fake.drop_connections()  # the new connections' snapshots replay 50 trades
            wait_until(lambda: all(r.gen == 2 and r.book_live for r in collector.status()))
            fake.corrupt_next_checksum(PAIR)
            wait_until(lambda: {r.pair: r.resyncs for r in collector.status()}[PAIR] == 1)
            wait_until(lambda: all(r.book_live for r in collector.status()))
            wait_until(lambda: all(len(fake.sent_trades[p]) > 60 for p in E2E_PAIRS))
            _e2e_settle(tmp_path, fake, every_trade=False)
        settle(fake)
    store = open_store(tmp_path)
    for pair in E2E_PAIRS:
        _assert_missing_trades_fall_in_gaps(tmp_path, fake, pair)
    assert store.gaps("kraken", PAIR)["cause"].tolist() == ["disconnect", "checksum"]
    assert store.gaps("kraken", "ETH/USD")["cause"].tolist() == ["disconnect"]
