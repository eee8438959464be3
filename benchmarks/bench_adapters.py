"""Adapter normalisation per message against cryptofeed's handlers on the same corpora.

Corpora (``frames.py``): Binance trades in the recorded ``@trade`` layout (cryptofeed only
handles ``@aggTrade``, so it gets the same trades rendered in the recorded ``@aggTrade``
layout), Binance ``@depth@100ms`` diffs after a 1000-level REST snapshot (identical frames for
both), and the recorded OKX BTC-USDT ``books`` frames, snapshot then updates, cycled
(identical frames for both; ours verifies every checksum, cryptofeed by default does not).

Each implementation runs in its own worker process (``adapter_worker.py``); cryptofeed runs
under the interpreter that has it, so it never has to be a dependency of this project. The
parent sends the variants to the two workers interleaved, in a shuffled order each round.
Targets: ours ≥ 2 x cryptofeed for trades and ≥ 2.5 x for books.

If cryptofeed cannot be found, the cryptofeed figures of PERF.md §4 are used as a documented
fallback (another machine; the ratio is then only indicative). Install it in a throwaway venv
with ``benchmarks/setup_cryptofeed.sh``, or point ``--cryptofeed-python`` (or
``$DCCD_BENCH_CRYPTOFEED_PYTHON``) at an interpreter that has it.

    python benchmarks/bench_adapters.py [--quick] [--cryptofeed-python PATH]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Final

import _common as c
import frames as fr

VENV_PYTHON: Final = Path.home() / ".cache" / "dccd-bench" / "cf-venv" / "bin" / "python"
VARIANTS: Final = {
    "binance_trades": ("Binance trades", 2.0),
    "binance_depth": ("Binance depth", 2.5),
    "okx_books": ("OKX books", 2.5),
    # like for like: cryptofeed's OKX handler verifies no checksum unless asked; ours always does
    "okx_books_checked": ("OKX books, both verifying checksums", 2.5),
    # the same frames as OKX sends them since June 2026: checksum 0, so neither verifies
    "okx_books_zero": ("OKX books with checksum 0 (production)", 2.5),
}
PERF_FALLBACK: Final = {  # cryptofeed 2.4.1 handler msg/s, PERF.md §4 table 3
    "binance_trades": 394_702.0,
    "binance_depth": 23_831.0,
    "okx_books": 34_245.0,
}  # no PERF.md figure for okx_books_checked: that row needs cryptofeed installed


def find_cryptofeed(explicit: str | None) -> str | None:
    """An interpreter that can import cryptofeed, or None."""
    candidates = [explicit, os.environ.get("DCCD_BENCH_CRYPTOFEED_PYTHON"), str(VENV_PYTHON)]
    candidates.append(sys.executable)
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import cryptofeed"], capture_output=True, timeout=60, check=False
        )
        if probe.returncode == 0:
            return python
    return None


class Worker:
    """``adapter_worker.py`` under ``python``: one line in, one JSON line out."""

    def __init__(self, python: str, impl: str, data: Path) -> None:
        env = dict(os.environ)
        if impl == "cryptofeed":
            env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(
            [python, str(c.HERE / "adapter_worker.py"), "--impl", impl, "--data", str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        if self._read() != "ready":
            raise RuntimeError(f"{impl} worker did not start")

    def _read(self) -> str:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        line = out.readline()
        if not line:
            raise RuntimeError(f"worker ended (rc={self.proc.poll()})")
        return line.strip()

    def run(self, variant: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(variant + "\n")
        self.proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._read())
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def job(worker: Worker, variant: str, key: str, outs: dict[str, int]) -> Callable[[], float]:
    """One run of ``variant`` in ``worker``: msg/s; the output count is kept in ``outs``."""

    def run() -> float:
        result = worker.run(variant)
        outs[key] = int(result["out"])
        return float(result["msgs_per_s"])

    return run


def write_corpora(path: Path, quick: bool) -> dict[str, int]:
    trades = 20_000 if quick else 200_000
    depth = 2_000 if quick else 20_000
    okx_cycles = 20 if quick else 200
    trade_frames = fr.trade_frames("BTCUSDT", trades, fr.BASE_MS)
    (path / "binance_trades.txt").write_text("\n".join(trade_frames) + "\n")
    (path / "binance_aggtrades.txt").write_text(
        "\n".join(fr.agg_trade_frame(f) for f in trade_frames) + "\n"
    )
    snapshot, diffs = fr.binance_depth("BTCUSDT", depth)
    (path / "depth_snapshot.json").write_text(snapshot)
    (path / "binance_depth.txt").write_text("\n".join(diffs) + "\n")
    cycle = fr.okx_books_cycle("BTC-USDT")
    (path / "okx_books.txt").write_text("\n".join(cycle * okx_cycles) + "\n")
    zero = [re.sub(r'"checksum":-?[0-9]+', '"checksum":0', frame) for frame in cycle]
    (path / "okx_books_zero.txt").write_text("\n".join(zero * okx_cycles) + "\n")
    levels = sum(len(json.loads(f)["data"]["b"]) + len(json.loads(f)["data"]["a"]) for f in diffs)
    return {
        "trades": trades,
        "depth": depth,
        "depth_levels_per_msg": round(levels / depth),
        "okx": len(cycle) * okx_cycles,
        "okx_cycle": len(cycle),
    }


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--cryptofeed-python", default=None)
    args = p.parse_args(argv)
    runs = c.runs_of(args, full=5)
    cf_python = find_cryptofeed(args.cryptofeed_python)
    variants = {v: t for v, t in VARIANTS.items() if cf_python is not None or v in PERF_FALLBACK}
    ours_s = {v: c.Series(f"ours: {label}", "msg/s") for v, (label, _) in variants.items()}
    cf_s = {v: c.Series(f"cryptofeed: {label}", "msg/s") for v, (label, _) in variants.items()}
    out_counts: dict[str, int] = {}
    with c.temp_dir("dccd-bench-frames-") as data:
        sizes = write_corpora(data, args.quick)
        workers = {"ours": Worker(sys.executable, "ours", data)}
        if cf_python is not None:
            workers["cryptofeed"] = Worker(cf_python, "cryptofeed", data)
        try:
            jobs = {
                f"{impl}:{variant}": job(worker, variant, f"{impl}:{variant}", out_counts)
                for variant in variants
                for impl, worker in workers.items()
            }
            results = c.interleave(jobs, runs, args.seed)
        finally:
            for worker in workers.values():
                worker.close()
    rows = []
    series: list[c.Series] = []
    for variant, (label, target) in variants.items():
        ours, cf = ours_s[variant], cf_s[variant]
        ours.values = results[f"ours:{variant}"]
        note = ""
        if cf_python is not None:
            cf.values = results[f"cryptofeed:{variant}"]
        else:
            cf.values = [PERF_FALLBACK[variant]]
            cf.name += " (PERF.md fallback)"
            note = "cryptofeed not installed: PERF.md figure used"
        series += [ours, cf]
        ratio = ours.median / cf.median
        rows.append(
            c.Row(
                f"adapter: {label}",
                "msg/s",
                ours.median,
                ours.min,
                ours.max,
                "cryptofeed handler",
                cf.median,
                ratio,
                f">= {target}x",
                ratio >= target,
                runs,
                note,
            )
        )
    lines = [
        c.table(
            ["variant", "unit", "median", "min", "max", "runs", "ratio to cryptofeed"],
            [
                [
                    s.name,
                    s.unit,
                    c.fmt(s.median),
                    c.fmt(s.min),
                    c.fmt(s.max),
                    str(len(s.values)),
                    f"{s.median / cf_s[v].median:.2f}" if s.name.startswith("ours") else "1",
                ]
                for s, v in zip(series, [v for v in variants for _ in (0, 1)], strict=True)
            ],
        ),
        "",
        f"Corpora: {sizes['trades']:,} trades; {sizes['depth']:,} Binance depth diffs "
        f"(about {sizes['depth_levels_per_msg']} levels each, 1000-level snapshot untimed); "
        f"{sizes['okx']:,} OKX frames ({sizes['okx'] // sizes['okx_cycle']} cycles of the "
        f"recorded {sizes['okx_cycle']}: 1 snapshot of 800 levels, then updates).",
        "Outputs per run (rows for ours, callbacks for cryptofeed): "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(out_counts.items()))
        + ".",
        f"cryptofeed interpreter: {cf_python or 'none (fallback to PERF.md)'}; {c.machine()}.",
    ]
    c.emit(args, "Adapter normalisation per message vs cryptofeed", "\n".join(lines), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
