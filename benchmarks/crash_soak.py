"""Crash soak: a subprocess collecting from three fake venues is SIGKILLed at random moments,
20 times in a row (``--kills``), then a final run seals the leftovers.

    python benchmarks/crash_soak.py [--kills 20] [--seed 7]

Checks after the soak (the process exits 1 if any fails): every file opens, no trade is stored
twice, every venue holds at least the trades a reader saw flushed before each kill, and each
kill is exactly one ``crash`` row in that venue's gap ledger. Prints the figures as a table.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dccd_actors import Collector, StreamJob, open_store
from tests.helpers import config, wait_until
from tests.test_crash import kill_one_run, venues


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dccd-crash-") as tmp, venues() as fakes:
        path = Path(tmp)
        runs = [kill_one_run(fakes, path, rng) for _ in range(args.kills)]
        jobs = [
            StreamJob(f.exchange, [p], ["trades", "book"], url=f.url, rest_url=f.rest_url)
            for f, p in fakes
        ]
        with Collector(config(path, jobs)) as collector:
            wait_until(lambda: all(r.trades > 0 for r in collector.status()), timeout=30)
        failures = _verify(path, fakes, runs, args.kills)
    print(
        f"{'venue':<10} {'kills':>5} {'crash gaps':>10} {'trades':>8} {'flushed before kills':>21} {'duplicates':>10}"
    )
    for row in failures["rows"]:
        print(f"{row[0]:<10} {args.kills:>5} {row[1]:>10} {row[2]:>8} {row[3]:>21} {row[4]:>10}")
    print(
        f"{args.kills} kills in {time.monotonic() - started:.0f} s; problems: {failures['problems'] or 'none'}"
    )
    return 1 if failures["problems"] else 0


def _verify(path: Path, fakes: list, runs: list[dict[str, int]], kills: int) -> dict:  # type: ignore[type-arg]
    store = open_store(path)
    problems: list[str] = []
    rows = []
    if list(path.glob("**/*.live.h5")):
        problems.append("live segments left after the final run")
    for fake, pair in fakes:
        for segment in store.segments(fake.exchange, pair):
            with h5py.File(segment, "r") as f:
                if set(f) != {"trades", "book_deltas", "book_snapshots", "gaps"}:
                    problems.append(f"{segment} lacks datasets")
        trades = store.trades(fake.exchange, pair)
        ids = trades["trade_uid"] if fake.exchange == "bitmex" else trades["trade_id"]
        duplicates = len(trades) - len(np.unique(ids))
        crashes = store.gaps(fake.exchange, pair)["cause"].tolist().count("crash")
        flushed = sum(run[fake.exchange] for run in runs)
        rows.append((fake.exchange, crashes, len(trades), flushed, duplicates))
        if duplicates or crashes != kills or len(trades) < flushed:
            problems.append(
                f"{fake.exchange}: duplicates={duplicates} crash gaps={crashes} trades={len(trades)}<{flushed}?"
            )
    return {"rows": rows, "problems": problems}


if __name__ == "__main__":
    sys.exit(main())
