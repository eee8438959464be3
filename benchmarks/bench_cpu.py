"""CPU at the stress envelope: 50 symbols x 260 msg/s (about 13k msg/s) for 60 s (quick: 5 s).

The blaster paces every connection in 10 ms bursts from its own process; the Collector runs in
this one, so this process's CPU (``os.times``, user + system, all threads) is the collector's
cost. The measured time is cut into ≥ 5 windows after a warm-up; each window gives one value
of cores = CPU seconds / wall seconds. Baseline: one core. Target: ≤ 0.25 core.

    python benchmarks/bench_cpu.py [--quick] [--seconds 60]
"""

from __future__ import annotations

import sys
import time

import _common as c

TARGET = 0.25


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=None, help="measured seconds")
    p.add_argument("--streams", type=int, default=c.STRESS_STREAMS)
    p.add_argument("--rate", type=float, default=c.STRESS_RATE, help="msg/s per stream")
    args = p.parse_args(argv)
    seconds = args.seconds or (5.0 if args.quick else 60.0)
    windows = c.runs_of(args, quick=5, full=6)
    warmup = 1.0 if args.quick else 5.0
    offered = args.streams * args.rate
    cores = c.Series(f"collector CPU at {offered:,.0f} msg/s offered", "cores")
    achieved = c.Series("frames received", "msg/s")
    micros = c.Series("CPU per message", "µs")
    with c.temp_dir("dccd-bench-cpu-") as path:
        with c.paced_collector(path, args.streams, args.rate, 1.0) as collector:
            time.sleep(warmup)
            for _ in range(windows):
                frames0 = c.frames_received(collector)
                wall0, cpu0 = time.perf_counter(), c.cpu_seconds()
                time.sleep(seconds / windows)
                wall1, cpu1 = time.perf_counter(), c.cpu_seconds()
                frames1 = c.frames_received(collector)
                cpu, wall = cpu1 - cpu0, wall1 - wall0
                cores.values.append(cpu / wall)
                achieved.values.append((frames1 - frames0) / wall)
                micros.values.append(cpu / max(1, frames1 - frames0) * 1e6)
            status = collector.status()
        stored_ok = all(row.trades > 0 and row.state == "running" for row in status)
    ratio = cores.median / 1.0
    body = c.table(
        ["variant", "unit", "median", "min", "max", "windows", "ratio to one core"],
        [
            [s.name, s.unit, c.fmt(s.median), c.fmt(s.min), c.fmt(s.max), str(len(s.values)), r]
            for s, r in ((cores, f"{ratio:.3f}"), (achieved, "-"), (micros, "-"))
        ],
    ) + (
        f"\n\n{args.streams} streams x {args.rate:g} msg/s for {seconds:g} s in {windows} "
        f"windows after {warmup:g} s of warm-up; flush_interval 1 s; every stream running "
        f"and storing: {stored_ok}. {c.machine()}."
    )
    row = c.Row(
        f"CPU at {args.streams}x{args.rate:g} msg/s",
        "cores",
        cores.median,
        cores.min,
        cores.max,
        "one core",
        1.0,
        ratio,
        f"<= {TARGET} core",
        ratio <= TARGET and stored_ok,
        windows,
        f"{achieved.median:,.0f} msg/s received of {offered:,.0f} offered",
    )
    c.emit(args, "CPU at the stress envelope", body, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
