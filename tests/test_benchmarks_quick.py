"""Smoke test of ``benchmarks/``: every script runs in ``--quick`` mode and prints a table.

Timings are never asserted (the machine may be busy); only that each benchmark ran, printed a
Markdown table with numbers and handed back well-formed summary rows.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
SCRIPTS = [
    "bench_pipeline_1stream.py",
    "bench_pipeline_50streams.py",
    "bench_adapters.py",
    "okx_budget.py",
    "bench_book.py",
    "bench_storage.py",
    "bench_cpu.py",
    "bench_memory.py",
    "bench_latency.py",
]
TABLE_ROW = re.compile(r"^\|.*\|\s*[\d,.]+\s*\|", re.MULTILINE)

pytestmark = pytest.mark.slow


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_quick_mode_prints_a_table_with_numbers(script: str, tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    proc = _run([str(BENCH / script), "--quick", "--json", str(out)], timeout=110)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert TABLE_ROW.search(proc.stdout), proc.stdout[-2000:]
    assert "ratio" in proc.stdout
    rows = json.loads(out.read_text())
    assert rows
    for row in rows:
        assert row["runs"] >= 1
        for key in ("ours", "ours_min", "ours_max", "baseline", "ratio"):
            assert isinstance(row[key], int | float) and math.isfinite(row[key]), (key, row)
        assert isinstance(row["met"], bool) and row["target"]


def test_run_all_prints_the_summary_table() -> None:
    proc = _run([str(BENCH / "run_all.py"), "--quick", "--only", "book", "storage"], 60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = proc.stdout.split("# Summary", 1)[1]
    assert "book apply" in summary and "storage append" in summary
    assert TABLE_ROW.search(summary)
