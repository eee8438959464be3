"""Shared pieces of the benchmark scripts: CLI, statistics, tables, the blaster, the collector.

Every benchmark measures its baseline in the same run, interleaved with our variant (a shuffled
order in every round), and reports median, min and max over at least 5 runs plus the ratio of
the medians. ``--json PATH`` writes the summary rows that ``run_all.py`` collects.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parent
MIN_RUNS: Final = 5


# -- command line ------------------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test, CI)")
    p.add_argument("--runs", type=int, default=None, help=f"runs per variant (>= {MIN_RUNS})")
    p.add_argument("--json", type=Path, default=None, help="write summary rows to this file")
    p.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    return p


def runs_of(args: argparse.Namespace, quick: int = MIN_RUNS, full: int = 7) -> int:
    runs = args.runs if args.runs is not None else (quick if args.quick else full)
    return max(MIN_RUNS, int(runs))


# -- statistics and tables ---------------------------------------------------------------------
@dataclass
class Series:
    """The per-run values of one variant."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def min(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def max(self) -> float:
        return max(self.values) if self.values else float("nan")


@dataclass
class Row:
    """One line of the summary: our median against the baseline median and the target."""

    benchmark: str
    metric: str
    ours: float
    ours_min: float
    ours_max: float
    baseline_name: str
    baseline: float
    ratio: float
    target: str
    met: bool
    runs: int
    note: str = ""


def interleave(
    variants: dict[str, Callable[[], float]],
    runs: int,
    seed: int = 0,
    warmup: bool = True,
    on_run: Callable[[str, int, float], None] | None = None,
) -> dict[str, list[float]]:
    """Run every variant ``runs`` times, in a freshly shuffled order each round.

    A first untimed round warms caches, imports and the server (unless ``warmup`` is False).
    """
    order = list(variants)
    rng = random.Random(seed)
    if warmup:
        for name in order:
            variants[name]()
    results: dict[str, list[float]] = {name: [] for name in order}
    for i in range(runs):
        rng.shuffle(order)
        for name in order:
            value = variants[name]()
            results[name].append(value)
            if on_run is not None:
                on_run(name, i, value)
    return results


def fmt(value: float) -> str:
    """Numbers for tables: thousands separators for large ones, 3 significant digits else."""
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with right-aligned columns (all but the first)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|"
        + "|".join(
            ("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)
        )
        + "|",
    ]
    for r in rows:
        cells = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def series_table(series: Sequence[Series], baseline: Series | None) -> str:
    """Median, min, max, runs and the ratio of medians to ``baseline`` for every series."""
    rows = []
    for s in series:
        ratio = s.median / baseline.median if baseline is not None and baseline.median else None
        rows.append(
            [
                s.name,
                s.unit,
                fmt(s.median),
                fmt(s.min),
                fmt(s.max),
                str(len(s.values)),
                "1 (baseline)" if s is baseline else (f"{ratio:.2f}" if ratio else "-"),
            ]
        )
    return table(["variant", "unit", "median", "min", "max", "runs", "ratio"], rows)


def say(*lines: str) -> None:
    """Write lines to stdout at once (the scripts' only output channel)."""
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def emit(args: argparse.Namespace, title: str, body: str, rows: Sequence[Row]) -> None:
    """Print the benchmark's table and summary; write the rows as JSON if asked."""
    say(f"\n## {title}\n", body, "")
    for row in rows:
        verdict = "MET" if row.met else "NOT MET"
        say(
            f"-> {row.benchmark}: ratio {row.ratio:.2f} (target {row.target}) {verdict}"
            + (f"; {row.note}" if row.note else "")
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))


def machine() -> str:
    """A one-line description of this machine."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {cpu}, Python {sys.version.split()[0]}"


# -- the blaster server ------------------------------------------------------------------------
class Blaster:
    """``benchmarks/blaster.py`` in its own process; stopped by its PID on exit."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Blaster:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "blaster.py"), "--frames", str(self.frames)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.__exit__()
            raise RuntimeError(f"blaster did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def blast_url(self, n: int, together: int = 1) -> str:
        """Base URL for ``StreamJob.url``: ``n`` frames per connection, as fast as possible,
        once ``together`` connections are open."""
        group = f"/{together}" if together > 1 else ""
        return f"ws://127.0.0.1:{self.port}/blast/{n}{group}"

    def paced_url(self, rate: float) -> str:
        """Base URL for ``StreamJob.url``: ``rate`` frames per second per connection."""
        return f"ws://127.0.0.1:{self.port}/paced/{rate:g}"


def pair_names(count: int) -> list[str]:
    """``count`` distinct pairs whose Binance symbols have the blaster template's length (7)."""
    if count == 1:
        return ["BTC/USDT"]
    return [f"C{i:02d}/USDT" for i in range(count)]


def stream_name(pair: str) -> str:
    return pair.replace("/", "").lower() + "@trade"


# -- the collector under test ------------------------------------------------------------------
@contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def collector_config(
    path: Path, pairs: Sequence[str], url: str, flush_interval: float, **storage: Any
) -> Any:
    """The real public API: one Binance trades job over ``pairs`` pointed at ``url``.

    The only non-default setting besides ``flush_interval``: the connect rate limit (5 per
    second per venue, a courtesy to Binance) is raised to the number of pairs, so that 50
    streams connect in about a second instead of ten.
    """
    from dccd_actors import CollectorConfig, RestartPolicy, StorageConfig, StreamJob

    return CollectorConfig(
        storage=StorageConfig(local_path=str(path), flush_interval=flush_interval, **storage),
        stream_jobs=[StreamJob("binance", list(pairs), ["trades"], url=url)],
        policy=RestartPolicy(connects_per_second=max(5, len(pairs))),
    )


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)


