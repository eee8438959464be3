"""Configuration: every invalid value is a ConfigError naming field, value and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dccd_actors import (
    AlertConfig,
    CollectorConfig,
    ConfigError,
    RemoteConfig,
    StorageConfig,
    StreamJob,
    load_config,
)

DATA = Path(__file__).parent / "data"


def test_dccds_example_config_loads_and_warns_about_histo_jobs() -> None:
    with pytest.warns(UserWarning, match="histo_jobs are not supported"):
        cfg = load_config(DATA / "dccd_example_config.yml")
    assert cfg.storage.local_path == Path("data")
    assert [r.remote for r in cfg.storage.remotes] == ["gdrive:crypto-data", "s3:my-bucket/dccd"]
    assert cfg.storage.sync_interval == 3600
    assert [(j.exchange, j.pairs, j.channels, j.time_step) for j in cfg.stream_jobs] == [
        ("binance", ("BTC/USDT", "ETH/USDT"), ("trades", "book"), 60),
        ("kraken", ("BTC/USD",), ("book",), 60),
    ]
    assert cfg.alerts.max_consecutive_errors == 3


def test_top_level_remotes_and_sync_interval_are_accepted_too(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("storage: {local_path: d}\nremotes: [{remote: 'x:y'}]\nsync_interval: 0\n")
    cfg = load_config(path)
    assert cfg.storage.remotes == (RemoteConfig("x:y"),) and cfg.storage.sync_interval == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exchange": "ftx"}, "exchange='ftx' is invalid: expected one of binance"),
        ({"pairs": []}, "pairs=[] is invalid"),
        ({"pairs": "BTC/USDT"}, "pairs='BTC/USDT' is invalid"),
        ({"pairs": ["BTCUSDT"]}, "pairs='BTCUSDT' is invalid: expected 'BASE/QUOTE'"),
        ({"pairs": ["../../etc/passwd"]}, "pairs='../../etc/passwd' is invalid"),
        ({"pairs": ["BTC/US DT"]}, "is invalid"),
        (
            {"channels": ["ticker"]},
            "channels=['ticker'] is invalid: expected a non-empty list from",
        ),
        ({"time_step": 0}, "time_step=0 is invalid: expected a number in (0"),
        ({"time_step": "1m"}, "time_step='1m' is invalid"),
        ({"depth": 0}, "depth=0 is invalid: expected an integer in [1, 1000]"),
        ({"depth": 2.5}, "depth=2.5 is invalid"),
        (
            {"url": "http://127.0.0.1:1"},
            "url='http://127.0.0.1:1' is invalid: expected a wss/ws URL",
        ),
        ({"url": "ws://127.0.0.1:1/x?y=1"}, "no query"),
        ({"rest_url": "ftp://host"}, "rest_url='ftp://host' is invalid"),
    ],
)
def test_invalid_stream_job_fields(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"exchange": "binance", "pairs": ["BTC/USDT"], "channels": ["trades"]}
    with pytest.raises(ConfigError) as info:
        StreamJob(**{**base, **kwargs})
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"local_path": ""}, "storage.local_path='' is invalid"),
        ({"flush_interval": 0}, "storage.flush_interval=0 is invalid"),
        ({"sync_interval": -1}, "storage.sync_interval=-1 is invalid"),
        (
            {"rotation": "weekly"},
            "storage.rotation='weekly' is invalid: expected one of ['daily', 'hourly']",
        ),
        ({"compression": "zip"}, "storage.compression='zip' is invalid"),
        ({"remotes": [""]}, "remotes[].remote='' is invalid"),
    ],
)
def test_invalid_storage_fields(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        StorageConfig(**{"local_path": "data", **kwargs})
    assert message in str(info.value)


def test_invalid_alerts_and_duplicate_streams() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.max_consecutive_errors=0 is invalid"):
        AlertConfig(max_consecutive_errors=0)
    with pytest.raises(ConfigError, match=r"alerts\.webhook_url='nope' is invalid"):
        AlertConfig(webhook_url="nope")
    job = StreamJob("binance", ["BTC/USDT"], ["trades"])
    with pytest.raises(ConfigError, match="each \\(exchange, pair\\) may appear only once"):
        CollectorConfig(storage=StorageConfig(local_path="d"), stream_jobs=[job, job])


def test_yaml_errors_name_the_file_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("storage: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(
        "storage: {local_path: d}\nstream_jobs:\n  - exchange: binance\n    pairs: [BTC/USDT]\n    depth: -3\n"
    )
    with pytest.raises(ConfigError, match=r"stream_jobs\[0\]\.depth=-3 is invalid"):
        load_config(wrong)
    missing = tmp_path / "missing_field.yml"
    missing.write_text("storage: {local_path: d}\nstream_jobs:\n  - pairs: [BTC/USDT]\n")
    with pytest.raises(
        ConfigError, match=r"stream_jobs\[0\]\.exchange=None is invalid: this field is required"
    ):
        load_config(missing)


def test_pairs_are_normalised_and_deduplicated() -> None:
    job = StreamJob("okx", ["btc/usdt", "BTC/USDT", "ETH/USDT"], ["book"])
    assert job.pairs == ("BTC/USDT", "ETH/USDT")
