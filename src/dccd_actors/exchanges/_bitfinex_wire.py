"""Bitfinex API v2 wire formats: exact-text JSON, levels, trades, the checksum, the trailer.

Pure parsing plus :class:`TrailerReader`, the SEQ_ALL/TIMESTAMP numbers at the end of
every channel array; :mod:`dccd_actors.exchanges.bitfinex` holds the protocol state.
Numbers are kept as their exact wire text (:class:`Num`) because the checksum runs over
it (``7e-7`` must stay ``7e-7``).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from dccd_actors.exchanges._base import MS, TradeRow
from dccd_actors.exchanges.book import ASK, BID, OrderBook

__all__ = [
    "OB_CHECKSUM",
    "SEQ_ALL",
    "TIMESTAMP",
    "Level",
    "Num",
    "Trailer",
    "TrailerReader",
    "book_checksum",
    "checksum_of",
    "integer",
    "level",
    "loads",
    "trade_row",
    "venue_symbol",
]

TIMESTAMP: Final = 32768
SEQ_ALL: Final = 65536
OB_CHECKSUM: Final = 131072
CHECKSUM_LEVELS: Final = 25
#: Any ms epoch time since 1973 exceeds this; a SEQ_ALL count never will (3 years at 1000/s).
MS_TIME_FLOOR: Final = 100_000_000_000
_LEGACY_CODES: Final = {"USDT": "UST"}
_NUMBER: Final = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_INTEGER: Final = re.compile(r"-?[0-9]+")

Level = tuple[int, float, float, str, str]
"""(side, price, size, price_text, signed amount_text)"""


class Num(str):
    """The exact text of a JSON number; JSON strings stay plain ``str``."""

    __slots__ = ()


def loads(text: str) -> Any:
    # NaN/Infinity become Num too and then fail the number grammar, as they must.
    return json.loads(text, parse_float=Num, parse_int=Num, parse_constant=Num)


def number(value: Any) -> float:
    if not isinstance(value, Num) or not _NUMBER.fullmatch(value):
        raise ValueError(f"not a JSON number: {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"not finite: {value!r}")
    return result


def integer(value: Any) -> int:
    if not isinstance(value, Num) or not _INTEGER.fullmatch(value):
        raise ValueError(f"not an integer: {value!r}")
    return int(value)


def venue_symbol(base: str, quote: str) -> str:
    """Bitfinex trading symbol: ``t`` + legs, colon-separated when a leg is longer than 3.

    Example::

        >>> venue_symbol("BTC", "USDT"), venue_symbol("AAVE", "USD")
        ('tBTCUST', 'tAAVE:USD')
    """
    base = _LEGACY_CODES.get(base, base)
    quote = _LEGACY_CODES.get(quote, quote)
    return f"t{base}:{quote}" if len(base) > 3 or len(quote) > 3 else f"t{base}{quote}"


def checksum_of(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """Bitfinex's signed CRC32 over exact tokens, bid/ask interleaved, best first.

    Levels are ``(price_text, amount_text)`` with the amount signed as on the
    wire (asks negative); pass at most 25 per side (PROTOCOLS.md §5.7).

    Example::

        >>> checksum_of([("7e-7", "10")], [("0.0000011", "-5")])
        876735023
    """
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def book_checksum(book: OrderBook) -> int:
    """The Bitfinex checksum of ``book`` (levels set with their exact wire tokens)."""
    bids, asks = book.top_text(CHECKSUM_LEVELS)
    return checksum_of(bids, asks)


def level(item: Any) -> Level:
    """One P0 level ``[PRICE, COUNT, AMOUNT, …]`` (later fields may be appended)."""
    price, count, amount = number(item[0]), integer(item[1]), number(item[2])
    if not price > 0 or count < 0:
        raise ValueError(f"bad level {item!r}")
    if count == 0:  # a delete: AMOUNT 1 names the bids, -1 the asks
        if amount not in (1.0, -1.0):
            raise ValueError(f"delete with AMOUNT {item[2]!r}")
        return (BID if amount > 0 else ASK), price, 0.0, str(item[0]), str(item[2])
    if amount == 0:
        raise ValueError(f"level with AMOUNT 0: {item!r}")
    return (BID if amount > 0 else ASK), price, abs(amount), str(item[0]), str(item[2])


def trade_row(item: Any, ts_recv: int) -> TradeRow:
    """``[ID, MTS, AMOUNT, PRICE, …]``: AMOUNT > 0 means the taker bought."""
    trade_id, mts = integer(item[0]), integer(item[1])
    amount, price = number(item[2]), number(item[3])
    if not price > 0 or amount == 0 or mts < 0:
        raise ValueError(f"bad trade {item!r}")
    return (mts * MS, ts_recv, trade_id, b"", price, abs(amount), 1 if amount > 0 else -1, 0)


class Trailer(NamedTuple):
    """The numbers after a channel array's data, as the confirmed flags ask for them."""

    seq: int | None
    ts_ms: int | None
    checked: bool  # seq was compared with the frame before
    gap: str | None  # why the sequence broke, when it did


