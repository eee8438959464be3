"""The sans-IO adapter contract shared by every venue.

An adapter holds the protocol state of **one connection for one pair**: it
builds the URL and subscription messages, turns each text frame into events and
keeps the order book with its integrity checks. It never touches sockets,
threads or clocks: receive times arrive as arguments.

Events tell the shell (the stream actor) what to store or do:

============== ===============================================================
``Trades``      trade rows (``records.TRADES`` field order) to store
``BookDeltas``  book rows (``records.BOOK_DELTAS`` field order) to store
``BookLevels``  the same rows for one message, by side, not built (the hot path)
``Send``        text to send now (subscribe, pong, resubscribe)
``FetchSnapshot`` GET this REST URL and feed the body to ``receive_snapshot``
``BookInvalid`` the book was discarded (cause, detail): a gap opens now
``BookValid``   the book is trusted again: the gap closes at ``ts_recv``
``Reconnect``   the venue offers nothing finer than a new connection
``VenueError``  the venue refused something (e.g. an unknown symbol)
============== ===============================================================

Malformed frames raise :class:`~dccd_actors.errors.ParseError`; the shell counts
them and carries on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

import msgspec
import numpy as np

from dccd_actors.errors import ConfigError, ParseError
from dccd_actors.exchanges.book import ASK, BID, OrderBook
from dccd_actors.records import FLAG_LAST, PricedLevel

__all__ = [
    "BaseAdapter",
    "BookDeltas",
    "BookInvalid",
    "BookLevels",
    "BookTop",
    "BookValid",
    "DeltaRow",
    "Event",
    "FetchSnapshot",
    "Level",
    "Reconnect",
    "Send",
    "SilenceWatch",
    "TradeRow",
    "Trades",
    "VenueError",
    "from_the_future",
    "snapshot_row",
]

TradeRow = tuple[int, int, int, bytes, float, float, int, int]
"""(ts_event, ts_recv, trade_id, trade_uid, price, amount, side, flags)"""
DeltaRow = tuple[int, int, int, int, float, float, int]
"""(ts_event, ts_recv, seq, side, price, size, flags)"""

_RFC3339: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9})\d*)?([Zz]|[+-]\d{2}:\d{2})?\Z"
)
_LOCAL_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
MS: Final = 1_000_000
SECOND: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Trades:
    rows: list[TradeRow]


@dataclass(frozen=True, slots=True)
class BookDeltas:
    rows: list[DeltaRow]


@dataclass(frozen=True, slots=True)
class BookLevels:
    """One message's book changes as level objects per side, rows not yet built.

    Levels have ``px`` and ``sz`` (:class:`~dccd_actors.records.PricedLevel`, such as
    the decoders' untracked msgspec structs, or :class:`Level`). They stand for the
    ``BookDeltas`` rows :meth:`rows` returns: bids then asks, each in message order, all with
    this ``ts_event``, ``ts_recv`` and ``seq``, the last one flagged LAST. Storage turns many
    of them into columns at once, for a fraction of the cost of a tuple per row.

    Example::

        >>> BookLevels(5, 6, 7, [Level(100.0, 1.0)], [Level(101.0, 0.0)]).rows()
        [(5, 6, 7, 1, 100.0, 1.0, 0), (5, 6, 7, -1, 101.0, 0.0, 2)]
    """

    ts_event: int
    ts_recv: int
    seq: int
    bids: Sequence[PricedLevel]
    asks: Sequence[PricedLevel]

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def rows(self) -> list[DeltaRow]:
        """The ``BookDeltas`` rows these levels stand for."""
        ts_event, ts_recv, seq = self.ts_event, self.ts_recv, self.seq
        rows: list[DeltaRow] = [(ts_event, ts_recv, seq, BID, v.px, v.sz, 0) for v in self.bids]
        rows += [(ts_event, ts_recv, seq, ASK, v.px, v.sz, 0) for v in self.asks]
        if rows:
            rows[-1] = (*rows[-1][:6], FLAG_LAST)
        return rows


class Level(msgspec.Struct, array_like=True, gc=False, frozen=True):
    """A ``(price, size)`` level; ``array_like`` decodes it from ``["price", "size"]``."""

    px: float
    sz: float


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    url: str


@dataclass(frozen=True, slots=True)
class BookInvalid:
    cause: str  # one of records.GAP_CAUSES: seq_gap, checksum, resync
    detail: str


@dataclass(frozen=True, slots=True)
class BookValid:
    ts_recv: int


@dataclass(frozen=True, slots=True)
class Reconnect:
    cause: str
    detail: str
    # the venue asked for it (a maintenance notice): reconnect at once, and it is no failure
    planned: bool = False


@dataclass(frozen=True, slots=True)
class VenueError:
    message: str


Event = (
    Trades
    | BookDeltas
    | BookLevels
    | Send
    | FetchSnapshot
    | BookInvalid
    | BookValid
    | Reconnect
    | VenueError
)


@dataclass(frozen=True, slots=True)
class BookTop:
    """The top of a trusted book at the last applied message."""

    ts_event: int
    ts_recv: int
    seq: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


MAX_AHEAD_NS: Final = 3_600_000_000_000  # a venue clock an hour ahead of ours is corrupt data


def from_the_future(rows: list[TradeRow] | list[DeltaRow], ts_recv: int) -> bool:
    """True when the first or last row's venue time is implausibly far ahead of receipt.

    Trades so stamped are skipped; book rows are kept (the book moved) with ts_event -1.
    """
    return bool(rows) and (
        rows[0][0] > ts_recv + MAX_AHEAD_NS or rows[-1][0] > ts_recv + MAX_AHEAD_NS
    )


def snapshot_row(top: BookTop, ts_recv: int, depth: int) -> tuple[Any, ...]:
    """A ``book_snapshots`` row: top ``depth`` levels, prices NaN and sizes 0 beyond the book."""
    bid_p, bid_s = np.full(depth, np.nan), np.zeros(depth)
    ask_p, ask_s = np.full(depth, np.nan), np.zeros(depth)
    if top.bids:
        bids = np.asarray(top.bids[:depth], dtype=np.float64)
        bid_p[: len(bids)], bid_s[: len(bids)] = bids[:, 0], bids[:, 1]
    if top.asks:
        asks = np.asarray(top.asks[:depth], dtype=np.float64)
        ask_p[: len(asks)], ask_s[: len(asks)] = asks[:, 0], asks[:, 1]
    return (top.ts_event, ts_recv, top.seq, bid_p, bid_s, ask_p, ask_s)


def split_pair(pair: str) -> tuple[str, str]:
    """``"BTC/USDT"`` → ``("BTC", "USDT")``; raises ConfigError otherwise."""
    base, sep, quote = pair.partition("/")
    if not sep or not base.isalnum() or not quote.isalnum():
        raise ConfigError(f"pair {pair!r} is not BASE/QUOTE with alphanumeric BASE and QUOTE")
    return base.upper(), quote.upper()


def iso_to_ns(text: str) -> int:
    """An RFC 3339 time to ns since the epoch, keeping up to nanoseconds exactly.

    The offset may be ``Z``, ``z``, ``±HH:MM`` or absent (UTC); a fraction of up to 9 digits
    is kept to the nanosecond (``datetime`` alone would round it to microseconds).

    Example::

        >>> iso_to_ns("2023-09-25T07:48:36.925533Z") == iso_to_ns("2023-09-25T09:48:36.925533+02:00")
        True
    """
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    main, frac, zone = match.groups()
    offset = "+00:00" if zone is None or zone in "Zz" else zone
    seconds = int(datetime.fromisoformat(main + offset).timestamp())
    return seconds * SECOND + int((frac or "").ljust(9, "0"))


class SilenceWatch:
    """When to ping, and when a feed is dead, for venues whose pongs prove only the socket.

    :meth:`alive` on every frame that is not a pong. :meth:`due` answers ``"stale"`` once
    ``stale_after_ns`` passed without one (counted from the first call on a connection), else
    ``"ping"`` once ``ping_after_ns`` passed without any frame and since the last ping.

    Example::

        >>> watch = SilenceWatch(ping_after_ns=5 * SECOND, stale_after_ns=10 * SECOND)
        >>> t0 = 1_700_000_000 * SECOND  # the first call on a connection
        >>> watch.due(t0, t0), watch.due(t0 + 6 * SECOND, t0), watch.due(t0 + 11 * SECOND, t0)
        (None, 'ping', 'stale')
    """

    def __init__(self, *, ping_after_ns: int, stale_after_ns: int) -> None:
        self.ping_after_ns, self.stale_after_ns = ping_after_ns, stale_after_ns
        self.reset()

    def reset(self) -> None:
        """A new connection: nothing heard, nothing sent."""
        self._opened_ns = self._alive_ns = self._last_ping_ns = 0

    def alive(self, ts_recv: int) -> None:
        self._alive_ns = ts_recv

    def quiet_ns(self, now_ns: int) -> int:
        """How long the feed has been silent (pongs aside)."""
        return now_ns - max(self._alive_ns, self._opened_ns)

    def due(self, now_ns: int, last_recv_ns: int) -> str | None:
        if self._opened_ns == 0:
            self._opened_ns = now_ns
        if self.quiet_ns(now_ns) > self.stale_after_ns:
            return "stale"
        last = max(last_recv_ns, self._opened_ns)
        if now_ns - last < self.ping_after_ns or now_ns - self._last_ping_ns < self.ping_after_ns:
            return None
        self._last_ping_ns = now_ns
        return "ping"

    def stale_detail(self, now_ns: int, silent: str) -> str:
        """Why a feed counts as dead: ``silent`` names what did not come."""
        limit = self.stale_after_ns // SECOND
        quiet = self.quiet_ns(now_ns) / SECOND
        return f"no {silent} for {quiet:.1f} s (pongs do not count; limit {limit} s)"


def _local_rest(url: str | None) -> str | None:
    """``http(s)://host:port`` of a WebSocket ``url`` on this machine, else None."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.hostname not in _LOCAL_HOSTS:
        return None
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return f"{scheme}://{parts.netloc}"


class BaseAdapter:
    """State and helpers common to the venue adapters; subclasses implement the protocol.

    Subclasses set ``exchange``, ``DEFAULT_URL`` (scheme, host and port only),
    ``DEFAULT_REST_URL`` and ``WS_PATH`` (the path ``url`` appends) and implement ``url``,
    ``on_open`` and ``receive``. A ``url`` given whole, path included
    (``ws://127.0.0.1:9/ws/v5/public``), is taken as its base: the path is not doubled.

    Without ``rest_url``, a ``url`` on this machine (``127.0.0.1``, ``localhost``, ``::1``)
    implies REST on the same host and port, as a local venue server usually offers both: a
    test never reaches the real venue for a REST book by accident.
    """

    exchange: ClassVar[str] = ""
    DEFAULT_URL: ClassVar[str] = ""
    DEFAULT_REST_URL: ClassVar[str] = ""
    WS_PATH: ClassVar[str] = ""
    CHANNELS: ClassVar[frozenset[str]] = frozenset({"trades", "book"})

    def __init__(
        self,
        pair: str,
        channels: Iterable[str] = ("trades", "book"),
        *,
        url: str | None = None,
        rest_url: str | None = None,
        checksum: bool = True,
    ) -> None:
        self.pair = pair
        self.base, self.quote = split_pair(pair)
        self.channels = frozenset(channels)
        unknown = self.channels - self.CHANNELS
        if unknown:
            raise ConfigError(
                f"{self.exchange}: channels {sorted(unknown)} not supported; allowed {sorted(self.CHANNELS)}"
            )
        self.base_url = (url or self.DEFAULT_URL).rstrip("/")
        if self.WS_PATH and self.base_url.endswith(self.WS_PATH):
            self.base_url = self.base_url[: -len(self.WS_PATH)]
        self.rest_base_url = (rest_url or _local_rest(url) or self.DEFAULT_REST_URL).rstrip("/")
        self.checksum = checksum
        self.book = OrderBook()
        self.book_live = False
        self.last_recv_ns = 0
        self._book_ts_event = -1
        self._book_ts_recv = -1
        self._book_seq = -1

    # -- the contract ---------------------------------------------------------------
    def url(self) -> str:
        """The full WebSocket URL to connect to."""
        raise NotImplementedError

    def on_open(self) -> list[Event]:
        """Events to act on right after the connection opens (subscriptions)."""
        raise NotImplementedError

    def receive(self, text: str, ts_recv: int) -> list[Event]:
        """Interpret one text frame."""
        raise NotImplementedError

    def receive_snapshot(self, body: str, ts_recv: int) -> list[Event]:
        """Feed the body of a REST snapshot requested with ``FetchSnapshot``."""
        raise ParseError(
            self.exchange, "unexpected_snapshot", "this venue takes no REST snapshot", body
        )

    def snapshot_failed(self, reason: str) -> list[Event]:
        """The REST snapshot could not be fetched; by default, ask for a new connection."""
        return [Reconnect("resync", f"snapshot fetch failed: {reason}")]

    def keepalive(self, now_ns: int) -> list[Event]:
        """Called about once a second; returns application pings where the venue wants them."""
        return []

    def resume_trades(self, last_trade_id: int) -> None:
        """Trades up to ``last_trade_id`` are already stored (by an earlier run).

        Called once, before the first connection of a run. Venues that replay recent trades
        when a connection subscribes skip those; the others need nothing.
        """

    def book_top(self, depth: int) -> BookTop | None:
        """The top ``depth`` levels of the book, or None while it is not trusted."""
        if not self.book_live:
            return None
        bids, asks = self.book.top(depth)
        return BookTop(self._book_ts_event, self._book_ts_recv, self._book_seq, bids, asks)

    def checkpoint_rows(self, ts_recv: int) -> list[DeltaRow]:
        """The trusted book as a SNAPSHOT run (empty while untrusted), so a new segment can be
        rebuilt on its own."""
        if not self.book_live:
            return []
        return self.book.snapshot_rows(self._book_ts_event, ts_recv, self._book_seq)

    # -- helpers for subclasses -----------------------------------------------------
    def _mark_book(self, ts_event: int, ts_recv: int, seq: int) -> None:
        self._book_ts_event, self._book_ts_recv, self._book_seq = ts_event, ts_recv, seq

    def _invalidate(self, cause: str, detail: str) -> BookInvalid:
        """Discard the book; the caller adds the venue's resync action."""
        self.book.clear()
        self.book_live = False
        return BookInvalid(cause, detail)

    def _parse_error(self, kind: str, reason: str, text: str) -> ParseError:
        return ParseError(self.exchange, kind, reason, text)
