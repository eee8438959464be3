"""Bitfinex API v2: ``trades`` and the P0 ``book`` channel, SEQ_ALL and checksum checked.

Reference: PROTOCOLS.md §5. Right after connecting we send ``conf`` with
SEQ_ALL (every array frame of the connection carries a number that must grow
by exactly 1; checked, never stored: DESIGN §4), OB_CHECKSUM (``[chanId,"cs",n]``
frames) and TIMESTAMP (the venue's ms time, our ``ts_event``). The flags in
force are those the ``conf`` reply confirms (the ones we asked for when it names
none). Which trailing number is which is read by :class:`TrailerReader`.

The book is subscribed ``P0``/``F0`` with ``len`` 25: the checksum covers the
top 25 levels per side, so 25 is the smallest window whose every level the
checksum verifies (``len`` 1 could not be checked, 100 would store 75 levels
per side no checksum covers). The server maintains that window itself and
sends the deletes needed to keep it, so we never truncate.

Trades: ``te`` (sent at once) is stored, ``tu`` (the same trade again 1-2 s
later) is parsed and dropped. The first trade snapshot an adapter instance sees
is history from before collection began (a previous run may hold it): it only
seeds the dedupe. Later ones (the shell keeps the instance across reconnects)
store the ids never seen, filling what a reconnect missed. PROTOCOLS only calls
``ID`` "an integer trade id", never an increasing one, so the dedupe remembers
ids (the last 10,000) and has no cut-off.

Resync: a checksum mismatch unsubscribes and resubscribes the book channel; a
SEQ_ALL gap asks for a new connection, since the sequence is per connection.

Liveness (§5.5): an idle channel sends a heartbeat every ~15 s. Our ping after
20 s of silence is answered even when the feed has stopped, so pongs prove only
the socket: more than 25 s without any other frame asks for a new connection.

Maintenance (§5.1): info 20060 or ``platform.status`` 0 means pause until 20061,
which resubscribes everything (a new connection here). Since the streams are not
promised to survive it, the book is dropped at once and not trusted again on
this connection; trades that still arrive are genuine and stored.
"""

from __future__ import annotations

import json
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
    SilenceWatch,
    Trades,
    VenueError,
)
from dccd_actors.exchanges._bitfinex_wire import (
    OB_CHECKSUM,
    SEQ_ALL,
    TIMESTAMP,
    TrailerReader,
    book_checksum,
    checksum_of,
    integer,
    level,
    loads,
    trade_row,
    venue_symbol,
)
from dccd_actors.exchanges._dedupe import SeenTradeIds
from dccd_actors.records import FLAG_LAST

__all__ = [
    "OB_CHECKSUM",
    "SEQ_ALL",
    "TIMESTAMP",
    "BitfinexAdapter",
    "book_checksum",
    "checksum_of",
    "venue_symbol",
]

