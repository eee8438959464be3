"""Where an OKX ``books`` message goes: our handler's stages against the 2.5 x budget.

The adapter benchmark compares whole handlers; this one splits ours into its stages on the
same recorded BTC-USDT frames (one snapshot, then updates, cycled) and sets their sum against
the time per message that the target allows: cryptofeed's default handler (no checksum),
measured in the same run, divided by 2.5. Each stage is timed alone over the whole cycle:

* decoding the numbers and, separately, the wire texts (typed msgspec decoders);
* applying the levels to the sorted book, keeping the texts the checksum needs;
* the CRC32 over the top 25 levels of each side;
* building the delta rows (one ``BookLevels`` per message, columns at the flush);
* the whole ``OkxAdapter.receive`` (these stages plus dispatch and the snapshot's share).

Decoding, applying, the checksum and one row per level are work that every handler which
verifies checksums and stores each level has to do. When their sum, as fast as we could make
each (RESULTS.md lists what else was tried), already exceeds the budget, the target cannot be
met while verifying checksums, whatever the code around them.

    python benchmarks/okx_budget.py [--quick] [--cryptofeed-python PATH]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Final

import _common as c
import bench_adapters as ba
import frames as fr

from dccd_actors.exchanges._base import BookLevels
from dccd_actors.exchanges._okx_wire import decode_numbers, decode_texts, okx_checksum
from dccd_actors.exchanges.book import ASK, BID, OrderBook
from dccd_actors.exchanges.okx import CHECKSUM_DEPTH, OkxAdapter
from dccd_actors.records import levels_array

TARGET: Final = 2.5
FLOOR_STAGES: Final = ("decode numbers", "decode texts", "apply levels", "checksum", "rows")


def _timed(body: Callable[[], int], repeat: int) -> float:
    """Microseconds per message: ``body`` runs over the cycle and returns how many it handled."""
    t0 = time.perf_counter()
    count = sum(body() for _ in range(repeat))
    return (time.perf_counter() - t0) / count * 1e6


def stages(cycle: list[str], repeat: int) -> dict[str, Callable[[], float]]:
    """Each stage as a job returning its microseconds per update message."""
    snapshot, updates = cycle[0], cycle[1:]
    numbers = [decode_numbers(text).data[0] for text in updates]
    texts = [decode_texts(text).data[0] for text in updates]

    def primed() -> OrderBook:
        adapter = OkxAdapter("BTC/USDT", ["book"])
        adapter.on_open()
        adapter.receive(snapshot, 1)
        return adapter.book

    def decode_n() -> int:
        for text in updates:
            decode_numbers(text)
        return len(updates)

    def decode_t() -> int:
        for text in updates:
            decode_texts(text)
        return len(updates)

    def apply() -> float:  # timed here: every pass needs a book fresh from the snapshot
        fresh = [primed() for _ in range(repeat)]
        t0 = time.perf_counter()
        for book in fresh:
            for num, txt in zip(numbers, texts, strict=True):
                book.apply_side_texts(BID, num.bids, txt.bids)
                book.apply_side_texts(ASK, num.asks, txt.asks)
        return (time.perf_counter() - t0) / (repeat * len(updates)) * 1e6

    books = [primed()]

    def checksum() -> int:
        book = books[0]
        for _ in updates:
            okx_checksum(*book.top_text(CHECKSUM_DEPTH))
        return len(updates)

    def rows() -> int:  # the event per message, then its rows built at the flush, in bulk
        levels_array([BookLevels(1, 2, 3, part.bids, part.asks) for part in numbers])
        return len(updates)

    def handler() -> int:
        adapter = OkxAdapter("BTC/USDT", ["book"])
        adapter.on_open()
        for text in cycle:
            adapter.receive(text, 1)
        return len(cycle)

    bodies = {
        "decode numbers": decode_n,
        "decode texts": decode_t,
        "checksum": checksum,
        "rows": rows,
        "whole handler (with the snapshot's share)": handler,
    }
    jobs = {name: (lambda body=body: _timed(body, repeat)) for name, body in bodies.items()}
    return {**jobs, "apply levels": apply}


def main(argv: list[str] | None = None) -> int:
    p = c.parser(__doc__.split("\n")[0])
    p.add_argument("--cryptofeed-python", default=None)
    args = p.parse_args(argv)
    runs = c.runs_of(args, full=7)
    repeat = 5 if args.quick else 40
    cycle = fr.okx_books_cycle("BTC-USDT")
    jobs: dict[str, Callable[[], float]] = dict(stages(cycle, repeat))
    cf_python = ba.find_cryptofeed(args.cryptofeed_python)
    worker = None
    with c.temp_dir("dccd-bench-okx-") as data:
        (data / "okx_books.txt").write_text("\n".join(cycle * (5 if args.quick else 40)) + "\n")
        for name in ("binance_trades", "binance_aggtrades", "binance_depth", "okx_books_zero"):
            (data / f"{name}.txt").write_text("\n")
        (data / "depth_snapshot.json").write_text("{}")
        if cf_python is not None:
            worker = ba.Worker(cf_python, "cryptofeed", data)
            jobs["cryptofeed default handler"] = lambda: (
                1e6 / float(worker.run("okx_books")["msgs_per_s"])
            )
        try:
            results = c.interleave(jobs, runs, args.seed)
        finally:
            if worker is not None:
                worker.close()
    if cf_python is None:
        cf_us, cf_note = 1e6 / ba.PERF_FALLBACK["okx_books"], " (PERF.md fallback)"
    else:
        cf_us, cf_note = c.Series("cf", "us", results["cryptofeed default handler"]).median, ""
    budget = cf_us / TARGET
    series = {name: c.Series(name, "us/msg", values) for name, values in results.items()}
    floor = sum(series[name].median for name in FLOOR_STAGES)
    lines = []
    for name, s in series.items():
        share = s.median / budget
        lines.append([name, c.fmt(s.median), c.fmt(s.min), c.fmt(s.max), f"{share:.2f}"])
    lines.append(["sum of the stages every verifying handler has", c.fmt(floor), "", "",
                  f"{floor / budget:.2f}"])  # fmt: skip
    body = c.table(["stage", "us/msg (median)", "min", "max", "ratio to the budget"], lines)
    body += (
        f"\n\nBudget: cryptofeed's default handler{cf_note} {cf_us:.1f} us/msg / {TARGET} = "
        f"{budget:.1f} us/msg. Updates only, except the whole handler (cycle of {len(cycle)}: "
        f"one 800-level snapshot, then updates); {runs} runs of {repeat} cycles.\n"
        f"-> the required stages alone take {floor:.1f} us/msg, {floor / budget:.2f}x the budget: "
        + ("the target cannot be met while verifying checksums" if floor > budget else "room left")
    )
    whole = series["whole handler (with the snapshot's share)"]
    row = c.Row(
        "OKX books: our handler against the 2.5x budget",
        "us/msg",
        whole.median,
        whole.min,
        whole.max,
        "cryptofeed default handler / 2.5",
        budget,
        budget / whole.median,
        ">= 1x (time within budget)",
        whole.median <= budget,
        runs,
        f"required stages alone {floor:.1f} us/msg",
    )
    c.emit(args, "OKX books: where a message goes", body, [row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
