"""Number checks of the adapters' general parsing paths: wire texts to floats, JSON to ints.

The typed decoders check numbers in C; frames they refuse come through here, which must name
exactly what is wrong (``ValueError`` with the offending value).

Example::

    >>> decimal("30244.5", positive=True), int64("-1", quoted=True), ms_to_ns(1652459225381)
    (30244.5, -1, 1652459225381000000)
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

__all__ = ["INT64", "decimal", "int64", "ms_to_ns"]

INT64: Final = 2**63
_DECIMAL: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_QUOTED_INT: Final = re.compile(r"-?[0-9]+")
_MS: Final = 1_000_000


def decimal(text: Any, *, positive: bool) -> float:
    """A JSON number written as a string (``"0.0012"``), finite, > 0 if ``positive`` else >= 0."""
    if not isinstance(text, str) or not _DECIMAL.fullmatch(text):
        raise ValueError(f"not a decimal number text: {text!r}")
    value = float(text)
    if not math.isfinite(value) or (positive and value <= 0.0):
        raise ValueError(f"number out of range: {text!r}")
    return value


def int64(value: Any, *, quoted: bool = False) -> int:
    """An int64 from a JSON integer, or also from a string of digits when ``quoted`` (OKX)."""
    if quoted and isinstance(value, str) and _QUOTED_INT.fullmatch(value):
        value = int(value)
    if type(value) is not int or not -INT64 < value < INT64:
        raise ValueError(f"not an int64: {value!r}")
    return value


def ms_to_ns(value: Any, *, quoted: bool = False) -> int:
    """Epoch milliseconds (see :func:`int64`) to nanoseconds, range-checked."""
    ms = int64(value, quoted=quoted)
    if not 0 <= ms < INT64 // _MS:
        raise ValueError(f"timestamp out of range: {value!r}")
    return ms * _MS
