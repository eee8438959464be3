"""Shared fixtures: recorded frames location and pykka registry hygiene."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest

REPO = Path(__file__).resolve().parents[1]


def fixtures_path() -> Path:
    """Recorded exchange frames: ``$DCCD_FIXTURES`` or ``../shared/fixtures`` beside the repo."""
    env = os.environ.get("DCCD_FIXTURES")
    path = Path(env) if env else REPO.parent / "shared" / "fixtures"
    if not (path / "verification.json").is_file():
        raise RuntimeError(
            f"recorded fixtures not found at {path}; set DCCD_FIXTURES to the fixtures folder"
        )
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The recorded-frames folder; a missing folder is an error, never a skip."""
    return fixtures_path()


@pytest.fixture(autouse=True)
def _no_leaked_actors() -> Iterator[None]:
    yield
    leaked = pykka.ActorRegistry.get_all()
    assert leaked == [], f"actors left running after the test: {leaked}"
