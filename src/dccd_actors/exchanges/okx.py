"""OKX v5 public: ``trades`` and ``books`` (400 levels) of one ``instId`` on ``/ws/v5/public``.

Reference: PROTOCOLS.md §4. Recorded frames: ``fixtures/okx/okx.ws.jsonl`` (2022, checksums but
no ``seqId``) and ``fixtures/supplementary/okx_seqid_examples.jsonl`` (truncated, ``seqId``).

Choices this module makes where the protocol leaves room:

* **Sequence.** Every update must have ``prevSeqId`` equal to the last ``seqId``; that one rule
  also accepts the idle heartbeat (empty sides, ``prevSeqId == seqId``) and the reset after
  maintenance (``seqId < prevSeqId``). Messages without the fields (recordings from before
  2023) are checked by checksum alone; rows then store ``seq = -1``.
* **Checksum.** CRC32 of the top 25 levels, interleaved, over the exact wire text, as a signed
  int32 (:func:`okx_checksum`). ``0`` means "no checksum" (OKX sends 0 since June 2026) and is
  never a mismatch; any other value is verified unless ``checksum=False``.
* **Resync.** A gap or a mismatch discards the book and re-subscribes ``books`` for this
  ``instId`` only (unsubscribe, then subscribe). Updates are ignored until the new snapshot.
  A malformed update is not applied at all, so the next one fails the sequence check.
* **Trades** come aggregated per taker order (``tradeId`` is the last id of the fill). OKX
  replays its latest trade after every ``trades`` subscribe, so trades whose id is not above
  the last stored one are dropped; that memory survives :meth:`OkxAdapter.on_open`.
* **Keepalive.** The text ``ping`` after 20 s without any message; if nothing (normally the
  text ``pong``) answers within 20 s more, :class:`Reconnect`. Notice ``64008`` (service
  upgrade) also asks for a new connection.
* **Speed.** ``books`` frames are decoded twice by typed msgspec decoders, once for the wire
  texts (the checksum) and once for the numbers (checked in C: prices > 0, sizes >= 0, all
  finite, JSON number syntax), which costs less than converting and checking each text in
  Python. A frame either decoder refuses takes the general ``json`` path, which names the
  problem; both paths apply levels through the same code.
* **Not done:** bootstrapping from REST ``/api/v5/market/books`` should OKX stop sending the
  WebSocket snapshot (announced in 2026, not yet seen); updates without a snapshot are ignored.
"""

from __future__ import annotations

import json
import math
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Annotated, Any, ClassVar, Final

import msgspec

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
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
)
from dccd_actors.exchanges.book import ASK, BID, LevelText, PricedLevel
from dccd_actors.records import FLAG_LAST

__all__ = ["CHECKSUM_DEPTH", "OkxAdapter", "okx_checksum"]

PUBLIC_PATH: Final = "/ws/v5/public"
BOOK_CHANNEL: Final = "books"
TRADE_CHANNEL: Final = "trades"
CHECKSUM_DEPTH: Final = 25
#: OKX closes a connection after 30 s without data; ping after 20 s of silence.
PING_AFTER_NS: Final = 20 * SECOND
PONG_TIMEOUT_NS: Final = 20 * SECOND
UPGRADE_NOTICE: Final = "64008"

_SIDES: Final = {"buy": 1, "sell": -1}
_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_DIGITS: Final = re.compile(r"[0-9]+")
_INT64: Final = 2**63
_BAD_FIELD: Final = (KeyError, TypeError, ValueError, IndexError, AttributeError)

_BOOKS_PREFIX: Final = '{"arg":{"channel":"books"'  # how OKX starts every books push
_Price = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]
_Size = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63) + 1, le=2**63 - 1)]
_Millis = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // MS)]


class _Arg(msgspec.Struct):
    channel: str
    instId: str


# array_like: a level [px, sz, "0", numOrders] decodes to its first two fields, the rest
# skipped unallocated; gc=False: these short-lived objects never feed the cyclic GC
class _TextLevel(msgspec.Struct, array_like=True, gc=False):
    px: str
    sz: str


class _NumberLevel(msgspec.Struct, array_like=True, gc=False):
    px: _Price
    sz: _Size


class _TextPart(msgspec.Struct):
    asks: list[_TextLevel]
    bids: list[_TextLevel]
    ts: _Millis
    checksum: _Int64 = 0
    seqId: _Int64 = -1
    prevSeqId: _Int64 | None = None


