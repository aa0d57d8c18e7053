"""Shared fixtures: the real nights in ../shared/data, and small simulated nights."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _real_night(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"real data {path} not present")
    return path


@pytest.fixture(scope="session")
def lowell_night() -> Path:
    """The Lowell 42-inch night (skips when ../shared/data is absent)."""
    return _real_night("lowell-42in-2019-03-26")


@pytest.fixture(scope="session")
def feder_night() -> Path:
    """The Feder Observatory night (skips when ../shared/data is absent)."""
    return _real_night("feder-2013-07-04")
