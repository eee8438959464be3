"""A fake OKX v5 public venue: ``trades`` and ``books`` on ``/ws/v5/public``.

Speaks PROTOCOLS.md §4 on 127.0.0.1: the text ``ping`` gets ``pong``; each subscribe arg gets
its own ack, then ``books`` a snapshot (``prevSeqId`` -1) and ``trades`` a replay of the latest
past trade. Every market tick publishes one aggregated trade message (one taker order: the
last ``tradeId``, the summed size and ``count``) and one ``books`` update holding each changed
level of the 400-level view, with ``prevSeqId`` equal to the previous ``seqId`` and ``seqId``
grown by 1 to 3; a tick that changes nothing sends the heartbeat (empty sides, ``prevSeqId ==
seqId``). Checksums are computed here by :func:`book_checksum`, independently of the adapter.

``GET /api/v5/market/books?instId=…&sz=…`` answers ``{"code":"0","msg":"","data":[{"asks",
"bids","ts","seqId"}]}``, the ``data`` element of a WebSocket snapshot without ``checksum`` and
``prevSeqId``; PROTOCOLS.md says only that it "returns ``seqId``", so this layout is
[unverified].

Options and faults: ``checksum_zero=True`` sends checksum 0 as production has since June 2026;
``ws_snapshot=False`` subscribes ``books`` without the snapshot, as OKX announced it may (the
client must bootstrap from REST);
:meth:`FakeOkx.inject_sequence_gap`, :meth:`FakeOkx.corrupt_next_checksum`,
:meth:`FakeOkx.reset_sequence`, plus the base class's drop, silence and raw frames. An unknown
``instId`` gets the error reply; its code ``60018`` and text are [unverified] (PROTOCOLS.md
documents only the shape and code 60012, used here for malformed requests).
"""

from __future__ import annotations

import json
import random
import zlib
from decimal import Decimal
from typing import Any, Final

from dccd_actors.testing._market import MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange, float_book

__all__ = ["FakeOkx", "book_checksum", "number_text"]

PUBLIC_PATH: Final = "/ws/v5/public"
BOOKS_REST_PATH: Final = "/api/v5/market/books"
DEPTH: Final = 400
CHECKSUM_LEVELS: Final = 25
CHANNELS: Final = ("trades", "books")

View = dict[Decimal, Decimal]


def number_text(value: Decimal) -> str:
    """OKX's rendering of a number: plain digits, no trailing zeros (``30244``, ``0.08``)."""
    return format(value.normalize(), "f")


def book_checksum(bids: View, asks: View) -> int:
    """OKX's signed CRC32 over the top 25 bids and asks, interleaved, as rendered here."""
    best_bids = sorted(bids, reverse=True)[:CHECKSUM_LEVELS]
    best_asks = sorted(asks)[:CHECKSUM_LEVELS]
    parts: list[str] = []
    for i in range(max(len(best_bids), len(best_asks))):
        for side, prices in ((bids, best_bids), (asks, best_asks)):
            if i < len(prices):
                parts += (number_text(prices[i]), number_text(side[prices[i]]))
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc & (1 << 31) else crc


def _levels(levels: View, descending: bool) -> list[list[str]]:
    rows = []
    for price in sorted(levels, reverse=descending):
        size = levels[price]
        orders = "0" if not size else str(1 + int(size * 10_000) % 9)
        rows.append([number_text(price), number_text(size), "0", orders])
    return rows


def _diff(old: View, new: View) -> View:
    changed = {p: s for p, s in new.items() if old.get(p) != s}
    changed.update({p: Decimal(0) for p in old if p not in new})
    return changed


