"""A collecting subprocess killed with SIGKILL: files stay readable, nothing flushed is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np

from dccd_actors import Collector, StreamJob, open_store
from dccd_actors.testing import FakeBinance
from tests.helpers import config, wait_until

CHILD = textwrap.dedent(
    """
    import sys, time
    from dccd_actors import Collector, CollectorConfig, StorageConfig, StreamJob
    url, rest_url, path = sys.argv[1:4]
    job = StreamJob("binance", ["BTC/USDT"], ["trades", "book"], time_step=0.2, url=url, rest_url=rest_url)
    cfg = CollectorConfig(storage=StorageConfig(local_path=path, flush_interval=0.1), stream_jobs=[job])
    Collector(cfg).start()
    print("started", flush=True)
    time.sleep(600)
    """
)


def _live_rows(path: Path, old: set[Path]) -> int:
    """Trades a reader in another process sees in the child's own live segment."""
    lives = sorted(set(path.glob("binance/BTC-USDT/*.live.h5")) - old)
    if not lives:
        return 0
    try:
        with h5py.File(lives[-1], "r", swmr=True) as f:
            return int(f["trades"].shape[0])
    except OSError:  # created but not yet in SWMR mode
        return 0


def _kill_one_run(fake: FakeBinance, path: Path) -> int:
    old = set(path.glob("binance/BTC-USDT/*.live.h5"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, fake.url, fake.rest_url, str(path)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"started"
        wait_until(lambda: _live_rows(path, old) >= 30, timeout=20)
        flushed = _live_rows(path, old)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    return flushed


def test_sigkill_loses_nothing_flushed_and_restart_seals_the_leftover(tmp_path: Path) -> None:
    with FakeBinance(["BTC/USDT"], seed=11) as fake:
        flushed = [_kill_one_run(fake, tmp_path) for _ in range(3)]
        leftovers = sorted(tmp_path.glob("binance/BTC-USDT/*.live.h5"))
        assert len(leftovers) == 1  # each restart below sealed the previous run's
        for leftover in leftovers:
            with h5py.File(leftover, "r", swmr=True) as f:
                assert f["trades"].shape[0] >= flushed[-1]
        job = StreamJob(
            "binance", ["BTC/USDT"], ["trades", "book"], url=fake.url, rest_url=fake.rest_url
        )
        with Collector(config(tmp_path, [job])) as collector:
            wait_until(lambda: collector.status()[0].trades > 0)
    assert not list(tmp_path.glob("**/*.live.h5"))
    store = open_store(tmp_path)
    for segment in store.segments("binance", "BTC/USDT"):
        with h5py.File(segment, "r") as f:
            assert set(f) == {"trades", "book_deltas", "book_snapshots", "gaps"}
    trades = store.trades("binance", "BTC/USDT")
    assert len(trades) >= sum(flushed)
    assert len(np.unique(trades["trade_id"])) == len(trades)
    causes = store.gaps("binance", "BTC/USDT")["cause"].tolist()
    assert causes == ["crash", "crash", "crash"]
