"""Bybit v5 spot: the adapter on recorded and generated frames, and against FakeBybit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    Send,
    Trades,
    VenueError,
)
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.exchanges.bybit import BybitAdapter
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT
from dccd_actors.testing.bybit import FakeBybit
from tests.adapter_client import Client
from tests.helpers import config, rebuild_book, wait_for_book_samples, wait_until

PAIR = "BTC/USDT"
TOPIC = "orderbook.50.BTCUSDT"


def frames(path: Path) -> list[str]:
    return [json.loads(line)["frame"] for line in path.read_text().splitlines() if line.strip()]


def book_frame(
    kind: str, u: int, bids: list[list[Any]], asks: list[list[Any]], seq: int = 7
) -> str:
    data = {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": seq}
    return json.dumps({"topic": TOPIC, "ts": 1_700_000_000_002, "type": kind, "data": data})


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def sent(events: list[Event]) -> list[Any]:
    """The JSON messages among ``events`` that ask the shell to send something."""
    return [json.loads(e.text) for e in events if isinstance(e, Send)]


def replay(rows: list[tuple[Any, ...]]) -> dict[int, dict[float, float]]:
    """Rebuild a book from stored rows alone: each SNAPSHOT message starts it afresh."""
    book: dict[int, dict[float, float]] = {BID: {}, ASK: {}}
    starts_message = True
    for _, _, _, side, price, size, flags in rows:
        if starts_message and flags & FLAG_SNAPSHOT:
            book = {BID: {}, ASK: {}}
        if side in book:  # side 0 marks an empty snapshot
            if size:
                book[side][price] = size
            else:
                book[side].pop(price, None)
        starts_message = bool(flags & FLAG_LAST)
    return book


def held(adapter: BybitAdapter) -> dict[int, dict[float, float]]:
    bids, asks = adapter.book.top(10**6)
    return {BID: dict(bids), ASK: dict(asks)}


# -- contract basics ---------------------------------------------------------------------
def test_url_and_subscribe_follow_the_v5_spot_endpoint() -> None:
    adapter = BybitAdapter(PAIR, ["trades", "book"])
    assert adapter.url() == "wss://stream.bybit.com/v5/public/spot"
    assert BybitAdapter(PAIR, url="ws://127.0.0.1:9/").url() == "ws://127.0.0.1:9/v5/public/spot"
    subscribe = sent(adapter.on_open())[0]
    assert subscribe == {"req_id": "1", "op": "subscribe", "args": ["publicTrade.BTCUSDT", TOPIC]}
    only_book = sent(BybitAdapter("ETH/BTC", ["book"]).on_open())[0]
    assert only_book["args"] == ["orderbook.50.ETHBTC"]


def test_keepalive_on_the_half_second_tick_pings_every_15_s_within_the_20_s_advice() -> None:
    adapter = BybitAdapter(PAIR)
    adapter.on_open()
    t0 = 1_000 * SECOND + 123  # the shell ticks keepalive about every 0.5 s (§2.3: ping each 20 s)
    pings = []
    for tick in range(241):  # two minutes
        now = t0 + tick * SECOND // 2
        for event in adapter.keepalive(now):
            assert isinstance(event, Send) and json.loads(event.text)["op"] == "ping"
            pings.append(now)
    assert [p - t0 for p in pings] == [k * 15 * SECOND for k in range(1, 9)]
    adapter.on_open()  # a new connection starts its clock again
    assert adapter.keepalive(t0 + 200 * SECOND) == []
    assert len(adapter.keepalive(t0 + 215 * SECOND)) == 1


@pytest.mark.parametrize(
    "reply",
    [
        '{"success":true,"ret_msg":"pong","conn_id":"0970e817-aa","op":"ping"}',
        '{"success":true,"ret_msg":"pong","conn_id":"0970e817-aa","req_id":"","op":"ping"}',
        '{"args":["1672916271846"],"op":"pong"}',
        '{"success":true,"ret_msg":"subscribe","conn_id":"2324d924","req_id":"10001","op":"subscribe"}',
        # [unverified] the unsubscribe ack text is not documented; any success:true is an ack
        '{"success":true,"ret_msg":"","conn_id":"2324d924","req_id":"3","op":"unsubscribe"}',
    ],
)
def test_pongs_and_acks_including_unverified_unsubscribe_ack_return_nothing(reply: str) -> None:
    assert BybitAdapter(PAIR).receive(reply, 1) == []


def test_impl_failure_reply_is_a_venue_error() -> None:
    reply = (
        '{"success":false,"ret_msg":"Invalid topic: invalid.topic.BTCUSDT",'
        '"conn_id":"cejreaspqfm9se7usbrg-2xh","op":"subscribe"}'
    )
    [error] = BybitAdapter(PAIR).receive(reply, 1)
    assert isinstance(error, VenueError) and "Invalid topic: invalid.topic.BTCUSDT" in error.message


# -- recorded frames ---------------------------------------------------------------------
def test_recorded_v5_snapshot_then_delta(fixtures_dir: Path) -> None:
    snapshot, delta = frames(fixtures_dir / "supplementary" / "bybit_v5_spot.jsonl")
    adapter = BybitAdapter(PAIR)
    rows_event, valid = adapter.receive(snapshot, 111)
    assert isinstance(rows_event, BookDeltas) and valid == BookValid(111)
    assert len(rows_event.rows) == 100
    assert (adapter.book.bid_count, adapter.book.ask_count) == (50, 50)
    assert all(r[:3] == (1731035685323 * MS, 111, 47474967795) for r in rows_event.rows)
    assert [r[6] for r in rows_event.rows[-2:]] == [FLAG_SNAPSHOT, FLAG_SNAPSHOT | FLAG_LAST]

    [deltas] = adapter.receive(delta, 222)
    assert isinstance(deltas, BookDeltas)
    assert [(r[3], r[4], r[5]) for r in deltas.rows] == [
        (BID, 75848.62, 0.014895), (BID, 75837.13, 0.0), (ASK, 75848.89, 0.088149),
        (ASK, 75851.44, 0.078379), (ASK, 75852.65, 0.0), (ASK, 75855.23, 0.260219),
        (ASK, 75857.74, 0.049778),
    ]  # fmt: skip
    assert {r[2] for r in deltas.rows} == {47474967823}
    assert [r[6] for r in deltas.rows] == [0] * 6 + [FLAG_LAST]
    assert adapter.book.size_at(BID, 75837.13) == 0.0  # deleted
    assert adapter.book.size_at(ASK, 75848.89) == 0.088149  # replaced
    top = adapter.book_top(1)
    assert top is not None and top.seq == 47474967823 and top.ts_event == 1731035685342 * MS
    assert top.bids == [(75848.74, 0.067669)] and top.asks == [(75848.75, 0.747137)]
    assert not adapter.book.crossed()


def test_recorded_delta_after_a_gap_resyncs_this_topic_only(fixtures_dir: Path) -> None:
    snapshot, delta = frames(fixtures_dir / "supplementary" / "bybit_v5_spot.jsonl")
    adapter = BybitAdapter(PAIR)
    adapter.receive(snapshot, 1)
    invalid, unsubscribe, subscribe = adapter.receive(
        delta.replace('"u":2876701', '"u":2876702'), 2
    )
    assert invalid == BookInvalid("seq_gap", "expected u=2876701, got u=2876702")
    assert isinstance(unsubscribe, Send) and isinstance(subscribe, Send)
    assert json.loads(unsubscribe.text)["op"] == "unsubscribe"
    assert json.loads(unsubscribe.text)["args"] == json.loads(subscribe.text)["args"] == [TOPIC]
    assert adapter.book_top(5) is None and adapter.book.bid_count == 0
    assert adapter.receive(delta, 3) == []  # untrusted: no rows until the new snapshot
    assert of(adapter.receive(snapshot, 4), BookValid) == [BookValid(4)]


def test_u_equal_1_is_a_service_restart_and_replaces_the_book() -> None:
    adapter = BybitAdapter(PAIR)
    adapter.receive(book_frame("snapshot", 500, [["10", "1"], ["9", "1"]], [["11", "1"]]), 1)
    events = adapter.receive(book_frame("delta", 1, [["8", "2"]], [["12", "3"]]), 2)
    assert isinstance(events[0], BookDeltas) and events[1] == BookValid(2)
    assert all(r[6] & FLAG_SNAPSHOT for r in events[0].rows)
    assert held(adapter) == {BID: {8.0: 2.0}, ASK: {12.0: 3.0}}
    assert of(adapter.receive(book_frame("delta", 2, [["8", "0"]], []), 3), BookDeltas)


def test_a_delta_pushing_levels_out_of_the_top_50_deletes_them_in_book_and_rows() -> None:
    adapter = BybitAdapter(PAIR)
    bids = [[str(p), "1"] for p in range(50, 0, -1)]  # 50 .. 1
    asks = [[str(p), "1"] for p in range(101, 151)]  # 101 .. 150
    [snapshot, _] = adapter.receive(book_frame("snapshot", 10, bids, asks), 1)
    # better levels inserted, no delete for the 51st: Bybit's 50-level view drops 1 and 150
    [deltas] = adapter.receive(book_frame("delta", 11, [["50.5", "2"]], [["100.5", "3"]]), 2)
    assert [r[3:] for r in deltas.rows] == [
        (BID, 50.5, 2.0, 0), (ASK, 100.5, 3.0, 0), (BID, 1.0, 0.0, 0), (ASK, 150.0, 0.0, FLAG_LAST),
    ]  # fmt: skip
    assert (adapter.book.bid_count, adapter.book.ask_count) == (50, 50)
    assert replay(snapshot.rows + deltas.rows) == held(adapter)
    adapter.receive(book_frame("delta", 12, [["50.5", "0"]], []), 3)
    assert adapter.book.bid_prices()[-1] == 2.0  # the cut level 1.0 does not resurface
    assert adapter.book.size_at(BID, 1.0) == 0.0 and adapter.book.bid_count == 49


def test_frames_of_topics_we_did_not_subscribe_to_are_checked_and_ignored() -> None:
    adapter = BybitAdapter(PAIR)
    adapter.receive(book_frame("snapshot", 1, [["1", "1"]], [["2", "1"]]), 1)
    eth_trade = (
        '{"topic":"publicTrade.ETHUSDT","ts":1680652847526,"type":"snapshot","data":[{"i":'
        '"2290000000050703789","T":1680652847524,"p":"1816.38","v":"0.5","S":"Sell",'
        '"s":"ETHUSDT","BT":false}]}'
    )
    deeper = book_frame("snapshot", 5, [["0.5", "9"]], [["3", "9"]]).replace(
        TOPIC, "orderbook.200.BTCUSDT"
    )
    other = book_frame("delta", 6, [["7", "1"]], []).replace(TOPIC, "orderbook.50.ETHUSDT")
    for frame in (eth_trade, deeper, other):
        assert adapter.receive(frame, 2) == []
    assert held(adapter) == {BID: {1.0: 1.0}, ASK: {2.0: 1.0}}
    assert of(adapter.receive(book_frame("delta", 2, [["1", "3"]], []), 3), BookDeltas)
    for bad in (eth_trade.replace('"1816.38"', '"-1"'), other.replace('"delta"', '"other"')):
        with pytest.raises(ParseError) as info:
            adapter.receive(bad, 4)
        assert info.value.kind == "bad_field"


def test_trades_map_ids_sides_and_times_and_drop_repeats() -> None:
    spot = (
        '{"topic":"publicTrade.BTCUSDT","ts":1680652847526,"type":"snapshot","data":[{"i":'
        '"2290000000050703789","T":1680652847524,"p":"28165.38","v":"0.041732","S":"Sell",'
        '"s":"BTCUSDT","BT":false}]}'
    )
    linear = (
        '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":[{"T":'
        '1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":'
        '"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false,"seq":1783284617}]}'
    )
    adapter = BybitAdapter(PAIR)
    [spot_rows] = adapter.receive(spot, 5)
    assert spot_rows == Trades(
        [(1680652847524 * MS, 5, 2290000000050703789, b"", 28165.38, 0.041732, -1, 0)]
    )
    [uuid_rows] = adapter.receive(linear, 6)
    uid = b"20f43950-d8dd-5b31-9112-a178eb6023af"
    assert uuid_rows == Trades([(1672304486865 * MS, 6, -1, uid, 16578.5, 0.001, 1, 0)])
    adapter.on_open()  # the memory of seen ids survives a reconnect
    assert adapter.receive(spot, 7) == [] and adapter.receive(linear, 8) == []


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("not json", "not_json"),
        ("[1, 2]", "unexpected"),
        ('{"topic":"kline.1.BTCUSDT","data":[]}', "unknown"),
        ('{"hello":1}', "unknown"),
        (book_frame("delta", 2, [[["1"], "1"]], []), "bad_field"),
        (book_frame("delta", 2, [["1", "abc"]], []), "bad_field"),
        (book_frame("delta", 2, [["-1", "1"]], []), "bad_field"),
        (book_frame("delta", 2, [["NaN", "1"]], []), "bad_field"),
        (book_frame("delta", 2, [["1", "1", "1"]], []), "bad_field"),
        (book_frame("other", 2, [], []), "bad_field"),
        (book_frame("delta", 2, [], []).replace('"u": 2', '"u": "2"'), "bad_field"),
        (book_frame("delta", 2, [], []).replace('"s": "BTCUSDT"', '"s": "ETH"'), "wrong_symbol"),
        ('{"topic":"publicTrade.BTCUSDT","data":[{"i":"1","T":1,"p":"1","v":"1","S":"Up",'
         '"s":"BTCUSDT"}]}', "bad_field"),
        ('{"topic":"publicTrade.BTCUSDT","data":[{"i":"' + "x" * 37 + '","T":1,"p":"1","v":"1",'
         '"S":"Buy","s":"BTCUSDT"}]}', "bad_field"),
        ('{"topic":"publicTrade.BTCUSDT","data":{"i":"1"}}', "bad_field"),
    ],
)  # fmt: skip
def test_malformed_frames_raise_parse_error(text: str, kind: str) -> None:
    adapter = BybitAdapter(PAIR)
    adapter.receive(book_frame("snapshot", 1, [["1", "1"]], [["2", "1"]]), 1)
    with pytest.raises(ParseError) as info:
        adapter.receive(text, 2)
    assert info.value.kind == kind
    assert adapter.book.best_bid() == (1.0, 1.0)  # a rejected message changes nothing


def test_legacy_v2_frames_are_acks_or_parse_errors_never_crashes(fixtures_dir: Path) -> None:
    adapter, acks, errors = BybitAdapter(PAIR), 0, 0
    for text in frames(fixtures_dir / "bybit" / "bybit.ws.jsonl"):
        try:
            assert adapter.receive(text, 1) == []
            acks += 1
        except ParseError:
            errors += 1
    assert (acks, errors) == (20, 4420)


# -- property: deltas versus a rebuild ---------------------------------------------------
price_index = st.integers(min_value=1, max_value=40)
size_text = st.sampled_from(["0", "0.5", "1", "2.25", "10", "0.000001"])
level = st.tuples(st.sampled_from([BID, ASK]), price_index, size_text)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.lists(level, max_size=30),
    messages=st.lists(st.lists(level, max_size=8), max_size=25),
)
def test_any_delta_sequence_equals_a_rebuild(
    initial: list[tuple[int, int, str]], messages: list[list[tuple[int, int, str]]]
) -> None:
    def sides(levels: list[tuple[int, int, str]]) -> tuple[list[list[str]], list[list[str]]]:
        bids = [[str(p / 4), s] for side, p, s in levels if side == BID]
        return bids, [[str(100 + p / 4), s] for side, p, s in levels if side == ASK]

    truth: dict[int, dict[float, float]] = {BID: {}, ASK: {}}
    adapter, rows = BybitAdapter(PAIR), []
    initial = [(side, p, s) for side, p, s in initial if float(s)]  # snapshots hold no zeros
    for u, levels in enumerate([initial, *messages], start=100):
        kind = "snapshot" if u == 100 else "delta"
        events = adapter.receive(book_frame(kind, u, *sides(levels)), u)
        rows += [r for e in of(events, BookDeltas) for r in e.rows]
        for side, p, s in levels:
            price = p / 4 if side == BID else 100 + p / 4
            truth[side][price] = float(s)
            if not float(s):
                del truth[side][price]
    assert held(adapter) == truth
    assert replay(rows) == truth


# -- through real sockets against the fake -----------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeBybit]:
    venue = FakeBybit([PAIR, "ETH/USDT"], seed=11)
    venue.start()
    try:
        yield venue
    finally:
        venue.stop()


@pytest.fixture
def shell(fake: FakeBybit) -> Iterator[Client]:
    client = Client.opened(BybitAdapter(PAIR, url=fake.url))
    yield client
    client.ws.close()


def assert_in_step(shell: Client, fake: FakeBybit) -> None:
    fake.pause()
    shell.drain()
    top = shell.adapter.book_top(1)
    assert top is not None and top.seq == fake.book_seq(PAIR)
    bids, asks = fake.book(PAIR)
    assert held(shell.adapter) == {BID: bids, ASK: asks} and bids and asks
    truth = [
        (t.trade_id, float(t.price), float(t.amount), t.side, t.ts_ms * MS)
        for t in fake.sent_trades[PAIR]
    ]
    got = [(r[2], r[4], r[5], r[6], r[0]) for r in shell.trades()]
    assert got == truth and len(truth) > 5


def test_trades_and_book_equal_the_fake(shell: Client, fake: FakeBybit) -> None:
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 40 and len(shell.trades()) > 5)
    assert_in_step(shell, fake)
    assert shell.of(BookInvalid) == [] and len(shell.of(BookValid)) == 1
    replayed = replay([r for e in shell.of(BookDeltas) for r in e.rows])
    assert replayed == held(shell.adapter)


def test_injected_gap_resyncs_once_then_matches(shell: Client, fake: FakeBybit) -> None:
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 5)
    fake.inject_sequence_gap(PAIR)
    assert shell.pump(lambda: len(shell.of(BookValid)) == 2)
    [invalid] = shell.of(BookInvalid)
    assert invalid.cause == "seq_gap"
    after = [
        e.text for e in shell.events[shell.events.index(invalid) + 1 :][:2] if isinstance(e, Send)
    ]
    assert [json.loads(text)["op"] for text in after] == ["unsubscribe", "subscribe"]
    assert all(json.loads(text)["args"] == [TOPIC] for text in after)
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 30)
    assert_in_step(shell, fake)
    assert len(shell.of(BookInvalid)) == 1


def test_ping_gets_a_pong_that_the_adapter_accepts(shell: Client, fake: FakeBybit) -> None:
    shell.adapter.keepalive(1)
    shell.act(shell.adapter.keepalive(1 + 20 * SECOND))
    assert shell.pump(lambda: any('"ret_msg":"pong"' in text for text in shell.frames))
    [conn] = fake.open_connections()
    assert json.loads(conn.received[-1])["op"] == "ping"
    assert shell.of(VenueError) == []


def test_unknown_symbol_gets_a_venue_error(fake: FakeBybit) -> None:
    client = Client.opened(BybitAdapter("FOO/BAR", url=fake.url))
    try:
        assert client.pump(lambda: bool(client.of(VenueError)))
        [error] = client.of(VenueError)
        assert "Invalid topic: publicTrade.FOOBAR" in error.message
    finally:
        client.ws.close()


# -- end to end: fake venue → actors → HDF5 → open_store ---------------------------------
E2E_PAIRS = [PAIR, "ETH/USDT"]


def _settle(fake: FakeBybit, path: Path) -> None:
    """Stop the market and wait until storage holds everything the fake published."""
    fake.pause()

    def stored_all(pair: str) -> bool:
        store = open_store(path)
        deltas = store.book_deltas("bybit", pair)
        trades_done = len(store.trades("bybit", pair)) == len(fake.sent_trades[pair])
        return trades_done and len(deltas) > 0 and int(deltas["seq"][-1]) == fake.book_seq(pair)

    wait_until(lambda: all(stored_all(pair) for pair in E2E_PAIRS))


def _assert_stored_equals_fake(path: Path, fake: FakeBybit) -> None:
    store = open_store(path)
    for pair in E2E_PAIRS:
        stored = store.trades("bybit", pair)
        truth = fake.sent_trades[pair]
        assert stored["trade_id"].tolist() == [t.trade_id for t in truth] and len(truth) > 10
        assert stored["price"].tolist() == [float(t.price) for t in truth]
        assert stored["ts_event"].tolist() == [t.ts_ms * MS for t in truth]
        assert rebuild_book(store.book_deltas("bybit", pair)) == fake.book(pair)


def test_e2e_collector_stores_every_trade_once_and_the_venue_book(tmp_path: Path) -> None:
    fake = FakeBybit(E2E_PAIRS, seed=21)  # typed as itself, not as the base's __enter__
    with fake:
        job = StreamJob("bybit", E2E_PAIRS, ["trades", "book"], url=fake.url, time_step=0.2)
        with Collector(config(tmp_path, [job])):
            wait_until(lambda: all(len(fake.sent_trades[p]) > 20 for p in E2E_PAIRS))
            _settle(fake, tmp_path)
            wait_for_book_samples(tmp_path, "bybit", [PAIR])
    _assert_stored_equals_fake(tmp_path, fake)
    store = open_store(tmp_path)
    assert all(len(store.gaps("bybit", p)) == 0 for p in E2E_PAIRS)
    assert len(store.book_snapshots("bybit", PAIR)) >= 2


def test_e2e_a_sequence_gap_resyncs_that_pair_only(tmp_path: Path) -> None:
    fake = FakeBybit(E2E_PAIRS, seed=22)  # typed as itself, not as the base's __enter__
    with fake:
        job = StreamJob("bybit", E2E_PAIRS, ["trades", "book"], url=fake.url)
        with Collector(config(tmp_path, [job])) as collector:
            wait_until(
                lambda: all(r.book_live for r in collector.status()) and fake.sent_trades[PAIR]
            )
            fake.inject_sequence_gap(PAIR)
            wait_until(
                lambda: {r.pair: r.resyncs for r in collector.status()} == {PAIR: 1, "ETH/USDT": 0}
            )
            wait_until(lambda: all(r.book_live for r in collector.status()))
            wait_until(lambda: all(len(fake.sent_trades[p]) > 20 for p in E2E_PAIRS))
            _settle(fake, tmp_path)
            assert {r.pair: r.gen for r in collector.status()} == {PAIR: 1, "ETH/USDT": 1}
    _assert_stored_equals_fake(tmp_path, fake)
    store = open_store(tmp_path)
    assert store.gaps("bybit", PAIR)["cause"].tolist() == ["seq_gap"]
    assert len(store.gaps("bybit", "ETH/USDT")) == 0
