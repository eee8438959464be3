"""The notebooks in ``notebooks/`` run clean and are kept without outputs.

Every notebook is executed with nbclient in its own ``python3`` kernel and its own temporary
working directory. The kernels run concurrently (the notebooks mostly wait on the fake
exchanges), so the whole module takes about as long as the slowest notebook. The notebooks use
only the fake exchanges on 127.0.0.1 and stop every collector and fake they start.

The stripped-outputs check reads the files as they are in the work tree, which in CI (a fresh
clone) are the files in git.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = {"quickstart.ipynb", "live_reading.ipynb", "testing_harness.ipynb"}
CELL_TIMEOUT_S = 90
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


async def _execute(path: Path, workdir: Path) -> str | None:
    """Run one notebook; None on success, else the error (with the failing cell's traceback)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        await client.async_execute()
    except Exception as exc:
        return _ANSI.sub("", f"{type(exc).__name__}: {exc}")
    return None


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Every notebook's outcome, from one concurrent run of all of them."""

    async def run_all() -> list[str | None]:
        runs = [_execute(p, tmp_path_factory.mktemp(p.stem)) for p in NOTEBOOKS]
        return await asyncio.gather(*runs)

    return dict(zip([p.name for p in NOTEBOOKS], asyncio.run(run_all()), strict=True))


def test_the_documented_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_notebook_runs_without_errors(name: str, executed: dict[str, str | None]) -> None:
    error = executed[name]
    if error is not None:
        pytest.fail(f"{name} failed:\n{error}", pytrace=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    dirty = [
        index
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} keep outputs or execution counts; strip them"
