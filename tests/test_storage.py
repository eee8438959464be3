"""Segment writer: rotation by receive time, sealing, restart gaps."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from dccd_actors import open_store
from dccd_actors.records import trades_array
from dccd_actors.storage.segment import SegmentInfo
from dccd_actors.storage.writer import SegmentWriter, period_end_ns

INFO = SegmentInfo("binance", "BTC/USDT", "BTCUSDT", 5, 1.0, "trades")
HOUR = 3_600_000_000_000
BOUNDARY = 1_795_813_200 * 1_000_000_000  # an exact hour, 2026-11-27 21:00 UTC
KEY = ("binance", "BTC/USDT")


def _trades(ts: list[int], first_id: int) -> np.ndarray:
    return trades_array([(t, t, first_id + i, b"", 100.0, 1.0, 1, 0) for i, t in enumerate(ts)])


def test_batches_go_to_the_segment_of_their_receive_time(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path, rotation="hourly")
    assert period_end_ns(BOUNDARY - 1, "hourly") == BOUNDARY
    writer.append(KEY, INFO, {"trades": _trades([BOUNDARY - 3000, BOUNDARY - 2000], 1)})
    # a batch received before the boundary but handed over after it stays in the old hour
    writer.append(KEY, INFO, {"trades": _trades([BOUNDARY - 1000], 3)})
    writer.append(KEY, INFO, {"trades": _trades([BOUNDARY + 5, BOUNDARY + 6], 4)})
    assert writer.rotate_due(BOUNDARY + HOUR + 1) == []  # within the grace period
    writer.seal_all("stop")
    segments = open_store(tmp_path).segments(*KEY)
    assert [p.name for p in segments] == ["20261127T205959Z.h5", "20261127T210000Z.h5"]
    with h5py.File(segments[0]) as first, h5py.File(segments[1]) as second:
        assert first["trades"]["trade_id"].tolist() == [1, 2, 3]
        assert second["trades"]["trade_id"].tolist() == [4, 5]
        assert first.attrs["end_reason"] == "rotation" and second.attrs["end_reason"] == "stop"
    assert open_store(tmp_path).trades(*KEY)["trade_id"].tolist() == [1, 2, 3, 4, 5]


def test_a_restart_after_any_clean_end_records_a_stop_gap(tmp_path: Path) -> None:
    writer = SegmentWriter(tmp_path)
    writer.append(KEY, INFO, {"trades": _trades([BOUNDARY], 1)})
    writer.seal_all("sync")  # the last segment of the run was sealed by seal_now(), then stop()
    writer.close()
    later = SegmentWriter(tmp_path)
    later.append(KEY, INFO, {"trades": _trades([BOUNDARY + HOUR], 2)})
    later.seal_all("stop")
    gaps = open_store(tmp_path).gaps(*KEY)
    assert gaps["cause"].tolist() == ["stop"]
    assert (gaps["start_ns"][0], gaps["end_ns"][0]) == (BOUNDARY, BOUNDARY + HOUR)
