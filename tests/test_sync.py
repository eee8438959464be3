"""Sync actor end to end: the real rclone binary, real files, remotes on 127.0.0.1 and tmp dirs.

Each test drives a ``SyncActor`` directly (the manager wiring is separate) with a tiny
recording actor standing in for the manager.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from dccd_actors import Collector, RemoteConfig, StorageConfig, StreamJob, open_store
from dccd_actors.actors.messages import ChildExited
from dccd_actors.actors.sync import SyncActor, SyncNow, request_sync
from dccd_actors.sync import Ledger, redact, remote_secrets
from dccd_actors.sync.rclone import check_command, copy_command
from dccd_actors.testing import FakeBinance
from tests.helpers import config, silent_tcp_server, wait_until
from tests.rclone_helpers import (
    RCLONE,
    RecordingManager,
    free_port,
    obscure,
    rclone_processes,
    tree,
    webdav_section,
    webdav_server,
    write_config,
    write_segment,
)

PAIRS = ["BTC/USDT", "ETH/USDT"]
USER, PASSWORD = "dccd", "s3cr3t-Pa55word-for-dav"

Start = Callable[..., pykka.ActorRef[Any]]


@pytest.fixture(autouse=True)
def rclone_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty rclone config of our own, and retries small enough for a loopback test."""
    assert Path(RCLONE).exists(), "these tests need the rclone binary (Debian package rclone)"
    conf = tmp_path / "rclone.conf"
    conf.write_text("")
    monkeypatch.setenv("RCLONE_CONFIG", str(conf))
    monkeypatch.setenv("RCLONE_RETRIES", "1")
    monkeypatch.setenv("RCLONE_LOW_LEVEL_RETRIES", "1")
    monkeypatch.setenv("RCLONE_CONTIMEOUT", "2s")
    monkeypatch.setenv("RCLONE_TIMEOUT", "5s")
    return conf


@pytest.fixture
def manager() -> Iterator[pykka.ActorRef[Any]]:
    ref = RecordingManager.start()
    yield ref
    ref.stop(block=True, timeout=5)


