"""dccd_actors: record live crypto trades and full L2 order books into HDF5.

Example::

    >>> from dccd_actors import Collector, CollectorConfig, StorageConfig, StreamJob, open_store
    >>> cfg = CollectorConfig(storage=StorageConfig(local_path="data"),
    ...                       stream_jobs=[StreamJob("binance", ["BTC/USDT"], ["trades", "book"])])
    >>> with Collector(cfg) as c:            # doctest: +SKIP
    ...     ...
    >>> open_store("data").trades("binance", "BTC/USDT")   # doctest: +SKIP
"""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger("dccd_actors").addHandler(logging.NullHandler())

from dccd_actors.api import Collector, open_store  # noqa: E402
from dccd_actors.config import (  # noqa: E402
    AlertConfig,
    CollectorConfig,
    RemoteConfig,
    RestartPolicy,
    StorageConfig,
    StreamJob,
    load_config,
)
from dccd_actors.errors import (  # noqa: E402
    BookOutOfSync,
    CollectorFailed,
    ConfigError,
    ConnectionLost,
    DccdError,
    GapError,
    ParseError,
    ProtocolError,
    StorageError,
)
from dccd_actors.reprocess import reprocess  # noqa: E402
from dccd_actors.storage.frames import Records, to_pandas  # noqa: E402
from dccd_actors.storage.rebuild import Book  # noqa: E402

__all__ = [
    "AlertConfig",
    "Book",
    "BookOutOfSync",
    "Collector",
    "CollectorConfig",
    "CollectorFailed",
    "ConfigError",
    "ConnectionLost",
    "DccdError",
    "GapError",
    "ParseError",
    "ProtocolError",
    "Records",
    "RemoteConfig",
    "RestartPolicy",
    "StorageConfig",
    "StorageError",
    "StreamJob",
    "__version__",
    "load_config",
    "open_store",
    "reprocess",
    "to_pandas",
]
