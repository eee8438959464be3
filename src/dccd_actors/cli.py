"""``dccd-actors``: demo, start, validate, status.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dccd_actors import __version__
from dccd_actors._yaml_edit import add_job_text, add_pair_text
from dccd_actors.api import Collector, _progress_line, open_store
from dccd_actors.config import (
    CollectorConfig,
    StorageConfig,
    StreamJob,
    config_from_dict,
    load_config,
)
from dccd_actors.errors import CollectorFailed, ConfigError, DccdError, StorageError

__all__ = ["main"]

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dccd-actors`` command."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if not args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"dccd-actors: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CollectorFailed, StorageError, DccdError) as exc:
        print(f"dccd-actors: {exc}", file=sys.stderr)
        return EXIT_RUNTIME


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dccd-actors", description="Record crypto trades and L2 books to HDF5."
    )
    parser.add_argument("--version", action="version", version=f"dccd-actors {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="record from the bundled fake exchange for a few seconds")
    demo.add_argument("--seconds", type=float, default=20.0, help="how long to record (default 20)")
    demo.add_argument("--path", default=None, help="data folder (default: a new temporary folder)")
    demo.add_argument(
        "--exchanges", default="binance", help="binance (default), a comma list of venues, or all"
    )
    demo.set_defaults(func=_demo)

    start = sub.add_parser("start", help="collect as configured until SIGINT/SIGTERM")
    start.add_argument("--config", required=True, help="YAML config file (dccd vocabulary)")
    start.set_defaults(func=_start)

    validate = sub.add_parser(
        "validate", help="check a config file and print what it would collect"
    )
    validate.add_argument("--config", required=True)
    validate.set_defaults(func=_validate)

    add = sub.add_parser("add", help="add a pair to a config file (validated before writing)")
    add.add_argument("--config", required=True)
    add.add_argument("--exchange", required=True)
    add.add_argument("--pair", required=True, help="BASE/QUOTE, e.g. BTC/USDT")
    add.add_argument(
        "--channels", default="trades,book", help="comma-separated (default trades,book)"
    )
    add.set_defaults(func=_add)

    sync = sub.add_parser("sync", help="push sealed segments to the configured remotes now")
    sync.add_argument("--config", required=True)
    sync.set_defaults(func=_sync)

    status = sub.add_parser("status", help="summarise a data folder (running or stopped collector)")
    status.add_argument("--path", required=True)
    status.set_defaults(func=_status)
    return parser


# -- commands ----------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(f"config OK: data in {cfg.storage.local_path}, {len(cfg.storage.remotes)} remote(s)")
    for job in cfg.stream_jobs:
        print(
            f"  {job.exchange}: {', '.join(job.pairs)} [{', '.join(job.channels)}] "
            f"time_step={job.time_step} depth={job.depth}"
        )
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    path = Path(args.config)
    load_config(path)  # the file must be valid before we touch it
    text = path.read_text()
    raw = yaml.safe_load(text)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    new_job = StreamJob(args.exchange, [args.pair], channels)
    pair = new_job.pairs[0]
    jobs = raw.setdefault("stream_jobs", []) or []
    raw["stream_jobs"] = jobs
    for index, job in enumerate(jobs):
        if job.get("exchange") == new_job.exchange and list(job.get("channels") or []) == list(
            new_job.channels
        ):
            if pair in [p.upper() for p in job.get("pairs", [])]:
                print(f"{new_job.exchange} {pair} is already in {path}")
                return EXIT_OK
            job["pairs"] = [*job.get("pairs", []), pair]
            edited = add_pair_text(text, index, pair)
            break
    else:
        jobs.append(
            {"exchange": new_job.exchange, "pairs": [pair], "channels": list(new_job.channels)}
        )
        edited = add_job_text(text, new_job.exchange, pair, list(new_job.channels))
    config_from_dict(raw)  # the edited config must be valid too
    if edited is None or yaml.safe_load(edited) != raw:  # a layout the text edit cannot follow
        edited = yaml.safe_dump(raw, sort_keys=False)
        print(f"note: {path} rewritten in full; its comments and layout were not kept")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(edited)
    os.replace(tmp, path)
    print(f"added {new_job.exchange} {pair} [{', '.join(new_job.channels)}] to {path}")
    return EXIT_OK


def _sync(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if not cfg.storage.remotes:
        raise ConfigError(f"storage.remotes in {args.config} is empty: nothing to push to")
    idle = CollectorConfig(storage=cfg.storage, stream_jobs=[], policy=cfg.policy)
    with Collector(idle) as collector:
        result = collector.sync_now()
    failed = 0
    for remote, summary in result["remotes"].items():
        ok = summary.get("ok")
        failed += not ok
        detail = f"{summary.get('files', 0)} files, {summary.get('bytes', 0)} bytes"
        print(
            f"{remote}: {'ok' if ok else 'FAILED'} ({detail}){'' if ok else ': ' + str(summary.get('error'))}"
        )
    return EXIT_OK if not failed else EXIT_RUNTIME


def _start(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    collector = Collector(cfg).start()
    tty = sys.stdout.isatty()
    try:
        while not stop.wait(1.0):
            status = collector.status()
            if status.state == "failed":
                print(f"dccd-actors: collector failed: {status.error}", file=sys.stderr)
                return EXIT_RUNTIME
            if tty:
                print("\r" + _progress_line(status), end="", flush=True)
    finally:
        collector.stop()
    if tty:
        print()
    print(f"stopped; files sealed under {cfg.storage.local_path}")
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if not path.is_dir():
        raise ConfigError(f"--path {path} is not a folder")
    _print_metrics(path / ".dccd" / "metrics.json")
    streams = open_store(path).streams()
    if not streams:
        print(f"no recorded streams under {path}")
        return EXIT_OK
    print(
        f"\n{'files':<24} {'segments':>8} {'live':>4} {'trades':>10} {'book rows':>10} {'gaps':>5}  last row"
    )
    for info in streams:
        last = _age(time.time() - info.last_ts_recv / 1e9) if info.last_ts_recv > 0 else "-"
        print(
            f"{info.exchange + ' ' + info.pair:<24} {info.segments:>8} {info.live_segments:>4} "
            f"{info.trades:>10} {info.book_deltas:>10} {info.gaps:>5}  {last} ago"
        )
    return EXIT_OK


def _print_metrics(path: Path) -> None:
    """The collector's own view (metrics.json), when one ran here."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        print("no metrics.json: no collector has run on this folder yet")
        return
    age = time.time() - float(metrics.get("written_at", 0))
    state = metrics["collector"]["state"]
    alive = state == "running" and age < 10
    shown = (
        state if alive or state != "running" else "not running (no update for " + _age(age) + ")"
    )
    error = metrics["collector"].get("error")
    print(
        f"collector: {shown}"
        + (f": {error}" if error else "")
        + f" (metrics written {_age(age)} ago)"
    )
    print(
        f"{'stream':<24} {'state':<12} {'gen':>3} {'trades':>10} {'book rows':>10} {'gaps':>5} "
        f"{'resyncs':>7} {'bad':>5} {'p99 ms':>7}  last error"
    )
    for row in metrics.get("streams", []):
        p99 = row.get("latency_p99_ms")
        print(
            f"{row['exchange'] + ' ' + row['pair']:<24} {row['state']:<12} {row['gen']:>3} "
            f"{row['trades']:>10} {row['book_rows']:>10} {row['gaps']:>5} {row['resyncs']:>7} "
            f"{row['malformed']:>5} {'-' if p99 is None else f'{p99:.1f}':>7}  {row['last_error'][:60]}"
        )


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


