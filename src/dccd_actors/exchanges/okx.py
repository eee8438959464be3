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
  never a mismatch; any other value is verified unless ``checksum=False``. A book whose
  snapshot carries checksum 0 keeps no wire texts (they are not even decoded); should a
  non-zero checksum follow, it cannot be verified: the book is discarded as a ``checksum``
  resync and every later book of this adapter keeps its texts.
* **Resync.** A gap or a mismatch discards the book and re-subscribes ``books`` for this
  ``instId`` only (unsubscribe, then subscribe). A malformed update is not applied at all, so
  the next one fails the sequence check.
* **No snapshot.** OKX announced that the WebSocket snapshot may be dropped in favour of REST
  ``GET /api/v5/market/books`` plus ``seqId`` bridging. Updates that arrive after the ``books``
  ack with no snapshot before them are buffered (at most 1,000) and the REST book is fetched
  (``sz=400``). Buffered updates up to its ``seqId`` are dropped; the first one applied must
  have ``prevSeqId <= seqId`` of the REST book (OKX's REST and WebSocket books are cut at
  different moments), later ones chain as usual. A REST book that is older than the first
  buffered update is fetched again. Updates that come before the ack belong to the
  subscription just cancelled and are ignored.
* **Trades** come aggregated per taker order (``tradeId`` is the last id of the fill). OKX
  replays its latest trade after every ``trades`` subscribe, so trades whose id is not above
  the last stored one are dropped; that memory survives :meth:`OkxAdapter.on_open`.
* **Keepalive.** The text ``ping`` after 20 s without any message; if nothing (normally the
  text ``pong``) answers within 20 s more, :class:`Reconnect`. Notice ``64008`` (service
  upgrade) also asks for a new connection.
* **Speed.** ``books`` frames go through typed decoders (:mod:`._okx_wire`); a frame they
  refuse takes the general ``json`` path, which names the problem. Both paths apply levels
  through the same code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar, Final

import msgspec

from dccd_actors.errors import ParseError
from dccd_actors.exchanges._base import (
    MS,
    SECOND,
    BaseAdapter,
    BookDeltas,
    BookLevels,
    BookValid,
    Event,
    FetchSnapshot,
    Reconnect,
    Send,
    TradeRow,
    Trades,
    VenueError,
)
from dccd_actors.exchanges._okx_wire import (
    BookPart,
    NumberBooks,
    book_part,
    decode_numbers,
    decode_texts,
    okx_checksum,
    rest_book,
    trade_row,
)
from dccd_actors.exchanges.book import ASK, BID

__all__ = ["CHECKSUM_DEPTH", "OkxAdapter", "okx_checksum"]

PUBLIC_PATH: Final = "/ws/v5/public"
BOOKS_REST_PATH: Final = "/api/v5/market/books"
BOOK_CHANNEL: Final = "books"
TRADE_CHANNEL: Final = "trades"
CHECKSUM_DEPTH: Final = 25
REST_DEPTH: Final = 400
MAX_BUFFERED_UPDATES: Final = 1000
#: OKX closes a connection after 30 s without data; ping after 20 s of silence.
PING_AFTER_NS: Final = 20 * SECOND
PONG_TIMEOUT_NS: Final = 20 * SECOND
UPGRADE_NOTICE: Final = "64008"

