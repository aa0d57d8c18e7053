"""The floor of a reduction: every raw file read and decoded once, and as many bytes as
ccdcal's outputs written once (plain files of big-endian rows, not flushed, as ``ccdcal
reduce`` writes them).

Usage: ``python floor.py RAW_DIR OUT_DIR`` (used by ``night_vs_peers.py``): it writes for
each raw light a file the size of a calibrated light (data, variance, masters' variance
float32 and a uint16 mask), and one of each master and stack.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from astropy.io import fits


def main(raw: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, int] = {}
    last = None
    for path in sorted(raw.glob("*.fit*")):
        with fits.open(path, memmap=False) as hdul:
            data = hdul[0].data.astype(np.float32)
            kind = str(hdul[0].header.get("IMAGETYP", "")).lower()
        kinds[kind] = kinds.get(kind, 0) + 1
        last = data
    assert last is not None
    # a calibrated light: data, variance, masters' variance (float32) and a mask (uint16);
    # three masters and one stack the same
    planes = [last, last, last, last.astype(np.uint16)]
    for i in range(kinds.get("light", 0) + 4):
        with open(out / f"{i:04d}.bin", "wb") as f:
            for p in planes:
                p.astype(p.dtype.newbyteorder(">")).tofile(f)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
