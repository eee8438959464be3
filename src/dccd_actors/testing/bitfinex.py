"""A fake Bitfinex API v2 venue: ``conf`` flags, ``book`` (P0) and ``trades`` channels.

Speaks PROTOCOLS.md §5 on 127.0.0.1 at ``/ws/2``: the ``info`` event on connect,
the ``conf`` ack, ``subscribed`` events with a ``chanId``, a book snapshot then
one frame per level change inside the subscribed ``len`` window (the server
keeps the window, so levels pushed out get a delete), ``[chanId,"cs",n]``
checksums with OB_CHECKSUM, the SEQ_ALL number and then the TIMESTAMP ms
appended as the flags demand, ``[chanId,"hb",seq]`` when a channel is idle,
trade snapshots (newest first), ``te`` at once and the same trade as ``tu`` on
the next tick. Numbers are rendered as JavaScript prints them (``7e-7``,
``205000``, ``-0.5``), which is what the checksum runs over.

``sent_trades`` holds each trade delivered to a subscriber once: live (``te``)
or replayed by a trade snapshot, except the pair's first snapshot, which is
history from before the client came (an adapter keeps it only as its dedupe
baseline).

Faults: :meth:`corrupt_next_checksum`, :meth:`inject_sequence_gap`, an error
reply for unknown symbols, plus the base class's drop, silence, pause and raw frames.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections import deque
from decimal import Decimal
from typing import Any, Final

from dccd_actors.testing._market import Market, MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange

__all__ = ["FakeBitfinex", "bitfinex_checksum", "js_number", "level_token"]

# Protocol constants spelled out here rather than imported, so the fake checks the adapter.
FLAG_TIMESTAMP: Final = 32768
FLAG_SEQ_ALL: Final = 65536
FLAG_OB_CHECKSUM: Final = 131072
LENGTHS: Final = ("1", "25", "100", "250")
TRADE_SNAPSHOT: Final = 30

Side = dict[Decimal, Decimal]


def js_number(value: Decimal) -> str:
    """``value`` as JavaScript's ``Number#toString`` prints it (exponent below 1e-6)."""
    if value == 0:
        return "0"
    value = value.normalize()
    if abs(value) < Decimal("1e-6"):
        return format(value, "e")  # Decimal("7E-7") → "7e-7", "6.6E-7" → "6.6e-7"
    return format(value, "f")


def fake_symbol(pair: str) -> str:
    base, quote = (leg.replace("USDT", "UST") for leg in pair.split("/"))
    return f"t{base}:{quote}" if len(base) > 3 or len(quote) > 3 else f"t{base}{quote}"


def _count(size: Decimal) -> int:
    return 1 + int(size * 1000) % 4  # P0 order count: any positive number will do


def level_token(side: int, price: Decimal, size: Decimal) -> str:
    """One P0 level ``[PRICE,COUNT,AMOUNT]``; size 0 is a delete (AMOUNT ±1)."""
    if size == 0:
        return f"[{js_number(price)},0,{side}]"
    return f"[{js_number(price)},{_count(size)},{js_number(side * size)}]"


def bitfinex_checksum(bids: Side, asks: Side) -> int:
    """Signed CRC32 over the top 25 levels, bid/ask interleaved, asks negative.

    Written independently of the adapter's checksum so that each checks the other.
    """
    top_bids = sorted(bids, reverse=True)[:25]
    top_asks = sorted(asks)[:25]
    parts: list[str] = []
    for i in range(max(len(top_bids), len(top_asks))):
        if i < len(top_bids):
            parts += [js_number(top_bids[i]), js_number(bids[top_bids[i]])]
        if i < len(top_asks):
            parts += [js_number(top_asks[i]), js_number(-asks[top_asks[i]])]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _trade_token(trade: MarketTrade) -> str:
    amount = js_number(trade.side * trade.amount)
    return f"[{trade.trade_id},{trade.ts_ms},{amount},{js_number(trade.price)}]"


