"""Frame corpora for the benchmarks: recorded layouts, synthetic content, seeded.

* Binance ``@trade`` frames in the recorded combined-stream layout
  (``fixtures/supplementary/binance_trade_examples.jsonl``: the keys ``e E s t p q b a T m M``),
  with trade ids 1, 2, 3, ... so stored rows can be verified; and the same trades rendered as
  ``@aggTrade`` frames (the layout of ``fixtures/binance/binance.ws.jsonl``), which is the
  trade channel cryptofeed subscribes to.
* A BTCUSDT-like 1000-level REST depth snapshot and ``@depth@100ms`` diff frames whose level
  counts follow the recorded OKX BTC-USDT ``books`` updates (PERF.md §1), with consecutive
  ``U``/``u`` ids; the book never crosses.
* The recorded OKX BTC-USDT ``books`` frames (one snapshot, 97 updates), cycled.
* Order-book level updates as float tuples, clustered near the top (PERF.md §6).

Only the standard library is used, so the blaster server can import this module cheaply.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FIXTURES: Final = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
"""``/work/shared/fixtures`` when the repository is ``/work/main``; see :func:`fixtures_dir`."""

TICK: Final = 0.01
MID_TICKS: Final = 3_000_000  # 30000.00 in ticks of 0.01
BID: Final = 1
ASK: Final = -1
BASE_MS: Final = 1_780_000_000_000  # a 2026 epoch-ms; trade times are offsets from now instead


def fixtures_dir() -> Path:
    """The recorded-frames folder: ``$DCCD_FIXTURES``, else ``../shared/fixtures``."""
    import os

    env = os.environ.get("DCCD_FIXTURES")
    return Path(env) if env else FIXTURES


# -- trades ------------------------------------------------------------------------------------
def trade_frame(symbol: str, trade_id: int, ts_ms: int, rng: random.Random) -> str:
    """One Binance combined-stream ``@trade`` frame in the recorded key order."""
    price = 30_000 + rng.randrange(-50_000, 50_000) / 100
    qty = rng.randrange(1, 2_000_000) / 100_000
    maker = "true" if rng.random() < 0.5 else "false"
    return (
        f'{{"stream":"{symbol.lower()}@trade","data":{{"e":"trade","E":{ts_ms + 1},'
        f'"s":"{symbol.upper()}","t":{trade_id},"p":"{price:.8f}","q":"{qty:.8f}",'
        f'"b":{2 * trade_id + 100_000_000},"a":{2 * trade_id + 100_000_001},'
        f'"T":{ts_ms},"m":{maker},"M":true}}}}'
    )


def agg_trade_frame(trade: str) -> str:
    """The same trade as an ``@aggTrade`` frame (recorded layout), for cryptofeed."""
    msg = json.loads(trade)
    d = msg["data"]
    symbol = d["s"]
    return (
        f'{{"stream":"{symbol.lower()}@aggTrade","data":{{"e":"aggTrade","E":{d["E"]},'
        f'"s":"{symbol}","a":{d["t"]},"p":"{d["p"]}","q":"{d["q"]}","f":{d["b"]},'
        f'"l":{d["b"]},"T":{d["T"]},"m":{"true" if d["m"] else "false"},"M":true}}}}'
    )


def trade_frames(symbol: str, count: int, start_ms: int, seed: int = 1) -> list[str]:
    """``count`` trade frames with ids ``1..count``, 50 trades per millisecond."""
    rng = random.Random(seed)
    return [trade_frame(symbol, i, start_ms + i // 50, rng) for i in range(1, count + 1)]


# -- depth (Binance diff stream and the book benchmark) ----------------------------------------
def recorded_level_counts() -> list[int]:
    """Levels per message of the recorded OKX BTC-USDT ``books`` updates (mean about 43)."""
    counts = []
    path = fixtures_dir() / "okx" / "okx.ws.jsonl"
    for line in path.read_text().splitlines():
        frame = json.loads(line)["frame"]
        if '"books"' not in frame or '"update"' not in frame:
            continue
        msg = json.loads(frame)
        if msg["arg"].get("instId") != "BTC-USDT":
            continue
        part = msg["data"][0]
        counts.append(len(part["bids"]) + len(part["asks"]))
    return counts or [36]


@dataclass
class BookScript:
    """A 1000-level snapshot and messages of ``(side, price, size)`` updates on a 0.01 grid."""

    snapshot: list[tuple[int, float, float]]
    messages: list[list[tuple[int, float, float]]]

    @property
    def updates(self) -> int:
        return sum(len(m) for m in self.messages)


def book_script(
    levels: int, messages: int, per_message: int | list[int], seed: int = 7
) -> BookScript:
    """Seeded L2 updates clustered near the top: about 45 % modify, 27 % insert, 27 % delete.

    Level ``j`` of a side sits ``j`` ticks from the fixed mid, so the book never crosses and
    keeps about ``levels`` levels per side. ``per_message`` is a fixed count or a list of
    counts to draw from.
    """
    rng = random.Random(seed)
    live: dict[int, set[int]] = {BID: set(range(1, levels + 1)), ASK: set(range(1, levels + 1))}
    snapshot = [
        (side, _price(side, j), _size(rng)) for side in (BID, ASK) for j in range(1, levels + 1)
    ]
    out: list[list[tuple[int, float, float]]] = []
    scale = levels / 12
    for _ in range(messages):
        k = per_message if isinstance(per_message, int) else rng.choice(per_message)
        seen: set[tuple[int, int]] = set()
        message: list[tuple[int, float, float]] = []
        while len(message) < k:
            side = BID if rng.random() < 0.5 else ASK
            j = 1 + min(int(rng.expovariate(1 / scale)), levels + levels // 5)
            if (side, j) in seen:
                continue
            seen.add((side, j))
            if j in live[side] and rng.random() >= 0.62:
                live[side].discard(j)
                message.append((side, _price(side, j), 0.0))
            else:
                live[side].add(j)
                message.append((side, _price(side, j), _size(rng)))
        out.append(message)
    return BookScript(snapshot, out)


def _price(side: int, j: int) -> float:
    return round((MID_TICKS - side * j) * TICK, 2)


def _size(rng: random.Random) -> float:
    return rng.randrange(1, 500_000) / 10_000


def binance_depth(symbol: str, messages: int, seed: int = 7) -> tuple[str, list[str]]:
    """A REST ``/api/v3/depth`` body (1000 levels) and the diff frames that follow it."""
    script = book_script(1000, messages, recorded_level_counts(), seed)
    last_id = 5_000_000_000
    bids = [[f"{p:.8f}", f"{s:.8f}"] for side, p, s in script.snapshot if side == BID]
    asks = [[f"{p:.8f}", f"{s:.8f}"] for side, p, s in script.snapshot if side == ASK]
    body = json.dumps({"lastUpdateId": last_id, "bids": bids, "asks": asks}, separators=(",", ":"))
    frames = []
    first = last_id + 1
    for i, message in enumerate(script.messages):
        last = first + len(message) - 1
        b = ",".join(f'["{p:.8f}","{s:.8f}"]' for side, p, s in message if side == BID)
        a = ",".join(f'["{p:.8f}","{s:.8f}"]' for side, p, s in message if side == ASK)
        frames.append(
            f'{{"stream":"{symbol.lower()}@depth@100ms","data":{{"e":"depthUpdate",'
            f'"E":{BASE_MS + 100 * i},"s":"{symbol.upper()}","U":{first},"u":{last},'
            f'"b":[{b}],"a":[{a}]}}}}'
        )
        first = last + 1
    return body, frames


# -- OKX ---------------------------------------------------------------------------------------
def okx_books_cycle(inst_id: str = "BTC-USDT") -> list[str]:
    """The recorded ``books`` frames of one instrument: its snapshot, then its updates."""
    frames = []
    path = fixtures_dir() / "okx" / "okx.ws.jsonl"
    for line in path.read_text().splitlines():
        frame = json.loads(line)["frame"]
        if '"books"' in frame and f'"{inst_id}"' in frame and '"data"' in frame:
            frames.append(frame)
    if not frames or '"snapshot"' not in frames[0]:
        raise RuntimeError(f"no recorded books snapshot for {inst_id} in {path}")
    return frames


def cycled(frames: list[str], count: int) -> list[str]:
    """``frames`` repeated to ``count`` items (whole cycles keep checksums consistent)."""
    reps = -(-count // len(frames))
    return (frames * reps)[:count]
