"""The exception tree of dccd_actors.

::

    DccdError(Exception)                      anything raised by dccd_actors
    ├── ConfigError(DccdError, ValueError)    an invalid configuration value
    ├── ProtocolError(DccdError)              exchange data we cannot use
    │   ├── ParseError(ProtocolError, ValueError)   malformed or unexpected frame
    │   └── BookOutOfSync(ProtocolError)            sequence gap or checksum mismatch
    ├── ConnectionLost(DccdError, ConnectionError)  socket closed, refused or timed out
    ├── StorageError(DccdError, OSError)      cannot open, append, seal or read a file
    ├── CollectorFailed(DccdError, RuntimeError)    the collector stopped itself
    └── GapError(DccdError, LookupError)      a requested state falls inside a recorded gap

Example::

    >>> from dccd_actors.errors import ConfigError, DccdError
    >>> issubclass(ConfigError, ValueError) and issubclass(ConfigError, DccdError)
    True
"""

from __future__ import annotations

__all__ = [
    "BookOutOfSync",
    "CollectorFailed",
    "ConfigError",
    "ConnectionLost",
    "DccdError",
    "GapError",
    "ParseError",
    "ProtocolError",
    "StorageError",
]

_EXCERPT_CHARS = 200


class DccdError(Exception):
    """Root of every exception raised by dccd_actors."""


class ConfigError(DccdError, ValueError):
    """A configuration value is invalid; the message names field, value and what is allowed."""


class ProtocolError(DccdError):
    """Exchange data that cannot be used."""


class ParseError(ProtocolError, ValueError):
    """A frame is malformed or of an unexpected shape.

    Attributes ``exchange``, ``kind`` (a short category such as ``"not_json"``)
    and ``excerpt`` (the first 200 characters of the frame) are kept for status.
    """

    def __init__(self, exchange: str, kind: str, reason: str, frame: str | bytes = "") -> None:
        text = frame if isinstance(frame, str) else repr(frame[:_EXCERPT_CHARS])
        self.exchange = exchange
        self.kind = kind
        self.excerpt = text[:_EXCERPT_CHARS]
        super().__init__(f"{exchange}: {reason}: {self.excerpt!r}")


class BookOutOfSync(ProtocolError):
    """The local book lost continuity (sequence gap, checksum mismatch, impossible state)."""

    def __init__(self, cause: str, detail: str) -> None:
        self.cause = cause
        self.detail = detail
        super().__init__(f"{cause}: {detail}")


class ConnectionLost(DccdError, ConnectionError):
    """The WebSocket connection closed, was refused or timed out."""


class StorageError(DccdError, OSError):
    """An HDF5 file cannot be opened, appended to, sealed or read."""


class CollectorFailed(DccdError, RuntimeError):
    """The collector stopped itself after an unrecoverable failure (e.g. storage)."""


class GapError(DccdError, LookupError):
    """The requested instant lies inside a recorded gap, so no exact state exists."""
