"""WebSocket I/O: websocket-client does the handshake and TLS; we frame, send and read in bulk.

websocket-client's ``recv()`` makes several small socket reads per frame, each
releasing the GIL, which collapses throughput with many reader threads (PERF.md
§7). After the handshake the socket is therefore switched to non-blocking mode
and read by one shared loop (``actors/_readloop.py``) through ``read_ready()``:
one ``recv_into`` of up to 256 KiB into a reusable buffer (no allocation per
read), frames split here, pings and close frames answered as RFC 6455 demands.
Sends frame the message with websocket-client's ``ABNF`` and wait (``poll``) for
room when the kernel buffer is full. This is the only module that imports
websocket-client.
"""

from __future__ import annotations

import contextlib
import select
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
_SEND_TIMEOUT_S: Final = 10.0
_CLOSE_SEND_TIMEOUT_S: Final = 0.2
_FINISH_FRAME_S: Final = 0.2  # the most a frame already begun may wait to be finished
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_WOULD_BLOCK: Final = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)

Chunk = tuple[int, list[str | bytes]]
"""The frames one socket read completed, with that read's receive time (ns)."""


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
            sslopt=sslopt or {"cert_reqs": ssl.CERT_REQUIRED},
        )
    except (websocket.WebSocketException, OSError, ValueError) as exc:
        raise ConnectionLost(f"cannot connect to {url}: {exc}") from exc
    return Connection(ws, max_frame_bytes)


