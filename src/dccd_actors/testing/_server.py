"""The loopback WebSocket (and REST) server under every fake exchange.

A :class:`FakeExchange` runs a ``websockets`` server on 127.0.0.1 in a
background thread and a market thread that calls :meth:`FakeExchange.tick`
every ``interval`` seconds. Venue subclasses speak their protocol by
overriding the ``handle_*`` hooks and ``tick``; this module knows no venue.
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from dccd_actors.testing._market import Market, MarketTrade

# plausible price levels so that several fake pairs do not look alike
_MIDS = {"BTC": Decimal("30000.00"), "ETH": Decimal("2000.00"), "SOL": Decimal("150.00")}

__all__ = ["FakeConnection", "FakeExchange"]

logger = logging.getLogger("dccd_actors.testing")
_ws_logger = logging.getLogger("dccd_actors.testing.websockets")
_ws_logger.setLevel(logging.WARNING)  # connection chatter of the fake is noise


class FakeConnection:
    """One client connection as the fake sees it."""

    def __init__(self, ws: ServerConnection, path: str) -> None:
        self.ws = ws
        self.path = path
        split = urlsplit(path)
        self.route = split.path
        self.query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        self.subscriptions: set[Any] = set()
        self.state: dict[str, Any] = {}
        self.received: list[str] = []
        self.send_timeout = 0.0
        self.dropped_as_slow = False
        self._lock = threading.Lock()
        self.closed = False

    def send(self, text: str) -> bool:
        """Send one text frame; False when the connection is gone."""
        if self.closed:
            return False
        started = time.monotonic()
        try:
            with self._lock:
                self.ws.send(text)
            return True
        except (ConnectionClosed, OSError, RuntimeError):
            self.closed = True
            if self.send_timeout and time.monotonic() - started >= self.send_timeout * 0.9:
                self.dropped_as_slow = (
                    True  # like a venue, give up on a client that stopped reading
                )
                self.drop()
            return False

    def send_bytes(self, data: bytes) -> bool:
        """Send one binary frame (for hostile-input tests)."""
        try:
            with self._lock:
                self.ws.send(data)
            return True
        except (ConnectionClosed, OSError, RuntimeError):
            self.closed = True
            return False

    def drop(self) -> None:
        """Cut the TCP connection without a close handshake."""
        self.closed = True
        # close_socket() also wakes websockets' reader thread; closing the raw socket may not
        self.ws.close_socket()


class FakeExchange:
    """Base class of the fake venues: a real server on loopback, a seeded market.

    Use as a context manager; ``url`` and ``rest_url`` are the bases to put in a
    ``StreamJob``. Subclasses implement :meth:`handle_connect`,
    :meth:`handle_message`, :meth:`handle_http` and :meth:`tick`.
    """

    exchange: ClassVar[str] = ""

    def __init__(
        self,
        pairs: Sequence[str] = ("BTC/USDT",),
        *,
        seed: int = 0,
        interval: float = 0.02,
        replay: str | Path | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        send_timeout: float = 0.0,
        ws_ping_interval: float | None = None,
    ) -> None:
        self.pairs = list(pairs)
        self.seed = seed
        self.interval = interval
        self.markets = {
            pair: Market(seed=seed + i, mid=_MIDS.get(pair.split("/")[0], Decimal("100.00")))
            for i, pair in enumerate(self.pairs)
        }
        self.sent_trades: dict[str, list[MarketTrade]] = {pair: [] for pair in self.pairs}
        self._recorded: dict[str, set[int]] = {pair: set() for pair in self.pairs}
        self._replayed: set[str] = set()  # pairs whose first trade snapshot was served
        self.connections: list[FakeConnection] = []
        self.connection_count = 0
        self.replay_frames = _load_replay(replay) if replay else []
        self._port = port
        self._ssl = ssl_context
        # a client that stops reading for this long is dropped, as venues do (0: never)
        self.send_timeout = send_timeout
        # WebSocket PING frames every this many seconds, as Binance sends every 20 s (None: none)
        self.ws_ping_interval = ws_ping_interval
        self._lock = threading.RLock()
        self._server: Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._silent_until = 0.0
        self._paused = threading.Event()
        self._tick_lock = threading.Lock()
        self._clock_ms = int(time.time() * 1000)

    # -- lifecycle ------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("fake exchange not started")
        return int(self._server.socket.getsockname()[1])

    @property
    def url(self) -> str:
        """WebSocket base to use as ``StreamJob.url``."""
        return f"{'wss' if self._ssl else 'ws'}://127.0.0.1:{self.port}"

    @property
    def rest_url(self) -> str:
        """REST base to use as ``StreamJob.rest_url``."""
        return f"{'https' if self._ssl else 'http'}://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start serving in background threads; returns self."""
        self._server = serve(
            self._serve_connection,
            "127.0.0.1",
            self._port,
            process_request=self._process_request,
            compression=None,
            ssl=self._ssl,
            ping_interval=self.ws_ping_interval,
            max_size=None,
            logger=_ws_logger,
        )
        server_thread = threading.Thread(
            target=self._server.serve_forever, name=f"fake-{self.exchange}", daemon=True
        )
        market_thread = threading.Thread(
            target=self._market_loop, name=f"fake-{self.exchange}-market", daemon=True
        )
        self._threads = [server_thread, market_thread]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Close every connection and the server; joins the threads."""
        self._stop.set()
        self.drop_connections()
        if self._server is not None:
            self._server.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- faults ---------------------------------------------------------------------
    def drop_connections(self) -> None:
        """Cut every client connection abruptly (no close frame)."""
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            conn.drop()

    def go_silent(self, seconds: float) -> None:
        """Send nothing at all (no data, no heartbeat, no pong) for ``seconds``."""
        self._silent_until = time.monotonic() + seconds

    @property
    def silent(self) -> bool:
        return time.monotonic() < self._silent_until

    def pause(self) -> None:
        """Stop generating market data until :meth:`resume` (connections stay open).

        Returns once no tick is in flight, so the feed is quiet and the truth is final.
        """
        self._paused.set()
        with self._tick_lock:
            pass

    def resume(self) -> None:
        self._paused.clear()

    def broadcast_raw(self, text: str | bytes) -> int:
        """Send a raw frame to every open connection; returns how many got it."""
        sent = 0
        for conn in self.open_connections():
            ok = conn.send(text) if isinstance(text, str) else conn.send_bytes(text)
            sent += ok
        return sent

    @property
    def slow_clients_dropped(self) -> int:
        """Connections dropped because the client stopped reading (``send_timeout``)."""
        with self._lock:
            return sum(1 for c in self.connections if c.dropped_as_slow)

    def open_connections(self) -> list[FakeConnection]:
        with self._lock:
            return [c for c in self.connections if not c.closed]

    def wait_for_subscribers(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` connections hold at least one subscription."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for c in self.open_connections() if c.subscriptions) >= count:
                return True
            time.sleep(0.01)
        return False

    # -- truth --------------------------------------------------------------------
    def book(self, pair: str) -> tuple[dict[float, float], dict[float, float]]:
        """The venue's current book of ``pair`` as float ``{price: size}`` per side."""
        market = self.markets[pair]
        with self._lock:
            return float_book(market.bids, market.asks)

    def record_replayed(self, pair: str, trades: list[MarketTrade]) -> None:
        """Truth for venues whose trade snapshots replay recent trades: a pair's first snapshot
        is history from before its subscriber came (known, never recorded); later ones replay
        what a reconnecting subscriber may have missed."""
        if pair in self._replayed:
            self.record_delivered(pair, trades)
        else:
            self._replayed.add(pair)
            self._recorded[pair].update(t.trade_id for t in trades)

    def record_delivered(self, pair: str, trades: Iterable[MarketTrade]) -> None:
        """Add trades a subscriber received to ``sent_trades``, each id once."""
        for trade in trades:
            if trade.trade_id not in self._recorded[pair]:
                self._recorded[pair].add(trade.trade_id)
                self.sent_trades[pair].append(trade)

    # -- hooks for venues -----------------------------------------------------------
    def handle_connect(self, conn: FakeConnection) -> None:
        """A client connected (``conn.path`` holds the request path and query)."""

    def handle_message(self, conn: FakeConnection, text: str) -> None:
        """A client sent a text frame."""

    def handle_http(self, route: str, query: dict[str, str]) -> tuple[int, str] | None:
        """Answer a plain HTTP GET (REST); None means 404."""
        return None

    def tick(self, ts_ms: int) -> None:
        """Generate and send one interval of market data."""

    def now_ms(self) -> int:
        """The fake's clock in ms: wall time, strictly increasing across calls."""
        self._clock_ms = max(self._clock_ms + 1, int(time.time() * 1000))
        return self._clock_ms

    # -- internals ------------------------------------------------------------------
    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        split = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        answer = self.handle_http(split.path, query)
        status, body = answer if answer is not None else (404, json.dumps({"msg": "not found"}))
        headers = Headers(
            {"Content-Type": "application/json", "Content-Length": str(len(body.encode()))}
        )
        return Response(status, "OK" if status == 200 else "Error", headers, body.encode())

    def _serve_connection(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws, ws.request.path if ws.request else "/")
        if self.send_timeout:
            conn.send_timeout = self.send_timeout
            seconds = int(self.send_timeout)
            timeval = struct.pack("ll", seconds, int((self.send_timeout - seconds) * 1e6))
            ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        with self._lock:
            self.connections.append(conn)
            self.connection_count += 1
        try:
            if self.replay_frames:
                self._replay(conn)
            self.handle_connect(conn)
            for message in ws:
                if isinstance(message, str):
                    conn.received.append(message)
                    if not self.silent:
                        self.handle_message(conn, message)
        except (ConnectionClosed, OSError):
            pass
        finally:
            conn.closed = True

    def _replay(self, conn: FakeConnection) -> None:
        for frame in self.replay_frames:
            if not conn.send(frame):
                return

    def _market_loop(self) -> None:
        while not self._stop.wait(self.interval):
            with self._tick_lock:
                if self._paused.is_set() or self.silent or self.replay_frames:
                    continue
                try:
                    self.tick(self.now_ms())
                except Exception:  # a fake's bug must be visible, not kill the thread silently
                    logger.exception("fake %s tick failed", self.exchange)


def float_book(
    bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
) -> tuple[dict[float, float], dict[float, float]]:
    """Exact Decimal levels as the float ``{price: size}`` dicts tests compare with."""
    return (
        {float(p): float(v) for p, v in bids.items()},
        {float(p): float(v) for p, v in asks.items()},
    )


def _load_replay(path: str | Path) -> list[str]:
    """Frames of a recorded session: fixture JSONL or a raw journal (``*.raw.jsonl.gz``)."""
    path = Path(path)
    if path.name.endswith(".gz"):
        raw = gzip.decompress(path.read_bytes()).decode("utf-8")
    else:
        raw = path.read_text()
    frames = []
    for line in raw.splitlines():
        if line.strip():
            entry = json.loads(line)
            if "frame" in entry:
                frames.append(entry["frame"])
    return frames
