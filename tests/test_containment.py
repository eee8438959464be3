"""Containment: SystemExit in a handler, a stream that ignores stop, a slow consumer."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pykka

from dccd_actors import Collector, RestartPolicy, StreamJob, open_store
from dccd_actors.actors.messages import FramesReceived
from dccd_actors.actors.stream import StreamActor
from dccd_actors.testing import FakeBinance
from tests.helpers import config, wait_until

PAIRS = ["BTC/USDT", "ETH/USDT"]


class _ExitsWhenCounted(list[str]):
    """A batch whose length cannot be taken: the handler meets a SystemExit."""

    def __len__(self) -> int:
        raise SystemExit(3)


def _job(fake: FakeBinance, pairs: list[str]) -> StreamJob:
    return StreamJob("binance", pairs, ["trades", "book"], url=fake.url, rest_url=fake.rest_url)


def _row(c: Collector, pair: str):  # type: ignore[no-untyped-def]
    return next(r for r in c.status() if r.pair == pair)


def test_a_system_exit_in_a_handler_is_contained_and_reported(tmp_path: Path) -> None:
    with FakeBinance(PAIRS, seed=71) as fake, Collector(config(tmp_path, [_job(fake, PAIRS)])) as c:
        wait_until(lambda: all(r.state == "running" for r in c.status()) and len(c.status()) == 2)
        victim = next(
            r
            for r in pykka.ActorRegistry.get_by_class(StreamActor)
            if r.proxy().key.get() == ("binance", "BTC/USDT")
        )
        victim.tell(FramesReceived([(0, _ExitsWhenCounted())], 1))
        wait_until(lambda: _row(c, "BTC/USDT").gen == 2 and _row(c, "BTC/USDT").state == "running")
        assert "SystemExit(3)" in _row(c, "BTC/USDT").last_error
        eth = _row(c, "ETH/USDT")
        assert eth.gen == 1 and eth.state == "running"  # pykka did not stop every actor
        assert c.status().state == "running"
        wait_until(lambda: _row(c, "ETH/USDT").trades > eth.trades)


def test_a_stream_that_ignores_stop_is_reported_and_stop_keeps_its_deadline(tmp_path: Path) -> None:
    with FakeBinance(["BTC/USDT"], seed=72) as fake:
        policy = RestartPolicy(max_inflight_frames=5)  # the reader holds, the queue stays short
        c = Collector(
            config(tmp_path, [_job(fake, ["BTC/USDT"])], policy=policy), stream_slow_down=0.5
        )
        c.start()
        wait_until(lambda: c.status()[0].frames > 0, timeout=15)
        t0 = time.monotonic()
        summary = c.stop(timeout=0.2)
        elapsed = time.monotonic() - t0
        assert summary["binance BTC/USDT"] == "stop_timeout"
        assert summary["storage"] == "stopped"
        assert elapsed < 0.2 + 2.0
        wait_until(lambda: not pykka.ActorRegistry.get_all(), timeout=10)  # it ends after all


def test_a_slow_consumer_stops_reading_and_the_venue_dropping_it_is_a_gap(tmp_path: Path) -> None:
    policy = RestartPolicy(
        min_backoff=0.05, max_backoff=0.1, max_inflight_frames=5, stale_timeout=30
    )
    padding = json.dumps(
        {"stream": "btcusdt@kline_1m", "data": {"e": "kline", "pad": "x" * 1_000_000}}
    )
    with FakeBinance(["BTC/USDT"], seed=73, send_timeout=0.5) as fake:
        job = StreamJob("binance", ["BTC/USDT"], ["trades"], url=fake.url)
        # every batch takes 1.5 s, longer than the venue waits on a blocked send (0.5 s)
        c = Collector(config(tmp_path, [job], policy=policy), stream_slow_down=1.5).start()
        try:
            wait_until(lambda: c.status()[0].trades > 0, timeout=20)
            deadline = time.monotonic() + 30
            # the collector holds its reader (TCP backpressure) until the venue gives up on it
            while fake.slow_clients_dropped == 0 and time.monotonic() < deadline:
                fake.broadcast_raw(padding)
            assert fake.slow_clients_dropped == 1
            wait_until(lambda: c.status()[0].gen == 2, timeout=20)
        finally:
            c.stop(timeout=5)
    assert "disconnect" in open_store(tmp_path).gaps("binance", "BTC/USDT")["cause"].tolist()


def test_stop_during_a_pending_backoff_starts_nothing_afterwards(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"ws://127.0.0.1:{s.getsockname()[1]}"
    policy = RestartPolicy(min_backoff=0.6, max_backoff=0.6, jitter=0.0)
    c = Collector(
        config(
            tmp_path, [StreamJob("binance", ["BTC/USDT"], ["trades"], url=closed)], policy=policy
        )
    )
    c.start()
    wait_until(lambda: c.status()[0].state == "backoff")
    c.stop(timeout=1)
    assert pykka.ActorRegistry.get_all() == []
    time.sleep(0.8)  # past the restart that was pending
    assert pykka.ActorRegistry.get_all() == []
    assert c.status()[0].state == "stopped" and c.status()[0].gen == 1
