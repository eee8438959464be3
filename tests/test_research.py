"""Research reads: ranges across segments, book_at, bars, coverage, replay, to_pandas.

One recording from FakeBinance through a real Collector (several segments, a dropped
connection, a skipped sequence range) backs the end-to-end checks; small synthetic
segments written with the storage layer back the exact unit checks.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from dccd_actors import Collector, GapError, StreamJob, open_store
from dccd_actors.records import (
    BOOK_DELTAS,
    FLAG_LAST,
    FLAG_SNAPSHOT,
    deltas_array,
    gaps_array,
    trades_array,
)
from dccd_actors.storage._access import count_rows_read
from dccd_actors.storage.frames import to_pandas
from dccd_actors.storage.layout import new_live_name, stream_dir
from dccd_actors.storage.reader import Store
from dccd_actors.storage.research import parse_interval
from dccd_actors.storage.segment import LiveSegment, SegmentInfo, seal
from dccd_actors.testing import FakeBinance
from dccd_actors.testing._market import MarketTrade
from tests.helpers import config, wait_until

PAIRS = ["BTC/USDT", "ETH/USDT"]
BTC = "BTC/USDT"
S = 1_000_000_000
T0 = 1_795_737_600 * S  # 2026-11-27T00:00:00Z


# -- the recording -------------------------------------------------------------------------
@dataclass
class Truth:
    pair: str
    t: int
    bids: dict[float, float]
    asks: dict[float, float]
    seq: int


@dataclass
class Recording:
    path: Path
    sent: dict[str, list[MarketTrade]]
    truths: list[Truth]


def _stored_seq(path: Path, pair: str) -> int:
    deltas = open_store(path).book_deltas("binance", pair)
    return int(deltas["seq"][-1]) if len(deltas) else -1


def _sample(fake: FakeBinance, path: Path, pair: str) -> Truth:
    """The fake's book at a local time t at which the collector held exactly that book."""
    fake.pause()
    try:
        while True:
            seq = wait_until(
                lambda: (
                    _stored_seq(path, pair) == fake.last_update_id(pair)
                    and fake.last_update_id(pair)
                )
            )
            t = time.time_ns()
            bids, asks = fake.book(pair)
            if fake.last_update_id(pair) == seq:  # no tick slipped in after the pause
                return Truth(pair, t, bids, asks, seq)
    finally:
        fake.resume()


def _more_trades(fake: FakeBinance, n: int = 15) -> None:
    goal = {p: len(fake.sent_trades[p]) + n for p in PAIRS}
    wait_until(lambda: all(len(fake.sent_trades[p]) >= goal[p] for p in PAIRS))


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    path = tmp_path_factory.mktemp("recording")
    truths: list[Truth] = []
    fake = FakeBinance(PAIRS, seed=21)
    with fake:
        job = StreamJob(
            "binance",
            PAIRS,
            ["trades", "book"],
            url=fake.url,
            rest_url=fake.rest_url,
            time_step=0.2,
        )
        with Collector(config(path, [job])) as collector:
            wait_until(
                lambda: (
                    len(collector.status()) == 2 and all(r.book_live for r in collector.status())
                )
            )
            for _ in range(3):
                _more_trades(fake)
                truths += [_sample(fake, path, p) for p in PAIRS]
                collector.seal_now()
            # each fault must come after fresh data: a gap starts at the last data received
            wait_until(lambda: all(_stored_seq(path, t.pair) > t.seq for t in truths[-2:]))
            before = fake.connection_count
            fake.drop_connections()
            wait_until(lambda: fake.connection_count >= before + 2)
            wait_until(lambda: all(r.gen == 2 and r.book_live for r in collector.status()))
            _more_trades(fake)
            truths += [_sample(fake, path, p) for p in PAIRS]
            collector.seal_now()
            wait_until(lambda: all(_stored_seq(path, t.pair) > t.seq for t in truths[-2:]))
            fake.skip_sequence(BTC, 3)
            wait_until(lambda: {r.pair: r.resyncs for r in collector.status()}[BTC] == 1)
            wait_until(lambda: all(r.book_live for r in collector.status()))
            _more_trades(fake)
            truths += [_sample(fake, path, p) for p in PAIRS]
            # rows after the last sample: a run's recorded time ends at its last row
            _more_trades(fake, 5)
            fake.pause()
            wait_until(lambda: all(_stored_seq(path, p) == fake.last_update_id(p) for p in PAIRS))
            wait_until(lambda: len(open_store(path).gaps("binance", BTC)) == 2)
            sent = {p: list(fake.sent_trades[p]) for p in PAIRS}
    return Recording(path, sent, truths)


