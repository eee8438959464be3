"""Bybit v5 public spot: ``publicTrade.<SYM>`` and ``orderbook.50.<SYM>`` on ``/v5/public/spot``.

Reference: PROTOCOLS.md §2. Recorded frames: ``fixtures/supplementary/bybit_v5_spot.jsonl``
(one real snapshot and the next delta); ``fixtures/bybit/`` is the retired v2 API and is not
spoken here.

Choices this module makes where the protocol leaves room:

* **Depth 50.** Spot offers 1, 50, 200 and 1000 levels. Depth 1 is snapshot-only; 200 and 1000
  push every 100 ms and 200 ms, so each message coalesces more changes; ``orderbook.full`` has no
  WebSocket snapshot and needs a REST bootstrap. 50 is the deepest book that is snapshotted on
  the socket *and* pushed every 20 ms, and it is the depth of the only real v5 recording.
  §2.5 does not say whether a level pushed out of the top 50 gets a delete, so after each
  message the book is cut to 50 levels per side, each cut level stored as a ``size 0`` row
  (replaying the stored rows must rebuild the book we hold, DESIGN §4).
* **Sequence.** ``u`` must grow by exactly 1 per message; a snapshot, or ``u == 1`` (service
  restart), replaces the book. Any other jump discards the book and re-subscribes the book
  topic (unsubscribe, then subscribe) for a new snapshot. Rows store Bybit's cross sequence
  ``seq`` (DESIGN §4), which is not contiguous and so is never used for gap detection.
* **Times.** Trades carry the fill time ``T``. Book rows carry ``cts``, the matching-engine
  time that lines up with trade ``T``, and fall back to ``ts`` (data generation time).
* **Ping every 15 s.** §2.3 recommends a ping every 20 s (the server cuts a connection with
  neither ping nor data, after a time not stated for public streams); the shell calls
  :meth:`BybitAdapter.keepalive` on a 0.5 s tick, so 15 s keeps every ping inside 20 s.
* **Other topics.** Frames of trade or book topics we did not subscribe to (another symbol or
  depth) are checked and ignored; unknown topics are parse errors.
* **Trade ids** are opaque strings: numeric spot ids become ``trade_id``, anything else (the
  UUIDs of perpetuals) ``trade_uid``. Exact repeats are dropped against a bounded memory of the
  last ``SEEN_TRADES_MAX`` ids that survives :meth:`BybitAdapter.on_open`.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Final

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    SECOND,
    BaseAdapter,
    BookDeltas,
    BookValid,
    DeltaRow,
    Event,
    Send,
    TradeRow,
    Trades,
    VenueError,
)
from dccd_actors.exchanges._numbers import INT64, decimal, int64, ms_to_ns
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.records import FLAG_LAST, TRADE_UID_BYTES

__all__ = ["BOOK_DEPTH", "BybitAdapter"]

BOOK_DEPTH: Final = 50
SPOT_PATH: Final = "/v5/public/spot"
#: Bybit recommends a ping every 20 s (§2.3); 15 s stays inside it on a 0.5 s keepalive tick
PING_EVERY_NS: Final = 15 * SECOND
SEEN_TRADES_MAX: Final = 4096

_SIDES: Final = {"Buy": 1, "Sell": -1}
# documented topics we may be sent but did not subscribe to (§2.4, §2.5 spot depths)
_KNOWN_TOPIC: Final = re.compile(r"publicTrade\.[A-Z0-9]+|orderbook\.(?:1|50|200|1000)\.[A-Z0-9]+")
_BAD_FIELD: Final = (KeyError, TypeError, ValueError, IndexError, AttributeError)

Level = tuple[int, float, float]
"""(side, price, size)"""


class BybitAdapter(BaseAdapter):
    """Sans-IO Bybit v5 spot adapter for one pair (trades and a 50-level book).

    Example::

        >>> a = BybitAdapter("BTC/USDT", ["trades", "book"])
        >>> a.url()
        'wss://stream.bybit.com/v5/public/spot'
        >>> a.on_open()[0].text
        '{"req_id":"1","op":"subscribe","args":["publicTrade.BTCUSDT","orderbook.50.BTCUSDT"]}'
    """

    exchange: ClassVar[str] = "bybit"
    DEFAULT_URL: ClassVar[str] = "wss://stream.bybit.com"
    DEFAULT_REST_URL: ClassVar[str] = "https://api.bybit.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = self.base + self.quote
        self.trade_topic = f"publicTrade.{self.symbol}"
        self.book_topic = f"orderbook.{BOOK_DEPTH}.{self.symbol}"
        self._last_u = -1
        self._req_id = 0
        self._ping_ns = 0
        self._seen: dict[str, None] = {}  # insertion-ordered set of recent trade ids

    # -- the contract -----------------------------------------------------------------
    def url(self) -> str:
        return self.base_url + SPOT_PATH

    def on_open(self) -> list[Event]:
        self.book.clear()
        self.book_live = False
        self._last_u = -1
        self._ping_ns = 0
        topics = [self.trade_topic] if "trades" in self.channels else []
        topics += [self.book_topic] if "book" in self.channels else []
        return [self._request("subscribe", topics)] if topics else []

    def keepalive(self, now_ns: int) -> list[Event]:
        if self._ping_ns == 0:  # first call on this connection starts the clock
            self._ping_ns = now_ns
        if now_ns - self._ping_ns < PING_EVERY_NS:
            return []
        self._ping_ns = now_ns
        return [self._request("ping", None)]

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        msg = self._load(text)
        topic = msg.get("topic")
        try:
            if topic == self.trade_topic:
                return self._trades(msg["data"], ts_recv, text)
            if topic == self.book_topic:
                return self._book(msg, ts_recv, text)
            if isinstance(topic, str) and _KNOWN_TOPIC.fullmatch(topic):
                _check_other_topic(topic, msg)
                return []
        except ParseError:
            raise
        except _BAD_FIELD as exc:
            reason = f"{topic} frame has a bad field ({exc!r})"
            raise self._parse_error("bad_field", reason, text) from None
        if topic is None and "success" in msg:
            return self._reply(msg)
        if topic is None and msg.get("op") == "pong":  # the options-style pong
            return []
        raise self._parse_error("unknown", f"unexpected message (topic {topic!r})", text)

    # -- control ----------------------------------------------------------------------
    def _request(self, op: str, args: list[str] | None) -> Send:
        self._req_id += 1
        msg: dict[str, Any] = {"req_id": str(self._req_id), "op": op}
        if args is not None:
            msg["args"] = args
        return Send(json.dumps(msg, separators=(",", ":")))

    def _load(self, text: str) -> dict[str, Any]:
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        if not isinstance(msg, dict):
            raise self._parse_error("unexpected", "frame is not a JSON object", text)
        return msg

    def _reply(self, msg: dict[str, Any]) -> list[Event]:
        if msg["success"] is True:  # subscribe/unsubscribe ack or pong
            return []
        return [VenueError(f"bybit {msg.get('op')} refused: {msg.get('ret_msg')}")]

    def _check_symbol(self, found: Any, text: str) -> None:
        if found != self.symbol:
            raise self._parse_error("wrong_symbol", f"{found!r} on the {self.symbol} stream", text)

    def _resync(self, cause: str, detail: str) -> list[Event]:
        invalid = self._invalidate(cause, detail)
        topics = [self.book_topic]
        return [invalid, self._request("unsubscribe", topics), self._request("subscribe", topics)]

    # -- trades -----------------------------------------------------------------------
    def _trades(self, data: Any, ts_recv: int, text: str) -> list[Event]:
        if not isinstance(data, list):
            raise TypeError("data is not a list")
        rows: list[TradeRow] = []
        fresh: dict[str, None] = {}
        for trade in data:
            self._check_symbol(trade["s"], text)
            raw_id = trade["i"]
            row = _trade_row(trade, ts_recv)
            if raw_id not in self._seen and raw_id not in fresh:
                rows.append(row)
                fresh[raw_id] = None
        self._remember(fresh)  # only once the whole message parsed
        return [Trades(rows)] if rows else []

    def _remember(self, ids: dict[str, None]) -> None:
        seen = self._seen
        seen.update(ids)
        while len(seen) > SEEN_TRADES_MAX:
            del seen[next(iter(seen))]

    # -- book -------------------------------------------------------------------------
    def _book(self, msg: dict[str, Any], ts_recv: int, text: str) -> list[Event]:
        data, kind = msg["data"], msg["type"]
        self._check_symbol(data["s"], text)
        if kind not in ("snapshot", "delta"):
            raise ValueError(f"unknown type {kind!r}")
        u, seq = int64(data["u"]), int64(data.get("seq", -1))
        ts_event = ms_to_ns(msg["cts"] if "cts" in msg else msg["ts"])
        levels = _levels(data["b"], BID) + _levels(data["a"], ASK)
        if kind == "snapshot" or u == 1:  # u == 1: Bybit restarted; the message is a full book
            return self._snapshot(levels, u, ts_event, ts_recv, seq)
        if not self.book_live:
            return []  # waiting for the snapshot that a resync asked for
        if u != self._last_u + 1:
            return self._resync("seq_gap", f"expected u={self._last_u + 1}, got u={u}")
        self._last_u = u
        self._mark_book(ts_event, ts_recv, seq)
        rows: list[DeltaRow] = []
        for side, price, size in levels:
            self.book.set(side, price, size)
            rows.append((ts_event, ts_recv, seq, side, price, size, 0))
        rows += self._truncate(ts_event, ts_recv, seq)
        if not rows:
            return []
        rows[-1] = (*rows[-1][:6], FLAG_LAST)
        return [BookDeltas(rows)]

    def _snapshot(
        self, levels: list[Level], u: int, ts_event: int, ts_recv: int, seq: int
    ) -> list[Event]:
        self.book.clear()
        for side, price, size in levels:
            self.book.set(side, price, size)
        self.book.truncate(BOOK_DEPTH)  # its rows come from the book: nothing else to store
        self.book_live = True
        self._last_u = u
        self._mark_book(ts_event, ts_recv, seq)
        return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, seq)), BookValid(ts_recv)]

    def _truncate(self, ts_event: int, ts_recv: int, seq: int) -> list[DeltaRow]:
        """Drop levels beyond the subscribed depth, as rows that delete them."""
        book = self.book
        if book.bid_count <= BOOK_DEPTH and book.ask_count <= BOOK_DEPTH:
            return []
        rows: list[DeltaRow] = []
        for side, prices in ((BID, book.bid_prices()), (ASK, book.ask_prices())):
            for price in prices[BOOK_DEPTH:]:
                book.set(side, price, 0.0)
                rows.append((ts_event, ts_recv, seq, side, price, 0.0, 0))
        return rows


def _check_other_topic(topic: str, msg: dict[str, Any]) -> None:
    """Parse a frame of a topic we did not subscribe to, only to refuse a malformed one."""
    data = msg["data"]
    if topic.startswith("publicTrade."):
        if not isinstance(data, list):
            raise TypeError("data is not a list")
        for trade in data:
            _trade_row(trade, 0)
        return
    if msg["type"] not in ("snapshot", "delta"):
        raise ValueError(f"unknown type {msg['type']!r}")
    int64(data["u"])
    _levels(data["b"], BID)
    _levels(data["a"], ASK)


def _trade_row(trade: Any, ts_recv: int) -> TradeRow:
    trade_id, trade_uid = _trade_id(trade["i"])
    price, amount = decimal(trade["p"], positive=True), decimal(trade["v"], positive=True)
    ts_event, side = ms_to_ns(trade["T"]), _SIDES[trade["S"]]
    return (ts_event, ts_recv, trade_id, trade_uid, price, amount, side, 0)


def _levels(raw: Any, side: int) -> list[Level]:
    if not isinstance(raw, list):
        raise TypeError("book side is not a list")
    out = []
    for level in raw:
        if not isinstance(level, list) or len(level) != 2:
            raise ValueError(f"level is not [price, size]: {level!r}")
        out.append((side, decimal(level[0], positive=True), decimal(level[1], positive=False)))
    return out


def _trade_id(raw: Any) -> tuple[int, bytes]:
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"trade id is not a string: {raw!r}")
    if raw.isascii() and raw.isdigit() and int(raw) < INT64:
        return int(raw), b""
    uid = raw.encode("ascii")  # UnicodeEncodeError is a ValueError
    if len(uid) > TRADE_UID_BYTES:
        raise ValueError(f"trade id longer than {TRADE_UID_BYTES} characters: {raw!r}")
    return -1, uid