class _TextBooks(msgspec.Struct):
    arg: _Arg
    action: str
    data: list[_TextPart]


class _NumberPart(msgspec.Struct):
    asks: list[_NumberLevel]
    bids: list[_NumberLevel]


class _NumberBooks(msgspec.Struct):
    data: list[_NumberPart]


# strict=False: OKX quotes numbers and times ("ts":"1652459225381"); msgspec converts in C
_decode_texts: Final = msgspec.json.Decoder(_TextBooks, strict=False).decode
_decode_numbers: Final = msgspec.json.Decoder(_NumberBooks, strict=False).decode


@dataclass(frozen=True, slots=True)
class _Part:
    """One element of a ``books`` push, decoded: per side the numbers and the wire texts."""

    ts_event: int
    seq: int
    prev: int | None  # None: the message has no prevSeqId (recordings before 2023)
    checksum: int
    bids: Sequence[PricedLevel]
    bid_texts: Sequence[LevelText]
    asks: Sequence[PricedLevel]
    ask_texts: Sequence[LevelText]


def okx_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """OKX's signed CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:…`` over the levels given, best first.

    Pass the top 25 per side; a side that runs out is simply skipped.

    Example::

        >>> okx_checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")])
        -1881014294
    """
    levels: list[tuple[str, str]]
    if len(bids) == len(asks):  # the usual case: interleave by slicing
        levels = [*bids, *asks]
        levels[::2], levels[1::2] = bids, asks
    else:
        levels = []
        for i in range(max(len(bids), len(asks))):
            levels += bids[i : i + 1]
            levels += asks[i : i + 1]
    crc = zlib.crc32(":".join(chain.from_iterable(levels)).encode())
    return crc - 2**32 if crc >= 2**31 else crc


