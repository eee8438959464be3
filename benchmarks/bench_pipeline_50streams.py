"""50 streams (50 connections) end to end, aggregate verified rows per second.

Baseline, in the same run and interleaved: our own 1-stream pipeline moving the same total
number of rows. Target: 50 streams ≥ 0.5 x 1 stream (PERF.md §7: websocket-client threads
reach 0.26 x, a buffered reader should not collapse).

    python benchmarks/bench_pipeline_50streams.py [--quick] [--streams 50] [--frames N]
"""

from __future__ import annotations

import sys

import _common as c

TARGET = 0.5


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--frames", type=int, default=None, help="total frames per run")
    p.add_argument("--flush-interval", type=float, default=0.1)
    args = p.parse_args(argv)
    k = args.streams
    total = args.frames or (50_000 if args.quick else 300_000)
    per_stream = total // k
    total = per_stream * k
    runs = c.runs_of(args, full=5)
    many = c.Series(f"dccd_actors Collector, {k} streams (aggregate)", "rows/s")
    one = c.Series("dccd_actors Collector, 1 stream", "rows/s")
    many_pairs, one_pair = c.pair_names(k), c.pair_names(1)
    with c.Blaster(total) as server:
        if args.quick:  # a small warm-up instead of a whole untimed round
            c.run_pipeline(server.blast_url(2_000), one_pair, 2_000, args.flush_interval)
        results = c.interleave(
            {
                many.name: lambda: (
                    c.run_pipeline(
                        server.blast_url(per_stream, k), many_pairs, per_stream, args.flush_interval
                    ).rows_per_s
                ),
                one.name: lambda: (
                    c.run_pipeline(
                        server.blast_url(total), one_pair, total, args.flush_interval
                    ).rows_per_s
                ),
            },
            runs,
            args.seed,
            warmup=not args.quick,
        )
    many.values, one.values = results[many.name], results[one.name]
    ratio = many.median / one.median
    body = c.series_table([many, one], one) + (
        f"\n\n{total:,} rows per run ({per_stream:,} per stream for {k} streams); "
        f"flush_interval {args.flush_interval} s; the server starts sending once all {k} "
        f"connections are open; clock from the first frame received to all rows in storage; "
        f"sealed files verified after stop; {c.machine()}."
    )
    row = c.Row(
        f"{k} streams e2e",
        "rows/s",
        many.median,
        many.min,
        many.max,
        "our 1 stream",
        one.median,
        ratio,
        f">= {TARGET}x",
        ratio >= TARGET,
        runs,
    )
    c.emit(args, f"{k} streams aggregate vs our 1 stream (verified rows/s)", body, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
