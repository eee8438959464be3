"""Memory over a soak at the stress envelope (50 symbols x 260 msg/s, about 13k msg/s).

The Collector runs in this process against paced blaster streams; the resident set size
(``VmRSS``) is sampled every second. After a warm-up, the first sample is the baseline ("start
of soak") and the measured part is cut into ≥ 5 windows whose last samples are reported.
Target: < 5 % growth from the start of the soak to its end.

Quick/CI: a 20 s soak (5 s warm-up). Full: ``--seconds`` (default 240 s, 60 s warm-up) so the
whole suite stays under 10 minutes; a longer soak is one option away.

    python benchmarks/bench_memory.py [--quick] [--seconds 240] [--warmup 60]
"""

from __future__ import annotations

import sys
import time

import _common as c

TARGET = 0.05


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=None, help="soak length, warm-up included")
    p.add_argument("--warmup", type=float, default=None)
    p.add_argument("--streams", type=int, default=c.STRESS_STREAMS)
    p.add_argument("--rate", type=float, default=c.STRESS_RATE, help="msg/s per stream")
    args = p.parse_args(argv)
    seconds = args.seconds or (20.0 if args.quick else 240.0)
    warmup = args.warmup if args.warmup is not None else (5.0 if args.quick else 60.0)
    windows = c.runs_of(args, quick=5, full=10)
    rss = c.Series("RSS at the end of each window", "MiB")
    samples: list[tuple[float, int]] = []
    with c.temp_dir("dccd-bench-mem-") as path:
        t_start = time.monotonic()
        with c.paced_collector(path, args.streams, args.rate, 1.0) as collector:
            frames0 = c.frames_received(collector)
            while time.monotonic() - t_start < warmup:
                samples.append((time.monotonic() - t_start, c.rss_bytes()))
                time.sleep(1.0)
            start = c.rss_bytes()
            t0 = time.monotonic()
            window = (seconds - warmup) / windows
            for i in range(windows):
                while time.monotonic() - t0 < window * (i + 1):
                    samples.append((time.monotonic() - t_start, c.rss_bytes()))
                    time.sleep(min(1.0, max(0.01, t0 + window * (i + 1) - time.monotonic())))
                rss.values.append(c.rss_bytes() / 2**20)
            frames = c.frames_received(collector) - frames0
            elapsed = time.monotonic() - t_start
            running = all(row.state == "running" for row in collector.status())
    end = rss.values[-1] * 2**20
    growth = (end - start) / start
    peak = max(b for t, b in samples if t >= warmup) if samples else end
    body = c.table(
        ["variant", "unit", "median", "min", "max", "windows", "ratio to start"],
        [
            [
                rss.name,
                rss.unit,
                c.fmt(rss.median),
                c.fmt(rss.min),
                c.fmt(rss.max),
                str(len(rss.values)),
                f"{end / start:.3f}",
            ],
            [
                "RSS at the start of the soak (after warm-up)",
                "MiB",
                c.fmt(start / 2**20),
                "-",
                "-",
                "1",
                "1 (baseline)",
            ],
        ],
    ) + (
        f"\n\nSoak {seconds:g} s ({warmup:g} s warm-up) at {args.streams} x {args.rate:g} "
        f"msg/s; {frames / elapsed:,.0f} msg/s received; growth {growth:+.1%} (peak "
        f"{(peak - start) / start:+.1%}); RSS during warm-up "
        f"{samples[0][1] / 2**20:.0f} → {start / 2**20:.0f} MiB; streams running: {running}. "
        f"{c.machine()}."
    )
    row = c.Row(
        f"memory soak {seconds:g} s",
        "MiB",
        rss.median,
        rss.min,
        rss.max,
        "RSS at start of soak",
        start / 2**20,
        end / start,
        "< 1.05x (5 % growth)",
        growth < TARGET and running,
        windows,
        f"growth {growth:+.1%}",
    )
    c.emit(args, "Memory over a soak at the stress envelope", body, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