def _seg_starts(store: Store, name: str, pair: str) -> list[int]:
    """``ts_recv`` of the first row of every non-empty segment, read directly."""
    out = []
    for seg in store.segments("binance", pair):
        with h5py.File(seg, "r") as f:
            if f[name].shape[0]:
                out.append(int(f[name][0]["ts_recv"]))
    return out


# -- plain readers ---------------------------------------------------------------------------
def test_trades_are_exactly_what_the_fake_sent_across_segments(rec: Recording) -> None:
    store = open_store(rec.path)
    assert len(store.segments("binance", BTC)) >= 5
    for pair in PAIRS:
        trades = store.trades("binance", pair)
        sent = rec.sent[pair]
        assert trades["trade_id"].tolist() == [t.trade_id for t in sent]
        assert trades["price"].tolist() == [float(t.price) for t in sent]
        assert trades["amount"].tolist() == [float(t.amount) for t in sent]
        assert trades["side"].tolist() == [t.side for t in sent]
        assert trades["ts_event"].tolist() == [t.ts_ms * 1_000_000 for t in sent]
        assert np.all(np.diff(trades["ts_recv"]) >= 0)


@pytest.mark.parametrize("name", ["trades", "book_deltas", "book_snapshots"])
def test_partial_ranges_crossing_segment_boundaries_equal_the_masked_whole(
    rec: Recording, name: str
) -> None:
    store = open_store(rec.path)
    read = getattr(store, name)
    whole = read("binance", BTC)
    ts = whole["ts_recv"]
    starts = _seg_starts(store, name, BTC)
    assert len(starts) >= 4
    uniq = np.unique(ts)
    # from inside segment 1 to inside segment 4, and from/to the exact boundaries
    ranges = [
        (int(uniq[uniq < starts[1]][-1]), int(uniq[uniq >= starts[3]][1])),
        (starts[1], starts[3]),
        (starts[1] - 1, starts[1] + 1),
        (None, starts[2]),
        (starts[2], None),
        (int(ts[-1]) + 1, None),
        (None, int(ts[0])),
    ]
    for lo, hi in ranges:
        part = read("binance", BTC, lo, hi)
        mask = np.ones(len(ts), dtype=bool)
        if lo is not None:
            mask &= ts >= lo
        if hi is not None:
            mask &= ts < hi
        assert part.dtype == whole.dtype
        assert part.tobytes() == whole[mask].tobytes(), (lo, hi)
    crossing = read("binance", BTC, ranges[0][0], ranges[0][1])
    assert crossing["ts_recv"][0] < starts[1] and crossing["ts_recv"][-1] >= starts[3]


def test_streams_reports_channels_bounds_and_counts_cheaply(rec: Recording) -> None:
    store = open_store(rec.path)
    infos = {s.pair: s for s in store.streams()}
    assert sorted(infos) == PAIRS
    for pair, info in infos.items():
        reads = {
            n: getattr(store, n)("binance", pair)
            for n in ("trades", "book_deltas", "book_snapshots")
        }
        assert info.exchange == "binance" and info.channels == ("trades", "book")
        assert info.segments == len(store.segments("binance", pair)) and info.live_segments == 0
        assert info.trades == len(rec.sent[pair]) == len(reads["trades"])
        assert info.book_deltas == len(reads["book_deltas"])
        assert info.book_snapshots == len(reads["book_snapshots"])
        assert info.gaps == len(store.gaps("binance", pair))
        assert info.first_ts_recv == min(int(r["ts_recv"][0]) for r in reads.values())
        assert info.last_ts_recv == max(int(r["ts_recv"][-1]) for r in reads.values())
    with count_rows_read() as rows:
        store.streams()
    assert sum(rows.values()) <= 6 * 2  # the first and last rows only


def test_gaps_hold_the_injected_disconnect_and_seq_gap(rec: Recording) -> None:
    store = open_store(rec.path)
    assert store.gaps("binance", BTC)["cause"].tolist() == ["disconnect", "seq_gap"]
    assert store.gaps("binance", "ETH/USDT")["cause"].tolist() == ["disconnect"]