class OkxAdapter(BaseAdapter):
    """Sans-IO OKX v5 adapter for one instrument (aggregated trades and the 400-level book).

    ``OkxAdapter("BTC/USDT")`` speaks for spot ``BTC-USDT``; :meth:`for_inst_id` takes any
    instrument id (``BTC-USDT-SWAP``, ``BTC-USD-220527``).

    Example::

        >>> a = OkxAdapter("BTC/USDT", ["trades", "book"])
        >>> a.url()
        'wss://ws.okx.com:8443/ws/v5/public'
        >>> json.loads(a.on_open()[0].text)["args"][1]
        {'channel': 'books', 'instId': 'BTC-USDT'}
    """

    exchange: ClassVar[str] = "okx"
    DEFAULT_URL: ClassVar[str] = "wss://ws.okx.com:8443"
    DEFAULT_REST_URL: ClassVar[str] = "https://www.okx.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = f"{self.base}-{self.quote}"
        self._seq_id = -1
        self._last_trade_id = -1
        self._since_ns = 0
        self._ping_ns = 0

    @classmethod
    def for_inst_id(
        cls, inst_id: str, channels: Iterable[str] = ("trades", "book"), **kwargs: Any
    ) -> OkxAdapter:
        """An adapter for any OKX ``instId``; the pair is its first two dash-separated parts.

        Example::

            >>> OkxAdapter.for_inst_id("UNI-USD-SWAP").symbol
            'UNI-USD-SWAP'
        """
        base, _, rest = inst_id.partition("-")
        adapter = cls(f"{base}/{rest.partition('-')[0]}", channels, **kwargs)
        adapter.symbol = inst_id
        return adapter

    # -- the contract -----------------------------------------------------------------
    def resume_trades(self, last_trade_id: int) -> None:
        """OKX replays its latest trade on every subscribe; a new run skips what is stored."""
        self._last_trade_id = max(self._last_trade_id, last_trade_id)

    def url(self) -> str:
        return self.base_url + PUBLIC_PATH

    def on_open(self) -> list[Event]:
        self.book.clear()
        self.book_live = False
        self._seq_id = -1
        self._since_ns = self._ping_ns = 0
        channels = [TRADE_CHANNEL] if "trades" in self.channels else []
        channels += [BOOK_CHANNEL] if "book" in self.channels else []
        return [self._request("subscribe", channels)] if channels else []

    def keepalive(self, now_ns: int) -> list[Event]:
        if self._since_ns == 0:  # first call on this connection starts the clock
            self._since_ns = now_ns
        if self._ping_ns > self.last_recv_ns:  # a ping is waiting for its pong
            if now_ns - self._ping_ns < PONG_TIMEOUT_NS:
                return []
            return [Reconnect("stale", f"no pong within {PONG_TIMEOUT_NS // SECOND} s of a ping")]
        if now_ns - max(self.last_recv_ns, self._since_ns) < PING_AFTER_NS:
            return []
        self._ping_ns = now_ns
        return [Send("ping")]

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        self.last_recv_ns = ts_recv
        if text.startswith(_BOOKS_PREFIX):
            typed = self._books_typed(text, ts_recv)
            if typed is not None:
                return typed
        if text == "pong":
            return []
        msg = self._load(text)
        if "event" in msg:
            return self._event(msg, text)
        arg = msg.get("arg")
        channel = arg.get("channel") if isinstance(arg, dict) else None
        try:
            if channel in (TRADE_CHANNEL, BOOK_CHANNEL):
                self._check_symbol(msg["arg"]["instId"], text)
            if channel == TRADE_CHANNEL:
                return self._trades(msg["data"], ts_recv, text)
            if channel == BOOK_CHANNEL:
                return self._books(msg, ts_recv)
        except ParseError:
            raise
        except _BAD_FIELD as exc:
            reason = f"{channel} frame has a bad field ({exc!r})"
            raise self._parse_error("bad_field", reason, text) from None
        raise self._parse_error("unknown", f"unexpected message (channel {channel!r})", text)

    # -- control ----------------------------------------------------------------------
    def _request(self, op: str, channels: list[str]) -> Send:
        args = [{"channel": channel, "instId": self.symbol} for channel in channels]
        return Send(json.dumps({"op": op, "args": args}, separators=(",", ":")))

    def _load(self, text: str) -> dict[str, Any]:
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):
            raise self._parse_error("not_json", "frame is not JSON", text) from None
        if not isinstance(msg, dict):
            raise self._parse_error("unexpected", "frame is not a JSON object", text)
        return msg

    def _event(self, msg: dict[str, Any], text: str) -> list[Event]:
        event, code = msg["event"], msg.get("code")
        if event in ("subscribe", "unsubscribe"):
            return []
        if event == "error":
            return [VenueError(f"okx error {code}: {msg.get('msg')}")]
        if event == "notice" and code == UPGRADE_NOTICE:
            return [Reconnect("disconnect", f"okx notice {code}: {msg.get('msg')}")]
        raise self._parse_error("unknown", f"unexpected event {event!r}", text)

    def _check_symbol(self, found: Any, text: str) -> None:
        if found != self.symbol:
            raise self._parse_error("wrong_symbol", f"{found!r} on the {self.symbol} stream", text)

    def _resync(self, cause: str, detail: str) -> list[Event]:
        invalid = self._invalidate(cause, detail)
        channels = [BOOK_CHANNEL]
        return [
            invalid,
            self._request("unsubscribe", channels),
            self._request("subscribe", channels),
        ]

    # -- trades -----------------------------------------------------------------------
    def _trades(self, data: Any, ts_recv: int, text: str) -> list[Event]:
        if not isinstance(data, list):
            raise TypeError("data is not a list")
        rows: list[TradeRow] = []
        last_id = self._last_trade_id
        for trade in data:
            self._check_symbol(trade["instId"], text)
            row = _trade_row(trade, ts_recv)
            if row[2] > last_id:  # not the replay of a stored trade
                rows.append(row)
                last_id = row[2]
        self._last_trade_id = last_id  # only once the whole message parsed
        return [Trades(rows)] if rows else []

    # -- book -------------------------------------------------------------------------
    def _books_typed(self, text: str, ts_recv: int) -> list[Event] | None:
        """The fast path for well-formed ``books`` pushes; None sends a frame down the other."""
        try:
            msg, numbers = _decode_texts(text), _decode_numbers(text)
        except msgspec.MsgspecError:
            return None
        if msg.arg.instId != self.symbol or msg.arg.channel != BOOK_CHANNEL:
            return None
        if msg.action not in ("snapshot", "update") or len(numbers.data) != len(msg.data):
            return None
        events: list[Event] = []
        for part, nums in zip(msg.data, numbers.data, strict=True):
            decoded = _Part(
                part.ts * MS,
                part.seqId,
                part.prevSeqId,
                part.checksum,
                nums.bids,
                part.bids,
                nums.asks,
                part.asks,
            )
            events += self._book_part(msg.action == "snapshot", decoded, ts_recv)
        return events

    def _books(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        action, data = msg["action"], msg["data"]
        if action not in ("snapshot", "update") or not isinstance(data, list):
            raise ValueError(f"bad action {action!r} or data")
        events: list[Event] = []
        for part in data:  # one element in practice; the protocol allows more
            events += self._book_part(action == "snapshot", _part(part), ts_recv)
        return events

    def _book_part(self, snapshot: bool, part: _Part, ts_recv: int) -> list[Event]:
        ts_event, seq, prev, checksum = part.ts_event, part.seq, part.prev, part.checksum
        if snapshot:
            self.book.clear()
            self.book_live = True
        elif not self.book_live:
            return []  # waiting for the snapshot that a resync asked for
        elif prev is not None and self._seq_id != -1 and prev != self._seq_id:
            return self._resync("seq_gap", f"expected prevSeqId={self._seq_id}, got {prev}")
        rows = self._apply(part, ts_event, ts_recv, seq)
        if checksum != 0 and self.checksum:
            computed = okx_checksum(*self.book.top_text(CHECKSUM_DEPTH))
            if computed != checksum:
                return self._resync("checksum", f"seqId {seq}: got {checksum}, computed {computed}")
        self._seq_id = seq
        self._mark_book(ts_event, ts_recv, seq)
        if snapshot:
            return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, seq)), BookValid(ts_recv)]
        return [BookDeltas(rows)] if rows else []

    def _apply(self, part: _Part, ts_event: int, ts_recv: int, seq: int) -> list[DeltaRow]:
        """Bids then asks, in message order, the wire texts kept for the checksum."""
        self.book.apply_side_texts(BID, part.bids, part.bid_texts)
        self.book.apply_side_texts(ASK, part.asks, part.ask_texts)
        rows: list[DeltaRow] = [(ts_event, ts_recv, seq, BID, n.px, n.sz, 0) for n in part.bids]
        rows += [(ts_event, ts_recv, seq, ASK, n.px, n.sz, 0) for n in part.asks]
        if rows:
            rows[-1] = (*rows[-1][:6], FLAG_LAST)
        return rows


