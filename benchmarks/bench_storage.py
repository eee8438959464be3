"""Storage append: trade batches through ``SegmentWriter.append`` (the storage actor's call).

Ours: the live SWMR segment, each batch appended and flushed (file creation and close
included). Baseline, in the same run and interleaved: ``ndarray.tofile`` of the same batches to
a plain file. Target: ours ≥ 0.4 x tofile at 10,000-row batches (PERF.md §5, goal 6); the
1,000-row batches are shown for information.

    python benchmarks/bench_storage.py [--quick] [--rows N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import _common as c
import numpy as np

TARGET = 0.4


def trade_rows(n: int) -> Any:
    from dccd_actors.records import TRADES

    rng = np.random.default_rng(3)
    rows = np.zeros(n, dtype=TRADES)
    rows["ts_event"] = 1_780_000_000_000_000_000 + np.arange(n) * 1_000_000
    rows["ts_recv"] = rows["ts_event"] + 2_000_000
    rows["trade_id"] = np.arange(1, n + 1)
    rows["price"] = 30_000 + rng.integers(-50_000, 50_000, n) / 100
    rows["amount"] = rng.integers(1, 2_000_000, n) / 100_000
    rows["side"] = rng.choice(np.array([-1, 1], dtype=np.int8), n)
    return rows


def hdf5_append(root: Path, batches: list[Any]) -> float:
    from dccd_actors.storage.segment import SegmentInfo
    from dccd_actors.storage.writer import SegmentWriter

    rows = sum(len(b) for b in batches)
    with c.temp_dir("dccd-bench-h5-") as tmp:
        info = SegmentInfo("binance", "BTC/USDT", "BTCUSDT", 25, 60.0)
        t0 = time.perf_counter()
        writer = SegmentWriter(tmp, compression="none")
        for batch in batches:
            writer.append(("binance", "BTC/USDT"), info, {"trades": batch})
        written = writer.segments[("binance", "BTC/USDT")].rows["trades"]
        writer.close()
        elapsed = time.perf_counter() - t0
    if written != rows:
        raise AssertionError(f"wrote {written} rows, expected {rows}")
    return rows / elapsed


def tofile(root: Path, batches: list[Any]) -> float:
    rows = sum(len(b) for b in batches)
    with c.temp_dir("dccd-bench-raw-") as tmp:
        path = tmp / "trades.bin"
        t0 = time.perf_counter()
        with open(path, "wb") as f:
            for batch in batches:
                batch.tofile(f)
        elapsed = time.perf_counter() - t0
        size = path.stat().st_size
    if size != rows * batches[0].dtype.itemsize:
        raise AssertionError("tofile wrote a wrong size")
    return rows / elapsed


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=None, help="rows per run")
    args = p.parse_args(argv)
    n = args.rows or (200_000 if args.quick else 2_000_000)
    rows = trade_rows(n)
    batches = {b: [rows[i : i + b] for i in range(0, n, b)] for b in (10_000, 1_000)}
    root = Path(".")
    runs = c.runs_of(args)
    series = {
        "h5_10k": c.Series("SegmentWriter.append, 10k-row batches", "rows/s"),
        "raw_10k": c.Series("ndarray.tofile, 10k-row batches", "rows/s"),
        "h5_1k": c.Series("SegmentWriter.append, 1k-row batches", "rows/s"),
        "raw_1k": c.Series("ndarray.tofile, 1k-row batches", "rows/s"),
    }
    results = c.interleave(
        {
            "h5_10k": lambda: hdf5_append(root, batches[10_000]),
            "raw_10k": lambda: tofile(root, batches[10_000]),
            "h5_1k": lambda: hdf5_append(root, batches[1_000]),
            "raw_1k": lambda: tofile(root, batches[1_000]),
        },
        runs,
        args.seed,
    )
    for key, s in series.items():
        s.values = results[key]
    ratio = series["h5_10k"].median / series["raw_10k"].median
    ratio_1k = series["h5_1k"].median / series["raw_1k"].median
    body = (
        c.series_table([series["h5_10k"], series["raw_10k"]], series["raw_10k"])
        + "\n\n"
        + c.series_table([series["h5_1k"], series["raw_1k"]], series["raw_1k"])
        + f"\n\n{n:,} trade rows of {rows.dtype.itemsize} B per run; ours flushes after every "
        f"batch (as the storage actor does); page cache, no fsync, files deleted after each "
        f"run. {c.machine()}."
    )
    h5 = series["h5_10k"]
    out = [
        c.Row(
            "storage append (10k-row batches)",
            "rows/s",
            h5.median,
            h5.min,
            h5.max,
            "ndarray.tofile",
            series["raw_10k"].median,
            ratio,
            f">= {TARGET}x",
            ratio >= TARGET,
            runs,
            f"1k-row batches: {ratio_1k:.2f}x",
        )
    ]
    c.emit(args, "Storage append vs ndarray.tofile", body, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
