"""A fast loopback WebSocket server that sends Binance combined-stream trade frames.

Run it as its own process so that client and server each get a core::

    python benchmarks/blaster.py --frames 500000      # prints "READY <port>" when listening

After a plain RFC 6455 handshake on ``<prefix>/stream?streams=<sym>@trade`` it sends frames of
that symbol with trade ids 1, 2, 3, ...; the prefix picks the mode:

* ``/blast/<n>``: ``n`` frames as fast as the socket takes them, from a buffer framed once at
  start-up (``--frames`` is the largest ``n``), in 1 MiB ``sendall`` chunks;
* ``/blast/<n>/<k>``: the same, but only once ``k`` connections of that kind are open (a
  barrier), so that many streams start together;
* ``/paced/<rate>``: ``rate`` frames per second, sent every 10 ms, with the current time as
  the trade time, until the client goes.

Then the connection stays open: pings are answered, a close frame is echoed. Any symbol of
the template's length reuses the pre-built buffer (bytes replaced, lengths unchanged).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import random
import socket
import struct
import sys
import threading
import time
from array import array
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from frames import trade_frame

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEMPLATE = "btcusdt"
_CHUNK = 1 << 20
_PACE_S = 0.01


def frame_header(length: int) -> bytes:
    """Server-to-client text frame header (FIN, opcode 1, no mask)."""
    if length < 126:
        return bytes((0x81, length))
    if length < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


def encode(text: str) -> bytes:
    payload = text.encode()
    return frame_header(len(payload)) + payload


class Template:
    """``count`` framed trade frames of the template symbol, and where each one ends."""

    def __init__(self, count: int) -> None:
        start_ms = int(time.time() * 1000)
        rng = random.Random(1)
        parts = []
        self.ends = array("Q", [0])
        total = 0
        for i in range(1, count + 1):
            framed = encode(trade_frame(_TEMPLATE, i, start_ms + i // 50, rng))
            parts.append(framed)
            total += len(framed)
            self.ends.append(total)
        self.data = b"".join(parts)

    def frames(self, symbol: str, n: int) -> bytes:
        if n >= len(self.ends):
            raise ValueError(f"{n} frames asked, server built {len(self.ends) - 1} (--frames)")
        data = self.data[: self.ends[n]]
        if symbol != _TEMPLATE:
            if len(symbol) != len(_TEMPLATE):
                raise ValueError(f"symbol {symbol!r} must have {len(_TEMPLATE)} characters")
            data = data.replace(_TEMPLATE.encode(), symbol.encode()).replace(
                _TEMPLATE.upper().encode(), symbol.upper().encode()
            )
        return data


class Client:
    """One accepted connection; sends are serialised by a lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.closed = False

    def send(self, data: bytes) -> bool:
        if self.closed:
            return False
        try:
            with self.lock:
                view = memoryview(data)
                for i in range(0, len(view), _CHUNK):
                    self.sock.sendall(view[i : i + _CHUNK])
            return True
        except OSError:
            self.closed = True
            return False

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()


class Pacer:
    """One thread that sends every paced connection its due frames every 10 ms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: list[tuple[Client, str, float, float, list[int]]] = []
        threading.Thread(target=self._run, name="pacer", daemon=True).start()

    def add(self, client: Client, symbol: str, rate: float) -> None:
        with self._lock:
            self._streams.append((client, symbol, rate, time.monotonic(), [0]))

    def _run(self) -> None:
        rng = random.Random(2)
        next_tick = time.monotonic()
        while True:
            next_tick += _PACE_S
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_tick = time.monotonic()
            now = time.monotonic()
            now_ms = int(time.time() * 1000)
            with self._lock:
                streams = [s for s in self._streams if not s[0].closed]
                self._streams = streams
            for client, symbol, rate, start, sent in streams:
                due = int((now - start) * rate) - sent[0]
                if due <= 0:
                    continue
                first = sent[0] + 1
                data = b"".join(
                    encode(trade_frame(symbol, i, now_ms, rng)) for i in range(first, first + due)
                )
                sent[0] += due
                client.send(data)


class Server:
    def __init__(self, template: Template, host: str, port: int) -> None:
        self.template = template
        self.pacer = Pacer()
        self._barriers: dict[str, threading.Barrier] = {}
        self._lock = threading.Lock()
        self.listener = socket.create_server((host, port), backlog=256)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def serve_forever(self) -> None:
        while True:
            sock, _ = self.listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._handle, args=(sock,), daemon=True).start()

    def _handle(self, sock: socket.socket) -> None:
        client = Client(sock)
        try:
            path, rest = _handshake(sock)
            mode, arg, symbol = _route(path)
            if mode == "blast":
                count, _, group = arg.partition("/")
                data = self.template.frames(symbol, int(count))
                if group:
                    self._barrier(arg, int(group)).wait(timeout=120)
                client.send(data)
            else:
                self.pacer.add(client, symbol, float(arg))
            _control_loop(client, rest)
        except (OSError, ValueError, threading.BrokenBarrierError) as exc:
            sys.stderr.write(f"blaster: connection ended: {exc!r}\n")
        finally:
            client.close()

    def _barrier(self, key: str, parties: int) -> threading.Barrier:
        with self._lock:
            barrier = self._barriers.get(key)
            if barrier is None or barrier.broken:
                barrier = self._barriers[key] = threading.Barrier(parties)
            return barrier


def _handshake(sock: socket.socket) -> tuple[str, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ValueError("EOF during handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    key = headers["sec-websocket-key"].encode()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
    sock.sendall(
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
        ).encode()
    )
    return path, rest


def _route(path: str) -> tuple[str, str, str]:
    """``/blast/<n>[/<k>]/stream?streams=x@trade`` → ("blast", "n[/k]", x)."""
    split = urlsplit(path)
    parts = split.path.strip("/").split("/")
    if not 3 <= len(parts) <= 4 or parts[0] not in ("blast", "paced") or parts[-1] != "stream":
        raise ValueError(f"unknown path {path!r}")
    streams = parse_qs(split.query).get("streams", [""])[0].split("/")
    trades = [s.split("@")[0] for s in streams if s.endswith("@trade")]
    if len(trades) != 1:
        raise ValueError(f"expected one <symbol>@trade stream in {path!r}")
    return parts[0], "/".join(parts[1:-1]), trades[0]


def _control_loop(client: Client, buffered: bytes) -> None:
    """Read client frames until EOF: answer pings, echo a close frame, ignore the rest."""
    buf = bytearray(buffered)
    while True:
        while len(buf) >= 2:
            length = buf[1] & 0x7F
            head = 2
            if length == 126:
                length, head = struct.unpack_from("!H", buf, 2)[0], 4
            elif length == 127:
                length, head = struct.unpack_from("!Q", buf, 2)[0], 10
            masked = buf[1] & 0x80
            end = head + (4 if masked else 0) + length
            if len(buf) < end:
                break
            opcode = buf[0] & 0x0F
            payload = bytes(buf[end - length : end])
            if masked:
                mask = buf[head : head + 4]
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            del buf[:end]
            if opcode == 0x8:
                client.send(bytes((0x88, len(payload[:125]))) + payload[:125])
                return
            if opcode == 0x9:
                client.send(bytes((0x8A, len(payload))) + payload)
        chunk = client.sock.recv(65536)
        if not chunk:
            return
        buf += chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--frames", type=int, default=100_000, help="largest blast size")
    args = parser.parse_args(argv)
    server = Server(Template(args.frames), args.host, args.port)
    sys.stdout.write(f"READY {server.port}\n")
    sys.stdout.flush()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
