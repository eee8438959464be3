"""OKX v5 wire formats: typed decoders, the general parsers, the checksum and delta rows.

Pure functions and types, no protocol state: :mod:`dccd_actors.exchanges.okx` holds that.
``books`` pushes are decoded twice by typed msgspec decoders, once for the wire texts (the
checksum) and once for the numbers (checked in C: prices > 0, sizes >= 0, all finite, JSON
number syntax), which costs less than converting and checking each text in Python. A frame
either decoder refuses takes the general path (:func:`book_part`), which names the problem.
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Sequence
from itertools import chain
from typing import Annotated, Any, Final, NamedTuple

import msgspec

from dccd_actors.exchanges._base import MS, TradeRow
from dccd_actors.exchanges._numbers import decimal, int64, ms_to_ns
from dccd_actors.exchanges.book import LevelText
from dccd_actors.records import PricedLevel

__all__ = [
    "BookPart",
    "NumberBooks",
    "book_part",
    "decode_numbers",
    "decode_texts",
    "okx_checksum",
    "rest_book",
    "trade_row",
]

_SIDES: Final = {"buy": 1, "sell": -1}

_Price = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]
_Size = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
_Int64 = Annotated[int, msgspec.Meta(ge=-(2**63) + 1, le=2**63 - 1)]
_Millis = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // MS)]


class _Arg(msgspec.Struct):
    channel: str
    instId: str


# array_like: a level [px, sz, "0", numOrders] decodes to its first two fields, the rest
# skipped unallocated; gc=False: these short-lived objects never feed the cyclic GC
class _TextLevel(msgspec.Struct, array_like=True, gc=False):
    px: str
    sz: str


class _NumberLevel(msgspec.Struct, array_like=True, gc=False):
    px: _Price
    sz: _Size


class _NumberPart(msgspec.Struct):
    asks: list[_NumberLevel]
    bids: list[_NumberLevel]
    ts: _Millis
    checksum: _Int64 = 0
    seqId: _Int64 = -1
    prevSeqId: _Int64 | None = None


class NumberBooks(msgspec.Struct):
    arg: _Arg
    action: str
    data: list[_NumberPart]


class _TextPart(msgspec.Struct):
    asks: list[_TextLevel]
    bids: list[_TextLevel]


class _TextBooks(msgspec.Struct):
    data: list[_TextPart]


# strict=False: OKX quotes numbers and times ("ts":"1652459225381"); msgspec converts in C
decode_numbers: Final = msgspec.json.Decoder(NumberBooks, strict=False).decode
# only where the book keeps texts for checksums: OKX has sent checksum 0 since June 2026
decode_texts: Final = msgspec.json.Decoder(_TextBooks, strict=False).decode


class BookPart(NamedTuple):
    """One element of a ``books`` push, decoded: per side the numbers and the wire texts."""

    ts_event: int
    seq: int
    prev: int | None  # None: the message has no prevSeqId (recordings before 2023)
    checksum: int
    bids: Sequence[PricedLevel]
    bid_texts: Sequence[LevelText]
    asks: Sequence[PricedLevel]
    ask_texts: Sequence[LevelText]


def okx_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """OKX's signed CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:…`` over the levels given, best first.

    Pass the top 25 per side; a side that runs out is simply skipped.

    Example::

        >>> okx_checksum([("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")])
        -1881014294
    """
    levels: list[tuple[str, str]]
    if len(bids) == len(asks):  # the usual case: interleave by slicing
        levels = [*bids, *asks]
        levels[::2], levels[1::2] = bids, asks
    else:
        levels = []
        for i in range(max(len(bids), len(asks))):
            levels += bids[i : i + 1]
            levels += asks[i : i + 1]
    crc = zlib.crc32(":".join(chain.from_iterable(levels)).encode())
    return crc - 2**32 if crc >= 2**31 else crc


def book_part(part: Any) -> BookPart:
    """A ``books`` data element parsed by the general path, every field checked."""
    bids, bid_texts = _levels(part["bids"])
    asks, ask_texts = _levels(part["asks"])
    prev = int64(part["prevSeqId"], quoted=True) if "prevSeqId" in part else None
    seq, checksum = (
        int64(part.get("seqId", -1), quoted=True),
        int64(part.get("checksum", 0), quoted=True),
    )
    return BookPart(
        ms_to_ns(part["ts"], quoted=True), seq, prev, checksum, bids, bid_texts, asks, ask_texts
    )


def _levels(raw: Any) -> tuple[list[_NumberLevel], list[_TextLevel]]:
    if not isinstance(raw, list):
        raise TypeError("book side is not a list")
    numbers, texts = [], []
    for level in raw:
        if not isinstance(level, list) or len(level) < 2:
            raise ValueError(f"level is not [price, size, …]: {level!r}")
        price_text, size_text = level[0], level[1]
        numbers.append(
            _NumberLevel(decimal(price_text, positive=True), decimal(size_text, positive=False))
        )
        texts.append(_TextLevel(price_text, size_text))
    return numbers, texts


def trade_row(trade: Any, ts_recv: int) -> TradeRow:
    trade_id = int64(trade["tradeId"], quoted=True)
    price, amount = decimal(trade["px"], positive=True), decimal(trade["sz"], positive=True)
    ts_event, side = ms_to_ns(trade["ts"], quoted=True), _SIDES[trade["side"]]
    return (ts_event, ts_recv, trade_id, b"", price, amount, side, 0)


def rest_book(body: str) -> BookPart:
    """The ``GET /api/v5/market/books`` answer as a snapshot part; ``seqId`` is required.

    Raises ValueError, KeyError or TypeError naming what is wrong, and ValueError for a
    refusal (``code`` other than ``"0"``).
    """
    msg = json.loads(body)
    if not isinstance(msg, dict):
        raise TypeError("the answer is not a JSON object")
    if str(msg.get("code")) != "0":
        raise ValueError(f"okx refused: code {msg.get('code')!r}, msg {msg.get('msg')!r}")
    data = msg["data"]
    if not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
        raise ValueError("data is not a list of one book")
    if "seqId" not in data[0]:
        raise KeyError("seqId (needed to bridge the book to the WebSocket updates)")
    return book_part(data[0])
