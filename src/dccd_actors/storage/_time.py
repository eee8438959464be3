"""Times as the research API accepts them: ns ints, ISO strings, datetimes, numpy datetimes."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Final

import numpy as np

__all__ = ["TimeLike", "to_ns"]

TimeLike = int | float | str | datetime | date | np.datetime64 | None

_SUB_MICRO: Final = re.compile(r"\d{2}:\d{2}:\d{2}[.,]\d{6}(\d{1,3})")


def to_ns(value: TimeLike) -> int | None:
    """ns since the epoch from an int (ns), ISO string, datetime/date or numpy datetime64.

    Naive datetimes and ISO strings without an offset are taken as UTC; ISO strings keep
    up to nanoseconds.

    Example::

        >>> to_ns("2026-11-27T00:00:01Z"), to_ns("2026-11-27T00:00:01.000000007+00:00")
        (1795737601000000000, 1795737601000000007)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[ns]").astype(np.int64))
    if isinstance(value, str):
        extra = _SUB_MICRO.search(value)  # datetime keeps microseconds; add the ns digits
        ns = to_ns(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
        return None if ns is None else ns + (int(extra.group(1).ljust(3, "0")) if extra else 0)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    if isinstance(value, date):
        return (
            int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
            * 1_000_000_000
        )
    raise TypeError(f"cannot read {value!r} as a time")
