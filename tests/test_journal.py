"""Raw journal: every input kept beside the segment, re-derivable and replayable."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dccd_actors import Collector, StreamJob, open_store, reprocess
from dccd_actors.reprocess import read_journal
from dccd_actors.testing import FakeBinance
from tests.helpers import config, wait_until

PAIR = "BTC/USDT"


def _record(path: Path, fake: FakeBinance, channels: list[str]) -> None:
    job = StreamJob(
        "binance", [PAIR], channels, time_step=0.2, url=fake.url, rest_url=fake.rest_url
    )
    with Collector(config(path, [job], raw=True)) as c:
        wait_until(lambda: c.status()[0].trades > 20)
        if "book" in channels:
            fake.skip_sequence(PAIR, 2)
            wait_until(lambda: c.status()[0].resyncs == 1 and c.status()[0].book_live)
        c.seal_now()  # a second segment with its own journal
        fake.drop_connections()
        wait_until(lambda: c.status()[0].gen == 2 and c.status()[0].trades > 40)


def test_reprocess_rederives_segments_equal_to_the_originals(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    with FakeBinance([PAIR], seed=51) as fake:
        _record(data, fake, ["trades", "book"])
    journals = sorted(data.glob("binance/BTC-USDT/*.raw.jsonl.gz"))
    assert len(journals) == 2 and not list(data.glob("**/*.live.*"))
    kinds = {next(iter(k for k in e if k != "t")) for e in read_journal(journals[0])}
    assert {"frame", "rest", "open", "sample", "gap"} <= kinds
    written = reprocess(data, out)
    assert [p.name for p in written] == [j.name.replace(".raw.jsonl.gz", ".h5") for j in journals]
    original, rederived = open_store(data), open_store(out)
    for name in ("trades", "book_deltas", "book_snapshots", "gaps"):
        a = getattr(original, name)("binance", PAIR)
        b = getattr(rederived, name)("binance", PAIR)
        assert len(a) > 0, name
        assert a.dtype == b.dtype and len(a) == len(b), name
        for field in a.dtype.names or ():
            assert np.array_equal(a[field], b[field], equal_nan=a[field].dtype.kind == "f"), (
                name,
                field,
            )


def test_a_fake_exchange_replays_a_journal_over_a_real_socket(tmp_path: Path) -> None:
    data, again = tmp_path / "data", tmp_path / "again"
    with FakeBinance([PAIR], seed=52) as fake:
        _record(data, fake, ["trades"])
    original = open_store(data).trades("binance", PAIR)
    journals = sorted(data.glob("binance/BTC-USDT/*.raw.jsonl.gz"))
    replayed = []
    for index, journal in enumerate(journals):
        with FakeBinance([PAIR], replay=journal) as fake:
            job = StreamJob("binance", [PAIR], ["trades"], url=fake.url)
            target = again / str(index)
            with Collector(config(target, [job])) as c:
                expected = sum(
                    1 for e in read_journal(journal) if '"e":"trade"' in e.get("frame", "")
                )
                wait_until(lambda n=expected: c.status()[0].trades == n)
            replayed.append(open_store(target).trades("binance", PAIR))
    merged = np.concatenate(replayed)
    assert merged["trade_id"].tolist() == original["trade_id"].tolist()
    assert merged["price"].tolist() == original["price"].tolist()
