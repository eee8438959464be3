"""1 stream end to end: blaster → Collector → sealed HDF5, rows verified, per second.

Baseline, in the same run and interleaved: websocket-client's bare ``recv()`` loop with
``skip_utf8_validation=True`` on the same server and the same frames (no parsing, no storage).
Target: ours ≥ 0.8 x the baseline.

    python benchmarks/bench_pipeline_1stream.py [--quick] [--frames N]
"""

from __future__ import annotations

import statistics
import sys
import time

import _common as c

TARGET = 0.8


def bare_recv(url: str, n: int) -> float:
    """Frames per second of a websocket-client ``recv()`` loop, from connected to the n-th frame."""
    import websocket

    ws = websocket.create_connection(
        f"{url}/stream?streams=btcusdt@trade", skip_utf8_validation=True
    )
    t0 = time.perf_counter()
    last: str | bytes = ""
    for _ in range(n):
        last = ws.recv()
    elapsed = time.perf_counter() - t0
    ws.close()
    if not isinstance(last, str) or f'"t":{n},' not in last:
        raise AssertionError(f"the {n}-th frame is not trade {n}: {last[:120]!r}")
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=None, help="frames per run")
    p.add_argument("--flush-interval", type=float, default=0.1)
    args = p.parse_args(argv)
    n = args.frames or (30_000 if args.quick else 300_000)
    runs = c.runs_of(args, full=5)
    ours = c.Series("dccd_actors Collector (1 stream, verified rows)", "rows/s")
    base = c.Series("websocket-client recv(), skip_utf8", "frames/s")
    stops: list[float] = []
    starts: list[float] = []
    pairs = c.pair_names(1)
    with c.Blaster(n) as server:
        url = server.blast_url(n)

        def run_ours() -> float:
            result = c.run_pipeline(url, pairs, n, args.flush_interval)
            stops.append(result.stop_seconds)
            starts.append(result.startup_seconds)
            return result.rows_per_s

        results = c.interleave(
            {ours.name: run_ours, base.name: lambda: bare_recv(url, n)}, runs, args.seed
        )
    ours.values, base.values = results[ours.name], results[base.name]
    ratio = ours.median / base.median
    body = c.series_table([ours, base], base) + (
        f"\n\n{n:,} frames per run; flush_interval {args.flush_interval} s. Clocks: the baseline "
        f"from connected to the {n:,}-th frame; ours from the first frame received (smallest "
        f"stored ts_recv) to every row in storage. Not in the rate: start-up to the first frame "
        f"median {statistics.median(starts):.2f} s, stop + seal median "
        f"{statistics.median(stops):.2f} s. Sealed files read back, ids 1..{n:,} verified. "
        f"{c.machine()}."
    )
    row = c.Row(
        "1 stream e2e",
        "rows/s",
        ours.median,
        ours.min,
        ours.max,
        "websocket-client recv()",
        base.median,
        ratio,
        f">= {TARGET}x",
        ratio >= TARGET,
        runs,
    )
    c.emit(
        args, "1 stream end to end (verified rows/s) vs websocket-client bare recv()", body, [row]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