def verify_trades(path: Path, pairs: Sequence[str], per_pair: int) -> tuple[int, int]:
    """Read the sealed files back: every pair holds trade ids 1..per_pair exactly once, in order.

    Returns the row count and the earliest ``ts_recv`` (ns).
    """
    import numpy as np

    from dccd_actors import open_store

    store = open_store(path)
    total = 0
    first = 2**63 - 1
    for pair in pairs:
        trades = store.trades("binance", pair)
        ids = trades["trade_id"]
        if len(ids) != per_pair or not np.array_equal(ids, np.arange(1, per_pair + 1)):
            raise AssertionError(
                f"{pair}: stored {len(ids)} rows, expected ids 1..{per_pair} "
                f"(first {ids[:3].tolist()}, last {ids[-3:].tolist()})"
            )
        if not (np.all(trades["price"] > 0) and np.all(np.isin(trades["side"], (-1, 1)))):
            raise AssertionError(f"{pair}: implausible prices or sides stored")
        total += len(ids)
        first = min(first, int(trades["ts_recv"].min()))
    for live in path.rglob("*.live.h5"):
        raise AssertionError(f"segment not sealed: {live}")
    return total, first


@dataclass
class PipelineRun:
    rows_per_s: float
    seconds: float
    startup_seconds: float
    stop_seconds: float
    rows: int


def run_pipeline(
    url: str, pairs: Sequence[str], per_pair: int, flush_interval: float
) -> PipelineRun:
    """Collector over ``pairs`` against a blast URL: rows verified per second.

    The clock runs from the first frame received (the smallest stored ``ts_recv``) until every
    row has been handed to storage and the storage inbox is empty (the rows are then in the
    live segments). Start-up (actors, handshakes) and ``stop()`` (sealing) are timed apart.
    After the stop the sealed files are read back and every trade id is checked.
    """
    from dccd_actors import Collector

    total = per_pair * len(pairs)
    with temp_dir("dccd-bench-") as path:
        collector = Collector(collector_config(path, pairs, url, flush_interval))
        t_start = time.time_ns()
        collector.start()
        try:

            def done() -> bool:
                status = collector.status()
                rows = sum(row.trades for row in status)
                return rows >= total and status.storage.get("backlog", 1) == 0

            wait_for(done, timeout=300, interval=0.005)
            t_done = time.time_ns()
        finally:
            collector.stop()
        stop_s = (time.time_ns() - t_done) / 1e9
        rows, t_first = verify_trades(path, pairs, per_pair)
    seconds = (t_done - t_first) / 1e9
    return PipelineRun(rows / seconds, seconds, (t_first - t_start) / 1e9, stop_s, rows)


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds() -> float:
    """User + system CPU of this process, all threads."""
    t = os.times()
    return t.user + t.system


# -- offered load: 50 paced streams ------------------------------------------------------------
STRESS_STREAMS: Final = 50
STRESS_RATE: Final = 260.0  # frames/s per stream: 50 x 260 = 13k msg/s (PERF.md §9 stress)


@contextmanager
def paced_collector(
    path: Path, streams: int, rate: float, flush_interval: float, timeout: float = 60.0
) -> Iterator[Any]:
    """A blaster pacing ``rate`` frames/s on each of ``streams`` connections and a running
    Collector on them; yields once every stream has received frames."""
    from dccd_actors import Collector

    pairs = pair_names(streams)
    with Blaster(16) as server:
        collector = Collector(
            collector_config(path, pairs, server.paced_url(rate), flush_interval)
        ).start()
        try:
            wait_for(
                lambda: sum(1 for row in collector.status() if row.frames > 0) == streams,
                timeout,
                interval=0.05,
            )
            yield collector
        finally:
            collector.stop()


def frames_received(collector: Any) -> int:
    return sum(int(row.frames) for row in collector.status())
