"""numpy records with a ``.to_pandas()`` path; pandas is optional and imported lazily.

Conversion rules (:func:`to_pandas`):

- time fields become ``datetime64[ns, UTC]`` columns: ``ts``, ``day``, ``ts_*``, ``*_ns``,
  ``*_ts_recv`` and ``*_ts_event``
  (negative values, such as ``ts_event == -1`` where the venue gives no time, become ``NaT``);
- fixed-width byte fields (``trade_uid``, ``cause``, ``detail``) become ``str``;
- array fields (``bid_price`` … of ``book_snapshots``) become one column per level:
  ``bid_price_0`` (best) … ``bid_price_{depth-1}``;
- the index is a plain ``RangeIndex``; the numpy array keeps the raw ns integers.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Records", "records", "to_pandas"]

_PANDAS_MISSING = (
    "to_pandas() needs pandas, which dccd_actors does not install: `pip install pandas`"
    " (the numpy records work without it)"
)


class Records(np.ndarray[Any, np.dtype[Any]]):
    """A numpy structured array as returned by every reader, plus :meth:`to_pandas`.

    It is an ``ndarray`` in every other respect: slices and masks stay ``Records``, while
    a single field (``arr["price"]``) is a plain ``ndarray``, so arithmetic and reductions
    give ordinary numpy results.

    Example::

        >>> import numpy as np
        >>> r = records(np.array([(1_700_000_000_000_000_000, 2.5)],
        ...                      dtype=[("ts_recv", "<i8"), ("price", "<f8")]))
        >>> r["price"].mean(), type(r[r["price"] > 0]).__name__
        (np.float64(2.5), 'Records')
        >>> r.to_pandas()["ts_recv"].dt.tz is not None   # doctest: +SKIP
        True
    """

    def __getitem__(self, key: Any) -> Any:
        # masks and slices stay Records; a single field (or a scalar) is plain numpy
        item = super().__getitem__(key)
        if isinstance(item, np.ndarray) and item.dtype.names is None:
            return item.view(np.ndarray)
        return item

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` (a ``Series`` for a single field); see the module rules."""
        return to_pandas(self)


def records(arr: np.ndarray[Any, Any]) -> Records:
    """View a structured array as :class:`Records` (no copy).

    Example::

        >>> type(records(np.zeros(2, dtype=[("ts", "<i8")]))).__name__
        'Records'
    """
    return arr.view(Records)


def _pandas() -> Any:
    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError(_PANDAS_MISSING) from exc


def _is_time(name: str) -> bool:
    return (
        name in ("ts", "day")
        or name.startswith("ts_")
        or name.endswith(("_ns", "_ts_recv", "_ts_event"))
    )


def _times(pd: Any, values: np.ndarray[Any, Any]) -> Any:
    ns = np.asarray(values, dtype=np.int64)
    stamps = ns.astype("datetime64[ns]")
    stamps[ns < 0] = np.datetime64("NaT")
    return pd.to_datetime(stamps, utc=True)


def _columns(pd: Any, arr: np.ndarray[Any, Any]) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for name in arr.dtype.names or ():
        values = np.asarray(arr[name])
        if values.ndim > 1:
            for level in range(values.shape[1]):
                columns[f"{name}_{level}"] = values[:, level]
        elif values.dtype.kind == "S":
            columns[name] = np.char.decode(values, "utf-8", "replace").astype(object)
        elif _is_time(name) and values.dtype.kind in "iu":
            columns[name] = _times(pd, values)
        else:
            columns[name] = values
    return columns


def to_pandas(data: np.ndarray[Any, Any] | Sequence[Any]) -> Any:
    """Convert reader output to pandas: structured arrays and lists of dataclass rows.

    Raises ``ImportError`` with an install hint when pandas is missing.

    Example::

        >>> df = to_pandas(store.trades("binance", "BTC/USDT"))    # doctest: +SKIP
        >>> df["ts_recv"].dt.tz                                     # doctest: +SKIP
        datetime.timezone.utc
    """
    pd = _pandas()
    if isinstance(data, np.ndarray):
        arr = np.asarray(data)
        if arr.dtype.names is None:
            return pd.Series(arr)
        return pd.DataFrame(_columns(pd, arr), index=pd.RangeIndex(len(arr)))
    rows = [
        dataclasses.asdict(row)
        if dataclasses.is_dataclass(row) and not isinstance(row, type)
        else row
        for row in data
    ]
    frame = pd.DataFrame.from_records(rows)
    for name in frame.columns:
        if _is_time(str(name)) and frame[name].dtype.kind in "iu":
            frame[name] = _times(pd, frame[name].to_numpy())
    return frame