class TrailerReader:
    """Reads the SEQ_ALL and TIMESTAMP numbers of one connection's arrays; checks continuity.

    PROTOCOLS.md §5.7 says "the sequence is the last element, and TIMESTAMP, if enabled, is
    appended too", and §5.2 only that each flag "appends" its number: the order of the two is
    not pinned (the fixture ✔ covers SEQ_ALL alone). So, when two numbers are present:

    1. one >= 1e11 (an epoch ms time) beside a smaller one: the smaller is the sequence;
    2. else the one equal to the previous sequence + 1, if exactly one is;
    3. else (first frame, a gap, or both fit) the order learned earlier on this connection;
    4. else the documented order, read as "sequence, then TIMESTAMP appended after it" (what
       our fake venue sends). This guess stays revisable: until a frame confirms it, the
       other reading of the last frame also counts as continuous, so a venue with the other
       order and a clock that is not epoch ms costs one misread ``ts`` on the first frame of
       a connection, not a sequence gap.

    A lone number (SEQ_ALL alone, or a heartbeat without its TIMESTAMP) is the sequence.
    """

    def __init__(self) -> None:
        self._last: int | None = None
        self._alt: int | None = None  # the other reading of the last frame's seq, while a guess
        self._seq_first: bool | None = None  # the order learned on this connection

    def read(self, rest: Sequence[Any], flags: int) -> Trailer:
        want_seq, want_ts = bool(flags & SEQ_ALL), bool(flags & TIMESTAMP)
        numbers = [integer(x) for x in rest[: want_seq + want_ts]]
        if any(n < 0 for n in numbers):
            raise ValueError(f"negative SEQ_ALL/TIMESTAMP number in {numbers}")
        if not want_seq:
            return Trailer(None, numbers[0] if numbers else None, False, None)
        if not numbers or min(numbers) >= MS_TIME_FLOOR:
            raise ValueError(f"no SEQ_ALL number in {numbers}")
        expected = self._expected()
        if len(numbers) == 1:
            seq, ts_ms, self._alt = numbers[0], None, None
        else:
            seq, ts_ms = self._split(numbers[0], numbers[1], expected)
        self._last = seq
        if expected and seq not in expected:
            return Trailer(seq, ts_ms, True, f"SEQ_ALL expected {expected[0]}, got {seq}")
        return Trailer(seq, ts_ms, bool(expected), None)

    def _expected(self) -> tuple[int, ...]:
        """The values that continue the sequence: two while the last frame's order is a guess."""
        if self._last is None:
            return ()
        return (self._last + 1,) if self._alt is None else (self._last + 1, self._alt + 1)

    def _split(self, a: int, b: int, expected: tuple[int, ...]) -> tuple[int, int]:
        """(seq, ts_ms) of two trailing numbers, by the rules of the class docstring."""
        seq_first: bool | None
        if (a < MS_TIME_FLOOR) != (b < MS_TIME_FLOOR):
            seq_first = a < MS_TIME_FLOOR
        elif (a in expected) != (b in expected):
            seq_first = a in expected
        else:
            seq_first = self._seq_first
        if seq_first is None:  # nothing learned yet: the documented order, kept revisable
            self._alt = b
            return a, b
        self._seq_first, self._alt = seq_first, None
        return (a, b) if seq_first else (b, a)
