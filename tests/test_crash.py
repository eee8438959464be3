"""A subprocess collecting from several venues, killed with SIGKILL: files stay readable,
nothing flushed is lost, no row is duplicated, and each kill is one ``crash`` gap."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import h5py
import numpy as np

from dccd_actors import Collector, StreamJob, open_store
from dccd_actors.testing import FakeBinance, FakeBitmex, FakeExchange, FakeOkx
from tests.helpers import config, wait_until

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from dccd_actors import Collector, CollectorConfig, StorageConfig, StreamJob
    venues, path = json.loads(sys.argv[1]), sys.argv[2]
    jobs = [StreamJob(v["exchange"], [v["pair"]], ["trades", "book"], time_step=0.2, url=v["url"],
                      rest_url=v["rest_url"]) for v in venues]
    cfg = CollectorConfig(storage=StorageConfig(local_path=path, flush_interval=0.1), stream_jobs=jobs)
    Collector(cfg).start()
    print("started", flush=True)
    time.sleep(600)
    """
)
VENUES = [(FakeBinance, "BTC/USDT"), (FakeOkx, "BTC/USDT"), (FakeBitmex, "BTC/USD")]


@contextmanager
def venues() -> Iterator[list[tuple[FakeExchange, str]]]:
    with ExitStack() as stack:
        yield [
            (stack.enter_context(cls([pair], seed=11 + i)), pair)
            for i, (cls, pair) in enumerate(VENUES)
        ]


def _live_trades(path: Path, exchange: str, pair: str, old: set[Path]) -> int:
    """Trades a reader in another process sees in the child's own live segment."""
    lives = sorted(set(path.glob(f"{exchange}/{pair.replace('/', '-')}/*.live.h5")) - old)
    if not lives:
        return 0
    try:
        with h5py.File(lives[-1], "r", swmr=True) as f:
            return int(f["trades"].shape[0])
    except OSError:  # created but not yet in SWMR mode
        return 0


def kill_one_run(
    fakes: list[tuple[FakeExchange, str]], path: Path, rng: random.Random
) -> dict[str, int]:
    """Start a collecting child, let it flush, SIGKILL it at a random moment; return what a
    reader saw flushed in each venue's live segment just before the kill."""
    old = set(path.glob("*/*/*.live.h5"))
    spec = [
        {"exchange": f.exchange, "pair": p, "url": f.url, "rest_url": f.rest_url} for f, p in fakes
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(spec), str(path)], stdout=subprocess.PIPE, env=env
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"started"
        for fake, pair in fakes:
            wait_until(
                lambda f=fake, p=pair: _live_trades(path, f.exchange, p, old) >= 5, timeout=20
            )
        time.sleep(rng.uniform(0.0, 0.5))
        flushed = {f.exchange: _live_trades(path, f.exchange, p, old) for f, p in fakes}
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    return flushed


def test_sigkill_three_times_loses_nothing_flushed_and_each_kill_is_one_crash_gap(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    with venues() as fakes:
        runs = [kill_one_run(fakes, tmp_path, rng) for _ in range(3)]
        jobs = [
            StreamJob(f.exchange, [p], ["trades", "book"], url=f.url, rest_url=f.rest_url)
            for f, p in fakes
        ]
        with Collector(config(tmp_path, jobs)) as collector:  # seals the last leftovers
            wait_until(lambda: all(r.trades > 0 for r in collector.status()))
    assert not list(tmp_path.glob("**/*.live.h5"))
    store = open_store(tmp_path)
    for fake, pair in fakes:
        for segment in store.segments(fake.exchange, pair):
            with h5py.File(segment, "r") as f:  # every file opens normally once sealed
                assert set(f) == {"trades", "book_deltas", "book_snapshots", "gaps"}
        trades = store.trades(fake.exchange, pair)
        assert len(trades) >= sum(run[fake.exchange] for run in runs)
        ids = trades["trade_uid"] if fake.exchange == "bitmex" else trades["trade_id"]
        assert len(np.unique(ids)) == len(trades), fake.exchange
        assert store.gaps(fake.exchange, pair)["cause"].tolist() == ["crash"] * 3, fake.exchange
