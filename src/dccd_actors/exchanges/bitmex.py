"""BitMEX realtime: the ``trade`` and ``orderBookL2`` tables of one symbol on ``/realtime``.

Reference: PROTOCOLS.md §6. Recorded frames: ``fixtures/bitmex/bitmex.ws.jsonl`` (2021,
legacy row format: update rows without price, delete rows with only symbol/id/side).
The current format (price and timestamp on every action, arbitrary ids) is read the same way.

Choices this module makes where the protocol leaves room:

* **Trade partial.** The ``partial`` sent on subscribe holds recent historical trades. Trades
  are deduplicated by ``trdMatchID`` against a bounded memory of the last ``SEEN_TRADES_MAX``
  ids, which survives :meth:`BitmexAdapter.on_open`. The adapter's *first* trade partial is not
  stored: it predates this adapter, and an earlier connection (another adapter, another
  process) may already have stored those trades. A *later* partial (a reconnect that reuses
  the adapter) is stored for its trades not yet seen and newer than the first partial, so it
  fills part of the gap without storing any trade twice. A shell that makes a new adapter
  per connection therefore stores live inserts only.
* **Book rows** are keyed by the table's keys, ``(id, side)`` within the symbol (legacy ids
  encode the price, so a bid and an ask at one price share an id). A level's size is the sum of
  its rows; BitMEX sends one row per level, so this is that row's size.
* **Crossed book.** BitMEX splits one matching event into separate insert, update and delete
  messages, so a book may look crossed between them. A book still crossed after
  ``CROSSED_MESSAGES_MAX`` consecutive messages spanning at least ``CROSSED_FOR_NS`` is
  resynchronised (a burst of one-row messages can span many messages in no time).
* **Integrity.** An update or delete of an unknown row, an insert of an existing row, or a
  persisting cross discards the book (``BookInvalid("resync")``) and re-subscribes
  ``orderBookL2:SYM`` (unsubscribe, then subscribe) for a new partial. Book rows are ignored
  until it arrives.
* **Malformed book message** while the book is live: the book cannot be trusted after a
  message it could not apply, so it is discarded at once and ``ParseError`` is raised; the
  ``BookInvalid`` and the re-subscription come out of the next :meth:`receive` or
  :meth:`keepalive` call (the shell calls ``keepalive`` about once a second).
"""

from __future__ import annotations

import json
import math
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
    Reconnect,
    Send,
    TradeRow,
    Trades,
    VenueError,
    iso_to_ns,
    split_pair,
)
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.records import FLAG_LAST

__all__ = ["BitmexAdapter", "venue_symbol"]

BOOK_TABLE: Final = "orderBookL2"
TRADE_TABLE: Final = "trade"
#: Send the text ``ping`` after this long without any message (BitMEX's recommendation).
PING_AFTER_NS: Final = 5 * SECOND
#: Reconnect when no message (``pong`` or other) follows a ping within this long.
PONG_TIMEOUT_NS: Final = 5 * SECOND
SEEN_TRADES_MAX: Final = 20_000
CROSSED_MESSAGES_MAX: Final = 3
CROSSED_FOR_NS: Final = SECOND
DELTA_ACTIONS: Final = frozenset({"insert", "update", "delete"})

_SIDES: Final = {"Buy": BID, "Sell": ASK}
# a UUID per PROTOCOLS.md; any printable ASCII id that fits trade_uid is kept as well
_TRADE_UID: Final = re.compile(r"[!-~]{1,36}\Z")

RowKey = tuple[int, int]
"""(id, side): an orderBookL2 row within one symbol."""
Change = tuple[int, int, float | None, float, int]
"""(id, side, price or None when the row has none, size (0.0 for delete), ts_event)"""


def venue_symbol(pair: str) -> str:
    """``"BTC/USD"`` → ``"XBTUSD"``: BASE+QUOTE with BTC written XBT."""
    return "".join("XBT" if part == "BTC" else part for part in split_pair(pair))