class FakeOkx(FakeExchange):
    """Fake OKX v5 public market data on loopback.

    ``book(pair)`` is the truth an adapter must hold; ``book_seq(pair)`` the last ``seqId``.

    Example::

        >>> from dccd_actors.testing.okx import FakeOkx
        >>> with FakeOkx(["BTC/USDT"], seed=1, checksum_zero=True) as fake:  # doctest: +SKIP
        ...     adapter = OkxAdapter("BTC/USDT", url=fake.url)
    """

    exchange = "okx"

    def __init__(
        self, *args: Any, checksum_zero: bool = False, ws_snapshot: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.checksum_zero = checksum_zero
        self.ws_snapshot = ws_snapshot
        self.rest_books_served = 0
        self._rng = random.Random(self.seed)
        self.inst_ids = {pair.replace("/", "-"): pair for pair in self.pairs}
        self._views = {pair: self._top(pair) for pair in self.pairs}
        self.seq_ids = {pair: 9_690_930_615 + 10**6 * i for i, pair in enumerate(self.pairs)}
        self._trade_seqs = dict.fromkeys(self.pairs, 1234)
        self._last_trade: dict[str, tuple[MarketTrade, str]] = {}
        self._gaps: set[str] = set()
        self._corrupt: set[str] = set()
        self._resets: set[str] = set()

    # -- truth ------------------------------------------------------------------------
    def book(self, pair: str) -> tuple[dict[float, float], dict[float, float]]:
        """The published 400-level book as float ``{price: size}`` per side."""
        with self._lock:
            return float_book(*self._views[pair])

    def book_seq(self, pair: str) -> int:
        """``seqId`` of the last ``books`` message of ``pair`` (sent or withheld)."""
        with self._lock:
            return self.seq_ids[pair]

    # -- faults -----------------------------------------------------------------------
    def inject_sequence_gap(self, pair: str) -> None:
        """Withhold the next update of ``pair``: the one after it has a foreign ``prevSeqId``."""
        with self._lock:
            self._gaps.add(pair)

    def corrupt_next_checksum(self, pair: str) -> None:
        """Send a wrong, non-zero checksum on the next update of ``pair``."""
        with self._lock:
            self._corrupt.add(pair)

    def reset_sequence(self, pair: str) -> None:
        """Restart ``seqId`` low on the next update (``seqId < prevSeqId``), like maintenance."""
        with self._lock:
            self._resets.add(pair)

    # -- protocol ---------------------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        conn.state["conn_id"] = f"{self._rng.getrandbits(32):08x}"
        if conn.route != PUBLIC_PATH:
            conn.ws.close(1008, f"unknown path {conn.route}")

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        if text == "ping":
            conn.send("pong")
            return
        try:
            msg = json.loads(text)
            op, args, req_id = msg["op"], msg["args"], msg.get("id")
            if op not in ("subscribe", "unsubscribe") or not isinstance(args, list):
                raise ValueError(op)
        except (ValueError, KeyError, TypeError):
            self._error(conn, None, "60012", f"Invalid request: {text}")
            return
        for arg in args:
            self._subscription(conn, op, req_id, arg)

    def _subscription(self, conn: FakeConnection, op: str, req_id: Any, arg: Any) -> None:
        channel = arg.get("channel") if isinstance(arg, dict) else None
        inst_id = arg.get("instId") if isinstance(arg, dict) else None
        pair = self.inst_ids.get(inst_id) if isinstance(inst_id, str) else None
        if channel not in CHANNELS or pair is None:
            msg = f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist."
            self._error(conn, req_id, "60018", msg)
            return
        key = (channel, inst_id)
        with self._lock:  # a snapshot and the next update must not cross
            ack = {"id": req_id} if req_id is not None else {}
            ack.update({"event": op, "arg": {"channel": channel, "instId": inst_id}})
            self._send(conn, {**ack, "connId": conn.state["conn_id"]})
            if op == "unsubscribe":
                conn.subscriptions.discard(key)
                return
            conn.subscriptions.add(key)
            if channel == "books":
                if self.ws_snapshot:
                    frame = self._book_frame(pair, "snapshot", self._views[pair], -1, self.now_ms())
                    conn.send(frame)
            elif pair in self._last_trade:  # OKX pushes the latest past trade after the ack
                self._replay_trade(conn, pair)

    def handle_http(self, route: str, query: dict[str, str]) -> tuple[int, str] | None:
        if route != BOOKS_REST_PATH:
            return None
        pair = self.inst_ids.get(query.get("instId", ""))
        if pair is None:
            return 200, json.dumps(
                {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
            )
        depth = min(int(query.get("sz", "1")), DEPTH)
        with self._lock:
            bids, asks = self._views[pair]
            book = {
                "asks": _levels(dict(sorted(asks.items())[:depth]), False),
                "bids": _levels(dict(sorted(bids.items(), reverse=True)[:depth]), True),
                "ts": str(self.now_ms()),
                "seqId": self.seq_ids[pair],
            }
            self.rest_books_served += 1
        return 200, json.dumps({"code": "0", "msg": "", "data": [book]}, separators=(",", ":"))

    def _replay_trade(self, conn: FakeConnection, pair: str) -> None:
        trade, frame = self._last_trade[pair]
        sent = self.sent_trades[pair]
        if conn.send(frame) and (not sent or sent[-1].trade_id < trade.trade_id):
            sent.append(trade)

    def _error(self, conn: FakeConnection, req_id: Any, code: str, msg: str) -> None:
        reply = {"id": req_id} if req_id is not None else {}
        reply.update({"event": "error", "code": code, "msg": msg})
        self._send(conn, {**reply, "connId": conn.state["conn_id"]})

    @staticmethod
    def _send(conn: FakeConnection, msg: dict[str, Any]) -> bool:
        return conn.send(json.dumps(msg, separators=(",", ":")))

    # -- market -----------------------------------------------------------------------
    def tick(self, ts_ms: int) -> None:
        with self._lock:  # whole tick: subscribers never see a half-published state
            for pair in self.pairs:
                _, trades = self.markets[pair].step(ts_ms)
                if trades:
                    self._send_trades(pair, trades)
                self._send_update(pair, ts_ms)

    def _top(self, pair: str) -> tuple[View, View]:
        bids, asks = self.markets[pair].top(DEPTH)
        return dict(bids), dict(asks)

    def _send_trades(self, pair: str, trades: list[MarketTrade]) -> None:
        first, last = trades[0], trades[-1]
        amount = sum((t.amount for t in trades), Decimal(0))
        trade = MarketTrade(last.trade_id, first.price, amount, first.side, first.ts_ms)
        inst_id = pair.replace("/", "-")
        self._trade_seqs[pair] += 1
        data = {
            "instId": inst_id, "tradeId": str(trade.trade_id), "px": number_text(trade.price),
            "sz": number_text(amount), "side": "buy" if trade.side == 1 else "sell",
            "ts": str(trade.ts_ms), "count": str(len(trades)), "source": "0",
            "seqId": self._trade_seqs[pair],
        }  # fmt: skip
        msg = {"arg": {"channel": "trades", "instId": inst_id}, "data": [data]}
        frame = json.dumps(msg, separators=(",", ":"))
        self._last_trade[pair] = (trade, frame)
        if self._publish(("trades", inst_id), frame):
            self.sent_trades[pair].append(trade)

    def _send_update(self, pair: str, ts_ms: int) -> None:
        old_bids, old_asks = self._views[pair]
        self._views[pair] = bids, asks = self._top(pair)
        changes = (_diff(old_bids, bids), _diff(old_asks, asks))
        prev = self.seq_ids[pair]
        seq = prev + self._rng.randint(1, 3) if changes[0] or changes[1] else prev
        if pair in self._resets:
            self._resets.discard(pair)
            seq = self._rng.randint(1, 1000)
        self.seq_ids[pair] = seq
        if pair in self._gaps:
            self._gaps.discard(pair)
            return
        frame = self._book_frame(pair, "update", changes, prev, ts_ms)
        self._publish(("books", pair.replace("/", "-")), frame)

    def _book_frame(
        self, pair: str, action: str, levels: tuple[View, View], prev: int, ts_ms: int
    ) -> str:
        data = {
            "asks": _levels(levels[1], False),
            "bids": _levels(levels[0], True),
            "ts": str(ts_ms),
            "checksum": self._checksum(pair, action == "update"),
            "prevSeqId": prev,
            "seqId": self.seq_ids[pair],
        }
        msg = {"arg": {"channel": "books", "instId": pair.replace("/", "-")}, "action": action}
        return json.dumps({**msg, "data": [data]}, separators=(",", ":"))

    def _checksum(self, pair: str, may_corrupt: bool) -> int:
        value = book_checksum(*self._views[pair])
        if may_corrupt and pair in self._corrupt:
            self._corrupt.discard(pair)
            return (value ^ 1) or 2  # wrong and never 0, which would mean "absent"
        return 0 if self.checksum_zero else value

    def _publish(self, key: tuple[str, str], text: str) -> bool:
        delivered = False
        for conn in self.open_connections():
            if key in conn.subscriptions:
                delivered |= conn.send(text)
        return delivered