class Connection:
    """An open WebSocket: ``read_ready()`` in one thread, ``send``/``close`` from any.

    The socket is non-blocking. A reading loop that ``adopt()``s the connection owns
    its file descriptor from then on: ``close()`` only shuts the socket down (which
    wakes the loop) and the loop closes it with ``release()``.
    """

    def __init__(self, ws: Any, max_frame_bytes: int) -> None:
        self._ws = ws  # keeps websocket-client's object (and its socket) alive
        self._sock: socket.socket = ws.sock
        self._sock.setblocking(False)
        self._buf = bytearray(_READ_CHUNK)
        self._start = 0  # first byte not parsed yet
        self._end = 0  # end of the bytes received
        self._want = 0  # size of the incomplete frame at _start, once its header is known
        self._fragments: list[bytes] = []
        self._fragment_opcode = OP_TEXT
        self._error: ConnectionLost | None = None  # raised once the frames before it are out
        self._state_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._closing = False
        self._adopted = False
        self.max_frame_bytes = max_frame_bytes
        self.bytes_received = 0
        self._stamp = 0
        # the venue's last ping: a quiet symbol gets nothing else, and is alive (Binance)
        self.last_control_ns = 0

    def fileno(self) -> int:
        """The socket's file descriptor (for selectors)."""
        return self._sock.fileno()

    def send(self, text: str) -> None:
        """Send a text frame."""
        self._send_frame(text.encode(), OP_TEXT, _SEND_TIMEOUT_S)

    def ping(self, payload: bytes = b"") -> None:
        """Send a protocol-level PING frame."""
        self._send_frame(payload, OP_PING, _SEND_TIMEOUT_S)

    def close(self, wait: float = _CLOSE_SEND_TIMEOUT_S) -> None:
        """Send a close frame (best effort, for up to ``wait`` s) and shut the socket down;
        idempotent."""
        with self._state_lock:
            if self._closing:
                return
            self._closing = True
            adopted = self._adopted
        with contextlib.suppress(ConnectionLost):
            self._send_frame(struct.pack("!H", 1000), OP_CLOSE, wait)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # a loop waiting on the socket wakes at once
        if not adopted:
            with contextlib.suppress(OSError):
                self._sock.close()

    def adopt(self) -> bool:
        """Hand the file descriptor to a reading loop; False when already closed."""
        with self._state_lock:
            if self._closing:
                return False
            self._adopted = True
            return True

    def release(self) -> None:
        """Close the file descriptor (the adopting loop, after unregistering it)."""
        with self._state_lock:
            self._closing = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()

    @property
    def closed(self) -> bool:
        return self._closing

    def read_ready(self) -> list[Chunk]:
        """Read what the socket holds now, without blocking; return the frames completed.

        Text frames come back as ``str`` (or ``bytes`` when not valid UTF-8), binary
        frames as ``bytes``. Raises ConnectionLost when the connection has ended, but
        only after every frame received before the end has been returned.
        """
        chunks: list[Chunk] = []
        while self._error is None:
            if not self._fill():
                break
            frames = self._parse()
            if frames:
                chunks.append((self._stamp, frames))
            if not self._tls_pending():  # plain TCP: the selector reports what is left
                break
        if self._error is not None and not chunks:
            raise self._error
        return chunks

    def _tls_pending(self) -> bool:
        sock = self._sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def _fill(self) -> bool:
        """One ``recv_into``; False when nothing is there (yet)."""
        self._make_room()
        try:
            with memoryview(self._buf)[self._end :] as room:
                n = self._sock.recv_into(room)
        except _WOULD_BLOCK:
            return False
        except OSError as exc:
            self._error = ConnectionLost(
                "connection closed locally" if self._closing else f"connection lost: {exc}"
            )
            return False
        if not n:
            self._error = ConnectionLost(
                "connection closed locally" if self._closing else "connection closed by peer (EOF)"
            )
            return False
        self._stamp = time.time_ns()
        self.bytes_received += n
        self._end += n
        return True

    def _send_frame(self, payload: bytes, opcode: int, timeout: float) -> None:
        """Send one frame whole, waiting up to ``timeout`` s for the lock and for room.

        The read loop replies (pongs, close) with ``timeout`` 0: it never waits behind a send
        that a venue which stopped reading holds up, so the other streams are not delayed.
        A frame once started is always finished (a half frame would corrupt the stream).
        """
        frame = memoryview(websocket.ABNF.create_frame(payload, opcode).format())
        locked = (
            self._send_lock.acquire(timeout=timeout)
            if timeout > 0
            else self._send_lock.acquire(False)
        )
        if not locked:
            raise ConnectionLost("send skipped: another send is waiting for the venue")
        deadline = time.monotonic() + max(timeout, _FINISH_FRAME_S)
        try:
            data = frame
            while data:
                try:
                    sent = self._sock.send(data)
                except _WOULD_BLOCK:
                    if timeout <= 0 and len(data) == len(frame):
                        raise ConnectionLost("send skipped: the venue is not reading") from None
                    self._wait_writable(deadline)
                    continue
                except (OSError, ValueError) as exc:
                    raise ConnectionLost(f"send failed: {exc}") from exc
                data = data[sent:]
        finally:
            self._send_lock.release()

    def _wait_writable(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ConnectionLost("send failed: the venue stopped reading (send timed out)")
        poller = select.poll()
        poller.register(self._sock, select.POLLOUT)
        poller.poll(min(remaining, 0.05) * 1000)

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
        try:
            self._split(frames)
        except ConnectionLost as exc:  # a close frame or an oversized one: keep what came before
            self._error = exc
        return frames

    def _split(self, frames: list[str | bytes]) -> None:
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

    def _too_large(self, length: int) -> None:
        self.close(wait=0.0)
        raise FrameTooLarge(
            f"frame of {length} bytes exceeds the {self.max_frame_bytes}-byte limit"
        )

    def _handle(self, fin: bool, opcode: int, payload: bytes) -> str | bytes | None:
        if opcode == OP_PING:
            self.last_control_ns = self._stamp
            with contextlib.suppress(ConnectionLost):
                self._send_frame(payload, OP_PONG, 0.0)  # the read loop's thread: never wait
            return None
        if opcode == OP_PONG:  # answers our own ping: says nothing of the venue's feed
            return None
        if opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            reason = payload[2:].decode("utf-8", "replace")
            self.close(wait=0.0)
            raise ConnectionLost(f"closed by peer: code {code} {reason}".rstrip())
        if opcode == OP_CONT or not fin:
            if opcode != OP_CONT:
                self._fragment_opcode = opcode
                self._fragments = []
            self._fragments.append(payload)
            if sum(len(f) for f in self._fragments) > self.max_frame_bytes:
                self.close(wait=0.0)
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
