"""OKX v5: the adapter on recorded and generated frames, and against FakeOkx on loopback."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dccd_actors import Collector, RestartPolicy, StreamJob, open_store
from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
    SECOND,
    BookDeltas,
    BookInvalid,
    BookValid,
    Event,
    FetchSnapshot,
    Reconnect,
    Send,
    Trades,
    VenueError,
)
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.exchanges.okx import OkxAdapter, okx_checksum
from dccd_actors.records import FLAG_LAST, FLAG_SNAPSHOT
from dccd_actors.testing.okx import FakeOkx, book_checksum, number_text
from tests.adapter_client import Client
from tests.helpers import as_deltas, config, rebuild_book, wait_for_book_samples, wait_until

PAIR = "BTC/USDT"
INSTRUMENTS = {"BTC-USDT": 98, "UNI-USD-SWAP": 93, "BTC-USD-220527": 99}


def frames(path: Path) -> list[str]:
    return [json.loads(line)["frame"] for line in path.read_text().splitlines() if line.strip()]


def books(action: str, bids: list[list[Any]], asks: list[list[Any]], **fields: Any) -> str:
    data = {"asks": asks, "bids": bids, "ts": "1652459225381", **fields}
    return json.dumps(
        {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action, "data": [data]}
    )


def trades(*ids: int) -> str:
    data = [{"instId": "BTC-USDT", "tradeId": str(i), "px": "30236", "sz": "0.0002", "side": "buy",
             "ts": "1652459224818"} for i in ids]  # fmt: skip
    return json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": data})


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in as_deltas(events) if isinstance(e, kind)]


def sent(events: list[Event]) -> list[Any]:
    """The JSON messages among ``events`` that ask the shell to send something."""
    return [json.loads(e.text) for e in events if isinstance(e, Send)]


def held(adapter: OkxAdapter) -> dict[int, dict[float, float]]:
    bids, asks = adapter.book.top(10**6)
    return {BID: dict(bids), ASK: dict(asks)}


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


# -- contract basics ---------------------------------------------------------------------
def test_url_subscribe_and_any_inst_id() -> None:
    adapter = OkxAdapter(PAIR)
    assert adapter.url() == "wss://ws.okx.com:8443/ws/v5/public"
    assert OkxAdapter(PAIR, url="ws://127.0.0.1:9").url() == "ws://127.0.0.1:9/ws/v5/public"
    whole = OkxAdapter(PAIR, url="ws://127.0.0.1:9/ws/v5/public/")  # path given: not doubled
    assert whole.url() == "ws://127.0.0.1:9/ws/v5/public"
    assert whole.snapshot_url().startswith("http://127.0.0.1:9/api/v5/market/books?")
    assert (
        OkxAdapter(PAIR, url="wss://wsaws.okx.com:8443")
        .snapshot_url()
        .startswith("https://www.okx.com/api/v5/market/books?")
    )  # a remote WebSocket host never implies its REST host
    assert sent(adapter.on_open())[0] == {
        "op": "subscribe",
        "args": [
            {"channel": "trades", "instId": "BTC-USDT"},
            {"channel": "books", "instId": "BTC-USDT"},
        ],
    }
    swap = OkxAdapter.for_inst_id("UNI-USD-SWAP", ["book"])
    assert (swap.symbol, swap.pair) == ("UNI-USD-SWAP", "UNI/USD")
    assert sent(swap.on_open())[0]["args"] == [{"channel": "books", "instId": "UNI-USD-SWAP"}]


def test_keepalive_pings_after_20_s_of_silence_and_reconnects_without_pong() -> None:
    adapter = OkxAdapter(PAIR)
    adapter.on_open()
    t0 = 1_000 * SECOND
    assert adapter.keepalive(t0) == []
    adapter.receive(
        '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}', t0 + 5 * SECOND
    )
    assert adapter.keepalive(t0 + 24 * SECOND) == []  # the ack reset the idle timer
    assert adapter.keepalive(t0 + 25 * SECOND) == [Send("ping")]
    assert adapter.keepalive(t0 + 44 * SECOND) == []  # waiting for the pong
    assert adapter.receive("pong", t0 + 26 * SECOND) == []
    assert adapter.keepalive(t0 + 45 * SECOND) == []
    assert adapter.keepalive(t0 + 46 * SECOND) == [Send("ping")]
    [reconnect] = adapter.keepalive(t0 + 66 * SECOND)
    assert isinstance(reconnect, Reconnect) and reconnect.cause == "stale"


def test_acks_errors_and_the_upgrade_notice() -> None:
    adapter = OkxAdapter(PAIR)
    ack = '{"event":"unsubscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4"}'
    assert adapter.receive(ack, 1) == []
    error = (
        '{"id":"1512","event":"error","code":"60012","msg":"Invalid request: {\\"op\\": '
        '\\"subscribe\\", \\"argss\\":[]}","connId":"a4d3ae55"}'
    )
    [venue_error] = adapter.receive(error, 2)
    assert isinstance(venue_error, VenueError) and "60012" in venue_error.message
    notice = (
        '{"event":"notice","code":"64008","msg":"The connection will soon be closed for a '
        'service upgrade. Please reconnect.","connId":"a4d3ae55"}'
    )
    [reconnect] = adapter.receive(notice, 3)
    assert isinstance(reconnect, Reconnect) and reconnect.cause == "disconnect"
    assert reconnect.planned  # the venue asked: no failure, no backoff


UPGRADE_NOTICE = json.dumps(
    {"event": "notice", "code": "64008", "connId": "a4d3ae55",
     "msg": "The connection will soon be closed for a service upgrade. Please reconnect."}
)  # fmt: skip


# -- recorded frames ---------------------------------------------------------------------
def test_recorded_2022_stream_checksums_pass_290_of_290(fixtures_dir: Path) -> None:
    adapters = {inst: OkxAdapter.for_inst_id(inst) for inst in INSTRUMENTS}
    passed: Counter[str] = Counter()
    trade_ids: dict[str, list[int]] = {inst: [] for inst in INSTRUMENTS}
    for text in frames(fixtures_dir / "okx" / "okx.ws.jsonl"):
        msg = json.loads(text)
        inst, channel = msg["arg"]["instId"], msg["arg"]["channel"]
        if channel == "tickers":
            continue  # not subscribed by the adapter
        events = adapters[inst].receive(text, 1)
        assert of(events, BookInvalid) == []
        trade_ids[inst] += [row[2] for e in of(events, Trades) for row in e.rows]
        if channel == "books" and "data" in msg:
            checksum = msg["data"][0]["checksum"]
            assert checksum != 0
            passed[inst] += okx_checksum(*adapters[inst].book.top_text(25)) == checksum
    assert passed == INSTRUMENTS and sum(passed.values()) == 290
    assert {inst: len(ids) for inst, ids in trade_ids.items()} == {
        "BTC-USDT": 69, "UNI-USD-SWAP": 1, "BTC-USD-220527": 4,
    }  # fmt: skip
    assert all(ids == sorted(set(ids)) for ids in trade_ids.values())
    top = adapters["BTC-USDT"].book_top(1)
    assert top is not None and top.seq == -1  # the 2022 frames carry no seqId


def test_recorded_snapshot_with_a_tampered_checksum_resyncs_that_instrument(
    fixtures_dir: Path,
) -> None:
    texts = [
        t
        for t in frames(fixtures_dir / "okx" / "okx.ws.jsonl")
        if '"books","instId":"BTC-USDT"' in t
    ]
    adapter = OkxAdapter(PAIR)
    snapshot, first_update = texts[1], texts[2]
    assert '"checksum":47640993' in snapshot
    assert of(adapter.receive(snapshot, 1), BookValid) == [BookValid(1)]
    msg = json.loads(first_update)
    msg["data"][0]["checksum"] += 1
    tampered = json.dumps(msg)
    events = adapter.receive(tampered, 2)
    assert isinstance(events[0], BookInvalid) and events[0].cause == "checksum"
    books_arg = [{"channel": "books", "instId": "BTC-USDT"}]
    assert sent(events) == [
        {"op": "unsubscribe", "args": books_arg},
        {"op": "subscribe", "args": books_arg},
    ]
    assert adapter.book_top(1) is None and adapter.receive(first_update, 3) == []


def test_checksum_doc_check_string_examples() -> None:
    even = okx_checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")])
    assert even == -1881014294
    one_bid = okx_checksum([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")])
    assert one_bid == 831078360
    adapter = OkxAdapter(PAIR)
    snapshot = books("snapshot", [["3366.1", "7", "0", "1"]], [["3366.8", "9", "0", "1"],
                     ["3368", "8", "0", "1"], ["3372", "8", "0", "1"]], checksum=831078360)  # fmt: skip
    assert of(adapter.receive(snapshot, 1), BookValid) == [BookValid(1)]


def test_recorded_seqid_pair_chains_and_its_truncated_checksum_fails(fixtures_dir: Path) -> None:
    snapshot, update = frames(fixtures_dir / "supplementary" / "okx_seqid_examples.jsonl")
    adapter = OkxAdapter.for_inst_id("NEAR-USDT", checksum=False)  # levels were cut by hand
    assert of(adapter.receive(snapshot, 1), BookValid) == [BookValid(1)]
    [deltas] = as_deltas(adapter.receive(update, 2))
    assert isinstance(deltas, BookDeltas)
    assert [(r[2], r[3], r[4], r[5], r[6]) for r in deltas.rows] == [
        (9690930617, BID, 1.781, 14694.07509503, 0), (9690930617, BID, 1.78, 12102.991384, FLAG_LAST)
    ]  # fmt: skip
    top = adapter.book_top(1)
    assert top is not None and top.seq == 9690930617 and top.ts_event == 1765201257205 * MS

    gapped = OkxAdapter.for_inst_id("NEAR-USDT", checksum=False)
    gapped.receive(snapshot, 1)
    foreign = update.replace('"prevSeqId":9690930615', '"prevSeqId":9690930616')
    invalid = gapped.receive(foreign, 2)[0]
    assert invalid == BookInvalid("seq_gap", "expected prevSeqId=9690930615, got 9690930616")

    verified = OkxAdapter.for_inst_id("NEAR-USDT")  # non-zero checksums are always checked
    assert of(verified.receive(snapshot, 1), BookInvalid)[0].cause == "checksum"


def test_heartbeat_sequence_reset_and_checksum_zero_keep_the_book() -> None:
    adapter = OkxAdapter(PAIR)
    bid, ask = ["100", "1", "0", "1"], ["101", "2", "0", "1"]
    adapter.receive(books("snapshot", [bid], [ask], seqId=50, prevSeqId=-1, checksum=0), 1)
    steps = [
        books("update", [], [], seqId=50, prevSeqId=50, checksum=0),  # idle heartbeat
        books("update", [["99", "3", "0", "1"]], [], seqId=7, prevSeqId=50, checksum=0),  # reset
        books("update", [["99", "0", "0", "0"]], [], seqId=9, prevSeqId=7, checksum=0),
    ]
    events = [e for text in steps for e in adapter.receive(text, 2)]
    assert of(events, BookInvalid) == [] and len(of(events, BookDeltas)) == 2
    assert held(adapter) == {BID: {100.0: 1.0}, ASK: {101.0: 2.0}}
    top = adapter.book_top(1)
    assert top is not None and top.seq == 9


def test_checksum_zero_books_keep_no_texts_until_a_checksum_comes() -> None:
    """OKX sends checksum 0 since June 2026: no wire texts are decoded or kept for them."""
    adapter = OkxAdapter(PAIR)
    bid, ask = ["100.10", "1", "0", "1"], ["101", "2", "0", "1"]
    adapter.receive(books("snapshot", [bid], [ask], seqId=1, prevSeqId=-1, checksum=0), 1)
    assert adapter.book.top_text(1) == ([("", "")], [("", "")])  # numbers only
    assert of(adapter.receive(books("update", [["99", "3", "0", "1"]], [], seqId=2,
                                    prevSeqId=1, checksum=0), 2), BookDeltas)  # fmt: skip
    events = adapter.receive(books("update", [], [], seqId=3, prevSeqId=2, checksum=5), 3)
    assert of(events, BookInvalid)[0].cause == "checksum"  # cannot be verified: a new book
    assert [m["op"] for m in sent(events)] == ["unsubscribe", "subscribe"]
    adapter.receive(books("snapshot", [bid], [ask], seqId=9, prevSeqId=-1, checksum=0), 4)
    assert adapter.book.top_text(1) == ([("100.10", "1")], [("101", "2")])  # kept from now on
    checksum = okx_checksum([("100.10", "4")], [("101", "2")])
    update = books("update", [["100.10", "4", "0", "1"]], [], seqId=10, prevSeqId=9,
                   checksum=checksum)  # fmt: skip
    assert of(adapter.receive(update, 5), BookInvalid) == []


def test_a_checksummed_book_keeps_its_texts_through_checksum_zero_updates() -> None:
    adapter = OkxAdapter(PAIR)
    bid, ask = ["100.10", "1", "0", "1"], ["101", "2", "0", "1"]
    first = okx_checksum([("100.10", "1")], [("101", "2")])
    adapter.receive(books("snapshot", [bid], [ask], seqId=1, prevSeqId=-1, checksum=first), 1)
    zero = books("update", [], [["101", "3", "0", "1"]], seqId=2, prevSeqId=1, checksum=0)
    assert of(adapter.receive(zero, 2), BookInvalid) == []
    checksum = okx_checksum([("100.10", "1")], [("101", "3")])
    checked = books("update", [], [], seqId=3, prevSeqId=2, checksum=checksum)
    assert of(adapter.receive(checked, 3), BookInvalid) == []
    assert adapter.book.top_text(1) == ([("100.10", "1")], [("101", "3")])


def test_updates_before_the_books_ack_are_ignored() -> None:
    """They belong to the subscription a resync just cancelled."""
    adapter = OkxAdapter(PAIR)
    update = books("update", [["1", "1", "0", "1"]], [], seqId=2, prevSeqId=1)
    assert adapter.receive(update, 1) == []
    assert adapter.book_top(1) is None


BOOKS_ACK = '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3"}'


def rest(seq_id: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    data = {"asks": asks, "bids": bids, "ts": "1652459225000", "seqId": seq_id}
    return json.dumps({"code": "0", "msg": "", "data": [data]})


def acked() -> OkxAdapter:
    adapter = OkxAdapter(PAIR, url="ws://127.0.0.1:9")
    adapter.on_open()
    assert adapter.receive(BOOKS_ACK, 1) == []
    return adapter


def test_updates_without_a_snapshot_fetch_the_rest_book_and_bridge_on_seq_id() -> None:
    adapter = acked()
    first = books("update", [["99", "1", "0", "1"]], [], seqId=12, prevSeqId=10)
    assert adapter.receive(first, 2) == [
        FetchSnapshot("http://127.0.0.1:9/api/v5/market/books?instId=BTC-USDT&sz=400")
    ]
    straddling = books("update", [["98", "4", "0", "1"]], [], seqId=15, prevSeqId=12)
    assert adapter.receive(straddling, 3) == []  # buffered; one fetch at a time
    snapshot = rest(13, [["100", "1", "0", "1"], ["99", "1", "0", "1"]], [["101", "2", "0", "1"]])
    events = as_deltas(adapter.receive_snapshot(snapshot, 4))
    deltas = of(events, BookDeltas)
    assert [e for e in events if not isinstance(e, BookDeltas)] == [BookValid(4)]
    assert [(r[2], r[4], r[5]) for r in deltas[0].rows] == [
        (13, 100.0, 1.0),
        (13, 99.0, 1.0),
        (13, 101.0, 2.0),
    ]
    assert all(r[6] & FLAG_SNAPSHOT for r in deltas[0].rows)
    assert [(r[2], r[4], r[5]) for r in deltas[1].rows] == [(15, 98.0, 4.0)]  # seqId 12 dropped
    assert adapter.receive(books("update", [], [["101", "0", "0", "0"]], seqId=16, prevSeqId=15), 5)
    assert held(adapter) == {BID: {100.0: 1.0, 99.0: 1.0, 98.0: 4.0}, ASK: {}}
    gap = adapter.receive(books("update", [], [], seqId=20, prevSeqId=18), 6)
    assert of(gap, BookInvalid)[0].cause == "seq_gap"  # chained by equality again


def test_a_sequence_reset_right_after_the_rest_book_is_applied() -> None:
    """PROTOCOLS §4.6: after maintenance an update may come with seqId < prevSeqId."""
    adapter = acked()
    [_] = adapter.receive(books("update", [], [], seqId=100, prevSeqId=100), 2)
    reset = books("update", [["99", "1", "0", "1"]], [], seqId=3, prevSeqId=100)
    assert adapter.receive(reset, 3) == []  # buffered with the first
    events = adapter.receive_snapshot(rest(100, [["100", "1", "0", "1"]], []), 4)
    assert BookValid(4) in events and [r[2] for r in of(events, BookDeltas)[-1].rows] == [3]
    later = books("update", [["98", "1", "0", "1"]], [], seqId=5, prevSeqId=3)
    assert of(adapter.receive(later, 5), BookDeltas)
    assert held(adapter) == {BID: {100.0: 1.0, 99.0: 1.0, 98.0: 1.0}, ASK: {}}


def test_a_reset_after_a_rest_book_already_applied_chains_on() -> None:
    adapter = acked()
    adapter.receive(books("update", [], [], seqId=100, prevSeqId=100), 2)
    assert BookValid(3) in adapter.receive_snapshot(rest(100, [["100", "1", "0", "1"]], []), 3)
    reset = books("update", [["99", "1", "0", "1"]], [], seqId=3, prevSeqId=100)
    assert of(adapter.receive(reset, 4), BookDeltas) and adapter.book_top(1).seq == 3


def test_a_rest_book_older_than_the_buffered_updates_is_fetched_again() -> None:
    adapter = acked()
    [fetch] = adapter.receive(
        books("update", [["99", "1", "0", "1"]], [], seqId=21, prevSeqId=20), 2
    )
    assert adapter.receive_snapshot(rest(18, [["100", "1", "0", "1"]], []), 3) == [fetch]
    assert not adapter.book_live
    events = adapter.receive_snapshot(rest(20, [["100", "1", "0", "1"]], []), 4)
    assert BookValid(4) in events and held(adapter) == {BID: {100.0: 1.0, 99.0: 1.0}, ASK: {}}


def test_an_update_past_the_rest_book_fetches_it_again() -> None:
    adapter = acked()
    [fetch] = adapter.receive(books("update", [], [], seqId=5, prevSeqId=5), 2)
    assert BookValid(3) in adapter.receive_snapshot(rest(7, [["100", "1", "0", "1"]], []), 3)
    assert adapter.receive(books("update", [], [], seqId=7, prevSeqId=6), 4) == []  # in the book
    events = adapter.receive(books("update", [["98", "1", "0", "1"]], [], seqId=9, prevSeqId=8), 5)
    assert [type(e) for e in events] == [BookInvalid, FetchSnapshot] and events[1] == fetch
    assert of(events, BookInvalid)[0].cause == "resync" and not adapter.book_live


def test_a_rest_answer_after_a_websocket_snapshot_or_a_bad_one_changes_nothing() -> None:
    adapter = acked()
    update = books("update", [["99", "1", "0", "1"]], [], seqId=12, prevSeqId=10)
    [fetch] = adapter.receive(update, 2)
    with pytest.raises(ParseError, match="seqId") as error:
        adapter.receive_snapshot(
            json.dumps({"code": "0", "data": [{"asks": [], "bids": [], "ts": "1"}]}), 3
        )
    assert error.value.kind == "bad_snapshot"
    assert adapter.receive(update, 4) == [fetch]  # after a bad answer, the next update asks again
    with pytest.raises(ParseError, match="51001"):
        adapter.receive_snapshot(
            '{"code":"51001","msg":"Instrument ID does not exist","data":[]}', 5
        )
    assert adapter.receive(update, 6) == [fetch]
    snap = books("snapshot", [["100", "1", "0", "1"]], [], seqId=12, prevSeqId=-1)
    assert BookValid(7) in adapter.receive(snap, 7)
    assert adapter.receive_snapshot(rest(13, [["1", "1", "0", "1"]], []), 8) == []
    assert held(adapter) == {BID: {100.0: 1.0}, ASK: {}}


def test_a_push_listing_its_newest_trade_first_keeps_every_trade_once() -> None:
    adapter = OkxAdapter(PAIR)
    [first] = adapter.receive(trades(12, 11, 12), 10)
    assert [row[2] for row in first.rows] == [12, 11]
    [later] = adapter.receive(trades(11, 13), 11)
    assert [row[2] for row in later.rows] == [13]


def test_a_venue_ping_gets_a_pong_and_quoted_negative_numbers_parse() -> None:
    adapter = OkxAdapter(PAIR)
    assert adapter.receive("ping", 1) == [Send("pong")]
    spaced = json.dumps(  # not compact: the general path, with every number quoted
        {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot",
         "data": [{"asks": [["3366.8", "9", "0", "1"]], "bids": [["3366.1", "7", "0", "1"]],
                   "ts": "1652459225381", "checksum": "-1", "prevSeqId": "-1", "seqId": "7"}]},
    )  # fmt: skip
    events = adapter.receive(spaced, 2)
    assert of(events, BookInvalid)[0].cause == "checksum"  # parsed; -1 is simply wrong


def test_replayed_latest_trade_is_stored_once_even_across_reconnects() -> None:
    adapter = OkxAdapter(PAIR)
    [first] = adapter.receive(trades(338476307), 10)
    assert first == Trades([(1652459224818 * MS, 10, 338476307, b"", 30236.0, 0.0002, 1, 0)])
    assert adapter.receive(trades(338476307), 11) == []
    adapter.on_open()
    [later] = adapter.receive(trades(338476306, 338476307, 338476308, 338476309), 12)
    assert isinstance(later, Trades) and [row[2] for row in later.rows] == [338476308, 338476309]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("pongx", "not_json"),
        ('"pong"', "unexpected"),
        ('{"event":"channel-conn-count"}', "unknown"),
        ('{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[]}', "unknown"),
        ('{"arg":"books","data":[]}', "unknown"),
        (books("update", [[["1"], "1", "0", "1"]], []), "bad_field"),
        (books("update", [["1", "lots", "0", "1"]], []), "bad_field"),
        (books("update", [["-5", "1", "0", "1"]], []), "bad_field"),
        (books("update", [["nan", "1", "0", "1"]], []), "bad_field"),
        (books("update", [["1e999", "1", "0", "1"]], []), "bad_field"),
        (books("update", [], [], seqId=True), "bad_field"),
        (books("update", [], [], seqId=2**70), "bad_field"),
        (books("refresh", [], []), "bad_field"),
        (
            books("update", [], []).replace('"instId": "BTC-USDT"', '"instId": "ETH-USDT"'),
            "wrong_symbol",
        ),
        (trades(1).replace('"side": "buy"', '"side": "up"'), "bad_field"),
        (trades(1).replace('"tradeId": "1"', '"tradeId": "1a"'), "bad_field"),
        (trades(1).replace('"ts": "1652459224818"', '"ts": -1'), "bad_field"),
        (trades(1).replace('"sz": "0.0002"', '"sz": "0"'), "bad_field"),
    ],
)
def test_malformed_frames_raise_parse_error(text: str, kind: str) -> None:
    adapter = OkxAdapter(PAIR)
    adapter.receive(
        books("snapshot", [["1", "1", "0", "1"]], [["2", "1", "0", "1"]], checksum=0), 1
    )
    with pytest.raises(ParseError) as info:
        adapter.receive(text, 2)
    assert info.value.kind == kind
    assert held(adapter) == {BID: {1.0: 1.0}, ASK: {2.0: 1.0}}  # a rejected message changes nothing


# -- property: updates versus a rebuild, fake checksums versus adapter checksums ---------
level = st.tuples(
    st.sampled_from([BID, ASK]),
    st.integers(min_value=1, max_value=60),
    st.sampled_from(["0", "0.5", "1", "2.250", "10", "0.000001", "3.1"]),
)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.lists(level, max_size=40),
    messages=st.lists(st.tuples(st.lists(level, max_size=8), st.integers(1, 5)), max_size=25),
)
def test_any_update_sequence_equals_a_rebuild_and_fake_checksums_verify(
    initial: list[tuple[int, int, str]], messages: list[tuple[list[tuple[int, int, str]], int]]
) -> None:
    truth: dict[int, dict[Decimal, Decimal]] = {BID: {}, ASK: {}}

    def apply(levels: list[tuple[int, int, str]]) -> tuple[list[list[str]], list[list[str]]]:
        out: dict[int, list[list[str]]] = {BID: [], ASK: []}
        for side, p, s in levels:
            price = Decimal(p) / 4 + (0 if side == BID else 100)
            size = Decimal(s)
            truth[side][price] = size
            if not size:
                del truth[side][price]
            out[side].append([number_text(price), number_text(size), "0", "1"])
        return out[BID], out[ASK]

    adapter, rows, seq = OkxAdapter(PAIR), [], 1000
    initial = [(side, p, s) for side, p, s in initial if Decimal(s)]
    bids, asks = apply(initial)
    snapshot = books(
        "snapshot",
        bids,
        asks,
        seqId=seq,
        prevSeqId=-1,
        checksum=book_checksum(truth[BID], truth[ASK]),
    )
    events = adapter.receive(snapshot, 1)
    for levels, step in messages:
        bids, asks = apply(levels)
        checksum = book_checksum(truth[BID], truth[ASK])
        events += adapter.receive(
            books("update", bids, asks, seqId=seq + step, prevSeqId=seq, checksum=checksum), 2
        )
        seq += step
    assert of(events, BookInvalid) == []
    rows = [r for e in of(events, BookDeltas) for r in e.rows]
    as_float = {
        side: {float(p): float(s) for p, s in levels.items()} for side, levels in truth.items()
    }
    assert held(adapter) == as_float and replay(rows) == as_float
    assert okx_checksum(*adapter.book.top_text(25)) == book_checksum(truth[BID], truth[ASK])


# -- through real sockets against the fake -----------------------------------------------
@pytest.fixture(params=[False, True], ids=["checksum", "checksum_zero"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeOkx]:
    venue = FakeOkx([PAIR, "ETH/USDT"], seed=5, checksum_zero=request.param)
    venue.start()
    try:
        yield venue
    finally:
        venue.stop()


@pytest.fixture
def shell(fake: FakeOkx) -> Iterator[Client]:
    client = Client.opened(OkxAdapter(PAIR, url=fake.url))
    yield client
    client.ws.close()


def assert_in_step(shells: list[Client], fake: FakeOkx) -> None:
    """Pause the fake; the last (open) shell's book and all shells' trades equal its truth."""
    fake.pause()
    shells[-1].drain()
    adapter = shells[-1].adapter
    top = adapter.book_top(1)
    assert top is not None and top.seq == fake.book_seq(PAIR)
    bids, asks = fake.book(PAIR)
    assert held(adapter) == {BID: bids, ASK: asks} and bids and asks
    truth = [
        (t.trade_id, float(t.price), float(t.amount), t.side, t.ts_ms * MS)
        for t in fake.sent_trades[PAIR]
    ]
    got = [(r[2], r[4], r[5], r[6], r[0]) for s in shells for r in s.trades()]
    assert got == truth and len(truth) > 3


def checksums(shell: Client) -> set[int]:
    return {
        json.loads(t)["data"][0]["checksum"]
        for t in shell.frames
        if '"channel":"books"' in t and "data" in t
    }


def test_trades_and_book_equal_the_fake(shell: Client, fake: FakeOkx) -> None:
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 40 and len(shell.trades()) > 3)
    assert_in_step([shell], fake)
    assert shell.of(BookInvalid) == [] and len(shell.of(BookValid)) == 1
    assert (checksums(shell) == {0}) is fake.checksum_zero  # checksum 0 never resyncs
    assert replay([r for e in shell.of(BookDeltas) for r in e.rows]) == held(shell.adapter)


@pytest.mark.parametrize("fault", ["inject_sequence_gap", "corrupt_next_checksum"])
def test_a_fault_resyncs_once_then_the_book_matches(
    shell: Client, fake: FakeOkx, fault: str
) -> None:
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 5)
    getattr(fake, fault)(PAIR)
    assert shell.pump(lambda: len(shell.of(BookValid)) == 2)
    [invalid] = shell.of(BookInvalid)
    assert (
        invalid.cause
        == {"inject_sequence_gap": "seq_gap", "corrupt_next_checksum": "checksum"}[fault]
    )
    after = [
        e.text for e in shell.events[shell.events.index(invalid) + 1 :][:2] if isinstance(e, Send)
    ]
    books_arg = [{"channel": "books", "instId": "BTC-USDT"}]
    assert [json.loads(text) for text in after] == [
        {"op": "unsubscribe", "args": books_arg}, {"op": "subscribe", "args": books_arg}
    ]  # fmt: skip
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 30)
    assert_in_step([shell], fake)
    assert len(shell.of(BookInvalid)) == 1


def test_sequence_reset_after_maintenance_is_accepted(shell: Client, fake: FakeOkx) -> None:
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 5)
    fake.reset_sequence(PAIR)
    assert shell.pump(lambda: (top := shell.adapter.book_top(1)) is not None and top.seq < 10_000)
    assert shell.pump(lambda: len(shell.of(BookDeltas)) > 20)
    assert_in_step([shell], fake)
    assert shell.of(BookInvalid) == []


def test_reconnect_with_the_same_adapter_stores_no_trade_twice(
    shell: Client, fake: FakeOkx
) -> None:
    assert shell.pump(lambda: len(shell.trades()) > 3)
    fake.pause()
    shell.drain()
    last_id = shell.trades()[-1][2]
    shell.ws.close()
    second = Client.opened(shell.adapter)  # the shell reuses the adapter for the new connection
    try:
        assert second.pump(lambda: any(f'"tradeId":"{last_id}"' in t for t in second.frames))
        assert second.trades() == []  # the replay of the latest trade was dropped
        fake.resume()
        assert second.pump(lambda: len(second.trades()) > 3)
        assert_in_step([shell, second], fake)
    finally:
        second.ws.close()


def test_ping_gets_a_pong_that_the_adapter_accepts(shell: Client, fake: FakeOkx) -> None:
    assert shell.pump(lambda: bool(shell.frames))
    now = shell.adapter.last_recv_ns
    shell.adapter.keepalive(now)
    shell.act(shell.adapter.keepalive(now + 20 * SECOND))
    assert shell.pump(lambda: "pong" in shell.frames)
    assert "ping" in fake.open_connections()[0].received


def test_without_websocket_snapshots_the_rest_book_bridges_to_the_updates() -> None:
    with FakeOkx([PAIR], seed=7, ws_snapshot=False) as venue:
        assert isinstance(venue, FakeOkx)
        client = Client.opened(OkxAdapter(PAIR, url=venue.url))  # REST on the same local port
        try:
            assert client.pump(lambda: len(client.of(BookDeltas)) > 20 and len(client.trades()) > 3)
            assert_in_step([client], venue)
            assert venue.rest_books_served == 1 and client.of(BookInvalid) == []
            assert len(client.of(FetchSnapshot)) == 1 and len(client.of(BookValid)) == 1
        finally:
            client.ws.close()


def test_unknown_inst_id_gets_venue_errors_unverified_code_60018(fake: FakeOkx) -> None:
    client = Client.opened(OkxAdapter("FOO/BAR", url=fake.url))
    try:
        assert client.pump(lambda: len(client.of(VenueError)) == 2)
        assert all("60018" in e.message and "FOO-BAR" in e.message for e in client.of(VenueError))
    finally:
        client.ws.close()


# -- end to end: fake venue → actors → HDF5 → open_store ---------------------------------
E2E_PAIRS = [PAIR, "ETH/USDT"]


def _settle(fake: FakeOkx, path: Path, pairs: list[str] = E2E_PAIRS) -> None:
    """Stop the market and wait until storage holds everything the fake published."""
    fake.pause()

    def stored_all(pair: str) -> bool:
        store = open_store(path)
        deltas = store.book_deltas("okx", pair)
        trades_done = len(store.trades("okx", pair)) >= len(fake.sent_trades[pair])
        return trades_done and len(deltas) > 0 and int(deltas["seq"][-1]) == fake.book_seq(pair)

    wait_until(lambda: all(stored_all(pair) for pair in pairs))


def _assert_stored_equals_fake(path: Path, fake: FakeOkx, pairs: list[str] = E2E_PAIRS) -> None:
    store = open_store(path)
    for pair in pairs:
        stored = store.trades("okx", pair)
        truth = fake.sent_trades[pair]
        assert stored["trade_id"].tolist() == [t.trade_id for t in truth] and len(truth) > 10
        assert stored["amount"].tolist() == [float(t.amount) for t in truth]
        assert stored["ts_event"].tolist() == [t.ts_ms * MS for t in truth]
        assert rebuild_book(store.book_deltas("okx", pair)) == fake.book(pair)


def _job(fake: FakeOkx, pairs: list[str] = E2E_PAIRS) -> StreamJob:
    return StreamJob("okx", pairs, ["trades", "book"], url=fake.url, time_step=0.2)


def test_e2e_a_corrupt_checksum_resyncs_that_pair_only(tmp_path: Path) -> None:
    fake = FakeOkx(E2E_PAIRS, seed=31)  # typed as itself, not as the base's __enter__
    with fake, Collector(config(tmp_path, [_job(fake)])) as collector:
        wait_until(lambda: all(r.book_live for r in collector.status()) and fake.sent_trades[PAIR])
        fake.corrupt_next_checksum(PAIR)
        wait_until(
            lambda: {r.pair: r.resyncs for r in collector.status()} == {PAIR: 1, "ETH/USDT": 0}
        )
        wait_until(lambda: all(r.book_live for r in collector.status()))
        wait_until(lambda: all(len(fake.sent_trades[p]) > 20 for p in E2E_PAIRS))
        _settle(fake, tmp_path)
        wait_for_book_samples(tmp_path, "okx", [PAIR])
        assert {r.pair: r.gen for r in collector.status()} == {PAIR: 1, "ETH/USDT": 1}
    _assert_stored_equals_fake(tmp_path, fake)
    store = open_store(tmp_path)
    assert store.gaps("okx", PAIR)["cause"].tolist() == ["checksum"]
    assert len(store.gaps("okx", "ETH/USDT")) == 0 and len(store.book_snapshots("okx", PAIR)) >= 2


def test_e2e_without_websocket_snapshots_books_come_from_rest(tmp_path: Path) -> None:
    fake = FakeOkx(E2E_PAIRS, seed=33, ws_snapshot=False)
    with fake, Collector(config(tmp_path, [_job(fake)])) as collector:
        wait_until(lambda: all(r.book_live for r in collector.status()))
        wait_until(lambda: all(len(fake.sent_trades[p]) > 10 for p in E2E_PAIRS))
        _settle(fake, tmp_path)
    _assert_stored_equals_fake(tmp_path, fake)
    assert fake.rest_books_served == 2
    assert all(len(open_store(tmp_path).gaps("okx", p)) == 0 for p in E2E_PAIRS)


def test_e2e_upgrade_notices_reconnect_at_once_and_never_park_the_stream(tmp_path: Path) -> None:
    slow = RestartPolicy(min_backoff=30.0, max_backoff=60.0, max_restarts=2)  # failures would park
    fake = FakeOkx([PAIR], seed=34, checksum_zero=True)
    with fake, Collector(config(tmp_path, [_job(fake, [PAIR])], policy=slow)) as collector:
        for gen in range(2, 6):
            wait_until(lambda g=gen: len(fake.sent_trades[PAIR]) > 3 * g)
            _settle(fake, tmp_path, [PAIR])  # a quiet market: nothing is sent into a closing socket
            fake.broadcast_raw(UPGRADE_NOTICE)
            wait_until(
                lambda g=gen: collector.status()[0].gen == g and collector.status()[0].book_live
            )
            fake.resume()
        row = collector.status()[0]
        assert (row.state, row.restarts, row.last_exit_cause) == ("running", 4, "disconnect")
        _settle(fake, tmp_path, [PAIR])
    gaps = open_store(tmp_path).gaps("okx", PAIR)
    assert gaps["cause"].tolist() == ["disconnect"] * 4  # each switch-over is still an interval
    _assert_stored_equals_fake(tmp_path, fake, [PAIR])


def test_e2e_a_reconnect_stores_no_trade_twice(tmp_path: Path) -> None:
    fake = FakeOkx(E2E_PAIRS, seed=32, checksum_zero=True)
    with fake, Collector(config(tmp_path, [_job(fake)])) as collector:
        wait_until(lambda: all(len(fake.sent_trades[p]) > 10 for p in E2E_PAIRS))
        _settle(fake, tmp_path)  # a quiet market: the replay after reconnect is a stored trade
        before = fake.connection_count
        fake.drop_connections()
        wait_until(lambda: fake.connection_count >= before + 2)
        wait_until(lambda: all(r.book_live and r.gen == 2 for r in collector.status()))
        fake.resume()
        wait_until(lambda: all(len(fake.sent_trades[p]) > 30 for p in E2E_PAIRS))
        _settle(fake, tmp_path)
    _assert_stored_equals_fake(tmp_path, fake)


def test_a_new_run_does_not_store_the_replayed_latest_trade_again(tmp_path: Path) -> None:
    """OKX pushes its latest trade on every subscribe; a restarted process must skip it."""
    with FakeOkx([PAIR], seed=31) as venue:
        job = StreamJob("okx", [PAIR], ["trades"], url=venue.url)
        for _run in range(2):  # the second run subscribes after the first stored everything
            with Collector(config(tmp_path, [job])) as c:
                wait_until(lambda: c.status()[0].trades > 3, timeout=20)
                venue.pause()  # the last trade of this run is the one the next subscribe replays
                wait_until(lambda: _stored(tmp_path) == _sent(venue), timeout=10)
            venue.resume()
    ids = _stored(tmp_path)
    assert len(ids) > 6 and ids == sorted(set(ids)) == _sent(venue)


def _stored(path: Path) -> list[int]:
    return [int(i) for i in open_store(path).trades("okx", PAIR)["trade_id"]]


def _sent(venue: FakeOkx) -> list[int]:
    return sorted({t.trade_id for t in venue.sent_trades[PAIR]})