BOOK_LEN: Final = 25
#: Heartbeats come every ~15 s per idle channel; this much silence earns a ping.
PING_AFTER_NS: Final = 20 * SECOND
#: "If a channel stays silent for more than about 20 s, reconnect"; pongs do not count.
STALE_AFTER_NS: Final = 25 * SECOND
SEEN_TRADE_IDS: Final = 10_000
#: Info codes that call for a new connection (20061: everything must be resubscribed).
INFO_RECONNECT: Final = {
    20051: ("disconnect", "server restarting"),
    20061: ("resync", "maintenance ended"),
}
INFO_MAINTENANCE: Final = 20060


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
        self._trailer = TrailerReader()
        self._paused = False  # the venue said maintenance (20060) on this connection
        self._book_chan: int | None = None
        self._trade_chan: int | None = None
        self._ignored_chans: set[int] = set()  # others' channels and ones being unsubscribed
        self._seen = SeenTradeIds(SEEN_TRADE_IDS, increasing=False)
        self._silence = SilenceWatch(ping_after_ns=PING_AFTER_NS, stale_after_ns=STALE_AFTER_NS)
        self._cid = 0

    # -- the contract ---------------------------------------------------------------
    def url(self) -> str:
        return f"{self.base_url}/ws/2"

    def on_open(self) -> list[Event]:
        self.book.clear()
        self.book_live = False
        self.flags = 0
        self._trailer = TrailerReader()
        self._paused = False
        self._book_chan = self._trade_chan = None
        self._ignored_chans.clear()
        self._silence.reset()
        sends: list[Event] = [_send({"event": "conf", "flags": self._wanted_flags()})]
        if "book" in self.channels:
            sends.append(self._subscribe_book())
        if "trades" in self.channels:
            sends.append(_send({"event": "subscribe", "channel": "trades", "symbol": self.symbol}))
        return sends

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        try:
            msg = loads(text)
        except ValueError:
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        if not (isinstance(msg, dict) and msg.get("event") == "pong"):
            self._silence.alive(ts_recv)  # a pong proves the socket, not the feed
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
        due = self._silence.due(now_ns, self.last_recv_ns)
        if due == "stale":
            detail = self._silence.stale_detail(now_ns, "channel frame or event")
            return [Reconnect("stale", f"{self.symbol}: {detail}")]
        if due != "ping":
            return []
        self._cid += 1
        return [_send({"event": "ping", "cid": self._cid})]

    # -- events (JSON objects) ------------------------------------------------------
    def _event(self, msg: dict[str, Any], text: str) -> list[Event]:
        event = msg.get("event")
        if event == "info":
            return self._info(msg)
        if event == "conf":
            if msg.get("status") != "OK":
                return [VenueError(f"bitfinex conf refused: {msg}")]
            # Accepted without naming the flags: those we asked for are in force (§5.2), and
            # guessing none would silently turn off the sequence checks.
            flags = msg.get("flags")
            self.flags = self._wanted_flags() if flags is None else integer(flags)
            return []
        if event == "subscribed":
            chan = integer(msg["chanId"])
            mine = msg.get("symbol") == self.symbol
            if mine and msg["channel"] == "book" and "book" in self.channels:
                self._book_chan = chan
            elif mine and msg["channel"] == "trades" and "trades" in self.channels:
                self._trade_chan = chan
            else:  # another client's channel on a shared connection (or a ticker): seq only
                self._ignored_chans.add(chan)
            return []
        if event == "unsubscribed":
            self._ignored_chans.discard(integer(msg["chanId"]))
            return []
        if event == "error":
            return [VenueError(f"bitfinex error {msg.get('code')}: {msg.get('msg')}")]
        if event == "pong":
            return []
        raise self._parse_error("unknown", f"unknown event {event!r}", text)

    def _info(self, msg: dict[str, Any]) -> list[Event]:
        code = None if msg.get("code") is None else integer(msg["code"])
        if code in INFO_RECONNECT:
            cause, reason = INFO_RECONNECT[code]
            # the venue's own instruction (restart, maintenance over): no failure of ours
            return [Reconnect(cause, f"bitfinex info {code}: {reason}", planned=True)]
        platform = msg.get("platform")
        status = platform.get("status") if isinstance(platform, dict) else None
        if code == INFO_MAINTENANCE or (status is not None and integer(status) == 0):
            return self._pause(f"bitfinex info {code or 'platform.status 0'}: maintenance")
        return []

    def _pause(self, reason: str) -> list[Event]:
        """Maintenance: no book is trusted on this connection (20061 brings a new one)."""
        self._paused = True
        if not self.book_live:
            return []
        return [self._invalidate("resync", f"{self.symbol}: {reason}")]

    # -- channel arrays -------------------------------------------------------------
    def _array(self, msg: list[Any], ts_recv: int, text: str) -> list[Event]:
        chan, head = integer(msg[0]), msg[1]
        # Data sits at a fixed position; SEQ_ALL/TIMESTAMP numbers follow it.
        if isinstance(head, list):
            kind, payload, rest = "data", head, msg[2:]
        elif head == "hb":
            kind, payload, rest = "hb", None, msg[2:]
        elif head in ("te", "tu", "cs"):
            kind, payload, rest = head, msg[2], msg[3:]
        else:
            raise self._parse_error("unknown", f"unknown channel message {head!r}", text)
        trailer = self._trailer.read(rest, self.flags)
        if trailer.gap is not None:
            return self._seq_gap(trailer.gap)
        self.seq_checks_passed += trailer.checked
        ts_event = -1 if trailer.ts_ms is None else trailer.ts_ms * MS
        if chan == self._book_chan:
            return self._book(kind, payload, ts_event, ts_recv, text)
        if chan == self._trade_chan:
            return self._trades(kind, payload, ts_recv, text)
        if chan in self._ignored_chans or kind == "hb":
            # The recording has a heartbeat 7 s before its channel's "subscribed" event.
            return []
        raise self._parse_error("unknown", f"frame for unknown chanId {chan}", text)

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
        if kind == "hb" or self._paused:  # paused: not even a snapshot is trusted
            return []
        if kind == "cs":
            return self._checksum(integer(payload))
        if kind != "data":
            raise self._parse_error("unknown", f"{kind!r} on the book channel", text)
        if not payload or isinstance(payload[0], list):
            levels = [level(item) for item in payload]
            self.book.clear()
            for side, price, size, price_text, amount_text in levels:
                self.book.set(side, price, size, price_text, amount_text)
            self.book_live = True
            self._mark_book(ts_event, ts_recv, -1)
            return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, -1)), BookValid(ts_recv)]
        side, price, size, price_text, amount_text = level(payload)
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
            parsed = sorted((trade_row(item, ts_recv) for item in payload), key=lambda r: r[2])
        elif kind in ("te", "tu"):
            parsed = [trade_row(payload, ts_recv)]
            if kind == "tu":
                return []  # validated, then dropped: its "te" was stored
        elif kind == "hb":
            return []
        else:
            raise self._parse_error("unknown", f"{kind!r} on the trades channel", text)
        rows = self._seen.fresh(parsed, snapshot=kind == "data")
        return [Trades(rows)] if rows else []

    def _wanted_flags(self) -> int:
        return SEQ_ALL | TIMESTAMP | (OB_CHECKSUM if self.checksum else 0)

    def _subscribe_book(self) -> Send:
        book = {"channel": "book", "symbol": self.symbol, "prec": "P0", "freq": "F0"}
        return _send({"event": "subscribe", **book, "len": str(BOOK_LEN)})


def _send(msg: dict[str, Any]) -> Send:
    return Send(json.dumps(msg, separators=(",", ":")))
