"""A fake BitMEX realtime venue: ``/realtime``, ``op`` subscribe, ``orderBookL2`` and ``trade``.

Speaks PROTOCOLS.md §6 on 127.0.0.1 in the current row format: every book row carries ``price``
and ``timestamp``, and ids are arbitrary (each price level gets a random id from the seed when it
appears). Book changes of one market tick are sent as one message per action: deletes, then
updates, then inserts, so no intermediate book is crossed. Trade ids (``trdMatchID``) are UUIDs
derived from the seed, the pair and the market's trade number.

Truth for tests: :meth:`FakeBitmex.book`, ``sent_trades[pair]`` (live inserts delivered to at
least one subscriber) and ``history_sent[pair]`` (the trades of each ``partial``, one list per
partial). Faults: :meth:`FakeBitmex.inject_unknown_id`, error replies for unknown tables and
symbols, plus the base class's drop, silence, pause and raw frames.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from dccd_actors.exchanges.bitmex import BOOK_TABLE, TRADE_TABLE, venue_symbol
from dccd_actors.testing._market import MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange

__all__ = ["FakeBitmex"]

WELCOME_VERSION: Final = "2026-01-01T00:00:00.000Z"
BOOK_TYPES: Final = {
    "symbol": "symbol",
    "id": "long",
    "side": "symbol",
    "size": "float",  # the seeded market trades fractional sizes; XBTUSD itself says "long"
    "price": "float",
    "timestamp": "timestamp",
}
TRADE_TYPES: Final = {
    "timestamp": "timestamp",
    "symbol": "symbol",
    "side": "symbol",
    "size": "float",
    "price": "float",
    "tickDirection": "symbol",
    "trdMatchID": "guid",
    "grossValue": "long",
    "homeNotional": "float",
    "foreignNotional": "float",
    "trdType": "symbol",
}

Level = tuple[int, Decimal]
"""(side, price) of one book level."""


def _iso(ms: int) -> str:
    stamp = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def _compact(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


class FakeBitmex(FakeExchange):
    """Fake BitMEX realtime market data on loopback.

    ``history`` is how many recent trades a trade ``partial`` replays.

    Example::

        >>> from dccd_actors.testing.bitmex import FakeBitmex
        >>> with FakeBitmex(["BTC/USD"], seed=1) as fake:  # doctest: +SKIP
        ...     job = StreamJob("bitmex", ["BTC/USD"], ["trades", "book"], url=fake.url)
    """

    exchange = "bitmex"

    def __init__(self, *args: Any, history: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbols = {venue_symbol(pair): pair for pair in self.pairs}
        self.history = history
        self.history_sent: dict[str, list[list[MarketTrade]]] = {p: [] for p in self.pairs}
        self.book_partials_sent = 0
        # Rendered once when traded, so every partial replays the same rows.
        self._recent: dict[str, deque[tuple[MarketTrade, dict[str, Any]]]] = {
            p: deque(maxlen=history) for p in self.pairs
        }
        self._last_price: dict[str, Decimal] = {}
        self._rng = random.Random(self.seed)
        self._used_ids: set[int] = set()
        self._ids: dict[str, dict[Level, int]] = {}
        for pair, market in self.markets.items():
            levels = [(1, p) for p in sorted(market.bids)] + [(-1, p) for p in sorted(market.asks)]
            self._ids[pair] = {level: self._new_id() for level in levels}

    # -- truth ----------------------------------------------------------------------
    def trade_uid(self, pair: str, trade_id: int) -> str:
        """The ``trdMatchID`` of the market's trade ``trade_id``: a UUID from the seed."""
        digest = hashlib.sha256(f"{self.seed}:{pair}:{trade_id}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16], version=4))

    # -- faults ---------------------------------------------------------------------
    def inject_unknown_id(self, pair: str) -> int:
        """Send an ``update`` for an id no client ever saw; returns how many subscribers got it."""
        symbol = venue_symbol(pair)
        with self._lock:
            price = self.markets[pair].best_bid()
            row = {
                "symbol": symbol,
                "id": self._new_id(),
                "side": "Buy",
                "size": 1.0,
                "price": float(price),
                "timestamp": _iso(self.now_ms()),
            }
            msg = {"table": BOOK_TABLE, "action": "update", "data": [row]}
            return self._publish(f"{BOOK_TABLE}:{symbol}", msg)

    def drop_connections(self) -> None:
        """Cut every client connection abruptly (no close frame)."""
        # The base class closes the raw socket, which can leave websockets' reader thread
        # blocked in epoll for good (a closed fd leaves the epoll set) and stop() waiting for
        # it forever; close_socket() also wakes that thread.
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            conn.closed = True
            close_socket = getattr(conn.ws, "close_socket", None)
            if close_socket is None:  # websockets without it: the base class's way
                conn.drop()
            else:
                close_socket()

    def pause(self) -> None:
        """Stop market data; returns once no tick is in flight, so the feed is quiet."""
        super().pause()
        with self._lock:  # a tick holds the lock while it sends
            pass

    # -- protocol -------------------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        if conn.route.rstrip("/") != "/realtime":
            conn.send(_compact({"status": 404, "error": f"Not found: {conn.route}", "meta": {}}))
            conn.drop()
            return
        welcome = {
            "info": "Welcome to the BitMEX Realtime API.",
            "version": WELCOME_VERSION,
            "timestamp": _iso(self.now_ms()),
            "docs": "https://www.bitmex.com/app/wsAPI",
            "heartbeatEnabled": False,
            "limit": {},
        }
        conn.send(_compact(welcome))

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        if text == "ping":
            conn.send("pong")
            return
        try:
            request = json.loads(text)
            op, args = request["op"], request.get("args", [])
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise TypeError("args")
        except (ValueError, KeyError, TypeError):
            conn.send(_compact({"status": 400, "error": "Unable to parse request.", "meta": {}}))
            return
        for arg in args:
            with self._lock:  # the ack and partial come before any later delta
                error = self._topic_op(conn, op, arg, request)
            if error:
                conn.send(_compact({"status": 400, "error": error, "meta": {}, "request": request}))

    def _topic_op(self, conn: FakeConnection, op: str, arg: str, request: Any) -> str | None:
        table, _, symbol = arg.partition(":")
        if op not in ("subscribe", "unsubscribe"):
            return f"Unknown or unsupported op: {op}"
        if table not in (BOOK_TABLE, TRADE_TABLE):
            return f"Unknown table: {table}"
        if symbol not in self.symbols:
            return f"Unknown or expired symbol: {symbol}"
        if op == "unsubscribe":
            if arg not in conn.subscriptions:
                return f"You are not subscribed to this topic: {arg}"
            conn.subscriptions.discard(arg)
            conn.send(_compact({"success": True, "unsubscribe": arg, "request": request}))
            return None
        if arg in conn.subscriptions:
            return f"You are already subscribed to this topic: {arg}"
        conn.subscriptions.add(arg)
        conn.send(_compact({"success": True, "subscribe": arg, "request": request}))
        pair = self.symbols[symbol]
        if table == BOOK_TABLE:
            conn.send(self._book_partial(pair, symbol))
            self.book_partials_sent += 1
        else:
            recent = list(self._recent[pair])
            data = [row for _, row in recent]
            conn.send(self._partial(TRADE_TABLE, [], TRADE_TYPES, symbol, data))
            self.history_sent[pair].append([trade for trade, _ in recent])
        return None

    def _partial(
        self, table: str, keys: list[str], types: dict[str, str], symbol: str, data: list[Any]
    ) -> str:
        attributes = (
            {"symbol": "parted", "id": "sorted"}
            if table == BOOK_TABLE
            else {"timestamp": "sorted", "symbol": "grouped"}
        )
        return _compact(
            {
                "table": table,
                "action": "partial",
                "keys": keys,
                "types": types,
                "foreignKeys": {"symbol": "instrument", "side": "side"},
                "attributes": attributes,
                "filter": {"symbol": symbol},
                "data": data,
            }
        )

    def _book_partial(self, pair: str, symbol: str) -> str:
        market, ids, stamp = self.markets[pair], self._ids[pair], _iso(self.now_ms())
        levels = [(-1, p, s) for p, s in sorted(market.asks.items(), reverse=True)]
        levels += [(1, p, s) for p, s in sorted(market.bids.items(), reverse=True)]
        data = [self._book_row(symbol, ids[(side, p)], side, p, s, stamp) for side, p, s in levels]
        return self._partial(BOOK_TABLE, ["symbol", "id", "side"], BOOK_TYPES, symbol, data)

    def tick(self, ts_ms: int) -> None:
        with self._lock:
            if self._paused.is_set():
                return  # pause() raced the market loop's own check
            for pair in self.pairs:
                market = self.markets[pair]
                before = (dict(market.bids), dict(market.asks))
                _, trades = market.step(ts_ms)
                self._send_trades(pair, trades)
                self._send_book(pair, before, ts_ms)

    def _send_book(
        self, pair: str, before: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]], ts_ms: int
    ) -> None:
        # Diff the market before and after the tick: the truth, whatever path it took.
        market, ids, symbol, stamp = (
            self.markets[pair],
            self._ids[pair],
            venue_symbol(pair),
            _iso(ts_ms),
        )
        actions: dict[str, list[dict[str, Any]]] = {"delete": [], "update": [], "insert": []}
        for side, old, new in ((1, before[0], market.bids), (-1, before[1], market.asks)):
            for price in sorted(old.keys() - new.keys()):
                row = self._book_row(symbol, ids.pop((side, price)), side, price, None, stamp)
                actions["delete"].append(row)
            for price in sorted(new):
                if price not in old:
                    ids[(side, price)] = self._new_id()
                    action = "insert"
                elif new[price] != old[price]:
                    action = "update"
                else:
                    continue
                row = self._book_row(symbol, ids[(side, price)], side, price, new[price], stamp)
                actions[action].append(row)
        for action, rows in actions.items():
            if rows:
                msg = {"table": BOOK_TABLE, "action": action, "data": rows}
                self._publish(f"{BOOK_TABLE}:{symbol}", msg)

    def _send_trades(self, pair: str, trades: list[MarketTrade]) -> None:
        if not trades:
            return
        symbol = venue_symbol(pair)
        data = [self._trade_row(pair, symbol, t) for t in trades]
        self._recent[pair].extend(zip(trades, data, strict=True))
        msg = {"table": TRADE_TABLE, "action": "insert", "data": data}
        if self._publish(f"{TRADE_TABLE}:{symbol}", msg):
            self.sent_trades[pair].extend(trades)

    def _publish(self, topic: str, msg: dict[str, Any]) -> int:
        text = _compact(msg)
        return sum(
            conn.send(text) for conn in self.open_connections() if topic in conn.subscriptions
        )

    # -- rows -----------------------------------------------------------------------
    def _new_id(self) -> int:
        while True:
            ident = self._rng.randrange(1, 2**40)
            if ident not in self._used_ids:
                self._used_ids.add(ident)
                return ident

    @staticmethod
    def _book_row(
        symbol: str, ident: int, side: int, price: Decimal, size: Decimal | None, stamp: str
    ) -> dict[str, Any]:
        row: dict[str, Any] = {
            "symbol": symbol,
            "id": ident,
            "side": "Buy" if side == 1 else "Sell",
        }
        if size is not None:  # delete rows carry no size
            row["size"] = float(size)
        row["price"] = float(price)
        row["timestamp"] = stamp
        return row

    def _trade_row(self, pair: str, symbol: str, trade: MarketTrade) -> dict[str, Any]:
        last = self._last_price.get(pair, trade.price)
        self._last_price[pair] = trade.price
        tick = (
            "PlusTick"
            if trade.price > last
            else "MinusTick"
            if trade.price < last
            else "ZeroPlusTick"
        )
        notional = trade.price * trade.amount
        return {
            "timestamp": _iso(trade.ts_ms),
            "symbol": symbol,
            "side": "Buy" if trade.side == 1 else "Sell",
            "size": float(trade.amount),
            "price": float(trade.price),
            "tickDirection": tick,
            "trdMatchID": self.trade_uid(pair, trade.trade_id),
            "grossValue": int(notional * 100),
            "homeNotional": float(trade.amount),
            "foreignNotional": float(notional),
            "trdType": "Regular",
        }
