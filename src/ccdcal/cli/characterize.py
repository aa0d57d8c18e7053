"""``ccdcal characterize RAW_DIR``: measure the camera from a night's calibration frames.

Prints the measured gain, read noise, dark current, linearity and bad pixels beside the
headers' values, and writes a ``[detector]`` section (``detector.toml``) to pass back with
``--config``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``characterize`` sub-command."""
    p = subparsers.add_parser(
        "characterize",
        help="measure gain, read noise, dark current and linearity from the frames",
        description="Measure the camera from the biases, flats and darks of RAW_DIR: read "
        "noise from pairs of biases, gain from pairs of flats (photon transfer), linearity "
        "from flats at several exposure times, dark current and hot pixels from the darks, "
        "bad pixels from the ratio of two flats of different level. Prints them beside the "
        "headers' values and writes a [detector] section for --config.",
    )
    p.add_argument("raw_dir", metavar="RAW_DIR", help="folder of raw frames")
    p.add_argument("-o", "--output", default="detector.toml", metavar="TOML",
                   help="where to write the [detector] section (default: %(default)s)")  # fmt: skip
    p.add_argument("--config", metavar="TOML",
                   help="keywords, rules and sections as for reduce (ccdcal info "
                   "--example-config shows every key)")  # fmt: skip
    p.add_argument("--region", action="append", default=[], metavar="SECTION",
                   help="an amplifier's region (FITS section of the trimmed frame) whose read "
                   "noise is measured on its own; repeat for each")  # fmt: skip
    p.add_argument("--pairs", type=int, default=8, metavar="N",
                   help="pairs of biases and of flats to use at most (default: 8)")  # fmt: skip
    p.add_argument("--mask", metavar="FITS",
                   help="also write the bad-pixel mask (1 = bad) of the flat ratio, with the "
                   "hot pixels of the darks")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Measure, print, write; 0, or 1 when nothing could be measured."""
    import numpy as np

    from ..camera import characterize
    from ..errors import CcdcalError
    from ..fitsio import write_hdul

    if args.pairs < 1:
        raise CcdcalError(f"--pairs must be at least 1, not {args.pairs}")
    found = characterize(args.raw_dir, config=args.config, regions=args.region,
                         max_pairs=args.pairs)  # fmt: skip
    print(found.table())
    for note in found.notes + found.disagreements():
        print(f"  {note}")
    sys.stdout.flush()  # before an error on stderr
    if found.gain is None and found.read_noise is None:
        raise CcdcalError(
            f"{args.raw_dir}: neither gain nor read noise could be measured (see the notes above)"
        )
    out = Path(args.output)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(found.to_toml(str(args.raw_dir)) + "\n")
    tmp.replace(out)
    print(f"wrote {out} (use it with --config)")
    if args.mask:
        from astropy.io import fits

        parts = [m for m in (found.bad_pixels, found.hot_mask) if m is not None]
        if not parts:
            raise CcdcalError(f"{args.raw_dir}: no flats of two levels nor darks for a mask")
        mask = np.zeros(parts[0].shape, np.uint8)
        for m in parts:
            if m.shape == mask.shape:
                mask |= m.astype(np.uint8)
        write_hdul(fits.HDUList([fits.PrimaryHDU(mask)]), args.mask)
        print(f"wrote {args.mask} ({int(mask.sum())} bad pixels)")
    return 0
