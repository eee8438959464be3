"""A minimal shell for adapter tests: one adapter over a real socket, no actors."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from websocket import (
    WebSocket,
    WebSocketConnectionClosedException,
    WebSocketTimeoutException,
    create_connection,
)

from dccd_actors.exchanges._base import (
    BaseAdapter,
    BookDeltas,
    BookLevels,
    Event,
    FetchSnapshot,
    Send,
    TradeRow,
    Trades,
)
from dccd_actors.testing import FakeExchange

E = TypeVar("E")


class Client:
    """Runs one adapter over a real socket: sends what it asks for, keeps what it emits."""

    def __init__(self, adapter: BaseAdapter) -> None:
        self.adapter = adapter
        self.events: list[Event] = []
        self.frames: list[str] = []
        self.ws: WebSocket | None = None

    @classmethod
    def opened(cls, adapter: BaseAdapter) -> Client:
        """A client already connected (the adapter's ``on_open`` events sent)."""
        client = cls(adapter)
        client.connect()
        return client

    def connect(self) -> None:
        self.ws = create_connection(self.adapter.url(), timeout=5)
        self.ws.settimeout(0.05)
        self.act(self.adapter.on_open())

    def act(self, events: list[Event]) -> None:
        """Keep the adapter's events; send what it asks to send, fetch what it asks to fetch."""
        for event in events:
            # a BookLevels is kept as the BookDeltas it stands for: tests compare rows
            self.events.append(BookDeltas(event.rows()) if isinstance(event, BookLevels) else event)
            if isinstance(event, Send) and self.ws is not None:
                self.ws.send(event.text)
            elif isinstance(event, FetchSnapshot):
                with urllib.request.urlopen(event.url, timeout=5) as answer:
                    body = answer.read().decode()
                self.act(self.adapter.receive_snapshot(body, time.time_ns()))

    def pump(self, until: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Feed frames to the adapter until ``until()`` holds, the socket ends or time runs out."""
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                return False
            try:
                text = self.ws.recv()
            except WebSocketTimeoutException:
                continue
            except (WebSocketConnectionClosedException, OSError):
                return until()
            assert isinstance(text, str), "every frame of these venues is text"
            self.frames.append(text)
            self.act(self.adapter.receive(text, time.time_ns()))
        return True

    def drain(self, quiet: float = 0.3) -> None:
        """Read until no frame came for ``quiet`` seconds."""
        seen = [len(self.frames), time.monotonic()]

        def settled() -> bool:
            if len(self.frames) != seen[0]:
                seen[:] = [len(self.frames), time.monotonic()]
            return time.monotonic() - seen[1] > quiet

        assert self.pump(settled, timeout=5)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def trades(self) -> list[TradeRow]:
        return [row for e in self.of(Trades) for row in e.rows]

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()


def settle(fake: FakeExchange, timeout: float = 3.0) -> None:
    """Wait for closing handshakes to finish: FakeExchange.stop() drops sockets under them."""
    deadline = time.monotonic() + timeout
    while any(not c.closed for c in fake.connections) and time.monotonic() < deadline:
        time.sleep(0.01)
