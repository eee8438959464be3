"""A fake Kraken spot WebSocket v2 venue: ``status``, ``trade``, ``book`` and ``heartbeat``.

Speaks PROTOCOLS.md §3 on 127.0.0.1 at ``/v2``: the status message on connect,
one ack per symbol, book snapshot then updates for the subscribed depth (the
client truncates: levels pushed out of scope get no delete, as on Kraken), a
CRC32 checksum in every book message, trades with ``snapshot: true`` replaying
the 50 most recent, ``{"channel":"heartbeat"}`` about once a second when idle,
``ping``/``pong``. Prices are rendered at the market's tick decimals and
quantities at 8 decimals, trailing zeros kept, as Kraken does.

``sent_trades`` holds each trade delivered to a subscriber once: live
(``update``) or replayed by a trade snapshot, except the pair's first snapshot,
which is history from before the client came (an adapter keeps it only as its
dedupe baseline).

Faults: :meth:`corrupt_next_checksum`, an error reply for unknown symbols,
plus the base class's drop, silence, pause and raw frames.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

from dccd_actors.testing._market import Market, MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange

__all__ = ["FakeKraken", "book_frame", "kraken_checksum", "trade_frame"]

DEPTHS: Final = (10, 25, 100, 500, 1000)
QTY_DECIMALS: Final = 8
TRADE_SNAPSHOT: Final = 50

Side = dict[Decimal, Decimal]


def iso(ts_ms: int) -> str:
    """RFC 3339 with microseconds, as Kraken writes times."""
    seconds, ms = divmod(ts_ms, 1000)
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%dT%H:%M:%S}.{ms * 1000:06d}Z"


def _digits(value: Decimal, decimals: int) -> str:
    return f"{value:.{decimals}f}".replace(".", "").lstrip("0")


def kraken_checksum(bids: Side, asks: Side, price_decimals: int) -> int:
    """CRC32 over the top 10 asks (ascending) then bids (descending), from Decimal values.

    Written independently of the adapter's checksum so that each checks the other.
    """
    text = "".join(
        _digits(p, price_decimals) + _digits(asks[p], QTY_DECIMALS) for p in sorted(asks)[:10]
    )
    text += "".join(
        _digits(p, price_decimals) + _digits(bids[p], QTY_DECIMALS)
        for p in sorted(bids, reverse=True)[:10]
    )
    return zlib.crc32(text.encode())


def _levels(levels: Iterable[tuple[Decimal, Decimal]], price_decimals: int) -> str:
    return ",".join(
        f'{{"price":{p:.{price_decimals}f},"qty":{q:.{QTY_DECIMALS}f}}}' for p, q in levels
    )


def book_frame(
    kind: str,
    symbol: str,
    bids: Iterable[tuple[Decimal, Decimal]],
    asks: Iterable[tuple[Decimal, Decimal]],
    checksum: int,
    price_decimals: int,
    ts_ms: int | None = None,
) -> str:
    """A v2 ``book`` snapshot or update frame with numbers at fixed decimals."""
    stamp = "" if ts_ms is None else f',"timestamp":"{iso(ts_ms)}"'
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":{json.dumps(symbol)},'
        f'"bids":[{_levels(bids, price_decimals)}],"asks":[{_levels(asks, price_decimals)}],'
        f'"checksum":{checksum}{stamp}}}]}}'
    )


def trade_frame(kind: str, symbol: str, trades: Iterable[MarketTrade], price_decimals: int) -> str:
    """A v2 ``trade`` snapshot or update frame."""
    items = ",".join(
        f'{{"symbol":{json.dumps(symbol)},"side":"{"buy" if t.side == 1 else "sell"}",'
        f'"price":{t.price:.{price_decimals}f},"qty":{t.amount:.{QTY_DECIMALS}f},'
        f'"ord_type":"market","trade_id":{t.trade_id},"timestamp":"{iso(t.ts_ms)}"}}'
        for t in trades
    )
    return f'{{"channel":"trade","type":"{kind}","data":[{items}]}}'


class FakeKraken(FakeExchange):
    """Fake Kraken spot v2 market data on loopback.

    Example::

        >>> from dccd_actors.testing.kraken import FakeKraken
        >>> with FakeKraken(["BTC/USD"], seed=1) as fake:   # doctest: +SKIP
        ...     adapter = KrakenAdapter("BTC/USD", url=fake.url)   # connects to fake.url + "/v2"
    """

    exchange = "kraken"
    heartbeat_interval = 1.0
    trade_probability = 0.6  # chance of trades per tick; 0 makes a quiet market

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # BTC/USD on Kraken has one price decimal: "30000.0" keeps its trailing zero.
        self.markets = {
            pair: Market(seed=self.seed + i, mid=Decimal("30000.0"), tick=Decimal("0.1"))
            for i, pair in enumerate(self.pairs)
        }
        self.price_decimals = 1
        self._history: dict[str, deque[MarketTrade]] = {
            p: deque(maxlen=TRADE_SNAPSHOT) for p in self.pairs
        }
        self._corrupt: set[str] = set()
        self._wire = threading.RLock()  # orders market steps, snapshots and sends

    # -- truth ----------------------------------------------------------------------
    # -- faults ---------------------------------------------------------------------
    def corrupt_next_checksum(self, pair: str) -> None:
        """Send the next book update of ``pair`` with a wrong checksum (once)."""
        with self._wire:
            self._corrupt.add(pair)

    # -- protocol -------------------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        conn.state["books"] = {}
        conn.state["last_send"] = time.monotonic()
        status = {
            "version": "2.0.0",
            "system": "online",
            "api_version": "v2",
            "connection_id": 12393906104898154338 + self.connection_count,
        }
        self._send(conn, {"channel": "status", "type": "update", "data": [status]})

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        time_in = iso(self.now_ms())
        try:
            msg = json.loads(text)
            method, req_id = msg["method"], msg.get("req_id")
        except (ValueError, KeyError, TypeError):
            self._send(conn, {"error": "Malformed request", "success": False, "time_in": time_in})
            return
        reply: dict[str, Any] = {"method": method, "req_id": req_id, "time_in": time_in}
        with self._wire:
            if method == "ping":
                self._send(conn, {**reply, "method": "pong", "time_out": iso(self.now_ms())})
            elif method in ("subscribe", "unsubscribe") and isinstance(msg.get("params"), dict):
                for symbol in msg["params"].get("symbol") or []:
                    self._subscription(conn, method, msg["params"], symbol, reply)
            else:
                self._send(
                    conn, {**reply, "error": f"Unsupported method {method}", "success": False}
                )

    def _subscription(
        self,
        conn: FakeConnection,
        method: str,
        params: dict[str, Any],
        symbol: str,
        reply: dict[str, Any],
    ) -> None:
        channel, depth = params.get("channel"), params.get("depth", 10)
        error = None
        if not isinstance(symbol, str) or symbol not in self.markets:
            error = f"Currency pair not supported {symbol}"
        elif channel not in ("book", "trade"):
            error = f"Channel not supported {channel}"
        elif channel == "book" and depth not in DEPTHS:
            error = f"Invalid depth {depth}"
        elif method == "unsubscribe" and (channel, symbol) not in conn.subscriptions:
            error = "Subscription Not Found"
        if error is not None:
            self._send(conn, {**reply, "error": error, "success": False, "symbol": symbol})
            return
        result: dict[str, Any] = {"channel": channel, "symbol": symbol}
        if channel == "book":
            result["depth"] = depth
        if method == "unsubscribe":
            conn.subscriptions.discard((channel, symbol))
            conn.state["books"].pop(symbol, None)
            self._send(
                conn, {**reply, "result": result, "success": True, "time_out": reply["time_in"]}
            )
            return
        snapshot = params.get("snapshot", channel == "book")
        result["snapshot"] = snapshot
        conn.subscriptions.add((channel, symbol))
        self._send(conn, {**reply, "result": result, "success": True, "time_out": reply["time_in"]})
        if channel == "book":
            self._book_snapshot(conn, symbol, depth)
        elif snapshot:
            trades = list(self._history[symbol])
            if self._send_text(conn, trade_frame("snapshot", symbol, trades, self.price_decimals)):
                self.record_replayed(symbol, trades)

    def tick(self, ts_ms: int) -> None:
        with self._wire:
            for pair in self.pairs:
                with self._lock:
                    _, trades = self.markets[pair].step(ts_ms, trade_prob=self.trade_probability)
                self._history[pair].extend(trades)
                for conn in self.open_connections():
                    if trades and ("trade", pair) in conn.subscriptions:
                        frame = trade_frame("update", pair, trades, self.price_decimals)
                        if self._send_text(conn, frame):
                            self.record_delivered(pair, trades)
                    if ("book", pair) in conn.subscriptions:
                        self._book_update(conn, pair, ts_ms)
            now = time.monotonic()
            for conn in self.open_connections():
                if conn.subscriptions and now - conn.state["last_send"] >= self.heartbeat_interval:
                    self._send(conn, {"channel": "heartbeat"})

    # -- book views -----------------------------------------------------------------
    def _top(self, pair: str, depth: int) -> tuple[Side, Side]:
        bids, asks = self.markets[pair].top(depth)
        return dict(bids), dict(asks)

    def _book_snapshot(self, conn: FakeConnection, pair: str, depth: int) -> None:
        bids, asks = self._top(pair, depth)
        conn.state["books"][pair] = (depth, bids, asks)
        checksum = kraken_checksum(bids, asks, self.price_decimals)
        frame = book_frame(
            "snapshot",
            pair,
            sorted(bids.items(), reverse=True),
            sorted(asks.items()),
            checksum,
            self.price_decimals,
            self.now_ms(),
        )
        self._send_text(conn, frame)

    def _book_update(self, conn: FakeConnection, pair: str, ts_ms: int) -> None:
        depth, old_bids, old_asks = conn.state["books"][pair]
        bids, asks = self._top(pair, depth)
        market = self.markets[pair]
        bid_changes = _diff(old_bids, bids, market.bids)
        ask_changes = _diff(old_asks, asks, market.asks)
        conn.state["books"][pair] = (depth, bids, asks)
        if not bid_changes and not ask_changes:
            return
        checksum = kraken_checksum(bids, asks, self.price_decimals)
        if pair in self._corrupt:
            self._corrupt.discard(pair)
            checksum = (checksum + 1) % (1 << 32)
        frame = book_frame(
            "update", pair, bid_changes, ask_changes, checksum, self.price_decimals, ts_ms
        )
        self._send_text(conn, frame)

    # -- sending --------------------------------------------------------------------
    def _send(self, conn: FakeConnection, msg: dict[str, Any]) -> bool:
        return self._send_text(conn, json.dumps(msg, separators=(",", ":")))

    def _send_text(self, conn: FakeConnection, text: str) -> bool:
        if self.silent:
            return False
        conn.state["last_send"] = time.monotonic()
        return conn.send(text)


def _diff(old: Side, new: Side, truth: Side) -> list[tuple[Decimal, Decimal]]:
    """Level changes that turn the client's view ``old`` into ``new``.

    A level that left the view but still exists in the book was pushed out of
    scope: Kraken sends nothing for it and the client's truncation drops it.
    """
    changes = [(p, Decimal(0)) for p in old if p not in new and p not in truth]
    changes += [(p, s) for p, s in new.items() if old.get(p) != s]
    return changes