# -- book_at ---------------------------------------------------------------------------------
def test_book_at_equals_the_fake_book_at_sampled_times(rec: Recording) -> None:
    store = open_store(rec.path)
    assert len(rec.truths) == 10
    for truth in rec.truths:
        book = store.book_at("binance", truth.pair, truth.t, depth=None)
        assert book.as_dicts() == (truth.bids, truth.asks)
        assert book.seq == truth.seq and book.ts_recv <= truth.t
        top = store.book_at("binance", truth.pair, truth.t)
        assert top.bids.shape == (min(25, len(truth.bids)), 2)
        assert top.bids[:, 0].tolist() == sorted(truth.bids, reverse=True)[:25]
        assert top.asks[:, 0].tolist() == sorted(truth.asks)[:25]
        assert top.asks[:, 1].tolist() == [truth.asks[p] for p in sorted(truth.asks)[:25]]
        us = -(-truth.t // 1000)  # datetimes and ISO text carry microseconds: round up
        as_dt = datetime.fromtimestamp(us // 10**6, UTC).replace(microsecond=us % 10**6)
        assert store.book_at("binance", truth.pair, as_dt) == top
        assert store.book_at("binance", truth.pair, as_dt.isoformat()) == top


def test_book_at_raises_inside_each_recorded_gap_and_outside_the_recording(rec: Recording) -> None:
    store = open_store(rec.path)
    for pair in PAIRS:
        for gap in store.gaps("binance", pair):
            start, end = int(gap["start_ns"]), int(gap["end_ns"])
            assert end > start
            with pytest.raises(GapError, match=f"inside the recorded gap .*cause={gap['cause']}"):
                store.book_at("binance", pair, (start + end) // 2)
            assert len(store.book_at("binance", pair, end).bids) > 0  # rebuilt at the gap's end
        first = int(store.book_deltas("binance", pair)["ts_recv"][0])
        with pytest.raises(GapError, match="no book snapshot"):
            store.book_at("binance", pair, first - 1)
        last = store.streams()[PAIRS.index(pair)].last_ts_recv
        with pytest.raises(GapError, match=r"recording ended \(stop\)"):
            store.book_at("binance", pair, last + S)


# -- bars --------------------------------------------------------------------------------------
def _reference_bars(
    trades: list[MarketTrade], step: int, lo: int | None, hi: int | None
) -> list[tuple[Any, ...]]:
    buckets: dict[int, list[MarketTrade]] = {}
    for trade in trades:
        t = trade.ts_ms * 1_000_000
        if (lo is None or t >= lo) and (hi is None or t < hi):
            buckets.setdefault(t // step * step, []).append(trade)
    out = []
    for ts in sorted(buckets):
        group = buckets[ts]
        prices = [float(t.price) for t in group]
        amounts = [float(t.amount) for t in group]
        volume = sum(amounts)
        out.append(
            (
                ts,
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
                volume,
                len(group),
                sum(p * a for p, a in zip(prices, amounts, strict=True)) / volume,
                sum(float(t.amount) for t in group if t.side == 1),
                sum(float(t.amount) for t in group if t.side == -1),
            )
        )
    return out


@pytest.mark.parametrize("interval", ["1s", 0.25, "100ms", "1min"])
def test_bars_equal_a_pure_python_reference(rec: Recording, interval: Any) -> None:
    store = open_store(rec.path)
    step = parse_interval(interval)
    for pair in PAIRS:
        ts = [t.ts_ms * 1_000_000 for t in rec.sent[pair]]
        for lo, hi in [(None, None), (ts[len(ts) // 3], ts[2 * len(ts) // 3])]:
            got = store.bars("binance", pair, interval, lo, hi)
            want = _reference_bars(rec.sent[pair], step, lo, hi)
            assert len(got) == len(want) > 0
            for row, ref in zip(got.tolist(), want, strict=True):
                assert row[:5] == ref[:5] and row[6] == ref[6]
                assert row[5] == pytest.approx(ref[5], rel=1e-12)
                assert row[7:] == pytest.approx(ref[7:], rel=1e-12)


def test_bars_bucket_by_ts_recv_where_the_venue_gives_no_time() -> None:
    from dccd_actors.storage.research import bars

    rows = trades_array(
        [
            (-1, T0 + 100, 1, b"", 10.0, 1.0, 1, 0),
            (T0 + 900_000_000, T0 + 2 * S, 2, b"", 12.0, 3.0, -1, 0),
            (-1, T0 + 1_500_000_000, 3, b"", 11.0, 2.0, 1, 0),
        ]
    )
    got = bars(rows, "1s")
    assert got["ts"].tolist() == [T0, T0 + S]
    assert got["open"].tolist() == [10.0, 11.0] and got["close"].tolist() == [12.0, 11.0]
    assert got["high"].tolist() == [12.0, 11.0] and got["low"].tolist() == [10.0, 11.0]
    assert got["count"].tolist() == [2, 1] and got["volume"].tolist() == [4.0, 2.0]
    assert got["vwap"].tolist() == [(10.0 + 36.0) / 4.0, 11.0]
    assert got["buy_volume"].tolist() == [1.0, 2.0] and got["sell_volume"].tolist() == [3.0, 0.0]
    assert len(bars(rows[:0], "1h")) == 0


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1s", S),
        ("1min", 60 * S),
        ("5min", 300 * S),
        ("5m", 300 * S),
        ("1h", 3600 * S),
        ("1d", 86400 * S),
        ("250ms", S // 4),
        (2, 2 * S),
        (0.5, S // 2),
        ("min", 60 * S),
    ],
)
def test_intervals_parse(text: Any, ns: int) -> None:
    assert parse_interval(text) == ns


@pytest.mark.parametrize("bad", ["", "5 parsecs", "0s", -1, True, "1w"])
def test_bad_intervals_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="interval"):
        parse_interval(bad)


# -- replay ------------------------------------------------------------------------------------
def test_replay_merges_streams_by_ts_recv_completely(rec: Recording) -> None:
    store = open_store(rec.path)
    specs = [
        ("binance", BTC, "trades"),
        ("binance", "ETH/USDT", "trades"),
        ("binance", BTC, "book_deltas"),
    ]
    ts = store.trades("binance", BTC)["ts_recv"]
    lo, hi = int(ts[5]), int(ts[-5])
    out = list(store.replay(specs, lo, hi, chunk_rows=7))
    for exchange, pair, name in specs:
        want = getattr(store, name)(exchange, pair, lo, hi)
        got = [r.row for r in out if (r.exchange, r.pair, r.dataset) == (exchange, pair, name)]
        assert len(got) == len(want) > 0
        assert np.array(got, dtype=want.dtype).tobytes() == want.tobytes()
    merged = [r.ts_recv for r in out]
    assert merged == sorted(merged)
    keys = [(r.ts_recv, specs.index((r.exchange, r.pair, r.dataset))) for r in out]
    assert keys == sorted(keys)  # ties keep the order of the streams given


def test_replay_reads_lazily_in_chunks(rec: Recording) -> None:
    store = open_store(rec.path)
    with count_rows_read() as rows:
        stream = store.replay(
            [("binance", BTC, "book_deltas"), ("binance", BTC, "trades")], chunk_rows=16
        )
        first = [next(stream) for _ in range(10)]
    assert len(first) == 10
    assert rows["book_deltas"] <= 16 + 4 and rows["trades"] <= 16 + 4
    with pytest.raises(ValueError, match="dataset"):
        store.replay([("binance", BTC, "gaps")])


# -- coverage ------------------------------------------------------------------------------------
def _union_ns(intervals: list[tuple[int, int]]) -> int:
    total, cur = 0, None
    for start, end in sorted(intervals):
        if cur and start <= cur[1]:
            cur = (cur[0], max(cur[1], end))
        else:
            if cur:
                total += cur[1] - cur[0]
            cur = (start, end)
    return total + (cur[1] - cur[0] if cur else 0)


def test_coverage_accounts_for_the_injected_gaps(rec: Recording) -> None:
    store = open_store(rec.path)
    cov = store.coverage("binance")
    assert sorted(set(cov["pair"].tolist())) == PAIRS
    for pair in PAIRS:
        rows = cov[cov["pair"] == pair]
        gaps = store.gaps("binance", pair)
        missing = _union_ns(
            list(zip(gaps["start_ns"].tolist(), gaps["end_ns"].tolist(), strict=True))
        )
        assert rows["missing_s"].sum() == pytest.approx(missing / 1e9, abs=1e-9)
        assert rows["gaps"].sum() >= len(gaps) >= 1
        assert rows["trades"].sum() == len(rec.sent[pair])
        assert rows["book_deltas"].sum() == len(store.book_deltas("binance", pair))
        info = store.streams()[PAIRS.index(pair)]
        assert rows["first_ts_recv"].min() == info.first_ts_recv
        assert rows["last_ts_recv"].max() == info.last_ts_recv
        span = (info.last_ts_recv - info.first_ts_recv) / 1e9
        if len(rows) == 1:  # a run that crossed midnight UTC splits the span
            assert rows["span_s"][0] == pytest.approx(span)
            assert rows["recorded_s"][0] == pytest.approx(span - missing / 1e9)
            assert rows["day"][0] == info.first_ts_recv // (86400 * S) * 86400 * S
    ts = store.trades("binance", BTC)["ts_recv"]
    lo, hi = int(ts[10]), int(ts[-10])
    window = store.coverage("binance", BTC, lo, hi)
    assert window["trades"].sum() == len(store.trades("binance", BTC, lo, hi))
    assert window["book_deltas"].sum() == len(store.book_deltas("binance", BTC, lo, hi))


# -- synthetic segments ------------------------------------------------------------------------
def _segment(
    root: Path,
    start: int,
    *,
    trades: Any = None,
    deltas: Any = None,
    gaps: Any = None,
    reason: str = "sync",
    live: bool = False,
) -> Path:
    folder = stream_dir(root, "binance", BTC)
    name = new_live_name(folder, start)
    segment = LiveSegment(
        folder / name.filename(), SegmentInfo("binance", BTC, "BTCUSDT", 5, 1.0), name.start_ns
    )
    for key, rows in (("trades", trades), ("book_deltas", deltas), ("gaps", gaps)):
        if rows is not None:
            segment.append(key, rows)
    segment.flush()
    if live:
        return segment.path
    segment.close()
    return seal(segment.path, "lzf", reason)


def test_a_one_minute_read_of_a_large_segment_reads_about_a_minute_of_rows(tmp_path: Path) -> None:
    n = 432_000  # a day at 5 trades per second
    ts = T0 + np.arange(n, dtype=np.int64) * (S // 5)
    rows = np.zeros(n, dtype=trades_array([]).dtype)
    rows["ts_event"], rows["ts_recv"], rows["trade_id"] = ts, ts, np.arange(n)
    rows["price"], rows["amount"], rows["side"] = 100.0 + np.arange(n) % 7, 1.0, 1
    _segment(tmp_path, T0, trades=rows, reason="rotation")
    store = open_store(tmp_path)
    lo = T0 + 12 * 3600 * S
    with count_rows_read() as read:
        minute = store.trades("binance", BTC, lo, lo + 60 * S)
    assert len(minute) == 300 and minute["trade_id"][0] == 12 * 3600 * 5
    assert minute.tobytes() == rows[(ts >= lo) & (ts < lo + 60 * S)].tobytes()
    assert 300 <= read["trades"] <= 300 + 4 * 20  # the rows plus two bisections' probes


def _snapshot(
    t: int, seq: int, bids: dict[float, float], asks: dict[float, float]
) -> list[tuple[Any, ...]]:
    rows = [(t, t, seq, 1, p, s, FLAG_SNAPSHOT) for p, s in bids.items()]
    rows += [(t, t, seq, -1, p, s, FLAG_SNAPSHOT) for p, s in asks.items()]
    if not rows:
        return [(t, t, seq, 0, float("nan"), 0.0, FLAG_SNAPSHOT | FLAG_LAST)]
    rows[-1] = (*rows[-1][:6], FLAG_SNAPSHOT | FLAG_LAST)
    return rows


def _reference_book(
    rows: np.ndarray, t: int
) -> tuple[dict[float, float], dict[float, float]] | None:
    """Replay rows with ts_recv <= t from the last snapshot run start (pure Python)."""
    rows = rows[rows["ts_recv"] <= t]
    starts = [
        i
        for i in range(len(rows))
        if rows["flags"][i] & FLAG_SNAPSHOT
        and (i == 0 or not rows["flags"][i - 1] & FLAG_SNAPSHOT or rows["flags"][i - 1] & FLAG_LAST)
    ]
    if not starts:
        return None
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for row in rows[starts[-1] :]:
        side, price, size = int(row["side"]), float(row["price"]), float(row["size"])
        if side:
            book = bids if side == 1 else asks
            if size:
                book[price] = size
            else:
                book.pop(price, None)
    return bids, asks


def test_book_at_replays_from_the_last_snapshot_run_exactly(tmp_path: Path) -> None:
    ms = 1_000_000
    rows = _snapshot(T0 + 100 * ms, 1, {99.0: 1.0, 98.0: 2.0}, {101.0: 1.5})
    rows += [
        (T0, T0 + 110 * ms, 2, 1, 99.0, 0.0, 0),
        (T0, T0 + 110 * ms, 2, -1, 102.0, 3.0, FLAG_LAST),
    ]
    rows += [(T0, T0 + 120 * ms, 3, 1, 98.5, 4.0, FLAG_LAST)]
    first = deltas_array(rows)
    # segment 2: two back-to-back snapshot runs, then an empty snapshot marker, then deltas
    rows = _snapshot(T0 + 300 * ms, 4, {90.0: 1.0}, {110.0: 1.0})
    rows += _snapshot(T0 + 310 * ms, 5, {91.0: 1.0}, {109.0: 2.0})
    rows += _snapshot(T0 + 400 * ms, 6, {}, {})
    rows += [(T0 + 5, T0 + 410 * ms, 7, -1, 105.0, 1.0, FLAG_LAST)]
    second = deltas_array(rows)
    _segment(tmp_path, T0, deltas=first)
    _segment(tmp_path, T0 + 2 * S, deltas=second)
    store = open_store(tmp_path)
    book = store.book_at("binance", BTC, T0 + 115 * ms)
    assert book.as_dicts() == ({98.0: 2.0}, {101.0: 1.5, 102.0: 3.0})
    assert (book.seq, book.ts_event, book.ts_recv) == (2, T0, T0 + 110 * ms)
    assert store.book_at("binance", BTC, T0 + 250 * ms).as_dicts() == (
        {98.5: 4.0, 98.0: 2.0},
        {101.0: 1.5, 102.0: 3.0},
    )
    assert store.book_at("binance", BTC, T0 + 310 * ms).as_dicts() == ({91.0: 1.0}, {109.0: 2.0})
    empty = store.book_at("binance", BTC, T0 + 400 * ms)
    assert empty.bids.shape == (0, 2) and empty.asks.shape == (0, 2) and empty.seq == 6
    assert store.book_at("binance", BTC, "2026-11-27T00:00:00.5Z").as_dicts() == ({}, {105.0: 1.0})
    with pytest.raises(GapError, match="no book snapshot"):
        store.book_at("binance", BTC, T0 + 99 * ms)
    with pytest.raises(ValueError, match="depth"):
        store.book_at("binance", BTC, T0 + 115 * ms, depth=0)


def test_book_at_matches_a_reference_replay_at_random_times(tmp_path: Path) -> None:
    rng = random.Random(5)
    rows: list[tuple[Any, ...]] = []
    t, seq = T0, 0
    for _ in range(600):
        t += rng.randint(1, 3) * 1_000_000
        seq += 1
        if rng.random() < 0.03:
            bids = {
                float(rng.randint(90, 99)): float(rng.randint(1, 9))
                for _ in range(rng.randint(0, 6))
            }
            asks = {
                float(rng.randint(101, 110)): float(rng.randint(1, 9))
                for _ in range(rng.randint(0, 6))
            }
            rows += _snapshot(t, seq, bids, asks)
            continue
        for _ in range(rng.randint(1, 4)):
            side = rng.choice((1, -1))
            price = float(rng.randint(90, 99) if side == 1 else rng.randint(101, 110))
            rows.append((t, t, seq, side, price, float(rng.choice((0, 1, 2, 3))), 0))
        rows[-1] = (*rows[-1][:6], FLAG_LAST)
    arr = deltas_array(rows)
    cuts = [0, len(arr) // 3, 2 * len(arr) // 3, len(arr)]
    for i in range(3):  # split between messages (a different ts_recv) into three segments
        a, b = cuts[i], cuts[i + 1]
        while 0 < a < len(arr) and arr["ts_recv"][a] == arr["ts_recv"][a - 1]:
            a += 1
        while b < len(arr) and arr["ts_recv"][b] == arr["ts_recv"][b - 1]:
            b += 1
        cuts[i + 1] = b
        _segment(tmp_path, T0 + i * S, deltas=arr[a:b])
    store = open_store(tmp_path)
    checked = 0
    for t_probe in sorted(rng.randint(T0, t + 5_000_000) for _ in range(80)):
        want = _reference_book(arr, t_probe)
        if want is None:
            with pytest.raises(GapError):
                store.book_at("binance", BTC, t_probe)
            continue
        assert store.book_at("binance", BTC, t_probe, depth=None).as_dicts() == want
        checked += 1
    assert checked > 50


def test_book_at_searches_back_from_t_not_from_the_start(tmp_path: Path) -> None:
    n = 300_000
    ts = T0 + 1000 + np.arange(n, dtype=np.int64) * 1000
    deltas = np.zeros(n, dtype=BOOK_DELTAS)
    deltas["ts_event"], deltas["ts_recv"], deltas["seq"] = ts, ts, np.arange(n)
    deltas["side"] = np.where(np.arange(n) % 2, 1, -1)
    deltas["price"] = np.where(deltas["side"] == 1, 90.0, 110.0) + (np.arange(n) % 50) / 10
    deltas["size"], deltas["flags"] = np.arange(n) % 3, FLAG_LAST
    snap = deltas_array(_snapshot(T0, -1, {1.0: 1.0}, {200.0: 1.0}))
    late = n - 1000
    deltas["flags"][late - 1 : late + 1] = FLAG_SNAPSHOT, FLAG_SNAPSHOT | FLAG_LAST
    deltas["ts_recv"][late] = deltas["ts_recv"][late - 1]
    _segment(tmp_path, T0, deltas=np.concatenate([snap, deltas]), reason="rotation")
    store = open_store(tmp_path)
    t = int(ts[-1])
    with count_rows_read() as read:
        book = store.book_at("binance", BTC, t, depth=None)
    assert read["book_deltas"] < 20_000  # not the 300 000 rows since the first snapshot
    want = _reference_book(np.concatenate([snap, deltas]), t)
    assert book.as_dicts() == want and book.seq == n - 1


def test_gaps_stop_book_at_until_a_snapshot_follows_them(tmp_path: Path) -> None:
    ms = 1_000_000
    rows = _snapshot(T0 + 100 * ms, 1, {99.0: 1.0}, {101.0: 1.0})
    rows += _snapshot(T0 + 600 * ms, 2, {98.0: 1.0}, {102.0: 1.0})
    rows += [(T0, T0 + 820 * ms, 3, 1, 97.0, 1.0, FLAG_LAST)]  # after the stop, before a snapshot
    rows += _snapshot(T0 + 850 * ms, 4, {96.0: 1.0}, {103.0: 1.0})
    gaps = gaps_array(
        [
            (T0 + 500 * ms, T0 + 600 * ms, "seq_gap", "expected U <= 11, got U=14"),
            (T0 + 700 * ms, T0 + 800 * ms, "stop", "collector not running"),
        ]
    )
    _segment(tmp_path, T0, deltas=deltas_array(rows), gaps=gaps, live=False, reason="stop")
    store = open_store(tmp_path)
    assert store.book_at("binance", BTC, T0 + 500 * ms).as_dicts() == ({99.0: 1.0}, {101.0: 1.0})
    with pytest.raises(GapError, match=r"inside the recorded gap \[2026-11-27T00:00:00.500000000Z"):
        store.book_at("binance", BTC, T0 + 550 * ms)
    assert store.book_at("binance", BTC, T0 + 600 * ms).seq == 2
    with pytest.raises(GapError, match="cause=stop"):
        store.book_at("binance", BTC, T0 + 750 * ms)
    with pytest.raises(GapError, match="no snapshot was recorded between that gap"):
        store.book_at("binance", BTC, T0 + 830 * ms)
    assert store.book_at("binance", BTC, T0 + 850 * ms).as_dicts() == ({96.0: 1.0}, {103.0: 1.0})
    with pytest.raises(GapError, match=r"recording ended \(stop\)"):
        store.book_at("binance", BTC, T0 + 900 * ms)


def _trade(t: int, i: int) -> tuple[Any, ...]:
    return (t, t, i, b"", 10.0, 1.0, 1, 0)


def test_coverage_splits_days_and_clips_gaps_to_them(tmp_path: Path) -> None:
    day = 86400 * S
    t1 = [T0 + 3600 * S, T0 + 7200 * S]
    t2 = [T0 + day + 1800 * S, T0 + day + 5400 * S]
    _segment(tmp_path, T0, trades=trades_array([_trade(t, i) for i, t in enumerate(t1)]))
    gap = gaps_array([(T0 + day - 600 * S, T0 + day + 1800 * S, "stop", "collector not running")])
    _segment(tmp_path, T0 + day, trades=trades_array([_trade(t, 9) for t in t2]), gaps=gap)
    cov = open_store(tmp_path).coverage()
    assert cov["day"].tolist() == [T0, T0 + day]
    assert cov["exchange"].tolist() == ["binance"] * 2 and cov["pair"].tolist() == [BTC] * 2
    assert cov["trades"].tolist() == [2, 2] and cov["book_deltas"].tolist() == [0, 0]
    assert cov["first_ts_recv"].tolist() == [t1[0], t2[0]]
    assert cov["last_ts_recv"].tolist() == [t1[1], t2[1]]
    assert cov["span_s"].tolist() == [3600.0, 3600.0] and cov["recorded_s"].tolist() == [
        3600.0,
        3600.0,
    ]
    assert cov["missing_s"].tolist() == [600.0, 1800.0] and cov["gaps"].tolist() == [1, 1]
    clipped = open_store(tmp_path).coverage("binance", BTC, T0 + 5400 * S, T0 + day + 3600 * S)
    assert clipped["trades"].tolist() == [1, 1]
    assert len(open_store(tmp_path).coverage("okx")) == 0


def test_reads_see_a_live_segment_written_in_this_process(tmp_path: Path) -> None:
    rows = trades_array([(T0 + i, T0 + i, i, b"", 10.0 + i, 1.0, 1, 0) for i in range(10)])
    path = _segment(tmp_path, T0, trades=rows, live=True)
    from dccd_actors.storage.segment import live_segment

    try:
        store = open_store(tmp_path)
        assert store.trades("binance", BTC, T0 + 3, T0 + 7)["trade_id"].tolist() == [3, 4, 5, 6]
        assert store.streams()[0].live_segments == 1 and store.streams()[0].trades == 10
        assert [r.row["trade_id"] for r in store.replay([("binance", BTC, "trades")], T0 + 8)] == [
            8,
            9,
        ]
    finally:
        segment = live_segment(path)
        assert segment is not None
        segment.close()


# -- to_pandas ------------------------------------------------------------------------------------
def test_to_pandas_gives_tz_aware_times_level_columns_and_text(rec: Recording) -> None:
    import pandas as pd  # in the test extra: this test must run, never skip

    store = open_store(rec.path)
    trades = store.trades("binance", BTC)
    df = trades.to_pandas()
    assert str(df["ts_recv"].dtype) == "datetime64[ns, UTC]"
    assert df["ts_recv"].astype("int64").tolist() == trades["ts_recv"].tolist()
    assert df["price"].tolist() == trades["price"].tolist() and df["trade_uid"].tolist()[0] == ""
    deltas = store.book_deltas("binance", BTC).to_pandas()
    assert deltas["ts_event"].isna().any()  # REST snapshot rows carry no venue time (-1)
    snaps = store.book_snapshots("binance", BTC)
    sdf = to_pandas(snaps)
    assert "bid_price_0" in sdf and "ask_size_24" in sdf and "bid_price" not in sdf
    assert sdf["bid_price_0"].tolist() == snaps["bid_price"][:, 0].tolist()
    gaps = store.gaps("binance", BTC).to_pandas()
    assert gaps["cause"].tolist() == ["disconnect", "seq_gap"]
    assert str(gaps["start_ns"].dtype) == "datetime64[ns, UTC]"
    bars = store.bars("binance", BTC, "1s").to_pandas()
    assert bars["ts"].iloc[0] == pd.Timestamp(int(bars["ts"].astype("int64").iloc[0]), tz="UTC")
    streams = to_pandas(store.streams())
    assert (
        streams["pair"].tolist() == PAIRS
        and str(streams["last_ts_recv"].dtype) == "datetime64[ns, UTC]"
    )
    cov = store.coverage().to_pandas()
    assert str(cov["day"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(to_pandas(trades["price"]), pd.Series)


def test_to_pandas_without_pandas_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = trades_array([(T0, T0, 1, b"", 1.0, 1.0, 1, 0)])
    with pytest.raises(ImportError, match="pip install pandas"):
        to_pandas(rows)


def test_times_are_read_from_ns_datetimes_and_iso_text_to_the_nanosecond() -> None:
    from dccd_actors.storage.reader import to_ns

    assert to_ns("2026-11-27T00:00:00.500000001Z") == T0 + S // 2 + 1
    assert to_ns("2026-11-27T01:00:00.5+01:00") == T0 + S // 2
    assert to_ns(datetime(2026, 11, 27, 0, 0, 1, tzinfo=UTC)) == T0 + S
    assert to_ns(datetime(2026, 11, 27, 0, 0, 1)) == T0 + S  # naive is UTC
    assert to_ns(np.datetime64(T0 + 7, "ns")) == T0 + 7 and to_ns(T0) == T0
    assert to_ns("2026-11-27") == T0 and to_ns(None) is None
