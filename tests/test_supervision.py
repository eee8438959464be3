"""Supervision you can trust: restart policy, parking, watchdog, escalation, containment."""

from __future__ import annotations

import random
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pykka
import pytest

from dccd_actors import Collector, CollectorFailed, RestartPolicy, StreamJob, open_store
from dccd_actors.actors.messages import FramesReceived
from dccd_actors.actors.policy import Backoff
from dccd_actors.actors.stream import StreamActor
from dccd_actors.testing import FakeBinance
from tests.helpers import config, rebuild_book, wait_until


def _job(fake: FakeBinance, pairs: list[str], **kw: object) -> StreamJob:
    return StreamJob(
        "binance", pairs, ["trades", "book"], url=fake.url, rest_url=fake.rest_url, **kw
    )  # type: ignore[arg-type]


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{s.getsockname()[1]}"  # nothing listens once closed


def _row(collector: Collector, pair: str):  # type: ignore[no-untyped-def]
    return next(r for r in collector.status() if r.pair == pair)


def _last_seq(path: Path) -> int:
    deltas = open_store(path).book_deltas("binance", "BTC/USDT")
    return int(deltas["seq"][-1]) if len(deltas) else -1


# -- policy arithmetic (injected RNG and clock) ----------------------------------------------


def test_backoff_doubles_to_the_cap_with_bounded_jitter() -> None:
    policy = RestartPolicy(min_backoff=1, max_backoff=60, jitter=0.2)
    backoff = Backoff(policy, random.Random(42))
    delays = [backoff.next_delay(now=i) for i in range(9)]
    bases = [1, 2, 4, 8, 16, 32, 60, 60, 60]
    for delay, base in zip(delays, bases, strict=True):
        assert base <= delay <= base * 1.2
    assert len({round(d / b, 6) for d, b in zip(delays, bases, strict=True)}) > 1  # jitter varies


def test_backoff_resets_after_a_stable_period_and_intensity_counts_a_window() -> None:
    policy = RestartPolicy(
        min_backoff=1, max_backoff=60, jitter=0, reset_after=60, max_restarts=3, restart_window=100
    )
    backoff = Backoff(policy, random.Random(0))
    assert [backoff.next_delay(now=t) for t in (0, 1, 2)] == [1, 2, 4]
    assert not backoff.exceeded(now=2)  # 3 failures: not more than max_restarts
    assert not backoff.healthy(now=10) and not backoff.healthy(now=69)
    assert backoff.healthy(now=70)  # 60 s of data since t=10
    assert backoff.next_delay(now=71) == 1  # the delay starts again from min_backoff
    assert backoff.exceeded(now=71)  # but the 4th failure within 100 s parks
    assert not backoff.exceeded(now=150)  # t=0..2 left the window


# -- restarts through real sockets -----------------------------------------------------------


def test_a_raise_on_the_tell_path_restarts_the_stream_an_ask_does_not(tmp_path: Path) -> None:
    with (
        FakeBinance(["BTC/USDT"], seed=21) as fake,
        Collector(config(tmp_path, [_job(fake, ["BTC/USDT"])])) as c,
    ):
        wait_until(lambda: _row(c, "BTC/USDT").state == "running")
        (ref,) = pykka.ActorRegistry.get_by_class(StreamActor)
        with pytest.raises(TypeError):
            ref.ask(FramesReceived(None, 1), timeout=2)  # type: ignore[arg-type]
        assert _row(c, "BTC/USDT").gen == 1 and ref.is_alive()
        ref.tell(FramesReceived(None, 1))  # type: ignore[arg-type]
        wait_until(lambda: _row(c, "BTC/USDT").gen == 2 and _row(c, "BTC/USDT").state == "running")
        row = _row(c, "BTC/USDT")
        assert row.restarts == 1 and "TypeError" in row.last_error


def test_too_many_restarts_park_the_stream_and_leave_siblings_alone(tmp_path: Path) -> None:
    policy = RestartPolicy(
        min_backoff=0.01, max_backoff=0.02, max_restarts=3, restart_window=60, park_interval=0.6
    )
    with FakeBinance(["ETH/USDT"], seed=22) as fake:
        jobs = [
            StreamJob("binance", ["BTC/USDT"], ["trades"], url=_closed_port_url()),
            _job(fake, ["ETH/USDT"]),
        ]
        with Collector(config(tmp_path, jobs, policy=policy)) as c:
            wait_until(lambda: _row(c, "BTC/USDT").state == "parked")
            parked = _row(c, "BTC/USDT")
            assert parked.restarts == 4 and 0 < parked.next_retry_in_s <= 0.6  # type: ignore[operator]
            assert "cannot connect" in parked.last_error
            wait_until(lambda: _row(c, "BTC/USDT").gen > parked.gen)  # retried after park_interval
            eth = _row(c, "ETH/USDT")
            assert eth.gen == 1 and eth.state == "running" and eth.restarts == 0


def test_a_silent_venue_trips_the_watchdog_and_the_silence_is_a_stale_gap(tmp_path: Path) -> None:
    policy = RestartPolicy(min_backoff=0.05, max_backoff=0.1, stale_timeout=0.4)
    with FakeBinance(["BTC/USDT"], seed=23) as fake:
        with Collector(config(tmp_path, [_job(fake, ["BTC/USDT"])], policy=policy)) as c:
            wait_until(lambda: _row(c, "BTC/USDT").book_live)
            fake.go_silent(0.6)
            wait_until(lambda: _row(c, "BTC/USDT").last_exit_cause == "stale")
            wait_until(
                lambda: _row(c, "BTC/USDT").book_live and _row(c, "BTC/USDT").state == "running"
            )
            time.sleep(0.2)
            fake.pause()
            wait_until(lambda: _last_seq(tmp_path) == fake.last_update_id("BTC/USDT"))
        gaps = open_store(tmp_path).gaps("binance", "BTC/USDT")
        assert len(gaps) >= 1 and set(gaps["cause"].tolist()) == {"stale"}
        assert (gaps["end_ns"] > gaps["start_ns"]).all()
        assert rebuild_book(open_store(tmp_path).book_deltas("binance", "BTC/USDT")) == fake.book(
            "BTC/USDT"
        )


