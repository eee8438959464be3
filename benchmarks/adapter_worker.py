"""Worker process of ``bench_adapters.py``: handles a corpus of frames on command, no network.

Started by the parent as ``<python> adapter_worker.py --impl ours|cryptofeed --data DIR``; the
cryptofeed worker runs under the interpreter that has cryptofeed (a throwaway venv), so this
file imports only the standard library at module level. Protocol: the worker prints ``ready``;
then for every line ``<variant>`` on stdin it handles that corpus once and prints one JSON line
``{"msgs_per_s": ..., "messages": ..., "out": ...}`` (``out`` counts rows or callbacks).

* ``ours``: ``dccd_actors`` adapters (``BinanceAdapter``, ``OkxAdapter``) as the stream actor
  drives them: ``receive(text, ts_recv)`` per frame and the rows of every ``Trades`` /
  ``BookDeltas`` event kept in a list until a "flush" every ``FLUSH_EVERY`` frames, as the
  actor keeps them until its flush (``flush_interval``). Keeping all of a run's rows instead
  (860k tuples for the depth corpus) made the cyclic GC's full passes part of the figure
  (-22 % on depth), a cost the collector never pays.
* ``cryptofeed``: the feed's own ``message_handler`` per frame with no-op async callbacks,
  symbol tables set directly, the Binance REST snapshot served by a patched
  ``HTTPAsyncConn.read`` (the approach of ``cryptofeed.raw_data_collection.playback``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TS_RECV = 1_780_000_000_000_000_000
FLUSH_EVERY = 1_000  # frames between "flushes" of the kept rows (about 1 s of a busy depth stream)


def load(data: Path) -> dict[str, Any]:
    def lines(name: str) -> list[str]:
        return (data / name).read_text().splitlines()

    return {
        "binance_trades": lines("binance_trades.txt"),
        "binance_aggtrades": lines("binance_aggtrades.txt"),
        "binance_depth": lines("binance_depth.txt"),
        "depth_snapshot": (data / "depth_snapshot.json").read_text(),
        "okx_books": lines("okx_books.txt"),
        "okx_books_zero": lines("okx_books_zero.txt"),
    }


# -- ours --------------------------------------------------------------------------------------
def ours(corpus: dict[str, Any]) -> dict[str, Callable[[], tuple[float, int, int]]]:
    from dccd_actors.exchanges._base import BookDeltas, BookInvalid, BookLevels, Trades
    from dccd_actors.exchanges.binance import BinanceAdapter
    from dccd_actors.exchanges.okx import OkxAdapter

    def drive(adapter: Any, frames: list[str], warm: int = 0) -> tuple[float, int, int]:
        # what the stream actor keeps until its flush: row tuples, or BookLevels whole
        rows: list[Any] = []
        levels: list[Any] = []
        receive = adapter.receive
        for frame in frames[:warm]:
            receive(frame, TS_RECV)
        flushed = 0
        t0 = time.perf_counter()
        for i, frame in enumerate(frames[warm:], 1):
            for event in receive(frame, TS_RECV):
                kind = type(event)
                if kind is BookLevels:
                    levels.append(event)
                elif kind is Trades or kind is BookDeltas:
                    rows.extend(event.rows)
                elif kind is BookInvalid:
                    raise AssertionError(f"book invalidated: {event}")
            if i % FLUSH_EVERY == 0:
                flushed += len(rows) + sum(map(len, levels))
                rows, levels = [], []
        elapsed = time.perf_counter() - t0
        return elapsed, len(frames) - warm, flushed + len(rows) + sum(map(len, levels))

    def trades() -> tuple[float, int, int]:
        return drive(BinanceAdapter("BTC/USDT", ["trades"]), corpus["binance_trades"])

    def depth() -> tuple[float, int, int]:
        adapter = BinanceAdapter("BTC/USDT", ["book"])
        adapter.on_open()
        adapter.receive_snapshot(corpus["depth_snapshot"], TS_RECV)
        result = drive(adapter, corpus["binance_depth"], 1)
        if not adapter.book_live or adapter.book.bid_count < 500:
            raise AssertionError("Binance book not live after the run")
        return result

    def okx(frames: str = "okx_books") -> tuple[float, int, int]:
        adapter = OkxAdapter("BTC/USDT", ["book"])
        adapter.on_open()
        result = drive(adapter, corpus[frames])
        if not adapter.book_live:
            raise AssertionError("OKX book not live after the run")
        return result

    # ours verifies every non-zero OKX checksum in both variants
    return {
        "binance_trades": trades,
        "binance_depth": depth,
        "okx_books": okx,
        "okx_books_checked": okx,
        "okx_books_zero": lambda: okx("okx_books_zero"),
    }


# -- cryptofeed --------------------------------------------------------------------------------
def cryptofeed(corpus: dict[str, Any]) -> dict[str, Callable[[], tuple[float, int, int]]]:
    import importlib
    import logging

    # imported by name: cryptofeed lives only in the interpreter that runs this worker
    HTTPAsyncConn = importlib.import_module("cryptofeed.connection").HTTPAsyncConn
    defines = importlib.import_module("cryptofeed.defines")
    exchanges = importlib.import_module("cryptofeed.exchanges")
    Symbols = importlib.import_module("cryptofeed.symbols").Symbols
    BINANCE, OKX, L2_BOOK, TRADES = defines.BINANCE, defines.OKX, defines.L2_BOOK, defines.TRADES
    Binance, OkxFeed = exchanges.Binance, exchanges.OKX

    logging.getLogger("feedhandler").setLevel(logging.ERROR)
    for exchange, venue_symbol in ((BINANCE, "BTCUSDT"), (OKX, "BTC-USDT")):
        Symbols.set(
            exchange,
            {"BTC-USDT": venue_symbol},
            {"tick_size": {"BTC-USDT": "0.01"}, "instrument_type": {"BTC-USDT": "spot"}},
        )

    async def fake_read(self: Any, address: str, *args: Any, **kwargs: Any) -> str:
        if "/depth" not in address:
            raise RuntimeError(f"unexpected REST read {address}")
        return str(corpus["depth_snapshot"])

    HTTPAsyncConn.read = fake_read

    class FakeConn:
        conn_type = "wss"
        uuid = "bench"

        async def write(self, *args: Any, **kwargs: Any) -> None:
            return None

    def drive(
        make_feed: Callable[[Any], Any], frames: list[str], warm: int
    ) -> tuple[float, int, int]:
        count = [0]

        async def callback(obj: Any, receipt_timestamp: float) -> None:
            count[0] += 1

        async def body() -> tuple[float, int, int]:
            feed = make_feed(callback)
            conn = FakeConn()
            handler = None
            for _, subscribe, message_handler, _auth in feed.connect():
                await subscribe(conn)
                handler = message_handler
            assert handler is not None
            ts = TS_RECV / 1e9
            for frame in frames[:warm]:  # the first depth frame fetches the REST snapshot
                await handler(frame, conn, ts)
            count[0] = 0
            t0 = time.perf_counter()
            for frame in frames[warm:]:
                await handler(frame, conn, ts)
            elapsed = time.perf_counter() - t0
            return elapsed, len(frames) - warm, count[0]

        return asyncio.run(body())

    def trades() -> tuple[float, int, int]:
        return drive(
            lambda cb: Binance(symbols=["BTC-USDT"], channels=[TRADES], callbacks={TRADES: cb}),
            corpus["binance_aggtrades"],
            0,
        )

    def depth() -> tuple[float, int, int]:
        return drive(
            lambda cb: Binance(symbols=["BTC-USDT"], channels=[L2_BOOK], callbacks={L2_BOOK: cb}),
            corpus["binance_depth"],
            1,
        )

    def okx(checksum_validation: bool = False, frames: str = "okx_books") -> tuple[float, int, int]:
        return drive(
            lambda cb: OkxFeed(
                symbols=["BTC-USDT"],
                channels=[L2_BOOK],
                callbacks={L2_BOOK: cb},
                checksum_validation=checksum_validation,
            ),
            corpus[frames],
            0,
        )

    return {
        "binance_trades": trades,
        "binance_depth": depth,
        "okx_books": okx,
        "okx_books_checked": lambda: okx(checksum_validation=True),
        "okx_books_zero": lambda: okx(frames="okx_books_zero"),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=("ours", "cryptofeed"), required=True)
    p.add_argument("--data", type=Path, required=True)
    args = p.parse_args()
    corpus = load(args.data)
    variants = ours(corpus) if args.impl == "ours" else cryptofeed(corpus)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        name = line.strip()
        if not name:
            continue
        elapsed, messages, out = variants[name]()
        result = {"msgs_per_s": messages / elapsed, "messages": messages, "out": out}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
