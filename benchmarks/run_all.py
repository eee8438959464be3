"""Run every benchmark and print one summary table.

    python benchmarks/run_all.py            # full suite, under 10 minutes on the 2-core VM
    python benchmarks/run_all.py --quick    # smoke sizes, under 1 minute
    python benchmarks/run_all.py --only book storage

Each benchmark runs as its own process (one at a time, so they do not share the 2 cores),
prints its own table (median, min, max, runs and the ratio to its in-run baseline) and hands
its summary rows back as JSON. Targets are reported, never asserted: the exit status is
non-zero only when a benchmark fails to run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import _common as c

BENCHMARKS: Final = {
    "pipeline_1stream": "bench_pipeline_1stream.py",
    "pipeline_50streams": "bench_pipeline_50streams.py",
    "adapters": "bench_adapters.py",
    "okx_budget": "okx_budget.py",
    "book": "bench_book.py",
    "storage": "bench_storage.py",
    "cpu": "bench_cpu.py",
    "memory": "bench_memory.py",
    "latency": "bench_latency.py",
}


def revision() -> str:
    """The checked-out commit, marked ``+dirty`` when the tree has changes (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=c.HERE,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=c.HERE,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "an unknown revision"
    return head + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke sizes (under a minute)")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    p.add_argument("--runs", type=int, default=None, help="runs per variant (>= 5)")
    args = p.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    rows: list[c.Row] = []
    failed: list[str] = []
    timings: dict[str, float] = {}
    started = time.perf_counter()
    c.say(
        f"# dccd_actors benchmarks ({'quick' if args.quick else 'full'}) at {revision()}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}: {c.machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="dccd-bench-run-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            cmd = [sys.executable, str(c.HERE / BENCHMARKS[name]), "--json", str(out)]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--runs", str(args.runs)] if args.runs else []
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, check=False)
            timings[name] = time.perf_counter() - t0
            if proc.returncode != 0 or not out.exists():
                failed.append(name)
                c.say(f"!! {name} failed (exit status {proc.returncode})")
                continue
            rows += [c.Row(**r) for r in json.loads(out.read_text())]
    total = time.perf_counter() - started
    c.say(f"\n# Summary ({'quick' if args.quick else 'full'}, {total:.0f} s)\n")
    c.say(
        c.table(
            ["benchmark", "ours (median)", "min", "max", "baseline", "ratio", "target", "met"],
            [
                [
                    r.benchmark,
                    f"{c.fmt(r.ours)} {r.metric}",
                    c.fmt(r.ours_min),
                    c.fmt(r.ours_max),
                    f"{r.baseline_name} {c.fmt(r.baseline)}",
                    f"{r.ratio:.2f}",
                    r.target,
                    ("yes" if r.met else "NO") + (f" ({r.note})" if r.note else ""),
                ]
                for r in rows
            ],
        )
    )
    c.say("\nSeconds per benchmark: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    if failed:
        c.say(f"Failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
