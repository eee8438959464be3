"""Operate: metrics.json agrees with status(), webhook alerts, the CLI's exit codes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from dccd_actors import (
    AlertConfig,
    Collector,
    CollectorConfig,
    RestartPolicy,
    StorageConfig,
    StreamJob,
    open_store,
)
from dccd_actors.cli import main
from dccd_actors.testing import FakeBinance
from tests.helpers import config, wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def webhook_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/secret-token", received
    finally:
        server.shutdown()
        server.server_close()


def _metrics(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((path / ".dccd" / "metrics.json").read_text())  # type: ignore[no-any-return]


def test_metrics_json_agrees_with_status_and_shows_a_parked_stream(tmp_path: Path) -> None:
    policy = RestartPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=2, park_interval=30)
    with FakeBinance(["ETH/USDT"], seed=41) as fake:
        jobs = [
            StreamJob("binance", ["BTC/USDT"], ["trades"], url=f"ws://127.0.0.1:{_free_port()}"),
            StreamJob(
                "binance", ["ETH/USDT"], ["trades", "book"], url=fake.url, rest_url=fake.rest_url
            ),
        ]
        with Collector(config(tmp_path, jobs, policy=policy)) as c:
            wait_until(
                lambda: (
                    {r.pair: r.state for r in c.status()}
                    == {"BTC/USDT": "parked", "ETH/USDT": "running"}
                )
            )
            wait_until(
                lambda: (
                    {s["pair"]: s["state"] for s in _metrics(tmp_path)["streams"]}
                    == {"BTC/USDT": "parked", "ETH/USDT": "running"}
                )
            )
            fake.pause()
            wait_until(
                lambda: (
                    (m := _metrics(tmp_path))
                    and [s["trades"] for s in m["streams"]] == [r.trades for r in c.status()]
                ),
                timeout=10,
            )
            metrics, status = _metrics(tmp_path), c.status()
        by_pair = {s["pair"]: s for s in metrics["streams"]}
        for row in status:
            for field in (
                "state",
                "gen",
                "restarts",
                "trades",
                "book_rows",
                "gaps",
                "resyncs",
                "malformed",
            ):
                assert by_pair[row.pair][field] == getattr(row, field), field
        assert (
            by_pair["ETH/USDT"]["latency_p99_ms"] is not None
            and by_pair["ETH/USDT"]["bytes_written"] > 0
        )
        assert metrics["collector"]["state"] == "running" and metrics["storage"]["running"] is True
    final = _metrics(tmp_path)
    assert final["collector"]["state"] == "stopped"


def test_the_webhook_gets_failing_parked_and_recovered_exactly_once(tmp_path: Path) -> None:
    port = _free_port()
    policy = RestartPolicy(
        min_backoff=0.01, max_backoff=0.02, max_restarts=3, park_interval=0.5, reset_after=0.3
    )
    with webhook_server() as (url, received):
        cfg = CollectorConfig(
            storage=StorageConfig(local_path=tmp_path, flush_interval=0.1),
            stream_jobs=[
                StreamJob(
                    "binance",
                    ["BTC/USDT"],
                    ["trades", "book"],
                    url=f"ws://127.0.0.1:{port}",
                    rest_url=f"http://127.0.0.1:{port}",
                )
            ],
            alerts=AlertConfig(webhook_url=url, max_consecutive_errors=2),
            policy=policy,
        )
        with Collector(cfg) as c:
            wait_until(lambda: c.status()[0].state == "parked")
            with FakeBinance(["BTC/USDT"], seed=42, port=port):
                wait_until(lambda: len(received) == 3, timeout=15)
                texts = [r["text"] for r in received]
                assert all(r["content"] == r["text"] for r in received)
        assert (
            "2 consecutive errors" in texts[0]
            and "PARKED" in texts[1]
            and texts[2] == "binance BTC/USDT recovered"
        )
    log = (tmp_path / ".dccd" / "metrics.json").read_text()
    assert "secret-token" not in log


def test_a_failing_webhook_never_disturbs_collection(tmp_path: Path) -> None:
    policy = RestartPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=1, park_interval=30)
    with FakeBinance(["ETH/USDT"], seed=43) as fake:
        cfg = CollectorConfig(
            storage=StorageConfig(local_path=tmp_path, flush_interval=0.1),
            stream_jobs=[
                StreamJob(
                    "binance", ["BTC/USDT"], ["trades"], url=f"ws://127.0.0.1:{_free_port()}"
                ),
                StreamJob("binance", ["ETH/USDT"], ["trades"], url=fake.url),
            ],
            alerts=AlertConfig(
                webhook_url=f"http://127.0.0.1:{_free_port()}/nobody", max_consecutive_errors=1
            ),
            policy=policy,
        )
        with Collector(cfg) as c:
            wait_until(lambda: c.status()[0].state == "parked")
            wait_until(lambda: c.status()[1].trades > 20)
    assert len(open_store(tmp_path).trades("binance", "ETH/USDT")) > 20


# -- CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "start"])
def test_cli_config_errors_exit_2_with_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_yaml = tmp_path / "bad.yml"
    bad_yaml.write_text("storage: [oops\n")
    bad_field = tmp_path / "field.yml"
    bad_field.write_text(
        f"storage: {{local_path: {tmp_path}}}\nstream_jobs: [{{exchange: ftx, pairs: [BTC/USDT]}}]\n"
    )
    for path, needle in (
        (tmp_path / "missing.yml", "cannot read config file"),
        (bad_yaml, "not valid YAML"),
        (bad_field, "exchange='ftx' is invalid"),
    ):
        assert main([command, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1


def test_cli_status_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--path", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["frobnicate"])
    assert exit_info.value.code == 2


def test_cli_start_then_sigterm_exits_0_with_files_sealed(tmp_path: Path) -> None:
    with FakeBinance(["BTC/USDT"], seed=44) as fake:
        cfg = tmp_path / "config.yml"
        data = tmp_path / "data"
        cfg.write_text(
            f"storage: {{local_path: {data}, flush_interval: 0.1}}\n"
            f"stream_jobs:\n  - {{exchange: binance, pairs: [BTC/USDT], channels: [trades, book], time_step: 1,"
            f" url: '{fake.url}', rest_url: '{fake.rest_url}'}}\n"
        )
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dccd_actors.cli", "start", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        try:
            wait_until(lambda: len(list(data.glob("binance/BTC-USDT/*.live.h5"))) == 1, timeout=20)
            wait_until(lambda: len(open_store(data).trades("binance", "BTC/USDT")) > 5, timeout=20)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert (
        not list(data.glob("**/*.live.h5")) and len(list(data.glob("binance/BTC-USDT/*.h5"))) == 1
    )
    assert b"stopped; files sealed" in out
    main(["status", "--path", str(data)])


def test_the_opt_in_file_log_gets_the_package_warnings(tmp_path: Path) -> None:
    cfg = CollectorConfig(
        storage=StorageConfig(local_path=tmp_path),
        stream_jobs=[
            StreamJob("binance", ["BTC/USDT"], ["trades"], url=f"ws://127.0.0.1:{_free_port()}")
        ],
        policy=RestartPolicy(min_backoff=0.01, max_backoff=0.02, max_restarts=1, park_interval=30),
        log_file=True,
    )
    with Collector(cfg) as c:
        wait_until(lambda: c.status()[0].state == "parked")
    log = (tmp_path / ".dccd" / "dccd_actors.log").read_text()
    assert "parked after 2 restarts" in log and "Connection refused" in log


def test_cli_add_edits_the_yaml_and_validates_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "storage: {local_path: data}\nstream_jobs:\n  - {exchange: binance, pairs: [BTC/USDT], channels: [trades, book]}\n"
    )
    assert main(["add", "--config", str(cfg), "--exchange", "binance", "--pair", "ETH/USDT"]) == 0
    assert (
        main(
            [
                "add",
                "--config",
                str(cfg),
                "--exchange",
                "okx",
                "--pair",
                "SOL/USDT",
                "--channels",
                "book",
            ]
        )
        == 0
    )
    before = cfg.read_text()
    assert main(["add", "--config", str(cfg), "--exchange", "okx", "--pair", "SOLUSDT"]) == 2
    assert "pairs='SOLUSDT' is invalid" in capsys.readouterr().err
    assert cfg.read_text() == before
    from dccd_actors import load_config

    jobs = load_config(cfg).stream_jobs
    assert [(j.exchange, j.pairs, j.channels) for j in jobs] == [
        ("binance", ("BTC/USDT", "ETH/USDT"), ("trades", "book")),
        ("okx", ("SOL/USDT",), ("book",)),
    ]


BLOCK_CONFIG = """\
# collector for the desk
storage:
  local_path: data  # fast disk