_BAD_FIELD: Final = (KeyError, TypeError, ValueError, IndexError, AttributeError)
_BOOKS_PREFIX: Final = '{"arg":{"channel":"books"'  # how OKX starts every books push


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
    WS_PATH: ClassVar[str] = PUBLIC_PATH

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbol = f"{self.base}-{self.quote}"
        self._seq_id = -1
        self._last_trade_id = -1
        self._since_ns = 0
        self._ping_ns = 0
        self._books_acked = False  # updates before the ack belong to a cancelled subscription
        self._buffered: list[BookPart] = []  # updates that came with no snapshot before them
        self._fetching = False  # a REST book is on its way
        self._bridging = False  # a REST book was applied; the next update must straddle it
        self._keep_texts = False  # a non-zero checksum was seen: every book keeps wire texts
        self._book_texts = False  # the current book holds wire texts (and so can be checked)

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

    def snapshot_url(self) -> str:
        """The REST book, fetched only when OKX sends updates without a snapshot."""
        return f"{self.rest_base_url}{BOOKS_REST_PATH}?instId={self.symbol}&sz={REST_DEPTH}"

    def on_open(self) -> list[Event]:
        self.book.clear()
        self.book_live = False
        self._seq_id = -1
        self._books_acked = self._fetching = self._bridging = self._book_texts = False
        self._buffered.clear()
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
        if text == "ping":  # the venue checking on us (PROTOCOLS.md §0.1): answer it
            return [Send("pong")]
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
            if msg.get("arg") == {"channel": BOOK_CHANNEL, "instId": self.symbol}:
                self._books_acked = event == "subscribe"
            return []
        if event == "error":
            return [VenueError(f"okx error {code}: {msg.get('msg')}")]
        if event == "notice" and code == UPGRADE_NOTICE:
            return [Reconnect("disconnect", f"okx notice {code}: {msg.get('msg')}", planned=True)]
        raise self._parse_error("unknown", f"unexpected event {event!r}", text)

    def _check_symbol(self, found: Any, text: str) -> None:
        if found != self.symbol:
            raise self._parse_error("wrong_symbol", f"{found!r} on the {self.symbol} stream", text)

    def _resync(self, cause: str, detail: str) -> list[Event]:
        invalid = self._invalidate(cause, detail)
        self._books_acked = self._bridging = False
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
        stored, newest = self._last_trade_id, self._last_trade_id
        for trade in data:  # in any order: a push may list its newest trade first
            self._check_symbol(trade["instId"], text)
            row = trade_row(trade, ts_recv)
            if row[2] > stored and all(row[2] != kept[2] for kept in rows):
                rows.append(row)  # not the replay of a stored trade, nor a repeat
                newest = max(newest, row[2])
        self._last_trade_id = newest  # only once the whole message parsed
        return [Trades(rows)] if rows else []

    # -- book -------------------------------------------------------------------------
    def _books_typed(self, text: str, ts_recv: int) -> list[Event] | None:
        """The fast path for well-formed ``books`` pushes; None sends a frame down the other."""
        try:
            msg = decode_numbers(text)
            snapshot = msg.action == "snapshot"
            texts = decode_texts(text).data if self._texts_needed(snapshot, msg) else None
        except msgspec.MsgspecError:
            return None
        if msg.arg.instId != self.symbol or msg.arg.channel != BOOK_CHANNEL:
            return None
        if msg.action not in ("snapshot", "update") or (texts and len(texts) != len(msg.data)):
            return None
        events: list[Event] = []
        for i, part in enumerate(msg.data):
            bid_texts, ask_texts = (texts[i].bids, texts[i].asks) if texts else ((), ())
            decoded = BookPart(
                part.ts * MS,
                part.seqId,
                part.prevSeqId,
                part.checksum,
                part.bids,
                bid_texts,
                part.asks,
                ask_texts,
            )
            events += self._book_part(snapshot, decoded, ts_recv)
        return events

    def _texts_needed(self, snapshot: bool, msg: NumberBooks) -> bool:
        """Whether this push's wire texts must be decoded: only for books checked by checksum."""
        if not self.checksum:
            return False
        if snapshot:
            return self._keep_texts or any(part.checksum for part in msg.data)
        return self._book_texts or not self.book_live  # buffered updates may meet a REST book

    def _books(self, msg: dict[str, Any], ts_recv: int) -> list[Event]:
        action, data = msg["action"], msg["data"]
        if action not in ("snapshot", "update") or not isinstance(data, list):
            raise ValueError(f"bad action {action!r} or data")
        events: list[Event] = []
        for part in data:  # one element in practice; the protocol allows more
            events += self._book_part(action == "snapshot", book_part(part), ts_recv)
        return events

    def _book_part(
        self, snapshot: bool, part: BookPart, ts_recv: int, *, texts: bool = False
    ) -> list[Event]:
        ts_event, seq, prev, checksum = part.ts_event, part.seq, part.prev, part.checksum
        verify = checksum != 0 and self.checksum
        if snapshot:
            self.book.clear()
            self.book_live = True
            self._keep_texts |= verify  # checksums on this venue: every later book keeps texts
            # an empty book's checksum is 0 too (CRC32 of ""): it says nothing of the venue
            empty = not part.bids and not part.asks
            self._book_texts = self.checksum and (texts or self._keep_texts or empty)
            self._buffered.clear()
            self._fetching = self._bridging = False  # a REST answer still on its way is moot
        elif not self.book_live:
            return self._without_snapshot(part)
        elif self._bridging:
            if prev is not None and prev != self._seq_id and seq <= self._seq_id:
                return []  # already in the REST book (a chained update may reset seqId lower)
            if prev is not None and prev > self._seq_id:  # updates were missed after it
                detail = f"REST book at seqId {self._seq_id}, next update has prevSeqId {prev}"
                invalid = self._invalidate("resync", detail)
                return [invalid, *self._without_snapshot(part)]
            self._bridging = False
        elif prev is not None and self._seq_id != -1 and prev != self._seq_id:
            return self._resync("seq_gap", f"expected prevSeqId={self._seq_id}, got {prev}")
        elif verify and not self._book_texts:  # a checksum after checksum-0 pushes: unverifiable
            self._keep_texts = True
            detail = f"seqId {seq}: checksum {checksum} on a book kept without its wire texts"
            return self._resync("checksum", detail)
        if self._book_texts:
            self.book.apply_side_texts(BID, part.bids, part.bid_texts)
            self.book.apply_side_texts(ASK, part.asks, part.ask_texts)
        else:
            self.book.apply_side(BID, part.bids)
            self.book.apply_side(ASK, part.asks)
        if verify:
            computed = okx_checksum(*self.book.top_text(CHECKSUM_DEPTH))
            if computed != checksum:
                return self._resync("checksum", f"seqId {seq}: got {checksum}, computed {computed}")
        self._seq_id = seq
        self._mark_book(ts_event, ts_recv, seq)
        if snapshot:
            return [BookDeltas(self.book.snapshot_rows(ts_event, ts_recv, seq)), BookValid(ts_recv)]
        if not part.bids and not part.asks:
            return []  # the idle heartbeat
        return [BookLevels(ts_event, ts_recv, seq, part.bids, part.asks)]  # rows built in bulk

    # -- book without a WebSocket snapshot (REST + seqId bridge) ----------------------
    def _without_snapshot(self, part: BookPart) -> list[Event]:
        if not self._books_acked:
            return []  # sent before the subscription that will bring the next book
        self._buffered.append(part)
        del self._buffered[:-MAX_BUFFERED_UPDATES]
        if self._fetching:
            return []
        self._fetching = True
        return [FetchSnapshot(self.snapshot_url())]

    def receive_snapshot(self, body: str, ts_recv: int) -> list[Event]:
        """Bridge the REST book to the buffered updates by ``seqId`` (see the module notes).

        Example::

            >>> a = OkxAdapter("BTC/USDT", ["book"]); _ = a.on_open()
            >>> a.receive_snapshot('{"code":"0","data":[]}', 1)  # nothing asked: ignored
            []
        """
        if not self._fetching or self.book_live:
            return []  # a WebSocket snapshot came first, or a new connection since the ask
        self._fetching = False
        try:
            snapshot = rest_book(body)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise self._parse_error(
                "bad_snapshot", f"REST books unusable ({exc!r})", body
            ) from None
        pending = _after(self._buffered, snapshot.seq)
        self._buffered.clear()
        if pending and pending[0].prev is not None and pending[0].prev > snapshot.seq:
            self._buffered = pending  # the REST book is older than the updates held: ask again
            self._fetching = True
            return [FetchSnapshot(self.snapshot_url())]
        events = self._book_part(True, snapshot, ts_recv, texts=True)  # its updates may be checked
        self._bridging = self.book_live
        for update in pending:
            events += self._book_part(False, update, ts_recv)
        return events

    def snapshot_failed(self, reason: str) -> list[Event]:
        """Ask again; the stream actor spaces the attempts out."""
        if not self._fetching:
            return []
        return [FetchSnapshot(self.snapshot_url())]


def _after(updates: list[BookPart], seq_id: int) -> list[BookPart]:
    """The buffered updates a REST book at ``seq_id`` still needs.

    Those from the one chained to it (``prevSeqId == seq_id``, which may reset ``seqId``
    lower after maintenance) if there is one, else those above it.
    """
    for i, update in enumerate(updates):
        if update.prev == seq_id:
            return updates[i:]
    return [u for u in updates if u.seq > seq_id]
