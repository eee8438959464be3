"""Fake exchanges on loopback for tests: real WebSocket servers speaking each venue's protocol.

Example::

    >>> from dccd_actors.testing import FakeBinance
    >>> fake = FakeBinance(["BTC/USDT"], seed=7).start()   # doctest: +SKIP
    >>> fake.url                                            # doctest: +SKIP
    'ws://127.0.0.1:40123'
"""

from dccd_actors.testing._market import Market, MarketTrade
from dccd_actors.testing._server import FakeConnection, FakeExchange
from dccd_actors.testing.binance import FakeBinance
from dccd_actors.testing.bitfinex import FakeBitfinex
from dccd_actors.testing.bitmex import FakeBitmex
from dccd_actors.testing.bybit import FakeBybit
from dccd_actors.testing.kraken import FakeKraken
from dccd_actors.testing.okx import FakeOkx

__all__ = [
    "FakeBinance",
    "FakeBitfinex",
    "FakeBitmex",
    "FakeBybit",
    "FakeConnection",
    "FakeExchange",
    "FakeKraken",
    "FakeOkx",
    "Market",
    "MarketTrade",
]
