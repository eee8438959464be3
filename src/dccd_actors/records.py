"""The numpy dtypes that are the storage schema.

All times are int64 nanoseconds since the Unix epoch (UTC). ``ts_event`` is the
venue's time (-1 where it gives none), ``ts_recv`` the local wall clock at receipt.

Example::

    >>> import numpy as np
    >>> from dccd_actors.records import TRADES, trades_array
    >>> arr = trades_array([(1, 2, 7, b"", 100.0, 0.5, 1, 0)])
    >>> int(arr["trade_id"][0]), arr.dtype == TRADES
    (7, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "BOOK_DELTAS",
    "FLAG_LAST",
    "FLAG_SNAPSHOT",
    "GAPS",
    "GAP_CAUSES",
    "SCHEMA_VERSION",
    "TRADES",
    "PricedLevel",
    "RecordArray",
    "book_snapshot_dtype",
    "deltas_array",
    "gaps_array",
    "levels_array",
    "trades_array",
]

SCHEMA_VERSION: Final = 1
_PX: Final = attrgetter("px")
_SZ: Final = attrgetter("sz")

RecordArray = npt.NDArray[np.void]

#: Width of ``trade_uid``: a UUID in its 36-character text form.
TRADE_UID_BYTES: Final = 36
GAP_CAUSE_BYTES: Final = 16
GAP_DETAIL_BYTES: Final = 160

TRADES: Final = np.dtype(
    [
        ("ts_event", "<i8"),
        ("ts_recv", "<i8"),
        ("trade_id", "<i8"),
        ("trade_uid", f"S{TRADE_UID_BYTES}"),
        ("price", "<f8"),
        ("amount", "<f8"),
        ("side", "i1"),
        ("flags", "u1"),
    ]
)

BOOK_DELTAS: Final = np.dtype(
    [
        ("ts_event", "<i8"),
        ("ts_recv", "<i8"),
        ("seq", "<i8"),
        ("side", "i1"),
        ("price", "<f8"),
        ("size", "<f8"),
        ("flags", "u1"),
    ]
)

#: ``book_deltas.flags`` bit: the row belongs to a snapshot that replaces the book.
FLAG_SNAPSHOT: Final = 1
#: ``book_deltas.flags`` bit: last row of one venue message.
FLAG_LAST: Final = 2

GAPS: Final = np.dtype(
    [
        ("start_ns", "<i8"),
        ("end_ns", "<i8"),
        ("cause", f"S{GAP_CAUSE_BYTES}"),
        ("detail", f"S{GAP_DETAIL_BYTES}"),
    ]
)

GAP_CAUSES: Final = ("disconnect", "stale", "seq_gap", "checksum", "resync", "crash", "stop")


def book_snapshot_dtype(depth: int) -> np.dtype[Any]:
    """The ``book_snapshots`` dtype for a stream recording ``depth`` levels per side."""
    return np.dtype(
        [
            ("ts_event", "<i8"),
            ("ts_recv", "<i8"),
            ("seq", "<i8"),
            ("bid_price", "<f8", (depth,)),
            ("bid_size", "<f8", (depth,)),
            ("ask_price", "<f8", (depth,)),
            ("ask_size", "<f8", (depth,)),
        ]
    )


class PricedLevel(Protocol):
    """A book level as numbers (``px``, ``sz``): an adapter's decoded level object."""

    @property
    def px(self) -> float: ...
    @property
    def sz(self) -> float: ...


class SideLevels(Protocol):
    """One message's book changes by side (``exchanges.BookLevels``)."""

    @property
    def ts_event(self) -> int: ...
    @property
    def ts_recv(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def bids(self) -> Sequence[PricedLevel]: ...
    @property
    def asks(self) -> Sequence[PricedLevel]: ...


def levels_array(messages: Sequence[SideLevels]) -> RecordArray:
    """``BOOK_DELTAS`` rows of many messages given by side, built column by column.

    The same rows as the messages' ``BookLevels.rows()`` in order (bids then asks, side 1 and
    -1, the last row of each message flagged LAST), at a fraction of the cost per row.

    Example::

        >>> from dccd_actors.exchanges._base import BookLevels, Level
        >>> levels_array([BookLevels(5, 6, 7, [Level(100.0, 1.0)], [Level(101.0, 0.0)])])["flags"]
        array([0, 2], dtype=uint8)
    """
    flat: list[PricedLevel] = []
    counts: list[int] = []  # bids, asks, bids, asks, ... per message
    heads: list[tuple[int, int, int]] = []
    for message in messages:
        flat += message.bids
        flat += message.asks
        counts += (len(message.bids), len(message.asks))
        heads.append((message.ts_event, message.ts_recv, message.seq))
    out = np.empty(len(flat), dtype=BOOK_DELTAS)
    if not flat:
        return out
    by_side = np.array(counts, dtype=np.int64)
    per_message = by_side[0::2] + by_side[1::2]
    head = np.array(heads, dtype=np.int64)
    for column, name in enumerate(("ts_event", "ts_recv", "seq")):
        out[name] = np.repeat(head[:, column], per_message)
    out["side"] = np.repeat(np.tile(np.array([1, -1], dtype=np.int8), len(heads)), by_side)
    out["price"] = np.fromiter(map(_PX, flat), np.float64, count=len(flat))
    out["size"] = np.fromiter(map(_SZ, flat), np.float64, count=len(flat))
    out["flags"] = 0
    out["flags"][np.cumsum(per_message)[per_message > 0] - 1] = FLAG_LAST
    return out


def trades_array(rows: Sequence[tuple[Any, ...]]) -> RecordArray:
    """Build a ``TRADES`` array from tuples in field order."""
    return np.array(rows, dtype=TRADES)


def deltas_array(rows: Sequence[tuple[Any, ...]]) -> RecordArray:
    """Build a ``BOOK_DELTAS`` array from tuples in field order."""
    return np.array(rows, dtype=BOOK_DELTAS)


def gaps_array(rows: Sequence[tuple[int, int, str, str]]) -> RecordArray:
    """Build a ``GAPS`` array; causes and details are truncated to their field width."""
    encoded = [
        (
            start,
            end,
            cause.encode()[:GAP_CAUSE_BYTES],
            detail.encode("utf-8", "replace")[:GAP_DETAIL_BYTES],
        )
        for start, end, cause, detail in rows
    ]
    return np.array(encoded, dtype=GAPS)