class FakeBitfinex(FakeExchange):
    """Fake Bitfinex v2 market data on loopback.

    Example::

        >>> from dccd_actors.testing.bitfinex import FakeBitfinex
        >>> with FakeBitfinex(["BTC/USD"], seed=1) as fake:   # doctest: +SKIP
        ...     adapter = BitfinexAdapter("BTC/USD", url=fake.url)   # fake.url + "/ws/2"
    """

    exchange = "bitfinex"
    heartbeat_interval = 1.0  # Bitfinex: ~15 s; shorter so tests see heartbeats
    trade_probability = 0.6  # chance of trades per tick; 0 makes a quiet market

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bitfinex quotes 5 significant digits: whole dollars at 30000.
        self.markets = {
            pair: Market(seed=self.seed + i, mid=Decimal("30000"), tick=Decimal("1"))
            for i, pair in enumerate(self.pairs)
        }
        self.symbols = {fake_symbol(pair): pair for pair in self.pairs}
        self._history: dict[str, deque[MarketTrade]] = {
            p: deque(maxlen=TRADE_SNAPSHOT) for p in self.pairs
        }
        self._corrupt: set[str] = set()
        self._next_chan = 17_000
        self._wire = threading.RLock()  # orders market steps, snapshots, seq numbers and sends

    # -- truth ----------------------------------------------------------------------
    # -- faults ---------------------------------------------------------------------
    def corrupt_next_checksum(self, pair: str) -> None:
        """Send the next ``cs`` frame of ``pair`` with a wrong checksum (once)."""
        with self._wire:
            self._corrupt.add(pair)

    def inject_sequence_gap(self) -> None:
        """Lose the next array frame of every open connection: its SEQ_ALL number is used,
        the frame is never sent (a trade in it is not in ``sent_trades``)."""
        with self._wire:
            for conn in self.open_connections():
                conn.state["skip"] = True

    # -- protocol -------------------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        conn.state.update(flags=0, seq=0, chans={}, tu=[])
        info = {"event": "info", "version": 2, "serverId": "fake", "platform": {"status": 1}}
        self._send(conn, info)

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        try:
            msg = json.loads(text)
            event = msg["event"]
        except (ValueError, KeyError, TypeError):
            self._send(conn, {"event": "error", "msg": "unknown event", "code": 10000})
            return
        with self._wire:
            if event == "conf":
                conn.state["flags"] = int(msg.get("flags", 0))
                self._send(conn, {"event": "conf", "status": "OK", "flags": conn.state["flags"]})
            elif event == "ping":
                self._send(conn, {"event": "pong", "ts": self.now_ms(), "cid": msg.get("cid")})
            elif event == "subscribe":
                self._subscribe(conn, msg)
            elif event == "unsubscribe":
                chan = msg.get("chanId")
                if conn.state["chans"].pop(chan, None) is None:
                    self._send(conn, {"event": "error", "msg": "not subscribed", "code": 10401})
                else:
                    self._send(conn, {"event": "unsubscribed", "status": "OK", "chanId": chan})
            else:
                self._send(conn, {"event": "error", "msg": "unknown event", "code": 10000})

    def _subscribe(self, conn: FakeConnection, msg: dict[str, Any]) -> None:
        channel, symbol, length = msg.get("channel"), msg.get("symbol"), msg.get("len", "25")
        pair = self.symbols.get(symbol) if isinstance(symbol, str) else None
        error: tuple[int, str] | None = None
        if channel not in ("book", "trades"):
            error = (10302, "channel: unknown")
        elif pair is None:
            error = (10300, "symbol: invalid")
        elif channel == "book" and (msg.get("prec", "P0") != "P0" or length not in LENGTHS):
            error = (10300, "book: only P0 with len 1, 25, 100 or 250 is served")
        elif any(
            c["channel"] == channel and c["pair"] == pair for c in conn.state["chans"].values()
        ):
            error = (10301, "subscribe: dup")
        if error is not None or pair is None or not isinstance(symbol, str):
            code, text = error or (10300, "subscribe failed")
            reply = {"event": "error", "msg": text, "code": code, "channel": channel}
            self._send(conn, {**reply, "symbol": symbol})
            return
        self._next_chan += 1
        chan = self._next_chan
        reply = {"event": "subscribed", "channel": channel, "chanId": chan, "symbol": symbol}
        state: dict[str, Any] = {"channel": channel, "pair": pair, "last": time.monotonic()}
        conn.state["chans"][chan] = state
        if channel == "trades":
            self._send(conn, {**reply, "pair": symbol[1:]})
            trades = list(self._history[pair])
            body = ",".join(_trade_token(t) for t in reversed(trades))  # newest first
            if self._send_array(conn, chan, f"[{body}]"):
                self.record_replayed(pair, trades)
            return
        self._send(conn, {**reply, "prec": "P0", "freq": "F0", "len": length, "pair": symbol[1:]})
        bids, asks = self.markets[pair].top(int(length))
        state.update(len=int(length), bids=dict(bids), asks=dict(asks))
        tokens = [level_token(1, p, s) for p, s in bids] + [level_token(-1, p, s) for p, s in asks]
        self._send_array(conn, chan, "[" + ",".join(tokens) + "]")

    def tick(self, ts_ms: int) -> None:
        with self._wire:
            for conn in self.open_connections():
                for chan, trade in conn.state["tu"]:
                    if chan in conn.state["chans"]:
                        self._send_array(conn, chan, f'"tu",{_trade_token(trade)}')
                conn.state["tu"] = []
            for pair in self.pairs:
                with self._lock:
                    _, trades = self.markets[pair].step(ts_ms, trade_prob=self.trade_probability)
                self._history[pair].extend(trades)
                for conn in self.open_connections():
                    for chan, state in list(conn.state["chans"].items()):
                        if state["pair"] != pair:
                            continue
                        if state["channel"] == "trades":
                            self._trades(conn, chan, pair, trades)
                        else:
                            self._book_update(conn, chan, state)
            now = time.monotonic()
            for conn in self.open_connections():
                for chan, state in conn.state["chans"].items():
                    if now - state["last"] >= self.heartbeat_interval:
                        self._send_array(conn, chan, '"hb"', stamp=False)

    def _trades(
        self, conn: FakeConnection, chan: int, pair: str, trades: list[MarketTrade]
    ) -> None:
        for trade in trades:
            if self._send_array(conn, chan, f'"te",{_trade_token(trade)}'):
                self.record_delivered(pair, [trade])
                conn.state["tu"].append((chan, trade))

    def _book_update(self, conn: FakeConnection, chan: int, state: dict[str, Any]) -> None:
        pair, length = state["pair"], state["len"]
        bids_top, asks_top = self.markets[pair].top(length)
        bids, asks = dict(bids_top), dict(asks_top)
        frames = _diff(1, state["bids"], bids) + _diff(-1, state["asks"], asks)
        state["bids"], state["asks"] = bids, asks
        for token in frames:
            self._send_array(conn, chan, token)
        if frames and conn.state["flags"] & FLAG_OB_CHECKSUM:
            checksum = bitfinex_checksum(bids, asks)
            if pair in self._corrupt:
                self._corrupt.discard(pair)
                checksum = checksum + 1 if checksum < (1 << 31) - 1 else checksum - 1
            self._send_array(conn, chan, f'"cs",{checksum}')

    # -- sending --------------------------------------------------------------------
    def _send(self, conn: FakeConnection, msg: dict[str, Any]) -> bool:
        return False if self.silent else conn.send(json.dumps(msg, separators=(",", ":")))

    def _send_array(
        self, conn: FakeConnection, chan: int, body: str, *, stamp: bool = True
    ) -> bool:
        """``[chan,body]`` plus the SEQ_ALL number and the TIMESTAMP the connection asked for."""
        if self.silent:
            return False
        parts = [str(chan), body]
        flags = conn.state["flags"]
        if flags & FLAG_SEQ_ALL:
            conn.state["seq"] += 1
            if conn.state.pop("skip", False):
                return False
            parts.append(str(conn.state["seq"]))
        if stamp and flags & FLAG_TIMESTAMP:
            parts.append(str(self.now_ms()))
        state = conn.state["chans"].get(chan)
        if state is not None:
            state["last"] = time.monotonic()
        return conn.send("[" + ",".join(parts) + "]")


def _diff(side: int, old: Side, new: Side) -> list[str]:
    """Level frames that turn the window ``old`` into ``new``: deletes first, then sets."""
    tokens = [level_token(side, p, Decimal(0)) for p in old if p not in new]
    tokens += [level_token(side, p, s) for p, s in new.items() if old.get(p) != s]
    return tokens
