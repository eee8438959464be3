"""Add a stream to a YAML config by editing its text, so that comments and layout survive.

``yaml.safe_dump`` would rewrite the whole file and drop every comment. Instead, the new job is
inserted as lines into the top-level ``stream_jobs:`` block (or its pair into an existing job's
``pairs`` list). These helpers return None for a layout they do not handle, and the caller
keeps an edit only if it parses to exactly the intended config; otherwise it rewrites the file.

Example::

    >>> text = "stream_jobs:  # what to record\\n  - {exchange: binance, pairs: [BTC/USDT]}\\n"
    >>> print(add_pair_text(text, 0, "ETH/USDT"), end="")
    stream_jobs:  # what to record
      - {exchange: binance, pairs: [BTC/USDT, ETH/USDT]}
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["add_job_text", "add_pair_text"]

_BLOCK_START: Final = re.compile(r"stream_jobs:\s*(#.*)?$")
_ITEM: Final = re.compile(r"(\s*)-\s")
_FLOW_PAIRS: Final = re.compile(r"\bpairs:\s*\[([^\]\n]*)\]")
_BLOCK_PAIRS: Final = re.compile(r"(\s*)pairs:\s*(#.*)?$")


def _item_indent(line: str) -> str | None:
    """The indentation of a list item line (``  - x``), None for any other line."""
    match = _ITEM.match(line)
    return None if match is None else match.group(1)


def _content(line: str) -> bool:
    return bool(line.strip()) and not line.lstrip().startswith("#")


def _block(lines: list[str]) -> tuple[int, int] | None:
    """The ``stream_jobs:`` line and the end of its block (after its last content line)."""
    start = next((i for i, line in enumerate(lines) if _BLOCK_START.match(line)), None)
    if start is None:
        return None
    end = start + 1
    for i in range(start + 1, len(lines)):
        if _content(lines[i]) and not lines[i][0].isspace():
            break  # the next top-level key
        if _content(lines[i]):
            end = i + 1
    return start, end


def _items(lines: list[str], start: int, end: int) -> list[int]:
    """Where the block's list items begin, all at the first item's indentation."""
    first = next((i for i in range(start + 1, end) if _item_indent(lines[i]) is not None), None)
    if first is None:
        return []
    indent = _item_indent(lines[first])
    return [i for i in range(first, end) if _item_indent(lines[i]) == indent]


def add_job_text(text: str, exchange: str, pair: str, channels: list[str]) -> str | None:
    """``text`` with a new job appended to ``stream_jobs``, or None."""
    lines = text.splitlines(keepends=True)
    found = _block(lines)
    if found is None:
        return None
    start, end = found
    items = _items(lines, start, end)
    if not items and any(_content(line) for line in lines[start + 1 : end]):
        return None  # a block that is not a list of jobs
    indent = _item_indent(lines[items[0]]) if items else "  "
    new = [
        f"{indent}- exchange: {exchange}\n",
        f"{indent}  pairs: [{pair}]\n",
        f"{indent}  channels: [{', '.join(channels)}]\n",
    ]
    if not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    return "".join(lines[:end] + new + lines[end:])


def add_pair_text(text: str, job_index: int, pair: str) -> str | None:
    """``text`` with ``pair`` added to the ``pairs`` of job ``job_index``, or None."""
    lines = text.splitlines(keepends=True)
    found = _block(lines)
    if found is None:
        return None
    items = _items(lines, *found)
    if job_index >= len(items):
        return None
    first = items[job_index]
    last = items[job_index + 1] if job_index + 1 < len(items) else found[1]
    for i in range(first, last):
        flow = _FLOW_PAIRS.search(lines[i])
        if flow is not None:
            listed = flow.group(1).strip()
            joined = f"{listed}, {pair}" if listed else pair
            lines[i] = lines[i][: flow.start(1)] + joined + lines[i][flow.end(1) :]
            return "".join(lines)
        key = _BLOCK_PAIRS.match(lines[i])
        if key is not None:
            return _add_block_entry(lines, i, last, len(key.group(1)), pair)
    return None


def _add_block_entry(
    lines: list[str], key: int, stop: int, key_width: int, pair: str
) -> str | None:
    """After the last ``- PAIR`` line under the ``pairs:`` line at ``key``."""
    last_entry = None
    for j in range(key + 1, stop):
        if not _content(lines[j]):
            continue
        indent = _item_indent(lines[j])
        if indent is None or len(indent) <= key_width:
            break
        last_entry = j
    if last_entry is None:
        return None
    lines.insert(last_entry + 1, f"{_item_indent(lines[last_entry])}- {pair}\n")
    return "".join(lines)
