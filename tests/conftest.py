"""Shared fixtures: the real nights in ../shared/data, and small simulated nights."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ccdcal"


def _clear_stale_numba_cache() -> None:
    """Remove numba's cached machine code when any of the package's sources changed.

    numba checks only the timestamp of the file that holds a cached function, not of the
    modules whose compiled functions it calls: a kernel in one file that calls a changed
    function of another would run the old code. An installed release rewrites every file,
    so only a working tree needs this.
    """
    sources = sorted(PACKAGE.rglob("*.py"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    stamp = PACKAGE / "__pycache__" / "numba-sources.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    for cached in (*PACKAGE.rglob("*.nbi"), *PACKAGE.rglob("*.nbc")):
        cached.unlink(missing_ok=True)
    stamp.parent.mkdir(exist_ok=True)
    stamp.write_text(digest)


_clear_stale_numba_cache()


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
