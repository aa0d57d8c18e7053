"""A night reduced here and on local worker processes: the wall time of each, in one run.

Simulates a night (default 16 lights of 1024x1024 and 5 of each calibration), then runs
``ccdcal.reduce`` with ``workers=1`` and ``workers=N`` into fresh folders, with and without
single-frame cosmic-ray detection (L.A.Cosmic, the costly per-frame step), and checks that
the calibrated frames and stacks are identical.

Usage::

    python benchmarks/reduce_workers.py [--lights 16] [--size 1024] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits

import ccdcal
from ccdcal.config import Config
from ccdcal.pipeline import reduce


def timed(raw: Path, out: Path, config: Config, workers: int):
    t0 = time.perf_counter()
    result = reduce(raw, out, config=config, report=False, progress=False, workers=workers)
    return time.perf_counter() - t0, result


def same(a, b) -> bool:
    ours = [*a.calibrated, *a.stacks.values()]
    theirs = [*b.calibrated, *b.stacks.values()]
    for p, q in zip(ours, theirs, strict=True):
        with fits.open(p) as x, fits.open(q) as y:
            pairs = zip(x, y, strict=True)
            if not all(np.array_equal(u.data, v.data, equal_nan=True) for u, v in pairs):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lights", type=int, default=16)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ccdcal.simulate.night(base / "night", seed=1, shape=(args.size, args.size), nbias=5,
                              ndark=5, nflat=5, nlight=args.lights)  # fmt: skip
        raw = base / "night" / "raw"
        print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"{args.lights} lights of {args.size}x{args.size}")  # fmt: skip
        print(f"{'cosmic rays':12} {'workers=1 s':>12} {f'workers={args.workers} s':>12} "
              f"{'speed-up':>9}  identical")  # fmt: skip
        for method in ("none", "lacosmic"):
            cfg = Config()
            cfg = replace(cfg, cosmic=replace(cfg.cosmic, method=method))
            t1, r1 = timed(raw, base / f"one_{method}", cfg, 1)
            tn, rn = timed(raw, base / f"many_{method}", cfg, args.workers)
            print(f"{method:12} {t1:12.2f} {tn:12.2f} {t1 / tn:9.2f}  {same(r1, rn)}")


if __name__ == "__main__":
    main()
