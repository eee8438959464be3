"""Binance end to end: fake venue on loopback → actors → HDF5 → open_store."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from dccd_actors import Collector, StreamJob, open_store
from dccd_actors.testing import FakeBinance
from tests.helpers import (
    config,
    rebuild_book,
    silent_tcp_server,
    wait_for_book_samples,
    wait_until,
)

PAIRS = ["BTC/USDT", "ETH/USDT"]


def _job(fake: FakeBinance, pairs: list[str] = PAIRS, **kw: object) -> StreamJob:
    return StreamJob(
        "binance", pairs, ["trades", "book"], url=fake.url, rest_url=fake.rest_url, **kw
    )  # type: ignore[arg-type]


def _stored_seq(path: Path, pair: str) -> int:
    deltas = open_store(path).book_deltas("binance", pair)
    return int(deltas["seq"][-1]) if len(deltas) else -1


def _assert_trades_equal(stored: np.ndarray, sent: list) -> None:  # type: ignore[type-arg]
    assert len(stored) == len(sent)
    assert stored["trade_id"].tolist() == [t.trade_id for t in sent]
    assert stored["price"].tolist() == [float(t.price) for t in sent]
    assert stored["amount"].tolist() == [float(t.amount) for t in sent]
    assert stored["side"].tolist() == [t.side for t in sent]
    assert stored["ts_event"].tolist() == [t.ts_ms * 1_000_000 for t in sent]


def _settle(fake: FakeBinance, path: Path, pairs: list[str]) -> None:
    """Stop the market and wait until storage holds the fake's last update of every pair."""
    fake.pause()
    for pair in pairs:
        wait_until(lambda p=pair: _stored_seq(path, p) == fake.last_update_id(p))


def test_every_trade_once_and_the_rebuilt_book_equals_the_venue(tmp_path: Path) -> None:
    with FakeBinance(PAIRS, seed=3) as fake:
        with Collector(config(tmp_path, [_job(fake, time_step=0.2)])) as collector:
            wait_until(lambda: all(len(fake.sent_trades[p]) > 40 for p in PAIRS))
            _settle(fake, tmp_path, PAIRS)
            wait_for_book_samples(tmp_path, "binance", PAIRS)
            rows = {r.pair: r for r in collector.status()}
            assert all(rows[p].state == "running" and rows[p].book_live for p in PAIRS)
        store = open_store(tmp_path)
        for pair in PAIRS:
            _assert_trades_equal(store.trades("binance", pair), fake.sent_trades[pair])
            assert rebuild_book(store.book_deltas("binance", pair)) == fake.book(pair)
            assert len(store.gaps("binance", pair)) == 0
            snaps = store.book_snapshots("binance", pair)
            assert len(snaps) >= 2 and np.all(np.diff(snaps["ts_recv"]) > 0)
            assert np.all(snaps["bid_price"][:, 0] < snaps["ask_price"][:, 0])
        assert [p.name.endswith(".live.h5") for p in store.segments("binance", "BTC/USDT")] == [
            False
        ]


def test_a_dropped_connection_is_one_gap_and_no_duplicate_trade(tmp_path: Path) -> None:
    with FakeBinance(PAIRS, seed=4) as fake:
        with Collector(config(tmp_path, [_job(fake)])) as collector:
            wait_until(lambda: all(len(fake.sent_trades[p]) > 20 for p in PAIRS))
            before = fake.connection_count
            fake.drop_connections()
            wait_until(lambda: fake.connection_count >= before + 2)
            wait_until(
                lambda: all(
                    r.state == "running" and r.book_live and r.gen == 2 for r in collector.status()
                )
            )
            wait_until(lambda: all(len(fake.sent_trades[p]) > 60 for p in PAIRS))
            _settle(fake, tmp_path, PAIRS)
        store = open_store(tmp_path)
        for pair in PAIRS:
            trades = store.trades("binance", pair)
            assert len(np.unique(trades["trade_id"])) == len(trades)
            _assert_trades_equal(trades, fake.sent_trades[pair])
            gaps = store.gaps("binance", pair)
            assert gaps["cause"].tolist() == ["disconnect"]
            assert gaps["start_ns"][0] <= gaps["end_ns"][0]
            assert rebuild_book(store.book_deltas("binance", pair)) == fake.book(pair)


