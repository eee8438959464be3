"""Sync wired into the collector: sync_now() seals, pushes and verifies; the CLI verb too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dccd_actors import Collector, RemoteConfig, StreamJob, open_store
from dccd_actors.cli import main
from dccd_actors.testing import FakeBinance
from tests.helpers import config, wait_until

PAIR = "BTC/USDT"


def test_sync_now_pushes_every_sealed_segment_and_its_journal(tmp_path: Path) -> None:
    data, remote = tmp_path / "data", tmp_path / "remote"
    remote.mkdir()
    with FakeBinance([PAIR], seed=61) as fake:
        job = StreamJob("binance", [PAIR], ["trades", "book"], url=fake.url, rest_url=fake.rest_url)
        cfg = config(data, [job], remotes=[RemoteConfig(str(remote))], sync_interval=0, raw=True)
        with Collector(cfg) as c:
            wait_until(lambda: c.status()[0].trades > 10)
            result = c.sync_now(timeout=60)
            status = c.sync_status()
            final = wait_until(lambda: (st := c.status()).sync.get("remotes") and st)
            assert c.status()[0].state == "running"  # collection went on meanwhile
    (summary,) = result["remotes"].values()
    assert summary["ok"] is True and summary["files"] == 2  # the segment and its raw journal
    assert len(result["sealed"]) == 1
    pushed = sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())
    local = sorted(
        p.relative_to(data).as_posix() for p in data.glob("binance/*/*") if ".live" not in p.name
    )
    assert set(pushed) <= set(local) and len(pushed) == 2
    assert not any(".live" in p for p in pushed)
    first_sealed = Path(result["sealed"][0]).name
    assert (remote / "binance/BTC-USDT" / first_sealed).read_bytes() == (
        data / "binance/BTC-USDT" / first_sealed
    ).read_bytes()
    (remote_status,) = status["remotes"].values()
    assert remote_status["last_error"] in (None, "")
    copy = open_store(remote).trades("binance", PAIR)
    assert len(copy) > 10
    # the manager's status and metrics.json carry the sync figures of the last push
    (in_status,) = final.sync["remotes"].values()
    assert in_status["files_pending"] == 0 and in_status["sync_lag_s"] == 0.0
    assert in_status["last_result"]["files"] == 2 and in_status["last_result"]["ok"] is True
    metrics = json.loads((data / ".dccd" / "metrics.json").read_text())
    assert metrics["sync"]["remotes"][str(remote)]["files_pending"] == 0


def test_cli_sync_pushes_and_refuses_a_config_without_remotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, remote = tmp_path / "data", tmp_path / "remote"
    remote.mkdir()
    with FakeBinance([PAIR], seed=62) as fake:
        job = StreamJob("binance", [PAIR], ["trades"], url=fake.url)
        with Collector(config(data, [job])) as c:
            wait_until(lambda: c.status()[0].trades > 5)
    cfg = tmp_path / "c.yml"
    cfg.write_text(f"storage: {{local_path: {data}, remotes: [{{remote: '{remote}'}}]}}\n")
    assert main(["sync", "--config", str(cfg)]) == 0
    assert f"{remote}: ok (1 files" in capsys.readouterr().out
    assert len(list(remote.rglob("*.h5"))) == 1
    bare = tmp_path / "bare.yml"
    bare.write_text(f"storage: {{local_path: {data}}}\n")
    assert main(["sync", "--config", str(bare)]) == 2
    assert "nothing to push to" in capsys.readouterr().err