@pytest.fixture
def start(manager: pykka.ActorRef[Any], tmp_path: Path) -> Iterator[Start]:
    """Start a SyncActor (gen 1, 2, ...); every one is stopped at the end of the test."""
    refs: list[pykka.ActorRef[Any]] = []

    def _start(storage: StorageConfig, **kw: Any) -> pykka.ActorRef[Any]:
        ref = SyncActor.start(manager=manager, config=storage, gen=len(refs) + 1, **kw)
        refs.append(ref)
        return ref

    yield _start
    for ref in refs:
        ref.stop(block=True, timeout=15)
    assert rclone_processes(str(tmp_path)) == [], "an rclone push outlived its actor"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sealed segments written by a real collector from the fake Binance (made once)."""
    root = tmp_path_factory.mktemp("recorded")
    with FakeBinance(PAIRS, seed=11) as fake:
        job = StreamJob("binance", PAIRS, time_step=0.2, url=fake.url, rest_url=fake.rest_url)
        with Collector(config(root, [job])):
            wait_until(lambda: all(len(fake.sent_trades[p]) > 20 for p in PAIRS))
    assert all(p.endswith(".h5") and ".live." not in p for p in tree(root))
    return root


def _copy_recorded(recorded: Path, dest: Path) -> Path:
    shutil.copytree(recorded, dest, ignore=shutil.ignore_patterns(".dccd"))
    return dest


def _storage(local: Path, *remotes: str, **kw: Any) -> StorageConfig:
    kw.setdefault("sync_interval", 3600)
    return StorageConfig(local_path=local, remotes=[RemoteConfig(r) for r in remotes], **kw)


def _stats(ref: pykka.ActorRef[Any]) -> dict[str, Any]:
    stats = ref.ask("stats", block=True, timeout=2)
    assert isinstance(stats, dict)
    return stats


def _ledger(local: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((local / ".dccd" / "sync_ledger.json").read_text())
    return data


# -- (a) ---------------------------------------------------------------------------------
def test_local_and_webdav_remotes_get_byte_identical_verified_copies(
    tmp_path: Path, recorded: Path, rclone_env: Path, start: Start
) -> None:
    data = _copy_recorded(recorded, tmp_path / "data")
    mirror, served = tmp_path / "mirror", tmp_path / "served"
    with webdav_server(served, user=USER, password=PASSWORD) as port:
        write_config(rclone_env, {"nas": webdav_section(port, USER, PASSWORD)})
        ref = start(_storage(data, str(mirror), "nas:crypto"))
        summary = request_sync(ref, timeout=30)
        local = tree(data)
        assert summary[str(mirror)]["ok"] and summary["nas:crypto"]["ok"], summary
        assert summary[str(mirror)]["files"] == summary["nas:crypto"]["files"] == len(local)
        assert summary["nas:crypto"]["bytes"] == sum(len(b) for b in local.values())
        assert summary[str(mirror)]["verify"] == "hash"  # local disks share every hash
        assert summary["nas:crypto"]["verify"] == "size"  # plain WebDAV has none
        assert tree(mirror) == local
        assert tree(served / "crypto") == local
        stats = _stats(ref)
        for name in (str(mirror), "nas:crypto"):
            row = stats["remotes"][name]
            assert row["state"] == "idle" and row["files_pending"] == 0 and row["sync_lag_s"] == 0
            assert row["last_success"] is not None and row["last_error"] is None
    original, copy = open_store(data), open_store(mirror)
    for pair in PAIRS:
        assert len(copy.trades("binance", pair)) > 0
        assert copy.trades("binance", pair).tobytes() == original.trades("binance", pair).tobytes()
        assert (
            copy.book_deltas("binance", pair).tobytes()
            == original.book_deltas("binance", pair).tobytes()
        )
    ledger = _ledger(data)["remotes"]
    assert set(ledger[str(mirror)]["files"]) == set(local)
    assert {v["size"] for v in ledger["nas:crypto"]["files"].values()} == {
        len(b) for b in local.values()
    }
    last = json.loads((data / ".dccd" / "last_sync.json").read_text())
    assert last["last_sync_at"] is not None and last["remotes"] == [str(mirror), "nas:crypto"]
    assert last["per_remote"]["nas:crypto"]["files"] == len(local)
    assert last["per_remote"]["nas:crypto"]["errors"] == []


# -- (b) ---------------------------------------------------------------------------------
def test_live_segments_are_never_pushed_and_a_just_sealed_one_is(
    tmp_path: Path, start: Start
) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    with FakeBinance(PAIRS, seed=12) as fake:
        job = StreamJob("binance", PAIRS, ["trades", "book"], url=fake.url, rest_url=fake.rest_url)
        with Collector(config(data, [job])) as collector:
            wait_until(lambda: len(list(data.glob("binance/*/*.live.h5"))) == len(PAIRS))
            wait_until(lambda: all(len(fake.sent_trades[p]) > 5 for p in PAIRS))
            ref = start(_storage(data, str(mirror)))
            first = request_sync(ref, timeout=30)[str(mirror)]
            assert first["ok"] and first["files"] == 0
            assert not mirror.exists() or tree(mirror) == {}
            assert _stats(ref)["remotes"][str(mirror)]["files_pending"] == 0
            sealed = collector.seal_now()
            assert len(sealed) == len(PAIRS)
            second = request_sync(ref, timeout=30)[str(mirror)]
            assert second["ok"] and second["files"] == len(PAIRS)
            pushed = tree(mirror)
            assert set(pushed) == {p.relative_to(data).as_posix() for p in sealed}
            assert all(pushed[p.relative_to(data).as_posix()] == p.read_bytes() for p in sealed)
            assert not list(mirror.rglob("*.live.h5"))
            ref.stop(block=True, timeout=10)


# -- (c) ---------------------------------------------------------------------------------
def test_a_down_remote_fails_alone_and_gets_everything_exactly_once_when_back(
    tmp_path: Path, rclone_env: Path, start: Start, manager: pykka.ActorRef[Any]
) -> None:
    data, mirror, served = tmp_path / "data", tmp_path / "mirror", tmp_path / "served"
    files = {f"binance/BTC-USDT/2026010{i}T000000Z.h5": i for i in range(1, 4)}
    for rel, seed in files.items():
        write_segment(data, rel, seed=seed)
    port = free_port()
    write_config(rclone_env, {"nas": webdav_section(port, USER, PASSWORD)})
    ref = start(_storage(data, "nas:", str(mirror), sync_interval=0.3))
    down = request_sync(ref, timeout=30)
    assert down[str(mirror)]["ok"] and down[str(mirror)]["files"] == 3
    assert not down["nas:"]["ok"] and down["nas:"]["files"] == 0
    assert "connection refused" in down["nas:"]["error"]
    row = _stats(ref)["remotes"]["nas:"]
    assert (
        row["files_pending"] == 3 and row["last_success"] is None and "refused" in row["last_error"]
    )
    assert row["sync_lag_s"] > 0
    ledger = _ledger(data)["remotes"]
    assert ledger["nas:"]["files"] == {} and "refused" in ledger["nas:"]["last_error"]
    assert len(ledger[str(mirror)]["files"]) == 3 and ledger[str(mirror)]["last_error"] is None
    assert tree(mirror) == tree(data)
    with webdav_server(served, user=USER, password=PASSWORD, port=port):
        wait_until(lambda: _stats(ref)["remotes"]["nas:"]["files_pending"] == 0, timeout=20)
        assert tree(served) == tree(data)
        again = request_sync(ref, timeout=30)
        assert again["nas:"] == {**again["nas:"], "ok": True, "files": 0, "error": None}
    ledger = _ledger(data)["remotes"]["nas:"]
    assert sorted(ledger["files"]) == sorted(files) and ledger["last_error"] is None
    assert ref.is_alive() and manager.ask("exits", timeout=2) == []


# -- (d) ---------------------------------------------------------------------------------
def test_a_hanging_remote_never_delays_the_other_one(
    tmp_path: Path, start: Start, manager: pykka.ActorRef[Any]
) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    with silent_tcp_server() as url:
        hung = f":webdav,url='{url.replace('ws://', 'http://')}/':"
        ref = start(_storage(data, hung, str(mirror), sync_interval=0.2), timeout=3.0)
        future = ref.ask(SyncNow(), timeout=2)
        began = time.monotonic()
        wait_until(
            lambda: _stats(ref)["remotes"][str(mirror)]["last_success"] is not None, timeout=5
        )
        assert time.monotonic() - began < 2.5, "the good remote waited for the hanging one"
        asked = time.monotonic()
        stats = _stats(ref)
        assert time.monotonic() - asked < 0.5 and stats["remotes"][hung]["state"] == "running"
        wait_until(lambda: _stats(ref)["remotes"][hung]["ticks_skipped"] >= 2, timeout=5)
        summary = future.get(timeout=15)
    assert summary[str(mirror)]["ok"] and summary[str(mirror)]["files"] == 1
    assert not summary[hung]["ok"] and "timed out after 3 s" in summary[hung]["error"]
    assert _stats(ref)["remotes"][hung]["files_pending"] == 1
    assert manager.ask("exits", timeout=2) == []
    ref.stop(block=True, timeout=10)  # ticks keep retrying the hung remote until then
    assert rclone_processes(str(data)) == []


def test_stop_terminates_a_hanging_push_and_reports_to_the_manager(
    tmp_path: Path, start: Start, manager: pykka.ActorRef[Any]
) -> None:
    data = tmp_path / "data"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    with silent_tcp_server() as url:
        hung = f":webdav,url='{url.replace('ws://', 'http://')}/':"
        ref = start(_storage(data, hung), timeout=60.0, stop_grace=0.5)
        future = ref.ask(SyncNow(), timeout=2)
        wait_until(lambda: rclone_processes(str(data)))
        began = time.monotonic()
        assert ref.stop(block=True, timeout=10)
        assert time.monotonic() - began < 5
        assert rclone_processes(str(data)) == []
        assert "stop" in future.get(timeout=2)[hung]["error"]
    assert manager.ask("exits", timeout=2) == [ChildExited("sync", 1, "stopped", "")]


# -- (e) ---------------------------------------------------------------------------------
def test_keep_local_days_removes_only_files_verified_on_every_remote(
    tmp_path: Path, start: Start
) -> None:
    data, one, two = tmp_path / "data", tmp_path / "one", tmp_path / "two"
    old_ok, old_conflict, new = (
        "binance/BTC-USDT/20260101T000000Z.h5",
        "binance/BTC-USDT/20260102T000000Z.h5",
        "binance/BTC-USDT/20260201T000000Z.h5",
    )
    for i, rel in enumerate((old_ok, old_conflict)):
        write_segment(data, rel, seed=i, age_s=3 * 86_400)
    write_segment(data, new, seed=3)
    write_segment(two, old_conflict, rows=7, seed=99)  # someone else's file: never overwritten
    write_segment(data, "binance/BTC-USDT/20260103T000000Z.live.h5", age_s=3 * 86_400)
    ref = start(_storage(data, str(one), str(two), keep_local_days=1))
    summary = request_sync(ref, timeout=30)
    assert summary[str(one)]["ok"] and summary[str(one)]["files"] == 3
    assert not summary[str(two)]["ok"] and summary[str(two)]["files"] == 2
    assert "immutable" in summary[str(two)]["error"]
    assert not (data / old_ok).exists()  # verified on both, older than a day
    assert (data / old_conflict).exists()  # not verified on two
    assert (data / new).exists()  # verified everywhere, but recent
    assert (data / "binance/BTC-USDT/20260103T000000Z.live.h5").exists()
    assert (one / old_ok).exists() and (two / old_ok).exists()
    assert (two / old_conflict).read_bytes() != (data / old_conflict).read_bytes()
    assert _stats(ref)["remotes"][str(two)]["files_pending"] == 1


# -- (f) ---------------------------------------------------------------------------------
def test_missing_rclone_is_unavailable_not_an_exception(
    tmp_path: Path, start: Start, manager: pykka.ActorRef[Any], caplog: pytest.LogCaptureFixture
) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    caplog.set_level(logging.INFO, "dccd_actors")
    ref = start(_storage(data, str(mirror), sync_interval=0.1), rclone="/nonexistent/rclone")
    summary = request_sync(ref, timeout=5)[str(mirror)]
    assert not summary["ok"] and "rclone not found" in summary["error"]
    stats = _stats(ref)
    assert stats["state"] == "unavailable" and "rclone not found" in stats["detail"]
    assert stats["remotes"][str(mirror)]["state"] == "unavailable"
    assert stats["remotes"][str(mirror)]["files_pending"] == 1
    assert ref.is_alive() and not mirror.exists()
    assert caplog.text.count("rclone not found") == 2  # once at start, once for the push
    ref.stop(block=True, timeout=5)
    assert manager.ask("exits", timeout=2) == [ChildExited("sync", 1, "stopped", "")]


def test_no_remotes_or_zero_interval_is_disabled(
    tmp_path: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "dccd_actors")
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    none = start(_storage(data))
    assert request_sync(none, timeout=5) == {}
    assert _stats(none)["state"] == "disabled" and "no remotes" in _stats(none)["detail"]
    manual = start(_storage(data, str(mirror), sync_interval=0))
    stats = _stats(manual)
    assert stats["state"] == "disabled" and stats["remotes"][str(mirror)]["state"] == "disabled"
    assert request_sync(manual, timeout=30)[str(mirror)]["files"] == 1  # sync_now still pushes
    assert caplog.text.count("disabled") == 2


def test_a_restart_resumes_from_the_ledger(tmp_path: Path, start: Start) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    first = start(_storage(data, str(mirror)))
    assert request_sync(first, timeout=30)[str(mirror)]["files"] == 1
    first.stop(block=True, timeout=5)
    write_segment(data, "binance/BTC-USDT/20260102T000000Z.h5", seed=5)
    second = start(_storage(data, str(mirror)))
    assert _stats(second)["remotes"][str(mirror)]["files_pending"] == 1
    assert request_sync(second, timeout=30)[str(mirror)]["files"] == 1
    assert request_sync(second, timeout=30)[str(mirror)]["files"] == 0
    assert tree(mirror) == tree(data)


# -- (g) ---------------------------------------------------------------------------------
def test_credentials_never_reach_stats_logs_or_files(
    tmp_path: Path, rclone_env: Path, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "dccd_actors")
    data, served = tmp_path / "data", tmp_path / "served"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    wrong_url_pass, wrong_param_pass = "Wr0ng-url-secret", "Wr0ng-param-secret"
    obscured_wrong = obscure(wrong_param_pass)
    with webdav_server(served, user=USER, password=PASSWORD) as port:
        good = webdav_section(port, USER, PASSWORD)
        write_config(rclone_env, {"nas": good})
        in_url = f":webdav,url='http://{USER}:{wrong_url_pass}@127.0.0.1:{port}/':a"
        in_param = f":webdav,url='http://127.0.0.1:{port}/',user={USER},pass={obscured_wrong}:b"
        ref = start(_storage(data, "nas:", in_url, in_param))
        summary = request_sync(ref, timeout=30)
        stats = _stats(ref)
    names = set(summary)
    assert summary["nas:"]["ok"] and len(names) == 3
    failed = [v for k, v in summary.items() if k != "nas:"]
    assert all(not v["ok"] and v["error"] for v in failed), summary
    meta = data / ".dccd"
    exposed = "\n".join(
        [
            caplog.text,
            repr(summary),
            repr(stats),
            (meta / "sync_ledger.json").read_text(),
            (meta / "last_sync.json").read_text(),
        ]
    )
    for secret in (PASSWORD, good["pass"], wrong_url_pass, wrong_param_pass, obscured_wrong):
        assert secret not in exposed
    assert "***" in exposed  # the remotes are still told apart, their secrets masked


def test_redact_masks_url_credentials_and_secret_parameters() -> None:
    remote = ":s3,access_key_id=AKIA123,secret_access_key='x,y''z':bucket/p"
    assert redact(remote) == ":s3,access_key_id=***,secret_access_key=***:bucket/p"
    assert redact("Get http://u:p%40ss@h:1/x failed") == "Get http://***@h:1/x failed"
    assert redact('RCLONE_CONFIG_NAS_PASS="abc def" ok') == "RCLONE_CONFIG_NAS_PASS=*** ok"
    assert set(remote_secrets(remote)) == {"AKIA123", "x,y'z"}
    assert redact("token x,y'z leaked", remote_secrets(remote)) == "token *** leaked"


def test_commands_copy_an_explicit_list_and_never_sync(tmp_path: Path) -> None:
    listing, report = tmp_path / "files", tmp_path / "report"
    copy = copy_command(RCLONE, listing, tmp_path, "-odd:remote")
    check = check_command(RCLONE, listing, tmp_path, "-odd:remote", report)
    assert copy[1] == "copy" and "sync" not in copy and "--immutable" in copy
    assert f"--files-from-raw={listing}" in copy and f"--files-from-raw={listing}" in check
    assert check[1:3] == ["check", "--one-way"] and f"--combined={report}" in check
    assert copy[-3:] == check[-3:] == ["--", str(tmp_path), "-odd:remote"]


def test_a_damaged_ledger_is_set_aside_and_rebuilt_without_pushing_twice(
    tmp_path: Path, start: Start
) -> None:
    data, mirror = tmp_path / "data", tmp_path / "mirror"
    write_segment(data, "binance/BTC-USDT/20260101T000000Z.h5")
    first = start(_storage(data, str(mirror)))
    assert request_sync(first, timeout=30)[str(mirror)]["files"] == 1
    first.stop(block=True, timeout=5)
    (data / ".dccd" / "sync_ledger.json").write_text("{not json")
    ledger = Ledger(data / ".dccd" / "sync_ledger.json")
    assert ledger.pending(str(mirror), {"binance/BTC-USDT/20260101T000000Z.h5": 1}) != []
    assert list((data / ".dccd").glob("sync_ledger.json.corrupt-*"))
    second = start(_storage(data, str(mirror)))
    again = request_sync(second, timeout=30)[str(mirror)]
    assert again["ok"] and again["files"] == 1  # re-verified: identical, so nothing overwritten
    assert tree(mirror) == tree(data)


def test_an_interrupted_upload_is_redone_but_a_foreign_file_is_never_overwritten(
    tmp_path: Path, rclone_env: Path, start: Start
) -> None:
    data, served = tmp_path / "data", tmp_path / "served"
    cut, foreign = "binance/BTC-USDT/20260101T000000Z.h5", "binance/BTC-USDT/20260102T000000Z.h5"
    write_segment(data, cut)
    with silent_tcp_server() as url, webdav_server(served, user=USER, password=PASSWORD) as port:
        hung_port = int(url.rsplit(":", 1)[1])
        write_config(rclone_env, {"nas": webdav_section(hung_port, USER, PASSWORD)})
        ref = start(_storage(data, "nas:"), timeout=1.0, stop_grace=0.5)
        killed = request_sync(ref, timeout=15)["nas:"]
        assert not killed["ok"] and "timed out after 1 s" in killed["error"]
        assert list(_ledger(data)["remotes"]["nas:"]["inflight"]) == [cut]
        # what the killed upload left behind on an in-place backend: a truncated file
        (served / cut).parent.mkdir(parents=True)
        (served / cut).write_bytes((data / cut).read_bytes()[:1000])
        write_segment(data, foreign, seed=1)  # never pushed before ...
        (served / foreign).write_bytes(b"someone else's file")  # ... and a foreign one is there
        write_config(rclone_env, {"nas": webdav_section(port, USER, PASSWORD)})
        again = request_sync(ref, timeout=30)["nas:"]
        assert again["files"] == 1 and "immutable" in again["error"]
        assert (served / cut).read_bytes() == (data / cut).read_bytes()
        assert (served / foreign).read_bytes() != (data / foreign).read_bytes()
    ledger = _ledger(data)["remotes"]["nas:"]
    assert list(ledger["files"]) == [cut] and ledger["inflight"] == {}
