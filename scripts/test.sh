#!/usr/bin/env bash
# Install everything the test suite needs, then run lint, types and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rclone >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && apt-get install -y -qq rclone) >/dev/null
    else
        echo "rclone not found: install it (Debian: apt-get install rclone) to run the sync tests" >&2
    fi
fi
python -m pip install -q -e '.[test]'
python -m ruff check src tests
python -m ruff format --check src tests
python -m mypy --strict src
python -m pytest -q -p no:cacheprovider "$@"
