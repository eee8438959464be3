"""WebSocket I/O: websocket-client does the handshake, TLS and sends; we read frames in bulk.

websocket-client's ``recv()`` makes several small socket reads per frame, each
releasing the GIL, which collapses throughput with many reader threads (PERF.md
§7). After the handshake we therefore read the socket in 256 KiB chunks and
split frames ourselves, answering pings and close frames as RFC 6455 demands.
This is the only module that imports websocket-client.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
import time
from typing import Any, Final

import websocket

from dccd_actors.errors import ConnectionLost

__all__ = ["Connection", "FrameTooLarge", "connect"]

_READ_CHUNK: Final = 256 * 1024
_POLL_S: Final = 0.25
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class FrameTooLarge(ConnectionLost):
    """A frame exceeded the configured size limit; the connection was closed."""


def connect(
    url: str,
    *,
    timeout: float = 10.0,
    max_frame_bytes: int = 8 << 20,
    sslopt: dict[str, Any] | None = None,
) -> Connection:
    """Open a WebSocket; TLS certificates are verified unless ``sslopt`` says otherwise.

    Example::

        >>> conn = connect("wss://stream.binance.com:9443/ws/btcusdt@trade")  # doctest: +SKIP
    """
    try:
        ws = websocket.create_connection(
            url,
            timeout=timeout,
            skip_utf8_validation=True,
            enable_multithread=True,
            sslopt=sslopt or {"cert_reqs": ssl.CERT_REQUIRED},
        )
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        raise ConnectionLost(f"cannot connect to {url}: {exc}") from exc
    return Connection(ws, max_frame_bytes)


class Connection:
    """An open WebSocket: ``read_batch()`` in one thread, ``send``/``close`` from any."""

    def __init__(self, ws: Any, max_frame_bytes: int) -> None:
        self._ws = ws
        self._sock: socket.socket = ws.sock
        self._sock.settimeout(_POLL_S)
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = OP_TEXT
        self._closing = threading.Event()
        self.max_frame_bytes = max_frame_bytes
        self.bytes_received = 0
        self._stamp = 0

    def send(self, text: str) -> None:
        """Send a text frame."""
        try:
            self._ws.send(text)
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc

    def ping(self, payload: bytes = b"") -> None:
        """Send a protocol-level PING frame."""
        try:
            self._ws.ping(payload)
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"ping failed: {exc}") from exc

    def close(self) -> None:
        """Close the connection; a blocked ``read_batch`` returns within 0.25 s."""
        if self._closing.is_set():
            return
        self._closing.set()
        with contextlib.suppress(Exception):
            self._ws.close(timeout=0.2)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    def read_batch(self) -> tuple[int, list[str | bytes]]:
        """Block until at least one data frame arrives; return (receive time ns, frames).

        Text frames come back as ``str`` (or ``bytes`` when not valid UTF-8), binary
        frames as ``bytes``. Raises ConnectionLost when the connection ends.
        """
        while True:
            frames = self._parse()
            if frames:
                return self._stamp, frames
            self._fill()

    def _fill(self) -> None:
        while True:
            if self._closing.is_set():
                raise ConnectionLost("connection closed locally")
            try:
                data = self._sock.recv(_READ_CHUNK)
            except TimeoutError:
                continue
            except ssl.SSLWantReadError:
                continue
            except OSError as exc:
                raise ConnectionLost(f"connection lost: {exc}") from exc
            if not data:
                raise ConnectionLost("connection closed by peer (EOF)")
            self._stamp = time.time_ns()
            self.bytes_received += len(data)
            self._buffer += data
            return

    def _parse(self) -> list[str | bytes]:
        frames: list[str | bytes] = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if length > self.max_frame_bytes:
                self.close()
                raise FrameTooLarge(
                    f"frame of {length} bytes exceeds the {self.max_frame_bytes}-byte limit"
                )
            mask = b""
            if b1 & 0x80:
                mask = bytes(buf[pos + head : pos + head + 4])
                head += 4
            end = pos + head + length
            if len(buf) < end:
                break
            payload = bytes(buf[pos + head : end])
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            pos = end
            frame = self._handle(b0 & 0x80 != 0, b0 & 0x0F, payload)
            if frame is not None:
                frames.append(frame)
        if pos:
            del buf[:pos]
        return frames

    def _handle(self, fin: bool, opcode: int, payload: bytes) -> str | bytes | None:
        if opcode == OP_PING:
            with contextlib.suppress(websocket.WebSocketException, OSError):
                self._ws.pong(payload)
            return None
        if opcode == OP_PONG:
            return None
        if opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")
            self.close()
            raise ConnectionLost(f"closed by peer: code {code} {reason}".rstrip())
        if opcode == OP_CONT or not fin:
            if opcode != OP_CONT:
                self._fragment_opcode = opcode
                self._fragments = []
            self._fragments.append(payload)
            if sum(len(f) for f in self._fragments) > self.max_frame_bytes:
                self.close()
                raise FrameTooLarge(
                    f"fragmented message exceeds the {self.max_frame_bytes}-byte limit"
                )
            if not fin:
                return None
            payload, opcode = b"".join(self._fragments), self._fragment_opcode
            self._fragments = []
        if opcode == OP_TEXT:
            try:
                return payload.decode("utf-8")
            except UnicodeDecodeError:
                return payload
        return payload
