"""A fake Binance spot venue: combined streams, diff depth with ``U``/``u``, REST depth.

Speaks PROTOCOLS.md §1 on 127.0.0.1: ``/stream?streams=<sym>@trade/<sym>@depth@100ms``
(and ``SUBSCRIBE`` by message), ``GET /api/v3/depth?symbol=…&limit=…``. Numbers are
rendered with 8 decimals, as Binance does. Faults: :meth:`skip_sequence`,
:meth:`serve_stale_snapshot`, :meth:`send_server_shutdown`, plus the base class's drop,
silence and raw frames.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from dccd_actors.testing._market import MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange

__all__ = ["FakeBinance"]


def _num(value: Decimal) -> str:
    return f"{value:.8f}"


class FakeBinance(FakeExchange):
    """Fake Binance spot market data on loopback.

    Example::

        >>> from dccd_actors.testing import FakeBinance
        >>> with FakeBinance(["BTC/USDT"], seed=1) as fake:   # doctest: +SKIP
        ...     job = StreamJob("binance", ["BTC/USDT"], ["trades", "book"], url=fake.url, rest_url=fake.rest_url)
    """

    exchange = "binance"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.symbols = {pair.replace("/", ""): pair for pair in self.pairs}
        self.update_ids = {pair: 1_000_000 + 1000 * i for i, pair in enumerate(self.pairs)}
        self._skip: dict[str, int] = {}
        self._stale: dict[str, int] = {}
        self.snapshots_served = 0

    # -- truth ----------------------------------------------------------------------
    def last_update_id(self, pair: str) -> int:
        return self.update_ids[pair]

    # -- faults ---------------------------------------------------------------------
    def skip_sequence(self, pair: str, count: int = 3) -> None:
        """Withhold the next ``count`` depth updates of ``pair`` (the book still moves)."""
        with self._lock:
            self._skip[pair] = self._skip.get(pair, 0) + count

    def serve_stale_snapshot(self, pair: str, behind: int = 5) -> None:
        """Answer the next REST depth of ``pair`` with a ``lastUpdateId`` ``behind`` the stream.

        Only the id is stale (the levels are current): a client must see from the id alone,
        against the next diff event, that the snapshot is too old (PROTOCOLS §1.6 step 2).
        """
        with self._lock:
            self._stale[pair] = behind

    def send_server_shutdown(self) -> None:
        """Announce maintenance on every connection, as ``!serverShutdown``."""
        frame = json.dumps(
            {"stream": "!serverShutdown", "data": {"e": "serverShutdown", "E": self.now_ms()}}
        )
        self.broadcast_raw(frame)

    # -- protocol -------------------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        streams = conn.query.get("streams", "")
        conn.state["combined"] = conn.route.startswith("/stream")
        for name in filter(None, streams.split("/")):
            conn.subscriptions.add(name)

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        try:
            msg = json.loads(text)
            method, params, req_id = msg["method"], msg.get("params", []), msg.get("id")
        except (ValueError, KeyError, TypeError):
            conn.send(json.dumps({"code": 3, "msg": "Invalid JSON", "id": None}))
            return
        if method == "SUBSCRIBE":
            conn.subscriptions.update(params)
            conn.send(json.dumps({"result": None, "id": req_id}))
        elif method == "UNSUBSCRIBE":
            conn.subscriptions.difference_update(params)
            conn.send(json.dumps({"result": None, "id": req_id}))
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send(json.dumps({"result": sorted(conn.subscriptions), "id": req_id}))
        else:
            conn.send(
                json.dumps(
                    {"code": 2, "msg": f"Invalid request: unknown method {method}", "id": req_id}
                )
            )

    def handle_http(self, route: str, query: dict[str, str]) -> tuple[int, str] | None:
        if route != "/api/v3/depth":
            return None
        pair = self.symbols.get(query.get("symbol", ""))
        if pair is None:
            return 400, json.dumps({"code": -1121, "msg": "Invalid symbol."})
        limit = min(int(query.get("limit", "100")), 5000)
        with self._lock:
            bids, asks = self.markets[pair].top(limit)
            body = {
                "lastUpdateId": self.update_ids[pair] - self._stale.pop(pair, 0),
                "bids": [[_num(p), _num(s)] for p, s in bids],
                "asks": [[_num(p), _num(s)] for p, s in asks],
            }
            self.snapshots_served += 1
        return 200, json.dumps(body)

    def tick(self, ts_ms: int) -> None:
        for pair in self.pairs:
            with self._lock:
                changes, trades = self.markets[pair].step(ts_ms)
                first = self.update_ids[pair] + 1
                self.update_ids[pair] += len(changes)
                last = self.update_ids[pair]
                if self._skip.get(pair):
                    self._skip[pair] -= 1
                    continue
            self._send_trades(pair, trades, ts_ms)
            self._send_depth(pair, changes, first, last, ts_ms)

    def _send_trades(self, pair: str, trades: list[MarketTrade], ts_ms: int) -> None:
        stream = pair.replace("/", "").lower() + "@trade"
        symbol = pair.replace("/", "")
        for trade in trades:
            data = {
                "e": "trade",
                "E": ts_ms,
                "s": symbol,
                "t": trade.trade_id,
                "p": _num(trade.price),
                "q": _num(trade.amount),
                "T": trade.ts_ms,
                "m": trade.side == -1,
                "M": True,
            }
            if self._publish(stream, data):
                self.sent_trades[pair].append(trade)

    def _send_depth(
        self,
        pair: str,
        changes: list[tuple[int, Decimal, Decimal]],
        first: int,
        last: int,
        ts_ms: int,
    ) -> None:
        stream = pair.replace("/", "").lower() + "@depth@100ms"
        data = {
            "e": "depthUpdate",
            "E": ts_ms,
            "s": pair.replace("/", ""),
            "U": first,
            "u": last,
            "b": [[_num(p), _num(s)] for side, p, s in changes if side == 1],
            "a": [[_num(p), _num(s)] for side, p, s in changes if side == -1],
        }
        self._publish(stream, data)

    def _publish(self, stream: str, data: dict[str, Any]) -> bool:
        delivered = False
        for conn in self.open_connections():
            if stream in conn.subscriptions:
                frame = {"stream": stream, "data": data} if conn.state.get("combined") else data
                delivered |= conn.send(json.dumps(frame, separators=(",", ":")))
        return delivered
