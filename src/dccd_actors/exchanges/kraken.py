"""Kraken spot WebSocket v2: the ``trade`` and ``book`` channels, CRC32-checked.

Reference: PROTOCOLS.md §3. Numbers are parsed as their exact wire text because
the checksum runs over it (``1797.30`` must keep its trailing zero). v2 book
messages carry no sequence number: integrity rests on the checksum alone, which
covers the top 10 levels of each side.

We subscribe the book at depth 10, the smallest Kraken offers: the checksum
covers exactly the top 10, so every level we store is verified by every
message. A deeper subscription would store levels no checksum ever covers.

Kraken sends no delete when a level falls out of the subscribed depth; the
client truncates. We emit an explicit ``size 0`` row for each level the
truncation removes, so that replaying the stored deltas from the last snapshot
rebuilds exactly the book we hold (DESIGN §4).

The trade channel is subscribed with ``snapshot: true``. The first snapshot an
adapter instance sees is history from before collection began (a previous run
may hold it): it only seeds the dedupe, so a live trade repeating it at the
subscription boundary is dropped. Later snapshots (the shell keeps the instance
across reconnects and calls ``on_open`` again) store the ids never seen,
filling what a reconnect missed.

Liveness (PROTOCOLS.md §3.3): a subscribed connection gets a heartbeat about
every second. Our ping after 5 s of silence is answered even by a venue whose
feed has stopped, so pongs prove only the socket: more than 10 s without any
other frame (data, heartbeat, status, ack) is a dead feed and asks for a new
connection.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, ClassVar, Final

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    SECOND,
    BaseAdapter,
    BookDeltas,
    BookValid,
    DeltaRow,
    Event,
    Reconnect,
    Send,
    SilenceWatch,
    TradeRow,
    Trades,
    VenueError,
    iso_to_ns,
)
from dccd_actors.exchanges._dedupe import SeenTradeIds
from dccd_actors.exchanges.book import ASK, BID, OrderBook
from dccd_actors.records import FLAG_LAST

__all__ = ["BOOK_DEPTH", "KrakenAdapter", "book_checksum", "checksum_of"]

BOOK_DEPTH: Final = 10
CHECKSUM_LEVELS: Final = 10
#: Heartbeats arrive every second once subscribed; this much silence earns a ping.
PING_AFTER_NS: Final = 5 * SECOND
#: "About 5-10 s of silence while subscribed" is a dead connection; pongs do not count.
STALE_AFTER_NS: Final = 10 * SECOND
SEEN_TRADE_IDS: Final = 10_000
_LEGACY_CODES: Final = {"XBT": "BTC", "XDG": "DOGE"}  # v1 names the user may still type
_NUMBER: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_SIDES: Final = {"buy": 1, "sell": -1}

Level = tuple[int, float, float, str, str]
"""(side, price, size, price_text, size_text)"""


class _Num(str):
    """The exact text of a JSON number; JSON strings stay plain ``str``."""

    __slots__ = ()


def _loads(text: str) -> Any:
    # NaN/Infinity become _Num too and then fail the number grammar, as they must.
    return json.loads(text, parse_float=_Num, parse_int=_Num, parse_constant=_Num)


def _number(value: Any, *, positive: bool) -> tuple[float, str]:
    """A non-negative (or positive) finite JSON number as (float, plain decimal text)."""
    if not isinstance(value, _Num) or not _NUMBER.fullmatch(value):
        raise ValueError(f"not a JSON number: {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"number out of range: {value!r}")
    text = format(Decimal(value), "f") if "e" in value or "E" in value else str(value)
    return number, text


def _uint(value: Any) -> int:
    if not isinstance(value, _Num) or not value.isdigit():
        raise ValueError(f"not an unsigned integer: {value!r}")
    return int(value)


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def checksum_of(asks: Iterable[tuple[str, str]], bids: Iterable[tuple[str, str]]) -> int:
    """Kraken's CRC32 (unsigned) over exact texts: asks best first, then bids best first.

    Each level contributes its price then its quantity, ``.`` removed and leading
    zeros stripped (PROTOCOLS.md §3.7). Pass at most 10 levels per side.

    Example::

        >>> checksum_of([("0.05005", "0.00000500")], [("0.05000", "0.00000500")])
        3851508195
    """
    parts = [_digits(p) + _digits(q) for p, q in asks]
    parts += [_digits(p) + _digits(q) for p, q in bids]
    return zlib.crc32("".join(parts).encode())


def book_checksum(book: OrderBook) -> int:
    """The Kraken checksum of ``book`` (levels set with their exact wire texts)."""
    bids, asks = book.top_text(CHECKSUM_LEVELS)
    return checksum_of(asks, bids)


class KrakenAdapter(BaseAdapter):
    """Sans-IO Kraken spot v2 adapter for one pair (book depth 10, CRC32 checked).

    Example::

        >>> a = KrakenAdapter("XBT/USD", ["trades", "book"])
        >>> a.url(), a.symbol
        ('wss://ws.kraken.com/v2', 'BTC/USD')
        >>> [e.text for e in a.on_open()][0]
        '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,"snapshot":true},"req_id":1}'
    """

    exchange: ClassVar[str] = "kraken"
    DEFAULT_URL: ClassVar[str] = "wss://ws.kraken.com"
    DEFAULT_REST_URL: ClassVar[str] = "https://api.kraken.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        base = _LEGACY_CODES.get(self.base, self.base)
        quote = _LEGACY_CODES.get(self.quote, self.quote)
        self.symbol = f"{base}/{quote}"
        self.depth = BOOK_DEPTH
        self._req_id = 0
        self._seen = SeenTradeIds(SEEN_TRADE_IDS)
        self._silence = SilenceWatch(ping_after_ns=PING_AFTER_NS, stale_after_ns=STALE_AFTER_NS)

    # -- the contract ---------------------------------------------------------------
    def url(self) -> str:
        return f"{self.base_url}/v2"

    def on_open(self) -> list[Event]:
        self.book.clear()
        self.book_live = False
        self._silence.reset()
        sends: list[Event] = []
        if "book" in self.channels:
            sends.append(self._subscribe_book())
        if "trades" in self.channels:
            params = {"channel": "trade", "symbol": [self.symbol], "snapshot": True}
            sends.append(self._send({"method": "subscribe", "params": params}))
        return sends

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        try:
            msg = _loads(text)
        except ValueError:
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        if not isinstance(msg, dict):
            raise self._parse_error("unexpected", "frame is not a JSON object", text)
        if msg.get("method") != "pong":  # a pong proves the socket, not the feed
            self._silence.alive(ts_recv)
        try:
            # Replies first: an error reply may echo "channel" beside "method" and "success".
            if "method" in msg or msg.get("success") is False:
                return self._reply(msg, text)
            if "channel" in msg:
                return self._channel(msg, ts_recv, text)
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self._parse_error("bad_field", f"bad field ({exc!r})", text) from None
        if "Error" in msg or "error" in msg:  # e.g. {"Error":"Exceeded msg rate"}
            return [VenueError(f"kraken error: {msg.get('Error') or msg.get('error')}")]
        raise self._parse_error("unknown", "neither a channel message nor a reply", text)

    def keepalive(self, now_ns: int) -> list[Event]:
        due = self._silence.due(now_ns, self.last_recv_ns)
        if due == "stale":
            detail = self._silence.stale_detail(now_ns, "data, heartbeat or status frame")
            return [Reconnect("stale", f"{self.symbol}: {detail}")]
        return [self._send({"method": "ping"})] if due == "ping" else []

    # -- dispatch -------------------------------------------------------------------
    def _channel(self, msg: dict[str, Any], ts_recv: int, text: str) -> list[Event]:
        channel = msg["channel"]
        if channel in ("heartbeat", "status"):
            # PROTOCOLS §3.1 lists the "system" values (maintenance, cancel_only, post_only) but
            # names no client action; the checksum and the silence limit cover a stopped feed.
            return []
        kind, data = msg["type"], msg["data"]
        if kind not in ("snapshot", "update") or not isinstance(data, list):
            raise self._parse_error("unknown", f"unknown {channel!r} message type {kind!r}", text)
        if channel == "book":
            events: list[Event] = []
            for entry in data:
                events += self._book(kind, entry, ts_recv, text)
            return events
        if channel == "trade":
            return self._trades(kind, data, ts_recv, text)
        raise self._parse_error("unknown", f"unknown channel {channel!r}", text)

    def _reply(self, msg: dict[str, Any], text: str) -> list[Event]:
        method = msg.get("method", "request")
        if msg.get("success") is False:
            return [VenueError(f"kraken {method} failed: {msg.get('error')}")]
        if method in ("subscribe", "unsubscribe", "pong"):
            return []
        raise self._parse_error("unknown", f"unknown method {method!r}", text)

    # -- book -----------------------------------------------------------------------
    def _book(self, kind: str, entry: dict[str, Any], ts_recv: int, text: str) -> list[Event]:
        if entry["symbol"] != self.symbol:
            raise self._parse_error("wrong_symbol", f"book for {entry['symbol']!r}", text)
        # Parse everything before touching the book, so a bad frame leaves it intact.
        # PROTOCOLS §3.6 never promises both sides: a missing one has no levels to apply.
        levels = _levels(entry.get("bids", []), BID) + _levels(entry.get("asks", []), ASK)
        expected = _uint(entry["checksum"])
        stamp = entry.get("timestamp")
        ts_event = -1 if stamp is None else iso_to_ns(stamp)
        if kind == "snapshot":
            return self._snapshot(levels, expected, ts_event, ts_recv)
        if not self.book_live:
            return []  # an untrusted book waits for its snapshot
        return self._update(levels, expected, ts_event, ts_recv)

    def _snapshot(
        self, levels: list[Level], expected: int, ts_event: int, ts_recv: int
    ) -> list[Event]:
        self.book.clear()
        for side, price, size, price_text, size_text in levels:
            self.book.set(side, price, size, price_text, size_text)
        self._truncate(ts_event, ts_recv)
        if self.checksum and (got := book_checksum(self.book)) != expected:
            return self._resync(f"snapshot checksum {got} != {expected}")
        self.book_live = True
        self._mark_book(ts_event, ts_recv, -1)
        return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, -1)), BookValid(ts_recv)]

    def _update(
        self, levels: list[Level], expected: int, ts_event: int, ts_recv: int
    ) -> list[Event]:
        rows: list[DeltaRow] = []
        for side, price, size, price_text, size_text in levels:  # in order: a price may repeat
            self.book.set(side, price, size, price_text, size_text)
            rows.append((ts_event, ts_recv, -1, side, price, size, 0))
        rows += self._truncate(ts_event, ts_recv)
        if self.checksum and (got := book_checksum(self.book)) != expected:
            return self._resync(f"update checksum {got} != {expected}")
        self._mark_book(ts_event, ts_recv, -1)
        if not rows:
            return []
        rows[-1] = (*rows[-1][:6], FLAG_LAST)
        return [BookDeltas(rows)]

    def _truncate(self, ts_event: int, ts_recv: int) -> list[DeltaRow]:
        """Drop levels beyond the subscribed depth, as rows that delete them."""
        rows: list[DeltaRow] = []
        for side, prices in ((BID, self.book.bid_prices()), (ASK, self.book.ask_prices())):
            for price in prices[self.depth :]:
                self.book.set(side, price, 0.0)
                rows.append((ts_event, ts_recv, -1, side, price, 0.0, 0))
        return rows

    def _resync(self, detail: str) -> list[Event]:
        invalid = self._invalidate("checksum", f"{self.symbol}: {detail}")
        params = {"channel": "book", "symbol": [self.symbol], "depth": self.depth}
        return [
            invalid,
            self._send({"method": "unsubscribe", "params": params}),
            self._subscribe_book(),
        ]

    # -- trades ---------------------------------------------------------------------
    def _trades(self, kind: str, data: list[Any], ts_recv: int, text: str) -> list[Event]:
        parsed: list[TradeRow] = []
        for trade in data:
            if trade["symbol"] != self.symbol:
                raise self._parse_error("wrong_symbol", f"trade for {trade['symbol']!r}", text)
            side = _SIDES[trade["side"]]
            price, _ = _number(trade["price"], positive=True)
            amount, _ = _number(trade["qty"], positive=True)
            ts_event = iso_to_ns(trade["timestamp"])
            parsed.append(
                (ts_event, ts_recv, _uint(trade["trade_id"]), b"", price, amount, side, 0)
            )
        if kind == "snapshot":
            parsed.sort(key=lambda row: row[2])
        rows = self._seen.fresh(parsed, snapshot=kind == "snapshot")
        return [Trades(rows)] if rows else []

    # -- messages -------------------------------------------------------------------
    def _subscribe_book(self) -> Send:
        params = {"channel": "book", "symbol": [self.symbol], "depth": self.depth, "snapshot": True}
        return self._send({"method": "subscribe", "params": params})

    def _send(self, msg: dict[str, Any]) -> Send:
        self._req_id += 1
        msg["req_id"] = self._req_id
        return Send(json.dumps(msg, separators=(",", ":")))


def _levels(items: Any, side: int) -> list[Level]:
    if not isinstance(items, list):
        raise ValueError(f"levels are not a list: {items!r}")
    out: list[Level] = []
    for item in items:
        price, price_text = _number(item["price"], positive=True)
        size, size_text = _number(item["qty"], positive=False)
        out.append((side, price, size, price_text, size_text))
    return out
