"""Binance wire formats: the typed decoders, the JSON loader and the level parser.

Pure functions and types, no protocol state: :mod:`dccd_actors.exchanges.binance` holds that.
Well-formed ``@trade`` and ``@depth`` frames are decoded and checked in C by msgspec; every
other frame goes through :data:`loads` (orjson where installed) and is checked in Python.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, Final, cast

import msgspec

from dccd_actors.exchanges._base import MS

__all__ = [
    "INF",
    "Depth",
    "PriceLevel",
    "Trade",
    "decode_typed",
    "levels_of",
    "loads",
    "unsubscribed_kind",
]

INF: Final = float("inf")


def _json_loads() -> Callable[[str], Any]:
    """``orjson.loads`` where orjson is installed (about 3 x faster), else ``json.loads``.

    Both raise a ``ValueError`` on text that is not JSON; orjson also refuses the non-standard
    ``NaN``/``Infinity`` literals and integers beyond 64 bits, which are garbage here anyway.
    """
    try:
        module = importlib.import_module("orjson")
    except ImportError:
        return json.loads
    return cast(Callable[[str], Any], module.loads)


loads: Final = _json_loads()

_Price = Annotated[float, msgspec.Meta(gt=0.0, le=sys.float_info.max)]
_Size = Annotated[float, msgspec.Meta(ge=0.0, le=sys.float_info.max)]
_Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Millis = Annotated[int, msgspec.Meta(ge=0, le=(2**63 - 1) // MS)]


class Trade(msgspec.Struct, tag_field="e", tag="trade"):
    s: str
    t: _Id
    p: _Price
    q: _Price
    T: _Millis
    m: bool


# array_like: a level ["price", "size"] decodes to a struct, checked in C; gc=False: these
# objects are kept until the stream's flush (BookLevels) and never feed the cyclic GC
class PriceLevel(msgspec.Struct, array_like=True, gc=False, frozen=True):
    px: _Price
    sz: _Size


class Depth(msgspec.Struct, tag_field="e", tag="depthUpdate"):
    E: _Millis
    s: str
    U: _Id
    u: _Id
    b: list[PriceLevel]
    a: list[PriceLevel]


class _Combined(msgspec.Struct):
    data: Trade | Depth


# strict=False: Binance quotes its numbers ("p":"43000.01"); msgspec converts them in C
decode_typed: Final = msgspec.json.Decoder(_Combined, strict=False).decode


class _AggTrade(msgspec.Struct):  # checked, never stored: we subscribe to @trade
    s: str
    a: _Id
    p: _Price
    q: _Price
    T: _Millis
    m: bool


class _BookTicker(msgspec.Struct):  # checked, never stored; it has no "e" field
    u: _Id
    s: str
    b: _Size
    B: _Size
    a: _Size
    A: _Size


_TICKER_KEYS: Final = frozenset({"u", "s", "b", "B", "a", "A"})


def unsubscribed_kind(msg: dict[str, Any], data: dict[str, Any]) -> type[msgspec.Struct] | None:
    """The type of a stream we know but never subscribe to (§1.2 table), else None."""
    if data.get("e") == "aggTrade":
        return _AggTrade
    stream = msg.get("stream")
    if isinstance(stream, str):
        ticker = stream.endswith("@bookTicker")
    else:  # the raw layout: a bookTicker is known by its keys alone
        ticker = data.keys() >= _TICKER_KEYS
    return _BookTicker if ticker and "e" not in data else None


def levels_of(pairs: list[list[str]], side: int) -> list[tuple[int, float, float]]:
    out: list[tuple[int, float, float]] = []
    append = out.append
    for price_text, size_text in pairs:
        price, size = float(price_text), float(size_text)
        if not (0.0 < price < INF and 0.0 <= size < INF):
            raise ValueError(f"bad level {price_text!r} {size_text!r}")
        append((side, price, size))
    return out
