"""SWMR follower process of ``bench_latency.py``: how old is a row when another process sees it?

Opens the live segments (``*.live.h5``) of the given streams with ``swmr=True``, polls
``trades`` every ``--poll`` seconds (``refresh()`` then the new rows) and records, for every
row that appears, ``time.time_ns() - ts_recv``. Rows already present when a file is opened
are skipped. Prints ``ready`` once every file is open, then, after ``--seconds``, one JSON line:
a list of windows, each ``{"rows": n, "p50_ms": ..., "p99_ms": ..., "max_ms": ...}``.

    python benchmarks/swmr_reader.py --root DIR --stream binance/C00-USDT ... --seconds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np


def open_live(folder: Path, timeout: float) -> tuple[Any, Any]:
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(folder.glob("*.live.h5"))
        if files:
            try:  # refused while the writer is still creating the file (before SWMR starts)
                f = h5py.File(files[-1], "r", swmr=True)
                return f, f["trades"]
            except (OSError, KeyError):
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no live segment in {folder}")
        time.sleep(0.01)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--stream", action="append", required=True, help="exchange/BASE-QUOTE")
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--poll", type=float, default=0.002)
    args = p.parse_args()
    followed = []
    for stream in args.stream:
        f, ds = open_live(args.root / stream, 30.0)
        ds.refresh()
        followed.append((f, ds, [int(ds.shape[0])]))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    lags: list[list[np.ndarray[Any, Any]]] = [[] for _ in range(args.windows)]
    t0 = time.monotonic()
    window = args.seconds / args.windows
    while (elapsed := time.monotonic() - t0) < args.seconds:
        i = min(int(elapsed / window), args.windows - 1)
        for _, ds, seen in followed:
            ds.refresh()
            n = int(ds.shape[0])
            if n > seen[0]:
                ts = ds.fields("ts_recv")[seen[0] : n]
                now = time.time_ns()
                lags[i].append((now - ts.astype(np.int64)) / 1e6)
                seen[0] = n
        time.sleep(args.poll)
    for f, _, _ in followed:
        f.close()
    out = []
    for parts in lags:
        ms = np.concatenate(parts) if parts else np.zeros(0)
        out.append(
            {
                "rows": len(ms),
                "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
                "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
                "max_ms": float(ms.max()) if len(ms) else None,
            }
        )
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
