"""A fake Bybit v5 public spot venue: ``publicTrade`` and ``orderbook.50`` on ``/v5/public/spot``.

Speaks PROTOCOLS.md §2 on 127.0.0.1. Subscribing ``orderbook.50.<SYM>`` answers with the ack
and then a snapshot of the top 50 levels per side; every market tick then publishes one delta
(``u`` + 1, ``seq`` growing by 1 to 30, shared with trades) holding each level whose size changed
in that top-50 view, ``"0"`` for levels that left it. Numbers are rendered without trailing
zeros, as Bybit does. Only depth 50 is served; other depths get the error reply.

Readings that PROTOCOLS.md leaves open, so [unverified]: a level leaving the top 50 is sent as
size ``"0"``; the unsubscribe ack echoes ``ret_msg`` ``"unsubscribe"`` (only the subscribe ack
is documented); an unknown symbol gets the ``Invalid topic`` failure shape (an [impl] example).

Faults: :meth:`FakeBybit.inject_sequence_gap`, plus the base class's drop, silence and raw
frames.
"""

from __future__ import annotations

import json
import random
import uuid
from decimal import Decimal
from typing import Any, Final

from dccd_actors.testing._market import MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange, float_book

__all__ = ["FakeBybit"]

SPOT_PATH: Final = "/v5/public/spot"
DEPTH: Final = 50
MAX_ARGS: Final = 10

View = dict[Decimal, Decimal]


