"""Binance spot: combined ``@trade`` and ``@depth@100ms`` streams bridged to a REST snapshot.

Reference: PROTOCOLS.md §1. The diff stream is buffered until the REST snapshot
(``/api/v3/depth?limit=1000``) arrives; buffered events with ``u <= lastUpdateId``
are dropped, the first applied one must satisfy ``U <= lastUpdateId + 1 <= u``,
and every later one ``U == previous u + 1``. A gap discards the book and fetches
a new snapshot while the stream keeps buffering. Recorded frames:
``fixtures/binance/binance.ws.jsonl`` and ``binance.http.jsonl``.

A snapshot that comes before any depth event (the usual case) is held until the next
event bridges it, or shows it too old (§1.6 step 2: fetch again, no gap: the book was never
live). A quiet symbol sends no event (§1.3): a snapshot held ``HOLD_NS`` goes live anyway.
Frames of known streams we do not subscribe to (``aggTrade``, ``bookTicker``) are checked
and ignored.

Buffered events applied after a snapshot are stored with the snapshot's
``ts_recv`` (their ``ts_event`` is kept), so ``ts_recv`` never goes backwards
within a segment.

Speed: frames are first decoded by a typed msgspec decoder (``_binance_wire``) that checks
every field and number in C (prices > 0, sizes >= 0, all finite, ids and times in range);
anything it refuses (other messages, malformed frames) takes the general ``orjson`` path,
which classifies the problem precisely. Both paths give the same events.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar, Final, NamedTuple, cast

import msgspec

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
    SECOND,
    BaseAdapter,
    BookDeltas,
    BookLevels,
    BookValid,
    DeltaRow,
    Event,
    FetchSnapshot,
    Reconnect,
    TradeRow,
    Trades,
    VenueError,
)
from dccd_actors.exchanges._binance_wire import (
    INF,
    Depth,
    Trade,
    decode_typed,
    levels_of,
    loads,
    unsubscribed_kind,
)
from dccd_actors.exchanges.book import ASK, BID
from dccd_actors.records import FLAG_LAST

__all__ = ["BinanceAdapter"]

SNAPSHOT_LIMIT: Final = 1000
MAX_BUFFERED_EVENTS: Final = 10_000
#: a held snapshot goes live after this long without a depth event (a quiet symbol)
HOLD_NS: Final = SECOND
_SHUTDOWN: Final = "serverShutdown announced by Binance"


class _Held(NamedTuple):  # a REST snapshot waiting for a depth event to judge it
    last_id: int
    levels: list[tuple[int, float, float]]
    ts_recv: int


class BinanceAdapter(BaseAdapter):
    """Sans-IO Binance spot adapter for one pair.

    Example::

        >>> a = BinanceAdapter("BTC/USDT", ["trades", "book"])
        >>> a.url()
        'wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@depth@100ms'
    """

    exchange: ClassVar[str] = "binance"
    DEFAULT_URL: ClassVar[str] = "wss://stream.binance.com:9443"
    DEFAULT_REST_URL: ClassVar[str] = "https://api.binance.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = self.base + self.quote
        self._stream = self.symbol.lower()
        self._buffer: list[dict[str, Any]] = []
        self._local_id = -1
        self._snapshot_pending = False
        self._held: _Held | None = None
        self.continuity_checks = 0  # applied events that passed U == previous u + 1
        # the first event after a snapshot is a bridge, not a continuity check
        self._bridged = False

    def url(self) -> str:
        streams = []
        if "trades" in self.channels:
            streams.append(f"{self._stream}@trade")
        if "book" in self.channels:
            streams.append(f"{self._stream}@depth@100ms")
        return f"{self.base_url}/stream?streams={'/'.join(streams)}"

    def snapshot_url(self) -> str:
        return f"{self.rest_base_url}/api/v3/depth?symbol={self.symbol}&limit={SNAPSHOT_LIMIT}"

    def on_open(self) -> list[Event]:
        self._buffer.clear()
        self._held = None
        self.book.clear()
        self.book_live = False
        if "book" not in self.channels:
            return []
        self._snapshot_pending = True
        return [FetchSnapshot(self.snapshot_url())]

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        try:
            data = decode_typed(text).data
        except msgspec.MsgspecError:
            return self._receive_any(text, ts_recv)
        if data.s != self.symbol:
            return self._receive_any(text, ts_recv)  # which names the wrong symbol
        if type(data) is Trade:  # the hot path: one frame per trade
            side = -1 if data.m else 1  # buyer is maker: the taker sold
            return [Trades([(data.T * MS, ts_recv, data.t, b"", data.p, data.q, side, 0)])]
        return self._depth_typed(cast(Depth, data), ts_recv, text)

    def _receive_any(self, text: str, ts_recv: int) -> list[Event]:
        """Every frame the typed decoder refuses: other messages, and malformed ones."""
        try:
            msg = loads(text)
        except ValueError:
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        if not isinstance(msg, dict):
            raise self._parse_error("unexpected", "frame is not a JSON object", text)
        if msg.get("stream") == "!serverShutdown":  # §1.1 does not pin down its data
            return [Reconnect("disconnect", _SHUTDOWN, planned=True)]
        data = msg.get("data", msg) if "stream" in msg else msg
        if not isinstance(data, dict):
            raise self._parse_error("unexpected", "data is not an object", text)
        kind = data.get("e")
        try:
            if kind == "trade":
                if data["s"] != self.symbol:
                    raise self._parse_error(
                        "wrong_symbol", f"trade for {data['s']!r} on the {self.symbol} stream", text
                    )
                price, amount = float(data["p"]), float(data["q"])
                if not (0.0 < price < INF and 0.0 < amount < INF):
                    raise ValueError(f"not positive finite: p={data['p']!r} q={data['q']!r}")
                row: TradeRow = (
                    int(data["T"]) * MS,
                    ts_recv,
                    int(data["t"]),
                    b"",
                    price,
                    amount,
                    -1 if data["m"] is True else 1,  # buyer is maker: the taker sold
                    0,
                )
                return [Trades([row])]
            if kind == "depthUpdate":
                return self._depth(data, ts_recv, text)
            unsubscribed = unsubscribed_kind(msg, data)
            if unsubscribed is not None:
                msgspec.convert(data, unsubscribed, strict=False)  # well formed, or bad_field
                return []
        except ParseError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise self._parse_error(
                "bad_field", f"{kind} frame has a bad field ({exc!r})", text
            ) from None
        if kind == "serverShutdown":
            return [Reconnect("disconnect", _SHUTDOWN, planned=True)]
        if "result" in msg and "id" in msg:
            return []  # subscription ack
        if "code" in msg or "error" in msg:
            return [
                VenueError(f"binance error: {msg.get('code')} {msg.get('msg') or msg.get('error')}")
            ]
        raise self._parse_error("unknown", f"unknown message kind {kind!r}", text)

    # -- book -----------------------------------------------------------------------
    def _depth_typed(self, data: Depth, ts_recv: int, text: str) -> list[Event]:
        first, seq, ts_event = data.U, data.u, data.E * MS
        if not self.book_live or first > seq or first != self._local_id + 1:
            return self._depth(msgspec.to_builtins(data), ts_recv, text)  # the rare cases
        book = self.book
        book.apply_side(BID, data.b)
        book.apply_side(ASK, data.a)
        self._advance(first, seq, ts_event, ts_recv)
        return [BookLevels(ts_event, ts_recv, seq, data.b, data.a)]  # rows built in bulk later

    def _depth(self, data: dict[str, Any], ts_recv: int, text: str) -> list[Event]:
        if data["s"] != self.symbol:
            raise self._parse_error(
                "wrong_symbol", f"depth for {data['s']!r} on the {self.symbol} stream", text
            )
        first, last = int(data["U"]), int(data["u"])
        if first > last:
            raise self._parse_error("bad_field", f"U {first} > u {last}", text)
        levels = levels_of(data["b"], BID)
        levels += levels_of(data["a"], ASK)
        ts_event = int(data["E"]) * MS
        if not self.book_live:
            event = {"U": first, "u": last, "E": ts_event, "levels": levels}
            if self._held is not None:
                return self._judge_held(event, ts_recv)
            self._buffer.append(event)
            del self._buffer[:-MAX_BUFFERED_EVENTS]
            if self._snapshot_pending:
                return []
            self._snapshot_pending = True  # the last answer was unusable: ask again
            return [FetchSnapshot(self.snapshot_url())]
        if last <= self._local_id:
            return []
        if first > self._local_id + 1:
            invalid = self._invalidate(
                "seq_gap", f"expected U <= {self._local_id + 1}, got U={first} u={last}"
            )
            self._buffer = [{"U": first, "u": last, "E": ts_event, "levels": levels}]
            self._snapshot_pending = True
            return [invalid, FetchSnapshot(self.snapshot_url())]
        return [BookDeltas(self._applylevels_of(first, last, ts_event, levels, ts_recv))]

    def _apply(self, event: dict[str, Any], ts_recv: int) -> list[DeltaRow]:
        return self._applylevels_of(event["U"], event["u"], event["E"], event["levels"], ts_recv)

    def _applylevels_of(
        self,
        first: int,
        seq: int,
        ts_event: int,
        levels: list[tuple[int, float, float]],
        ts_recv: int,
    ) -> list[DeltaRow]:
        self.book.apply(levels)
        rows: list[DeltaRow] = [
            (ts_event, ts_recv, seq, side, price, size, 0) for side, price, size in levels
        ]
        if rows:
            side, price, size = levels[-1]
            rows[-1] = (ts_event, ts_recv, seq, side, price, size, FLAG_LAST)
        self._advance(first, seq, ts_event, ts_recv)
        return rows

    def _advance(self, first: int, seq: int, ts_event: int, ts_recv: int) -> None:
        """An event ``first..seq`` was applied: count the continuity check, move the book id."""
        if self._bridged and first == self._local_id + 1:
            self.continuity_checks += 1
        self._bridged = True
        self._local_id = seq
        self._mark_book(ts_event, ts_recv, seq)

    def receive_snapshot(self, body: str, ts_recv: int) -> list[Event]:
        self._snapshot_pending = False
        try:
            snap = json.loads(body)
            last_id = int(snap["lastUpdateId"])
            levels = levels_of(snap["bids"], BID) + levels_of(snap["asks"], ASK)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._parse_error(
                "bad_snapshot", f"REST depth snapshot unusable ({exc!r})", body
            ) from None
        if not self._buffer:  # no event yet to tell whether it is older than the stream
            self._held = _Held(last_id, levels, ts_recv)
            return []
        pending = [e for e in self._buffer if e["u"] > last_id]
        if pending and not pending[0]["U"] <= last_id + 1 <= pending[0]["u"]:
            # older than the first event to apply (§1.6 step 2), or a hole in the buffer
            self._snapshot_pending = True
            self._buffer = pending
            return [FetchSnapshot(self.snapshot_url())]
        rows = self._go_live(_Held(last_id, levels, ts_recv))
        for event in pending:
            rows += self._apply(event, ts_recv)
        return [BookDeltas(rows), BookValid(ts_recv)]

    def _judge_held(self, event: dict[str, Any], ts_recv: int) -> list[Event]:
        """The first depth event after a held snapshot: bridge it, drop it or refetch."""
        held = cast(_Held, self._held)
        if event["u"] <= held.last_id:
            return []  # older than the snapshot; keep waiting for the bridging event
        if event["U"] > held.last_id + 1:
            # the snapshot is older than the stream (§1.6 step 2); the book was never live,
            # so no BookInvalid: fetch again, buffering from this event on
            self._held = None
            self._buffer = [event]
            self._snapshot_pending = True
            return [FetchSnapshot(self.snapshot_url())]
        rows = self._go_live(held)
        rows += self._apply(event, ts_recv)
        return [BookDeltas(rows), BookValid(held.ts_recv)]

    def keepalive(self, now_ns: int) -> list[Event]:
        """A quiet symbol sends no event to judge a held snapshot by (§1.3): trust it."""
        held = self._held
        if held is None or now_ns - held.ts_recv <= HOLD_NS:
            return []
        return [BookDeltas(self._go_live(held)), BookValid(held.ts_recv)]

    def _go_live(self, snapshot: _Held) -> list[DeltaRow]:
        """Replace the book with ``snapshot``; its rows carry the snapshot's receive time."""
        last_id, ts_recv = snapshot.last_id, snapshot.ts_recv
        self.book.clear()
        self.book.apply(snapshot.levels)
        self._buffer = []
        self._held = None
        self._local_id = last_id
        self._bridged = False
        self.book_live = True
        self._mark_book(-1, ts_recv, last_id)
        return self.book.snapshot_rows(-1, ts_recv, last_id)

    def snapshot_failed(self, reason: str) -> list[Event]:
        self._snapshot_pending = True
        return [FetchSnapshot(self.snapshot_url())]
