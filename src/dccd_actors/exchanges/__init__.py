"""Sans-IO venue adapters, looked up by exchange id.

Example::

    >>> from dccd_actors.exchanges import adapter_class
    >>> adapter_class("binance").__name__
    'BinanceAdapter'
"""

from __future__ import annotations

import importlib
from typing import Final

from dccd_actors.errors import ConfigError
from dccd_actors.exchanges._base import BaseAdapter

__all__ = ["ADAPTER_CLASSES", "adapter_class"]

#: exchange id → (module, class name); modules are imported on first use.
ADAPTER_CLASSES: Final = {
    "binance": ("dccd_actors.exchanges.binance", "BinanceAdapter"),
    "bybit": ("dccd_actors.exchanges.bybit", "BybitAdapter"),
    "kraken": ("dccd_actors.exchanges.kraken", "KrakenAdapter"),
    "okx": ("dccd_actors.exchanges.okx", "OkxAdapter"),
    "bitfinex": ("dccd_actors.exchanges.bitfinex", "BitfinexAdapter"),
    "bitmex": ("dccd_actors.exchanges.bitmex", "BitmexAdapter"),
}


def adapter_class(exchange: str) -> type[BaseAdapter]:
    """The adapter class of ``exchange``; ConfigError for an unknown venue."""
    try:
        module_name, class_name = ADAPTER_CLASSES[exchange]
    except KeyError:
        raise ConfigError(
            f"exchange={exchange!r} is invalid: expected one of {sorted(ADAPTER_CLASSES)}"
        ) from None
    cls: type[BaseAdapter] = getattr(importlib.import_module(module_name), class_name)
    return cls