def _num(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _side_rows(levels: View, best_first_desc: bool) -> list[list[str]]:
    prices = sorted(levels, reverse=best_first_desc)
    return [[_num(p), _num(levels[p])] for p in prices]


def _diff(old: View, new: View) -> View:
    changed = {p: s for p, s in new.items() if old.get(p) != s}
    changed.update({p: Decimal(0) for p in old if p not in new})
    return changed


class FakeBybit(FakeExchange):
    """Fake Bybit v5 spot market data on loopback.

    ``book(pair)`` is the truth an adapter must hold: the top-50 view last published.

    Example::

        >>> from dccd_actors.testing.bybit import FakeBybit
        >>> with FakeBybit(["BTC/USDT"], seed=1) as fake:  # doctest: +SKIP
        ...     adapter = BybitAdapter("BTC/USDT", url=fake.url)
    """

    exchange = "bybit"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rng = random.Random(self.seed)
        self.symbols = {pair.replace("/", ""): pair for pair in self.pairs}
        self._topics: dict[str, tuple[str, str]] = {}
        for symbol, pair in self.symbols.items():
            self._topics[f"publicTrade.{symbol}"] = ("trades", pair)
            self._topics[f"orderbook.{DEPTH}.{symbol}"] = ("book", pair)
        self._views = {pair: self._top(pair) for pair in self.pairs}
        self.update_ids = {pair: 2_000_000 + 1000 * i for i, pair in enumerate(self.pairs)}
        self.cross_seqs = {pair: 47_000_000_000 + 10**6 * i for i, pair in enumerate(self.pairs)}
        self._book_seqs = dict(self.cross_seqs)
        self._gaps: set[str] = set()

    # -- truth ------------------------------------------------------------------------
    def book(self, pair: str) -> tuple[dict[float, float], dict[float, float]]:
        """The published top-50 book as float ``{price: size}`` per side."""
        with self._lock:
            return float_book(*self._views[pair])

    def book_seq(self, pair: str) -> int:
        """``seq`` of the last book message of ``pair`` (sent or withheld)."""
        with self._lock:
            return self._book_seqs[pair]

    # -- faults -----------------------------------------------------------------------
    def inject_sequence_gap(self, pair: str) -> None:
        """Withhold the next delta of ``pair``: subscribers see ``u`` jump by 2."""
        with self._lock:
            self._gaps.add(pair)

    # -- protocol ---------------------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        conn.state["conn_id"] = str(uuid.UUID(int=self._rng.getrandbits(128)))
        if conn.route != SPOT_PATH:
            conn.ws.close(1008, f"unknown path {conn.route}")

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        try:
            msg = json.loads(text)
            op, req_id = msg["op"], msg.get("req_id")
        except (ValueError, KeyError, TypeError):
            self._reply(conn, "", None, False, "Invalid request")
            return
        if op == "ping":  # the spot pong carries no req_id
            reply = {"success": True, "ret_msg": "pong", "conn_id": conn.state["conn_id"], "op": op}
            conn.send(json.dumps(reply, separators=(",", ":")))
        elif op in ("subscribe", "unsubscribe"):
            self._subscription(conn, op, req_id, msg.get("args"))
        else:
            self._reply(conn, op, req_id, False, f"Invalid op: {op}")

    def _subscription(self, conn: FakeConnection, op: str, req_id: Any, args: Any) -> None:
        if not isinstance(args, list) or not 0 < len(args) <= MAX_ARGS:
            self._reply(conn, op, req_id, False, f"args must hold 1 to {MAX_ARGS} topics")
            return
        bad = [topic for topic in args if not isinstance(topic, str) or topic not in self._topics]
        if bad:
            self._reply(conn, op, req_id, False, f"Invalid topic: {bad[0]}")
            return
        with self._lock:  # a snapshot and the next delta must not cross
            self._reply(conn, op, req_id, True, op)
            if op == "unsubscribe":
                conn.subscriptions.difference_update(args)
                return
            conn.subscriptions.update(args)
            for topic in args:
                kind, pair = self._topics[topic]
                if kind == "book":
                    conn.send(self._book_frame(pair, "snapshot", self._views[pair], self.now_ms()))

    def _reply(self, conn: FakeConnection, op: str, req_id: Any, ok: bool, ret_msg: str) -> None:
        reply: dict[str, Any] = {
            "success": ok,
            "ret_msg": ret_msg,
            "conn_id": conn.state["conn_id"],
        }
        if req_id is not None:
            reply["req_id"] = req_id
        reply["op"] = op
        conn.send(json.dumps(reply, separators=(",", ":")))

    # -- market -----------------------------------------------------------------------
    def tick(self, ts_ms: int) -> None:
        with self._lock:  # whole tick: subscribers never see a half-published state
            for pair in self.pairs:
                _, trades = self.markets[pair].step(ts_ms)
                self._send_trades(pair, trades, ts_ms)
                self._send_delta(pair, ts_ms)

    def _top(self, pair: str) -> tuple[View, View]:
        bids, asks = self.markets[pair].top(DEPTH)
        return dict(bids), dict(asks)

    def _send_trades(self, pair: str, trades: list[MarketTrade], ts_ms: int) -> None:
        if not trades:
            return
        symbol = pair.replace("/", "")
        self.cross_seqs[pair] += self._rng.randint(1, 30)
        data = [
            {"i": str(t.trade_id), "T": t.ts_ms, "p": _num(t.price), "v": _num(t.amount),
             "S": "Buy" if t.side == 1 else "Sell", "s": symbol, "BT": False,
             "seq": self.cross_seqs[pair]}
            for t in trades
        ]  # fmt: skip
        topic = f"publicTrade.{symbol}"
        frame = {"topic": topic, "ts": ts_ms + 2, "type": "snapshot", "data": data}
        if self._publish(topic, json.dumps(frame, separators=(",", ":"))):
            self.sent_trades[pair].extend(trades)

    def _send_delta(self, pair: str, ts_ms: int) -> None:
        old_bids, old_asks = self._views[pair]
        bids, asks = self._top(pair)
        self._views[pair] = (bids, asks)
        changes = (_diff(old_bids, bids), _diff(old_asks, asks))
        if not changes[0] and not changes[1]:
            return  # nothing changed in the view: Bybit sends nothing
        self.update_ids[pair] += 1
        self.cross_seqs[pair] += self._rng.randint(1, 30)
        self._book_seqs[pair] = self.cross_seqs[pair]
        if pair in self._gaps:
            self._gaps.discard(pair)
            return
        topic = f"orderbook.{DEPTH}.{pair.replace('/', '')}"
        self._publish(topic, self._book_frame(pair, "delta", changes, ts_ms))

    def _book_frame(self, pair: str, kind: str, levels: tuple[View, View], ts_ms: int) -> str:
        symbol = pair.replace("/", "")
        data = {
            "s": symbol,
            "b": _side_rows(levels[0], True),
            "a": _side_rows(levels[1], False),
            "u": self.update_ids[pair],
            "seq": self._book_seqs[pair],
        }
        topic = f"orderbook.{DEPTH}.{symbol}"
        frame = {"topic": topic, "ts": ts_ms + 2, "type": kind, "data": data, "cts": ts_ms}
        return json.dumps(frame, separators=(",", ":"))

    def _publish(self, topic: str, text: str) -> bool:
        delivered = False
        for conn in self.open_connections():
            if topic in conn.subscriptions:
                delivered |= conn.send(text)
        return delivered
