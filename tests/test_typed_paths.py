"""The typed (msgspec) fast paths give exactly the events of the general paths.

Binance and OKX decode well-formed frames with typed decoders and send everything else down
the general path. These tests push the recorded frames through both: once as recorded (the
fast path takes them) and once in a layout only the general path accepts (Binance's raw,
uncombined stream layout; OKX's frames with a space before the first key, valid JSON that
does not start like an OKX push). The events must be equal, value for value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dccd_actors.exchanges.binance import BinanceAdapter
from dccd_actors.exchanges.okx import OkxAdapter
from tests.helpers import as_deltas

TS = 1_700_000_000_000_000_000


def _frames(path: Path) -> list[str]:
    return [json.loads(line)["frame"] for line in path.read_text().splitlines() if line.strip()]


def _unwrapped(frame: str) -> str:
    """A combined-stream frame in the raw single-stream layout (the ``data`` object alone)."""
    return json.dumps(json.loads(frame)["data"], separators=(",", ":"))


SYMBOLS = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR"}


def _binance_run(fixtures_dir: Path, general: bool) -> list[Any]:
    """The recorded session in time order (diffs and REST snapshots) through four adapters."""
    ws = [json.loads(line) for line in (fixtures_dir / "binance/binance.ws.jsonl").open()]
    http = [json.loads(line) for line in (fixtures_dir / "binance/binance.http.jsonl").open()]
    timeline = [(r["t"], r["frame"], None) for r in ws if "@depth" in r["frame"]]
    timeline += [(r["t"], None, r) for r in http]
    timeline.sort(key=lambda item: item[0])
    adapters = {symbol: BinanceAdapter(pair, ["book"]) for symbol, pair in SYMBOLS.items()}
    events: list[Any] = [a.on_open() for a in adapters.values()]
    for t, frame, rest in timeline:
        ts = int(t * 1e9)
        if rest is not None:
            symbol = rest["url"].split("symbol=")[1].split("&")[0]
            events += adapters[symbol].receive_snapshot(rest["body"], ts)
        else:
            adapter = adapters[json.loads(frame)["data"]["s"]]
            events += adapter.receive(_unwrapped(frame) if general else frame, ts)
    return as_deltas(events)  # the fast path hands rows over by side (BookLevels)


def test_binance_fast_and_general_paths_agree_on_the_recorded_session(fixtures_dir: Path) -> None:
    fast = _binance_run(fixtures_dir, general=False)
    general = _binance_run(fixtures_dir, general=True)
    assert sum(len(getattr(e, "rows", ())) for e in fast) > 1000
    assert fast == general


def test_binance_trade_examples_agree_on_both_paths(fixtures_dir: Path) -> None:
    frames = _frames(fixtures_dir / "supplementary" / "binance_trade_examples.jsonl")
    trades = [f for f in frames if '"e":"trade"' in f]
    assert trades
    for frame in trades:
        symbol = json.loads(frame)["data"]["s"]
        pair = f"{symbol[:-3]}/{symbol[-3:]}"
        fast = BinanceAdapter(pair, ["trades"]).receive(frame, TS)
        general = BinanceAdapter(pair, ["trades"]).receive(_unwrapped(frame), TS)
        assert fast == general and len(fast[0].rows) == 1


def test_okx_fast_and_general_paths_agree_on_the_recorded_books(fixtures_dir: Path) -> None:
    frames = [f for f in _frames(fixtures_dir / "okx" / "okx.ws.jsonl") if '"channel":"books"' in f]
    by_inst: dict[str, list[str]] = {}
    for frame in frames:
        by_inst.setdefault(json.loads(frame)["arg"]["instId"], []).append(frame)
    compared = 0
    for inst_id, inst_frames in by_inst.items():
        fast, general = (
            OkxAdapter.for_inst_id(inst_id, ["book"]),
            OkxAdapter.for_inst_id(inst_id, ["book"]),
        )
        for i, frame in enumerate(inst_frames):
            fast_events = as_deltas(fast.receive(frame, TS + i))
            assert fast_events == as_deltas(general.receive(" " + frame, TS + i))
            compared += 1
        assert fast.book_live and general.book_live
        assert fast.book.top_text(400) == general.book.top_text(400)
    assert compared >= 290  # 3 snapshots, 287 updates (and the acks)


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        ('"30243.5","1_000"', "bad_field"),  # Python's float() takes it, the wire grammar does not
        ('"30243.5"," 1"', "bad_field"),
        ('"-30243.5","1"', "bad_field"),
        ('"30243.5","nan"', "bad_field"),
    ],
)
def test_okx_numbers_the_typed_decoder_refuses_are_named_by_the_general_path(
    bad: str, kind: str
) -> None:
    from dccd_actors.errors import ParseError

    adapter = OkxAdapter("BTC/USDT", ["book"])
    frame = (
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[['
        + bad
        + ',"0","1"]],"bids":[],"ts":"1652459225381","checksum":0}]}'
    )
    with pytest.raises(ParseError) as caught:
        adapter.receive(frame, TS)
    assert caught.value.kind == kind