stream_jobs:
  # majors
  - exchange: binance
    pairs:
      - BTC/USDT  # the benchmark pair
    channels: [trades, book]
  - {exchange: okx, pairs: [ETH/USDT], channels: [book]}  # books only
sync_interval: 3600  # hourly
"""


def test_cli_add_keeps_comments_and_layout(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(BLOCK_CONFIG)
    add = ["add", "--config", str(cfg)]
    assert main([*add, "--exchange", "binance", "--pair", "ETH/USDT"]) == 0
    assert main([*add, "--exchange", "okx", "--pair", "BTC/USDT", "--channels", "book"]) == 0
    assert main([*add, "--exchange", "kraken", "--pair", "XBT/USD"]) == 0
    assert cfg.read_text() == BLOCK_CONFIG.replace(
        "      - BTC/USDT  # the benchmark pair\n",
        "      - BTC/USDT  # the benchmark pair\n      - ETH/USDT\n",
    ).replace("pairs: [ETH/USDT]", "pairs: [ETH/USDT, BTC/USDT]").replace(
        "sync_interval:",
        "  - exchange: kraken\n    pairs: [XBT/USD]\n    channels: [trades, book]\nsync_interval:",
    )  # every comment and line kept; the edits in place
    from dccd_actors import load_config

    jobs = [(j.exchange, j.pairs, j.channels) for j in load_config(cfg).stream_jobs]
    assert jobs == [
        ("binance", ("BTC/USDT", "ETH/USDT"), ("trades", "book")),
        ("okx", ("ETH/USDT", "BTC/USDT"), ("book",)),
        ("kraken", ("XBT/USD",), ("trades", "book")),
    ]
    assert load_config(cfg).storage.sync_interval == 3600


def test_cli_add_rewrites_a_layout_it_cannot_edit_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "storage: {local_path: data}  # note\nstream_jobs: [{exchange: binance, pairs: [BTC/USDT]}]\n"
    )
    assert main(["add", "--config", str(cfg), "--exchange", "bybit", "--pair", "BTC/USDT"]) == 0
    assert "comments and layout were not kept" in capsys.readouterr().out
    from dccd_actors import load_config

    assert [j.exchange for j in load_config(cfg).stream_jobs] == ["binance", "bybit"]