class BitmexAdapter(BaseAdapter):
    """Sans-IO BitMEX realtime adapter for one symbol.

    Example::

        >>> a = BitmexAdapter("BTC/USD", ["trades", "book"])
        >>> a.url()
        'wss://ws.bitmex.com/realtime'
        >>> a.on_open()[0].text
        '{"op":"subscribe","args":["orderBookL2:XBTUSD","trade:XBTUSD"]}'
        >>> a.receive("pong", 0)
        []
    """

    exchange: ClassVar[str] = "bitmex"
    DEFAULT_URL: ClassVar[str] = "wss://ws.bitmex.com"
    WS_PATH: ClassVar[str] = "/realtime"
    DEFAULT_REST_URL: ClassVar[str] = "https://www.bitmex.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = venue_symbol(self.pair)
        self._book_topic = f"{BOOK_TABLE}:{self.symbol}"
        self._trade_topic = f"{TRADE_TABLE}:{self.symbol}"
        self._rows: dict[RowKey, tuple[float, float]] = {}  # (id, side) -> (price, size)
        self._levels: dict[tuple[int, float], dict[RowKey, float]] = {}  # level -> row sizes
        self._seen: dict[bytes, None] = {}  # insertion-ordered: oldest id first
        self._trade_partial = False
        self._history_end: int | None = None  # newest ts_event of the first trade partial
        self._crossed = 0
        self._crossed_since_ns = 0  # ts_recv of the first message of the current cross
        self._pending: list[Event] = []
        self._idle_since: int | None = None
        self._ping_sent: int | None = None

    # -- the contract ---------------------------------------------------------------
    def url(self) -> str:
        return f"{self.base_url}{self.WS_PATH}"

    def on_open(self) -> list[Event]:
        # Server state never survives a connection; the trade-id memory must (dedupe).
        self._drop_book()
        self._trade_partial = False
        self._pending = []
        self._idle_since = self._ping_sent = None
        topics = []
        if "book" in self.channels:
            topics.append(self._book_topic)
        if "trades" in self.channels:
            topics.append(self._trade_topic)
        return [Send(_op("subscribe", topics))]

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        self._idle_since, self._ping_sent = ts_recv, None  # any message proves the link alive
        if text == "pong":
            return self._with_pending([])
        if text == "ping":  # the venue checking on us (PROTOCOLS.md §0.1): answer it
            return self._with_pending([Send("pong")])
        try:
            msg = json.loads(text)
        except ValueError:
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        if not isinstance(msg, dict):
            raise self._parse_error("unexpected", "frame is not a JSON object", text)
        if "table" in msg:
            return self._with_pending(self._data(msg, ts_recv, text))
        if "error" in msg or msg.get("success") is False:
            status = msg.get("status", "")
            return self._with_pending([VenueError(f"bitmex error {status}: {msg.get('error')}")])
        if msg.get("success") is True or "info" in msg:
            return self._with_pending([])  # subscription ack, welcome
        raise self._parse_error("unknown", "unknown message kind", text)

    def keepalive(self, now_ns: int) -> list[Event]:
        events = self._with_pending([])
        if self._ping_sent is not None:
            if now_ns - self._ping_sent >= PONG_TIMEOUT_NS:
                self._ping_sent = None
                events.append(Reconnect("stale", "bitmex: no pong within 5 s of a ping"))
        elif self._idle_since is None:
            self._idle_since = now_ns  # nothing received yet: the idle clock starts now
        elif now_ns - self._idle_since >= PING_AFTER_NS:
            self._ping_sent = now_ns
            events.append(Send("ping"))
        return events

    # -- routing --------------------------------------------------------------------
    def _with_pending(self, events: list[Event]) -> list[Event]:
        if not self._pending:
            return events
        pending, self._pending = self._pending, []
        return pending + events

    def _data(self, msg: dict[str, Any], ts_recv: int, text: str) -> list[Event]:
        table, action, rows = msg["table"], msg.get("action"), msg.get("data")
        if not isinstance(action, str) or not isinstance(rows, list):
            raise self._parse_error("bad_field", "data message without action or data list", text)
        if table == BOOK_TABLE and "book" in self.channels:
            self._check_symbol(msg, rows, text)
            return self._book(action, rows, ts_recv, text)
        if table == TRADE_TABLE and "trades" in self.channels:
            self._check_symbol(msg, rows, text)
            return self._trades(action, rows, ts_recv, text)
        raise self._parse_error("unknown", f"data of table {table!r}, not subscribed", text)

    def _check_symbol(self, msg: dict[str, Any], rows: list[Any], text: str) -> None:
        if not all(isinstance(row, dict) for row in rows):
            raise self._parse_error("bad_field", "a data row is not an object", text)
        filt = msg.get("filter")
        symbols = [row.get("symbol") for row in rows]  # a list: the values may be unhashable
        if isinstance(filt, dict) and "symbol" in filt:
            symbols.append(filt["symbol"])
        wrong = [symbol for symbol in symbols if symbol != self.symbol]
        if wrong:
            raise self._parse_error("wrong_symbol", f"rows for {wrong[0]!r} on {self.symbol}", text)

    # -- trades ---------------------------------------------------------------------
    def _trades(self, action: str, rows: list[Any], ts_recv: int, text: str) -> list[Event]:
        if action not in ("partial", "insert"):
            raise self._parse_error("unknown", f"trade action {action!r}", text)
        if action == "insert" and not self._trade_partial:
            return []  # before its partial (§6.5); the partial will likely carry it
        self._trade_partial = True  # even a malformed partial was the partial: let inserts in
        try:
            parsed = [_trade_row(row, ts_recv) for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._parse_error("bad_field", f"trade row: {exc}", text) from None
        if action == "partial":
            if self._history_end is None:
                self._history_end = max((row[0] for row in parsed), default=-1)
                self._remember(parsed)
                return []
            parsed = [row for row in parsed if row[0] > self._history_end]
        fresh = self._remember(parsed)
        return [Trades(fresh)] if fresh else []

    def _remember(self, parsed: list[TradeRow]) -> list[TradeRow]:
        """Record the ids of ``parsed``; returns the rows not seen before."""
        fresh: list[TradeRow] = []
        for row in parsed:
            if row[3] in self._seen:
                continue
            self._seen[row[3]] = None
            fresh.append(row)
        while len(self._seen) > SEEN_TRADES_MAX:
            del self._seen[next(iter(self._seen))]
        return fresh

    # -- book -----------------------------------------------------------------------
    def _book(self, action: str, rows: list[Any], ts_recv: int, text: str) -> list[Event]:
        if action != "partial" and not self.book_live:
            return []  # before the partial, or while waiting for a resync's partial
        if action != "partial" and action not in DELTA_ACTIONS:
            raise self._malformed_book("unknown", f"book action {action!r}", text)
        try:
            changes = [_book_change(action, row) for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._malformed_book("bad_field", f"book row: {exc}", text) from None
        if action == "partial":
            return self._snapshot(changes, ts_recv, text)
        return self._apply(action, changes, ts_recv)

    def _snapshot(self, changes: list[Change], ts_recv: int, text: str) -> list[Event]:
        if len({(c[0], c[1]) for c in changes}) != len(changes):
            raise self._malformed_book("bad_field", "partial lists a row twice", text)
        self._drop_book()
        scratch: list[DeltaRow] = []
        for ident, side, price, size, _ in changes:
            assert price is not None  # _book_change requires it on partial rows
            self._put((ident, side), price, size, -1, ts_recv, scratch)
        ts_event = max((c[4] for c in changes), default=-1)
        self.book_live = True
        self._crossed = 1 if self.book.crossed() else 0
        self._crossed_since_ns = ts_recv
        self._mark_book(ts_event, ts_recv, -1)
        return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, -1)), BookValid(ts_recv)]

    def _apply(self, action: str, changes: list[Change], ts_recv: int) -> list[Event]:
        out: list[DeltaRow] = []
        for ident, side, price, size, ts in changes:
            key = (ident, side)
            old = self._rows.get(key)
            if action == "insert":
                if old is not None:
                    return self._resync(f"insert of existing id {ident} side {side}")
                assert price is not None  # _book_change requires it on inserts
                self._put(key, price, size, ts, ts_recv, out)
                continue
            if old is None:
                return self._resync(f"{action} of unknown id {ident} side {side}")
            new_price = old[0] if price is None else price
            if action == "delete" or new_price != old[0]:
                self._remove(key, old[0], ts, ts_recv, out)
            if action == "update":
                self._put(key, new_price, size, ts, ts_recv, out)
        if self.book.crossed():
            if self._crossed == 0:
                self._crossed_since_ns = ts_recv
            self._crossed += 1
            lasted = ts_recv - self._crossed_since_ns
            if self._crossed >= CROSSED_MESSAGES_MAX and lasted >= CROSSED_FOR_NS:
                bid, ask = self.book.best_bid(), self.book.best_ask()
                detail = f"book crossed for {self._crossed} messages and {lasted / SECOND:.1f} s"
                return self._resync(f"{detail}: {bid} >= {ask}")
        else:
            self._crossed = 0
        ts_event = max((c[4] for c in changes), default=-1)
        self._mark_book(ts_event, ts_recv, -1)
        if not out:
            return []
        out[-1] = (*out[-1][:6], FLAG_LAST)
        return [BookDeltas(out)]

    def _put(
        self, key: RowKey, price: float, size: float, ts: int, ts_recv: int, out: list[DeltaRow]
    ) -> None:
        side = key[1]
        self._rows[key] = (price, size)
        members = self._levels.setdefault((side, price), {})
        members[key] = size
        total = size if len(members) == 1 else math.fsum(members.values())
        self.book.set(side, price, total)
        out.append((ts, ts_recv, -1, side, price, total, 0))

    def _remove(
        self, key: RowKey, price: float, ts: int, ts_recv: int, out: list[DeltaRow]
    ) -> None:
        side = key[1]
        del self._rows[key]
        members = self._levels[(side, price)]
        del members[key]
        total = math.fsum(members.values()) if members else 0.0
        if not members:
            del self._levels[(side, price)]
        self.book.set(side, price, total)
        out.append((ts, ts_recv, -1, side, price, total, 0))

    def _drop_book(self) -> None:
        self.book.clear()
        self.book_live = False
        self._rows.clear()
        self._levels.clear()
        self._crossed = 0

    def _resubscribe(self) -> list[Event]:
        return [
            Send(_op("unsubscribe", [self._book_topic])),
            Send(_op("subscribe", [self._book_topic])),
        ]

    def _resync(self, detail: str) -> list[Event]:
        invalid = self._invalidate("resync", detail)
        self._drop_book()
        return [invalid, *self._resubscribe()]

    def _malformed_book(self, kind: str, reason: str, text: str) -> ParseError:
        if self.book_live:
            self._pending += [self._invalidate("resync", f"malformed book message: {reason}")]
        self._drop_book()
        self._pending += self._resubscribe()
        return self._parse_error(kind, reason, text)