def test_a_skipped_sequence_range_resyncs_that_symbol_only(tmp_path: Path) -> None:
    with FakeBinance(PAIRS, seed=5) as fake:
        with Collector(config(tmp_path, [_job(fake)])) as collector:
            wait_until(
                lambda: (
                    all(r.book_live for r in collector.status()) and len(collector.status()) == 2
                )
            )
            wait_until(lambda: fake.snapshots_served == 2)
            fake.skip_sequence("BTC/USDT", 3)
            wait_until(lambda: fake.snapshots_served == 3)
            wait_until(
                lambda: (
                    {r.pair: r.resyncs for r in collector.status()}
                    == {"BTC/USDT": 1, "ETH/USDT": 0}
                )
            )
            wait_until(lambda: all(r.book_live for r in collector.status()))
            _settle(fake, tmp_path, PAIRS)
            gens = {r.pair: r.gen for r in collector.status()}
        assert gens == {"BTC/USDT": 1, "ETH/USDT": 1}  # a resync, not a reconnect
        store = open_store(tmp_path)
        btc_gaps = store.gaps("binance", "BTC/USDT")
        assert btc_gaps["cause"].tolist() == ["seq_gap"]
        assert len(store.gaps("binance", "ETH/USDT")) == 0
        for pair in PAIRS:
            assert rebuild_book(store.book_deltas("binance", pair)) == fake.book(pair)
        _assert_trades_equal(store.trades("binance", "ETH/USDT"), fake.sent_trades["ETH/USDT"])


def test_status_answers_fast_while_a_venue_hangs_and_stop_meets_its_deadline(
    tmp_path: Path,
) -> None:
    with FakeBinance(["BTC/USDT"], seed=6) as fake, silent_tcp_server() as hung_url:
        jobs = [
            _job(fake, ["BTC/USDT"]),
            StreamJob("binance", ["ETH/USDT"], ["trades"], url=hung_url),
        ]
        collector = Collector(config(tmp_path, jobs)).start()
        try:
            wait_until(
                lambda: any(r.pair == "BTC/USDT" and r.trades > 0 for r in collector.status())
            )
            timings = []
            for _ in range(20):
                t0 = time.perf_counter()
                rows = collector.status()
                timings.append(time.perf_counter() - t0)
            states = {r.pair: r.state for r in rows}
            assert states["ETH/USDT"] == "starting" and states["BTC/USDT"] == "running"
            assert max(timings) < 0.05
        finally:
            t0 = time.monotonic()
            summary = collector.stop(timeout=1.0)
            elapsed = time.monotonic() - t0
        # the handshake runs beside the actor, so even the hung stream stops at once
        assert summary == {
            "binance BTC/USDT": "stopped",
            "binance ETH/USDT": "stopped",
            "storage": "stopped",
            "sync": "stopped",
        }
        assert elapsed < 1.0


def test_stop_is_idempotent_and_a_second_collector_cannot_share_the_folder(tmp_path: Path) -> None:
    with FakeBinance(["BTC/USDT"], seed=7) as fake:
        collector = Collector(config(tmp_path, [_job(fake, ["BTC/USDT"])])).start()
        with pytest.raises(Exception, match="another collector"):
            Collector(config(tmp_path, [_job(fake, ["BTC/USDT"])])).start()
        first = collector.stop()
        assert collector.stop() == first
        assert collector.status().state == "stopped"


def test_a_stale_first_snapshot_is_fetched_again_without_a_gap(tmp_path: Path) -> None:
    pair = "BTC/USDT"
    with FakeBinance([pair], seed=8) as fake:
        fake.pause()  # no diff event before the snapshot: the adapter holds it
        fake.serve_stale_snapshot(pair, behind=5)
        with Collector(config(tmp_path, [_job(fake, [pair])])) as collector:
            wait_until(lambda: fake.snapshots_served == 1)
            time.sleep(0.1)  # let it reach the adapter (a held snapshot goes live after 1 s)
            fake.resume()  # the first event shows the snapshot too old: fetch again
            wait_until(lambda: fake.snapshots_served == 2 and collector.status()[0].book_live)
            wait_until(lambda: len(fake.sent_trades[pair]) > 20)
            _settle(fake, tmp_path, [pair])
            [row] = collector.status()
            assert (row.resyncs, row.gen, row.malformed) == (0, 1, 0)
        store = open_store(tmp_path)
        assert len(store.gaps("binance", pair)) == 0
        assert rebuild_book(store.book_deltas("binance", pair)) == fake.book(pair)
        _assert_trades_equal(store.trades("binance", pair), fake.sent_trades[pair])


def test_a_quiet_symbol_goes_live_on_its_snapshot_alone(tmp_path: Path) -> None:
    pair = "BTC/USDT"
    with FakeBinance([pair], seed=9) as fake:
        fake.pause()  # a quiet symbol sends no diff event at all (PROTOCOLS §1.3)
        with Collector(config(tmp_path, [_job(fake, [pair])])) as collector:
            wait_until(lambda: collector.status()[0].book_live)
            wait_until(lambda: _stored_seq(tmp_path, pair) == fake.last_update_id(pair))
            stored = open_store(tmp_path).book_deltas("binance", pair)
            assert rebuild_book(stored) == fake.book(pair) and fake.snapshots_served == 1
            fake.resume()  # events then continue the book from the snapshot
            wait_until(lambda: len(fake.sent_trades[pair]) > 20)
            _settle(fake, tmp_path, [pair])
        store = open_store(tmp_path)
        assert len(store.gaps("binance", pair)) == 0 and fake.snapshots_served == 1
        assert rebuild_book(store.book_deltas("binance", pair)) == fake.book(pair)
