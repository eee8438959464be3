"""The layer rules of DESIGN.md §2, enforced by scanning every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "dccd_actors"

# package or module → third-party/own top-level names it must never import
FORBIDDEN = {
    "exchanges": {
        "pykka",
        "websocket",
        "h5py",
        "websockets",
        "dccd_actors.actors",
        "dccd_actors.storage",
        "dccd_actors._ws",
        "socket",
        "threading",
    },
    "records.py": {"pykka", "websocket", "h5py", "dccd_actors.actors", "dccd_actors.storage"},
    "storage": {
        "pykka",
        "websocket",
        "websockets",
        "dccd_actors.actors",
        "dccd_actors.exchanges",
        "dccd_actors._ws",
    },
    "sync": {"pykka", "websocket", "h5py", "dccd_actors.actors", "dccd_actors.storage"},
    "testing": {
        "pykka",
        "websocket",
        "h5py",
        "dccd_actors.actors",
        "dccd_actors.storage",
        "dccd_actors.api",
    },
}
ONLY_IN = {"h5py": "storage", "websocket": "_ws.py", "pykka": "actors"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _violates(name: str, forbidden: set[str]) -> bool:
    return any(name == f or name.startswith(f + ".") for f in forbidden)


def test_each_layer_imports_only_downward() -> None:
    problems = []
    for part, forbidden in FORBIDDEN.items():
        target = SRC / part
        files = (
            sorted(target.rglob("*.py")) if target.is_dir() else [target] if target.exists() else []
        )
        for path in files:
            problems += [
                f"{path.relative_to(SRC)} imports {n}"
                for n in _imports(path)
                if _violates(n, forbidden)
            ]
    assert problems == []


def test_third_party_io_libraries_live_in_one_place_each() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for name in _imports(path):
            for lib, home in ONLY_IN.items():
                if (
                    _violates(name, {lib})
                    and not rel.startswith(home)
                    and not (lib == "pykka" and rel == "api.py")
                ):
                    problems.append(f"{rel} imports {name}")
    assert problems == []
