#!/usr/bin/env bash
# Install cryptofeed into a throwaway venv for benchmarks/bench_adapters.py (the peer baseline).
# cryptofeed is never a dependency of dccd_actors; the benchmark finds this venv by itself
# (or set DCCD_BENCH_CRYPTOFEED_PYTHON to another interpreter that has cryptofeed).
set -euo pipefail
VENV="${DCCD_BENCH_CRYPTOFEED_VENV:-$HOME/.cache/dccd-bench/cf-venv}"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q cryptofeed
"$VENV/bin/python" -c "import cryptofeed, sys; print('cryptofeed ready:', sys.executable)"