def test_a_quiet_symbol_kept_alive_by_venue_pings_is_not_stale(tmp_path: Path) -> None:
    """PROTOCOLS §1.3: a quiet symbol gets no data at all; the venue's PING frames keep it."""
    policy = RestartPolicy(min_backoff=0.05, max_backoff=0.1, stale_timeout=0.5)
    fake = FakeBinance(["BTC/USDT"], seed=25, ws_ping_interval=0.1)
    with fake, Collector(config(tmp_path, [_job(fake, ["BTC/USDT"])], policy=policy)) as c:
        wait_until(lambda: _row(c, "BTC/USDT").book_live)
        fake.pause()  # no market data; the connection stays open
        time.sleep(2.0)  # four stale_timeouts in which nothing may happen: no event to wait for
        row = _row(c, "BTC/USDT")
        assert (row.gen, row.state, row.book_live) == (1, "running", True)
    assert len(open_store(tmp_path).gaps("binance", "BTC/USDT")) == 0


def test_the_gap_ledger_reconciles_with_the_injected_faults(tmp_path: Path) -> None:
    with FakeBinance(["BTC/USDT"], seed=24) as fake:
        job = _job(fake, ["BTC/USDT"])
        with Collector(config(tmp_path, [job])) as c:
            wait_until(lambda: _row(c, "BTC/USDT").book_live)
            fake.drop_connections()  # fault 1: disconnect
            wait_until(lambda: _row(c, "BTC/USDT").gen == 2 and _row(c, "BTC/USDT").book_live)
            fake.skip_sequence("BTC/USDT", 2)  # fault 2: sequence gap
            wait_until(lambda: _row(c, "BTC/USDT").resyncs == 1 and _row(c, "BTC/USDT").book_live)
        stopped_at = time.time_ns()
        with Collector(config(tmp_path, [job])) as c:  # fault 3: the collector was not running
            wait_until(lambda: _row(c, "BTC/USDT").trades > 0)
    gaps = open_store(tmp_path).gaps("binance", "BTC/USDT")
    assert gaps["cause"].tolist() == ["disconnect", "seq_gap", "stop"]
    assert (gaps["end_ns"] >= gaps["start_ns"]).all()
    assert gaps["start_ns"][2] <= stopped_at <= gaps["end_ns"][2]
    assert gaps["end_ns"][0] <= gaps["start_ns"][1]


def test_storage_failing_three_times_fails_the_collector_visibly(tmp_path: Path) -> None:
    policy = RestartPolicy(
        min_backoff=0.05, max_backoff=0.1, storage_max_restarts=3, storage_window=60
    )
    with FakeBinance(["BTC/USDT"], seed=25) as fake:
        c = Collector(config(tmp_path, [_job(fake, ["BTC/USDT"])], policy=policy)).start()
        try:
            wait_until(lambda: _row(c, "BTC/USDT").trades > 0)
            c.seal_now()
            (tmp_path / "binance").rename(tmp_path / "moved")
            (tmp_path / "binance").write_text("not a folder")  # every new segment now fails
            with pytest.raises(CollectorFailed, match="storage failed"):
                c.wait(timeout=20)
            assert c.status().state == "failed"
        finally:
            c.stop()


def test_an_untrusted_certificate_is_refused_by_default(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with FakeBinance(["BTC/USDT"], seed=26, ssl_context=context) as fake:
        assert fake.url.startswith("wss://")
        with Collector(config(tmp_path / "data", [_job(fake, ["BTC/USDT"])])) as c:
            wait_until(lambda: _row(c, "BTC/USDT").restarts >= 1)
            row = _row(c, "BTC/USDT")
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert fake.connection_count == 0  # the handshake never completed


def test_a_script_that_forgets_stop_still_exits_with_its_files_sealed(tmp_path: Path) -> None:
    with FakeBinance(["BTC/USDT"], seed=27) as fake:
        script = textwrap.dedent(f"""
            import time
            from dccd_actors import Collector, CollectorConfig, StorageConfig, StreamJob
            job = StreamJob("binance", ["BTC/USDT"], ["trades", "book"], url={fake.url!r}, rest_url={fake.rest_url!r})
            c = Collector(CollectorConfig(storage=StorageConfig(local_path={str(tmp_path)!r}, flush_interval=0.1),
                                          stream_jobs=[job])).start()
            time.sleep(1.5)
        """)
        done = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert not list(tmp_path.glob("**/*.live.h5"))
    assert len(open_store(tmp_path).trades("binance", "BTC/USDT")) > 0


def test_a_slow_storage_shows_its_backlog(tmp_path: Path) -> None:
    policy = RestartPolicy(backlog_warning=2, stale_timeout=30)
    with FakeBinance(["BTC/USDT", "ETH/USDT"], seed=28, interval=0.005) as fake:
        jobs = [_job(fake, ["BTC/USDT", "ETH/USDT"])]
        c = Collector(
            config(tmp_path, jobs, policy=policy, flush_interval=0.02), storage_slow_down=0.15
        ).start()
        try:
            wait_until(lambda: c.status().storage.get("backlog_warning"), timeout=15)
            assert c.status().storage["backlog"] > 2
        finally:
            c.stop(timeout=10)
    stored = open_store(tmp_path).trades("binance", "BTC/USDT")
    assert len(stored) > 0
