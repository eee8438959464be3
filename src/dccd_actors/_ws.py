"""WebSocket I/O: websocket-client does the handshake, TLS and sends; we read frames in bulk.

websocket-client's ``recv()`` makes several small socket reads per frame, each
releasing the GIL, which collapses throughput with many reader threads (PERF.md
§7). After the handshake we therefore read the socket in chunks of up to 256 KiB
into one reusable buffer (``recv_into``: no allocation per read) and split frames
ourselves, answering pings and close frames as RFC 6455 demands. The socket is
in blocking mode (no ``poll()`` before every read); the kernel's receive timeout
wakes an idle reader every 0.25 s, and ``close()`` shuts the socket down, which
wakes it at once. This is the only module that imports websocket-client.
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
_MIN_ROOM: Final = 64 * 1024  # compact the buffer when less than this is free at its end
_POLL_S: Final = 0.25
_SEND_TIMEOUT_S: Final = 10.0
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def _timeval(seconds: float) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO / SO_SNDTIMEO."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


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
        self._sock.settimeout(None)
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(_POLL_S))
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(_SEND_TIMEOUT_S))
        self._buf = bytearray(_READ_CHUNK)
        self._start = 0  # first byte not parsed yet
        self._end = 0  # end of the bytes received
        self._want = 0  # size of the incomplete frame at _start, once its header is known
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
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv_into
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
        self._make_room()
        while True:
            if self._closing.is_set():
                raise ConnectionLost("connection closed locally")
            try:
                with memoryview(self._buf)[self._end :] as room:
                    n = self._sock.recv_into(room)
            except (BlockingIOError, TimeoutError, ssl.SSLWantReadError):
                continue  # the receive timeout: look at _closing again
            except OSError as exc:
                if self._closing.is_set():
                    raise ConnectionLost("connection closed locally") from None
                raise ConnectionLost(f"connection lost: {exc}") from exc
            if not n:
                if self._closing.is_set():
                    raise ConnectionLost("connection closed locally")
                raise ConnectionLost("connection closed by peer (EOF)")
            self._stamp = time.time_ns()
            self.bytes_received += n
            self._end += n
            return

    def _make_room(self) -> None:
        """Free space after ``_end`` for the next read: reuse, compact or grow the buffer."""
        buf, start, end = self._buf, self._start, self._end
        if start == end:
            self._start = self._end = 0
            if len(buf) > 4 * _READ_CHUNK:  # a giant frame has passed: give the memory back
                self._buf = bytearray(_READ_CHUNK)
            return
        need = max(self._want, end - start + _MIN_ROOM)
        if len(buf) - end >= _MIN_ROOM and len(buf) - start >= need:
            return
        if start:
            buf[: end - start] = buf[start:end]
            self._start, self._end = 0, end - start
        if len(buf) < need:
            buf.extend(bytes(need - len(buf)))

    def _parse(self) -> list[str | bytes]:
        frames: list[str | bytes] = []
        buf, pos, end = self._buf, self._start, self._end
        self._want = 0
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            if b0 == 0x81 and b1 <= 126:  # fast path: a whole unmasked text frame below 64 KiB
                if b1 < 126:
                    head, length = 2, b1
                elif end - pos < 4:
                    break
                else:
                    head, length = 4, (buf[pos + 2] << 8) | buf[pos + 3]
                if length > self.max_frame_bytes:
                    self._too_large(length)
                stop = pos + head + length
                if stop > end:
                    self._want = stop - pos
                    break
                text = buf[pos + head : stop]
                try:
                    frames.append(text.decode())
                except UnicodeDecodeError:
                    frames.append(bytes(text))
                pos = stop
                continue
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if length > self.max_frame_bytes:
                self._too_large(length)
            mask = b""
            if b1 & 0x80:
                mask = bytes(buf[pos + head : pos + head + 4])
                head += 4
            stop = pos + head + length
            if stop > end:
                self._want = stop - pos
                break
            payload = bytes(buf[pos + head : stop])
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            pos = stop
            frame = self._handle(b0 & 0x80 != 0, b0 & 0x0F, payload)
            if frame is not None:
                frames.append(frame)
        if pos == end:
            self._start = self._end = 0
        else:
            self._start = pos
        return frames

    def _too_large(self, length: int) -> None:
        self.close()
        raise FrameTooLarge(
            f"frame of {length} bytes exceeds the {self.max_frame_bytes}-byte limit"
        )

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
