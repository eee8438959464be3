"""End-to-end latency: ``ts_recv`` → row readable by a SWMR reader in another process.

The Collector runs at the stress envelope (50 symbols x 260 msg/s) with ``flush_interval`` f;
``swmr_reader.py``, a separate process, follows the live segments of 5 of the streams and
records for every new row how old its ``ts_recv`` is when the row becomes visible. The
measured time is cut into ≥ 5 windows; each gives a p99. Baseline: the flush interval.
Target: p99 ≤ 1.5 x f.

    python benchmarks/bench_latency.py [--quick] [--flush-interval 1.0] [--seconds 30]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _common as c

TARGET = 1.5


def follow(path: Path, pairs: list[str], seconds: float, windows: int) -> str:
    """Run ``swmr_reader.py`` on ``pairs`` for ``seconds``; return its JSON line."""
    cmd = [sys.executable, str(c.HERE / "swmr_reader.py"), "--root", str(path)]
    for pair in pairs:
        cmd += ["--stream", f"binance/{pair.replace('/', '-')}"]
    cmd += ["--seconds", str(seconds), "--windows", str(windows)]
    reader = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert reader.stdout is not None
    if reader.stdout.readline().strip() != "ready":
        reader.wait()
        raise RuntimeError("the SWMR reader did not start")
    out, _ = reader.communicate(timeout=seconds + 60)
    return out


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--flush-interval", type=float, default=None)
    p.add_argument("--seconds", type=float, default=None, help="measured seconds")
    p.add_argument("--streams", type=int, default=c.STRESS_STREAMS)
    p.add_argument("--followed", type=int, default=5, help="streams the reader follows")
    p.add_argument("--rate", type=float, default=c.STRESS_RATE, help="msg/s per stream")
    args = p.parse_args(argv)
    flush = args.flush_interval or (0.25 if args.quick else 1.0)
    seconds = args.seconds or (5.0 if args.quick else 30.0)
    windows = c.runs_of(args, quick=5, full=6)
    pairs = c.pair_names(args.streams)[: args.followed]
    p99 = c.Series("p99 ts_recv → visible to a SWMR reader", "ms")
    p50 = c.Series("p50", "ms")
    worst = c.Series("max", "ms")
    rows = 0
    with (
        c.temp_dir("dccd-bench-lat-") as path,
        c.paced_collector(path, args.streams, args.rate, flush),
    ):
        out = follow(path, pairs, seconds, windows)
    for w in json.loads(out):
        if w["rows"]:
            rows += w["rows"]
            p99.values.append(w["p99_ms"])
            p50.values.append(w["p50_ms"])
            worst.values.append(w["max_ms"])
    ratio = p99.median / (flush * 1000)
    body = c.table(
        ["variant", "unit", "median", "min", "max", "windows", "ratio to flush interval"],
        [
            [
                s.name,
                s.unit,
                c.fmt(s.median),
                c.fmt(s.min),
                c.fmt(s.max),
                str(len(s.values)),
                f"{s.median / (flush * 1000):.2f}",
            ]
            for s in (p99, p50, worst)
        ]
        + [["flush interval", "ms", c.fmt(flush * 1000), "-", "-", "-", "1 (baseline)"]],
    ) + (
        f"\n\n{args.streams} streams x {args.rate:g} msg/s; the reader process follows "
        f"{len(pairs)} of them, polling every 2 ms; {rows:,} rows observed over {seconds:g} s. "
        f"{c.machine()}."
    )
    row = c.Row(
        "latency ts_recv → SWMR reader (p99)",
        "ms",
        p99.median,
        p99.min,
        p99.max,
        "flush interval",
        flush * 1000,
        ratio,
        f"<= {TARGET}x",
        ratio <= TARGET,
        len(p99.values),
        f"flush_interval {flush:g} s, p50 {p50.median:.0f} ms",
    )
    c.emit(args, "End-to-end latency to a SWMR reader", body, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
