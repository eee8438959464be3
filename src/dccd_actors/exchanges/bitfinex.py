"""Bitfinex API v2: ``trades`` and the P0 ``book`` channel, SEQ_ALL and checksum checked.

Reference: PROTOCOLS.md §5. Right after connecting we send ``conf`` with
SEQ_ALL (every array frame of the connection carries a number that must grow
by exactly 1; checked, never stored: DESIGN §4), OB_CHECKSUM (``[chanId,"cs",n]``
frames) and TIMESTAMP (the venue's ms time, our ``ts_event``). The flags in
force are those the ``conf`` reply confirms.

The book is subscribed ``P0``/``F0`` with ``len`` 25: the checksum covers the
top 25 levels per side, so 25 is the smallest window whose every level the
checksum verifies (``len`` 1 could not be checked, 100 would store 75 levels
per side no checksum covers). The server maintains that window itself and
sends the deletes needed to keep it, so we never truncate.

Trades: ``te`` (sent at once) is stored, ``tu`` (the same trade again 1-2 s
later) is parsed and dropped. The first trade snapshot an adapter instance sees
is history from before collection began (a previous run may hold it): it only
seeds the dedupe. Later ones (the shell keeps the instance across reconnects)
store the ids never seen, filling what a reconnect missed.

Resync: a checksum mismatch unsubscribes and resubscribes the book channel; a
SEQ_ALL gap asks for a new connection, since the sequence is per connection.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence
from typing import Any, ClassVar, Final

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
    SECOND,
    BaseAdapter,
    BookDeltas,
    BookValid,
    Event,
    Reconnect,
    Send,
    TradeRow,
    Trades,
    VenueError,
)
from dccd_actors.exchanges._dedupe import SeenTradeIds
from dccd_actors.exchanges.book import ASK, BID, OrderBook
from dccd_actors.records import FLAG_LAST

__all__ = ["BitfinexAdapter", "book_checksum", "checksum_of", "venue_symbol"]

TIMESTAMP: Final = 32768
SEQ_ALL: Final = 65536
OB_CHECKSUM: Final = 131072
BOOK_LEN: Final = 25
CHECKSUM_LEVELS: Final = 25
#: Any ms epoch time since 1973 exceeds this; a per-connection SEQ_ALL count never will.
MS_TIME_FLOOR: Final = 100_000_000_000
#: Heartbeats come every ~15 s per idle channel; this much silence earns a ping.
PING_AFTER_NS: Final = 20 * SECOND
SEEN_TRADE_IDS: Final = 10_000
#: Info codes that call for a new connection (20061: everything must be resubscribed).
INFO_RECONNECT: Final = {
    20051: ("disconnect", "server restarting"),
    20061: ("resync", "maintenance ended"),
}
_LEGACY_CODES: Final = {"USDT": "UST"}
_NUMBER: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_INTEGER: Final = re.compile(r"-?[0-9]+")

Level = tuple[int, float, float, str, str]
"""(side, price, size, price_text, signed amount_text)"""


class _Num(str):
    """The exact text of a JSON number; JSON strings stay plain ``str``."""

    __slots__ = ()


def _loads(text: str) -> Any:
    # NaN/Infinity become _Num too and then fail the number grammar, as they must.
    return json.loads(text, parse_float=_Num, parse_int=_Num, parse_constant=_Num)


def _number(value: Any) -> float:
    if not isinstance(value, _Num) or not _NUMBER.fullmatch(value):
        raise ValueError(f"not a JSON number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not finite: {value!r}")
    return number


def _int(value: Any) -> int:
    if not isinstance(value, _Num) or not _INTEGER.fullmatch(value):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def venue_symbol(base: str, quote: str) -> str:
    """Bitfinex trading symbol: ``t`` + legs, colon-separated when a leg is longer than 3.

    Example::

        >>> venue_symbol("BTC", "USDT"), venue_symbol("AAVE", "USD")
        ('tBTCUST', 'tAAVE:USD')
    """
    base = _LEGACY_CODES.get(base, base)
    quote = _LEGACY_CODES.get(quote, quote)
    return f"t{base}:{quote}" if len(base) > 3 or len(quote) > 3 else f"t{base}{quote}"


def checksum_of(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """Bitfinex's signed CRC32 over exact tokens, bid/ask interleaved, best first.

    Levels are ``(price_text, amount_text)`` with the amount signed as on the
    wire (asks negative); pass at most 25 per side (PROTOCOLS.md §5.7).

    Example::

        >>> checksum_of([("7e-7", "10")], [("0.0000011", "-5")])
        876735023
    """
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def book_checksum(book: OrderBook) -> int:
    """The Bitfinex checksum of ``book`` (levels set with their exact wire tokens)."""
    bids, asks = book.top_text(CHECKSUM_LEVELS)
    return checksum_of(bids, asks)


class BitfinexAdapter(BaseAdapter):
    """Sans-IO Bitfinex v2 adapter for one pair (P0 book, len 25, SEQ_ALL + checksum).

    Example::

        >>> a = BitfinexAdapter("BTC/USDT", ["trades", "book"])
        >>> a.url(), a.symbol
        ('wss://api-pub.bitfinex.com/ws/2', 'tBTCUST')
        >>> conf, book, trades = (e.text for e in a.on_open())
        >>> conf
        '{"event":"conf","flags":229376}'
        >>> book
        '{"event":"subscribe","channel":"book","symbol":"tBTCUST","prec":"P0","freq":"F0","len":"25"}'
    """

    exchange: ClassVar[str] = "bitfinex"
    DEFAULT_URL: ClassVar[str] = "wss://api-pub.bitfinex.com"
    DEFAULT_REST_URL: ClassVar[str] = "https://api-pub.bitfinex.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = venue_symbol(self.base, self.quote)
        self.flags = 0
        self.seq_checks_passed = 0
        self.unknown_deletes = 0
        self._last_seq: int | None = None
        self._book_chan: int | None = None
        self._trade_chan: int | None = None
        self._ignored_chans: set[int] = set()  # others' channels and ones being unsubscribed
        self._seen = SeenTradeIds(SEEN_TRADE_IDS)
        self._quiet_since_ns = 0
        self._last_ping_ns = 0
        self._cid = 0

    # -- the contract ---------------------------------------------------------------
    def url(self) -> str:
        return f"{self.base_url}/ws/2"

    def on_open(self) -> list[Event]:
        self.book.clear()
        self.book_live = False
        self.flags = 0
        self._last_seq = None
        self._book_chan = self._trade_chan = None
        self._ignored_chans.clear()
        self._quiet_since_ns = self._last_ping_ns = 0
        flags = SEQ_ALL | TIMESTAMP | (OB_CHECKSUM if self.checksum else 0)
        sends: list[Event] = [_send({"event": "conf", "flags": flags})]
        if "book" in self.channels:
            sends.append(self._subscribe_book())
        if "trades" in self.channels:
            sends.append(_send({"event": "subscribe", "channel": "trades", "symbol": self.symbol}))
        return sends

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        try:
            msg = _loads(text)
        except ValueError:
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        try:
            if isinstance(msg, dict):
                return self._event(msg, text)
            if isinstance(msg, list) and len(msg) >= 2:
                return self._array(msg, ts_recv, text)
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise self._parse_error("bad_field", f"bad field ({exc!r})", text) from None
        raise self._parse_error("unexpected", "neither an event nor a channel array", text)

    def keepalive(self, now_ns: int) -> list[Event]:
        last = max(self.last_recv_ns, self._quiet_since_ns)
        if last == 0:
            self._quiet_since_ns = now_ns  # silence is counted from the first call
            return []
        if now_ns - last < PING_AFTER_NS or now_ns - self._last_ping_ns < PING_AFTER_NS:
            return []
        self._last_ping_ns = now_ns
        self._cid += 1
        return [_send({"event": "ping", "cid": self._cid})]

    # -- events (JSON objects) ------------------------------------------------------
    def _event(self, msg: dict[str, Any], text: str) -> list[Event]:
        event = msg.get("event")
        if event == "info":
            code = None if msg.get("code") is None else _int(msg["code"])
            if code not in INFO_RECONNECT:
                return []
            cause, reason = INFO_RECONNECT[code]
            return [Reconnect(cause, f"bitfinex info {code}: {reason}")]
        if event == "conf":
            if msg.get("status") != "OK":
                return [VenueError(f"bitfinex conf refused: {msg}")]
            self.flags = _int(msg["flags"])
            return []
        if event == "subscribed":
            chan = _int(msg["chanId"])
            mine = msg.get("symbol") == self.symbol
            if mine and msg["channel"] == "book" and "book" in self.channels:
                self._book_chan = chan
            elif mine and msg["channel"] == "trades" and "trades" in self.channels:
                self._trade_chan = chan
            else:  # another client's channel on a shared connection (or a ticker): seq only
                self._ignored_chans.add(chan)
            return []
        if event == "unsubscribed":
            self._ignored_chans.discard(_int(msg["chanId"]))
            return []
        if event == "error":
            return [VenueError(f"bitfinex error {msg.get('code')}: {msg.get('msg')}")]
        if event == "pong":
            return []
        raise self._parse_error("unknown", f"unknown event {event!r}", text)

    # -- channel arrays -------------------------------------------------------------
    def _array(self, msg: list[Any], ts_recv: int, text: str) -> list[Event]:
        chan, head = _int(msg[0]), msg[1]
        # Data sits at a fixed position; SEQ_ALL/TIMESTAMP numbers follow it.
        if isinstance(head, list):
            kind, payload, rest = "data", head, msg[2:]
        elif head == "hb":
            kind, payload, rest = "hb", None, msg[2:]
        elif head in ("te", "tu", "cs"):
            kind, payload, rest = head, msg[2], msg[3:]
        else:
            raise self._parse_error("unknown", f"unknown channel message {head!r}", text)
        seq, ts_ms = self._trailer(rest)
        if seq is not None:
            last, self._last_seq = self._last_seq, seq
            if last is not None:
                if seq != last + 1:
                    return self._seq_gap(f"SEQ_ALL expected {last + 1}, got {seq}")
                self.seq_checks_passed += 1
        ts_event = -1 if ts_ms is None else ts_ms * MS
        if chan == self._book_chan:
            return self._book(kind, payload, ts_event, ts_recv, text)
        if chan == self._trade_chan:
            return self._trades(kind, payload, ts_recv, text)
        if chan in self._ignored_chans or kind == "hb":
            # The recording has a heartbeat 7 s before its channel's "subscribed" event.
            return []
        raise self._parse_error("unknown", f"frame for unknown chanId {chan}", text)

    def _trailer(self, rest: list[Any]) -> tuple[int | None, int | None]:
        """(seq, ts_ms) from the numbers after the data, as the confirmed flags demand.

        PROTOCOLS.md does not pin the order of the two when both flags are on
        ([unverified] reading): a ms epoch time is > 1e11, a SEQ_ALL count never
        is, so each is recognised by size. Heartbeats may carry no timestamp.
        """
        want_seq, want_ts = bool(self.flags & SEQ_ALL), bool(self.flags & TIMESTAMP)
        numbers = [_int(x) for x in rest[: want_seq + want_ts]]
        times = [n for n in numbers if n >= MS_TIME_FLOOR]
        counts = [n for n in numbers if 0 <= n < MS_TIME_FLOOR]
        if len(times) > 1 or len(times) + len(counts) != len(numbers):
            raise ValueError(f"cannot tell SEQ_ALL from TIMESTAMP in {numbers}")
        if want_seq and len(counts) != 1:
            raise ValueError(f"expected one SEQ_ALL number in {numbers}")
        return (counts[0] if want_seq else None), (times[0] if times else None)

    def _seq_gap(self, reason: str) -> list[Event]:
        """A lost frame: the book is untrusted until a new connection brings a snapshot.

        Later frames are genuine, so their trades are still stored until the shell
        reconnects; the book ignores its deltas meanwhile.
        """
        detail = f"{self.symbol}: {reason}"
        events: list[Event] = []
        if "book" in self.channels:
            events.append(self._invalidate("seq_gap", detail))
        return [*events, Reconnect("seq_gap", detail)]

    # -- book -----------------------------------------------------------------------
    def _book(self, kind: str, payload: Any, ts_event: int, ts_recv: int, text: str) -> list[Event]:
        if kind == "cs":
            return self._checksum(_int(payload))
        if kind == "hb":
            return []
        if kind != "data":
            raise self._parse_error("unknown", f"{kind!r} on the book channel", text)
        if not payload or isinstance(payload[0], list):
            levels = [_level(item) for item in payload]
            self.book.clear()
            for side, price, size, price_text, amount_text in levels:
                self.book.set(side, price, size, price_text, amount_text)
            self.book_live = True
            self._mark_book(ts_event, ts_recv, -1)
            return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, -1)), BookValid(ts_recv)]
        side, price, size, price_text, amount_text = _level(payload)
        if not self.book_live:
            return []  # an untrusted book waits for its snapshot
        existed = self.book.set(side, price, size, price_text, amount_text)
        if size == 0.0 and not existed:
            self.unknown_deletes += 1  # the checksum will tell whether it matters
        self._mark_book(ts_event, ts_recv, -1)
        return [BookDeltas([(ts_event, ts_recv, -1, side, price, size, FLAG_LAST)])]

    def _checksum(self, expected: int) -> list[Event]:
        if not self.book_live or not self.checksum:
            return []
        got = book_checksum(self.book)
        if got == expected:
            return []
        invalid = self._invalidate("checksum", f"{self.symbol}: checksum {got} != {expected}")
        old, self._book_chan = self._book_chan, None
        events: list[Event] = [invalid]
        if old is not None:
            self._ignored_chans.add(old)  # its frames keep coming until "unsubscribed"
            events.append(_send({"event": "unsubscribe", "chanId": old}))
        return [*events, self._subscribe_book()]

    # -- trades ---------------------------------------------------------------------
    def _trades(self, kind: str, payload: Any, ts_recv: int, text: str) -> list[Event]:
        if kind == "data":
            parsed = sorted((_trade(item, ts_recv) for item in payload), key=lambda r: r[2])
        elif kind in ("te", "tu"):
            parsed = [_trade(payload, ts_recv)]
            if kind == "tu":
                return []  # validated, then dropped: its "te" was stored
        elif kind == "hb":
            return []
        else:
            raise self._parse_error("unknown", f"{kind!r} on the trades channel", text)
        rows = self._seen.fresh(parsed, snapshot=kind == "data")
        return [Trades(rows)] if rows else []

    def _subscribe_book(self) -> Send:
        book = {"channel": "book", "symbol": self.symbol, "prec": "P0", "freq": "F0"}
        return _send({"event": "subscribe", **book, "len": str(BOOK_LEN)})


def _send(msg: dict[str, Any]) -> Send:
    return Send(json.dumps(msg, separators=(",", ":")))


def _level(item: Any) -> Level:
    """One P0 level ``[PRICE, COUNT, AMOUNT, …]`` (later fields may be appended)."""
    price, count, amount = _number(item[0]), _int(item[1]), _number(item[2])
    if not price > 0 or count < 0:
        raise ValueError(f"bad level {item!r}")
    if count == 0:  # a delete: AMOUNT 1 names the bids, -1 the asks
        if amount not in (1.0, -1.0):
            raise ValueError(f"delete with AMOUNT {item[2]!r}")
        return (BID if amount > 0 else ASK), price, 0.0, str(item[0]), str(item[2])
    if amount == 0:
        raise ValueError(f"level with AMOUNT 0: {item!r}")
    return (BID if amount > 0 else ASK), price, abs(amount), str(item[0]), str(item[2])


def _trade(item: Any, ts_recv: int) -> TradeRow:
    """``[ID, MTS, AMOUNT, PRICE, …]``: AMOUNT > 0 means the taker bought."""
    trade_id, mts, amount, price = _int(item[0]), _int(item[1]), _number(item[2]), _number(item[3])
    if not price > 0 or amount == 0 or mts < 0:
        raise ValueError(f"bad trade {item!r}")
    return (mts * MS, ts_recv, trade_id, b"", price, abs(amount), 1 if amount > 0 else -1, 0)
