"""The shared read loop and the non-blocking connection, over real sockets (plain and TLS)."""

from __future__ import annotations

import base64
import hashlib
import select
import socket
import ssl
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dccd_actors import Collector, StreamJob, open_store
from dccd_actors._ws import Connection, FrameTooLarge, connect
from dccd_actors.errors import ConnectionLost
from dccd_actors.testing import FakeBinance
from tests.helpers import config, wait_until

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def _text_frame(text: str) -> bytes:
    payload = text.encode()
    if len(payload) < 126:
        return bytes([0x81, len(payload)]) + payload
    return bytes([0x81, 126]) + struct.pack("!H", len(payload)) + payload


def _one_shot_server(script: bytes) -> tuple[str, threading.Thread, list[bytes]]:
    """A venue that completes the handshake, sends ``script`` in one write and keeps reading."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        listener.close()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            conn.sendall(script)
            conn.settimeout(2)
            try:
                while chunk := conn.recv(4096):
                    received.append(chunk)
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"ws://127.0.0.1:{port}", thread, received


def _read_until_lost(conn: Connection) -> tuple[list[str | bytes], ConnectionLost]:
    """Read as the shared loop does: own the descriptor, wait for readiness, read."""
    assert conn.adopt()
    frames: list[str | bytes] = []
    try:
        while True:
            select.select([conn], [], [], 2)
            try:
                for _, chunk in conn.read_ready():
                    frames.extend(chunk)
            except ConnectionLost as exc:
                return frames, exc
    finally:
        conn.release()


def test_frames_sent_just_before_a_close_frame_are_all_returned_then_the_close() -> None:
    texts = [f'{{"n": {i}, "pad": "{"x" * (i * 7)}"}}' for i in range(40)]
    close = bytes([0x88, 2]) + struct.pack("!H", 4000)
    url, thread, received = _one_shot_server(b"".join(map(_text_frame, texts)) + close)
    conn = connect(url)
    frames, lost = _read_until_lost(conn)
    thread.join(5)
    assert frames == texts
    assert str(lost) == "closed by peer: code 4000"
    assert conn.closed
    echoed = b"".join(received)
    assert echoed[0] == 0x88 and echoed[1] & 0x80  # our close reply, masked as a client must


def test_an_oversized_frame_after_good_ones_keeps_the_good_ones() -> None:
    texts = ['{"a": 1}', '{"b": 2}']
    huge = bytes([0x81, 127]) + struct.pack("!Q", 1 << 30)
    url, thread, _ = _one_shot_server(b"".join(map(_text_frame, texts)) + huge)
    conn = connect(url, max_frame_bytes=1 << 20)
    frames, lost = _read_until_lost(conn)
    thread.join(5)
    assert frames == texts
    assert isinstance(lost, FrameTooLarge)
    assert "1073741824 bytes exceeds the 1048576-byte limit" in str(lost)


@pytest.fixture
def trusted_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ssl.SSLContext]:
    """A certificate for 127.0.0.1 that websocket-client is told to trust."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    yield context


def test_tls_streams_are_read_completely_through_the_shared_loop(
    tmp_path: Path, trusted_tls: ssl.SSLContext
) -> None:
    pairs = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    with FakeBinance(pairs, seed=81, ssl_context=trusted_tls) as fake:
        assert fake.url.startswith("wss://")
        job = StreamJob("binance", pairs, ["trades"], url=fake.url, rest_url=fake.rest_url)
        with Collector(config(tmp_path / "data", [job])) as c:
            wait_until(lambda: all(len(fake.sent_trades[p]) > 30 for p in pairs), timeout=20)
            fake.pause()
            sent = {p: [t.trade_id for t in fake.sent_trades[p]] for p in pairs}
            wait_until(lambda: all(r.trades == len(sent[r.pair]) for r in c.status()), timeout=10)
            assert all(r.gen == 1 and r.state == "running" for r in c.status())
    store = open_store(tmp_path / "data")
    for pair in pairs:
        assert store.trades("binance", pair)["trade_id"].tolist() == sent[pair]


def test_one_dropped_stream_leaves_its_siblings_on_the_loop_untouched(tmp_path: Path) -> None:
    pairs = ["BTC/USDT", "ETH/USDT"]
    with FakeBinance(pairs, seed=82) as fake:
        job = StreamJob("binance", pairs, ["trades"], url=fake.url, rest_url=fake.rest_url)
        with Collector(config(tmp_path, [job])) as c:
            wait_until(lambda: all(r.trades > 5 for r in c.status()))
            btc = next(conn for conn in fake.open_connections() if "btcusdt" in conn.path)
            btc.drop()
            wait_until(lambda: next(r for r in c.status() if r.pair == "BTC/USDT").gen == 2)
            eth = next(r for r in c.status() if r.pair == "ETH/USDT")
            wait_until(
                lambda: next(r for r in c.status() if r.pair == "ETH/USDT").trades > eth.trades
            )
            assert eth.gen == 1 and eth.state == "running"