#: venue → (fake module, fake class, pairs it records in the demo)
_DEMO_VENUES: dict[str, tuple[str, str, list[str]]] = {
    "binance": ("dccd_actors.testing.binance", "FakeBinance", ["BTC/USDT", "ETH/USDT"]),
    "bybit": ("dccd_actors.testing.bybit", "FakeBybit", ["BTC/USDT"]),
    "kraken": ("dccd_actors.testing.kraken", "FakeKraken", ["BTC/USD"]),
    "okx": ("dccd_actors.testing.okx", "FakeOkx", ["BTC/USDT"]),
    "bitfinex": ("dccd_actors.testing.bitfinex", "FakeBitfinex", ["BTC/USD"]),
    "bitmex": ("dccd_actors.testing.bitmex", "FakeBitmex", ["BTC/USD"]),
}


def _demo_fakes(choice: str) -> list[Any]:
    names = list(_DEMO_VENUES) if choice == "all" else choice.split(",")
    unknown = [n for n in names if n not in _DEMO_VENUES]
    if unknown:
        allowed = ", ".join(["all", *_DEMO_VENUES])
        raise ConfigError(f"--exchanges={choice!r} is invalid: expected a comma list of {allowed}")
    fakes = []
    for name in names:
        module, cls, pairs = _DEMO_VENUES[name]
        try:
            fake_class = getattr(importlib.import_module(module), cls)
        except (ImportError, AttributeError):
            print(f"  (no fake for {name} in this build; skipped)")
            continue
        fakes.append(fake_class(pairs, seed=42, interval=0.05))
    return fakes


def _demo(args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else Path(tempfile.mkdtemp(prefix="dccd-demo-"))
    fakes = _demo_fakes(args.exchanges)
    for fake in fakes:
        fake.start()
    try:
        jobs = [
            StreamJob(
                fake.exchange,
                fake.pairs,
                ["trades", "book"],
                time_step=1,
                url=fake.url,
                rest_url=fake.rest_url,
            )
            for fake in fakes
        ]
        cfg = CollectorConfig(storage=StorageConfig(local_path=path), stream_jobs=jobs)
        venues = ", ".join(f.exchange for f in fakes)
        print(
            f"recording {args.seconds:.0f} s from the bundled fake exchange(s) ({venues}) into {path}"
        )
        with Collector(cfg) as collector:
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                print("  " + _progress_line(collector.status()), flush=True)
    finally:
        for fake in fakes:
            fake.stop()
    _print_summary(path, [(job.exchange, pair) for job in jobs for pair in job.pairs])
    return EXIT_OK


def _print_summary(path: Path, streams: list[tuple[str, str]]) -> None:
    store = open_store(path)
    print("\nwritten (sealed, compressed HDF5):")
    for exchange, pair in streams:
        for segment in store.segments(exchange, pair):
            print(f"  {segment}")
        trades = store.trades(exchange, pair)
        snaps = store.book_snapshots(exchange, pair)
        mid = (
            float(np.nanmean((snaps["bid_price"][:, 0] + snaps["ask_price"][:, 0]) / 2))
            if len(snaps)
            else float("nan")
        )
        print(
            f"    {exchange} {pair}: {len(trades)} trades, {len(store.book_deltas(exchange, pair))} book rows, "
            f"{len(snaps)} book snapshots (mean mid {mid:.2f}), {len(store.gaps(exchange, pair))} gaps"
        )
    print("\nread it back:")
    print("  from dccd_actors import open_store")
    print(f"  store = open_store({str(path)!r})")
    print(f"  store.trades({streams[0][0]!r}, {streams[0][1]!r})")
    print(f"  store.book_snapshots({streams[0][0]!r}, {streams[0][1]!r})")


if __name__ == "__main__":
    sys.exit(main())