# -- row parsing (raise KeyError/TypeError/ValueError; the adapter turns them into ParseError) --
def _op(op: str, args: list[str]) -> str:
    return json.dumps({"op": op, "args": args}, separators=(",", ":"))


def _positive(row: dict[str, Any], name: str) -> float:
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} is not a number: {value!r}")
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{name} is not positive and finite: {value!r}")
    return number


def _side(row: dict[str, Any]) -> int:
    side = row["side"]
    if side not in _SIDES:
        raise ValueError(f"side {side!r} is neither Buy nor Sell")
    return _SIDES[side]


def _timestamp(row: dict[str, Any]) -> int:
    value = row.get("timestamp")
    if value is None:
        return -1  # legacy update and delete rows carry none
    if not isinstance(value, str):
        raise TypeError(f"timestamp is not a string: {value!r}")
    return iso_to_ns(value)


def _trade_row(row: Any, ts_recv: int) -> TradeRow:
    uid = row["trdMatchID"]
    if not isinstance(uid, str) or not _TRADE_UID.match(uid):
        raise ValueError(f"trdMatchID {uid!r} is not an id of 1-36 printable ASCII characters")
    if row.get("timestamp") is None:
        raise KeyError("timestamp")
    price, amount = _positive(row, "price"), _positive(row, "size")
    return (_timestamp(row), ts_recv, -1, uid.encode("ascii"), price, amount, _side(row), 0)


def _book_change(action: str, row: Any) -> Change:
    ident = row["id"]
    if isinstance(ident, bool) or not isinstance(ident, int) or ident < 0:
        raise ValueError(f"id {ident!r} is not a non-negative integer")
    side = _side(row)
    price = _positive(row, "price") if action in ("partial", "insert") else None
    if price is None and row.get("price") is not None:
        price = _positive(row, "price")  # post-2023 rows carry it on update and delete too
    size = 0.0 if action == "delete" else _positive(row, "size")
    return ident, side, price, size, _timestamp(row)