def _number(text: Any, positive: bool) -> float:
    if not isinstance(text, str) or not _NUMBER.fullmatch(text):
        raise ValueError(f"not a decimal number text: {text!r}")
    value = float(text)
    if not math.isfinite(value) or (positive and value <= 0.0):
        raise ValueError(f"number out of range: {text!r}")
    return value


def _part(part: Any) -> _Part:
    """A ``books`` data element parsed by the general path, every field checked."""
    bids, bid_texts = _levels(part["bids"])
    asks, ask_texts = _levels(part["asks"])
    prev = _integer(part["prevSeqId"]) if "prevSeqId" in part else None
    seq, checksum = _integer(part.get("seqId", -1)), _integer(part.get("checksum", 0))
    return _Part(_ms_to_ns(part["ts"]), seq, prev, checksum, bids, bid_texts, asks, ask_texts)


def _levels(raw: Any) -> tuple[list[_NumberLevel], list[_TextLevel]]:
    if not isinstance(raw, list):
        raise TypeError("book side is not a list")
    numbers, texts = [], []
    for level in raw:
        if not isinstance(level, list) or len(level) < 2:
            raise ValueError(f"level is not [price, size, …]: {level!r}")
        price_text, size_text = level[0], level[1]
        numbers.append(_NumberLevel(_number(price_text, True), _number(size_text, False)))
        texts.append(_TextLevel(price_text, size_text))
    return numbers, texts


def _trade_row(trade: Any, ts_recv: int) -> TradeRow:
    trade_id = _integer(trade["tradeId"])
    price, amount = _number(trade["px"], True), _number(trade["sz"], True)
    ts_event, side = _ms_to_ns(trade["ts"]), _SIDES[trade["side"]]
    return (ts_event, ts_recv, trade_id, b"", price, amount, side, 0)


def _integer(value: Any) -> int:
    """An int64 from a JSON integer or a string of digits (OKX quotes ids and times)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if type(value) is not int or not -_INT64 < value < _INT64:
        raise ValueError(f"not an int64: {value!r}")
    return value


def _ms_to_ns(value: Any) -> int:
    ms = _integer(value)
    if not 0 <= ms < _INT64 // MS:
        raise ValueError(f"timestamp out of range: {value!r}")
    return ms * MS
