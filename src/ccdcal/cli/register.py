"""``ccdcal register FILE... -o DIR``: align calibrated frames onto a reference frame."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..wording import plural


def _fraction(text: str) -> float | None:
    if text.lower() in ("none", "off", "false"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0 or none, not {text!r}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``register`` sub-command."""
    p = subparsers.add_parser(
        "register",
        help="align calibrated frames onto a reference frame (stars or WCS)",
        description="Measure each frame's stars and quality, match them to a reference frame "
        "(asterisms: any shift, rotation, a few per cent of scale), leave out frames that do "
        "not match or are far from the others' quality, and write each used frame resampled "
        "onto the reference grid, with DIR/registration.ecsv (per frame: transform, rms, "
        "matched stars, FWHM, ellipticity, sky, used or why not).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="calibrated FITS frames of one field")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--reference", default="best",
                   help="best (sharpest among those with most stars) or a file name")  # fmt: skip
    p.add_argument("--method", choices=("auto", "stars", "wcs"), default="auto",
                   help="match stars, or the frames' WCS; auto: stars, else WCS")  # fmt: skip
    p.add_argument("--transform", choices=("shift", "similarity", "affine"),
                   default="similarity", help="similarity: shift, rotation and scale")  # fmt: skip
    p.add_argument("--interpolation", choices=("lanczos3", "bicubic", "bilinear"),
                   default="lanczos3", help="kernel of the resampling")  # fmt: skip
    p.add_argument("--grid", choices=("reference", "union", "intersection"), default="reference",
                   help="the output grid: the reference frame's, or the union or "
                   "intersection of the used frames")  # fmt: skip
    p.add_argument("--threshold", type=float, default=5.0, help="star detection, in sky sigma")
    for flag, default, what in (
        ("--max-fwhm", 1.5, "with a FWHM above X times the median"),
        ("--min-stars", 0.5, "with fewer stars than X times the median"),
        ("--min-throughput", 0.5, "whose stars are fainter than X times the median"),
    ):
        p.add_argument(flag, type=_fraction, default=default, metavar="X",
                       help=f"leave out frames {what} (none: keep them)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..registration import Selection, register, write_aligned

    select = Selection(args.max_fwhm, args.min_stars, args.min_throughput)
    reg = register(
        args.files, reference=args.reference, method=args.method, transform=args.transform,
        grid=args.grid, select=select, threshold=args.threshold,
    )  # fmt: skip
    out = Path(args.output)
    written = write_aligned(args.files, reg, out, kernel=args.interpolation)
    table_path = reg.write(out / "registration.ecsv")
    table = reg.table()
    for name in ("dx", "dy", "rms", "fwhm"):
        table[name].format = ".3f"
    table["rotation"].format = ".4f"
    table["throughput"].format = ".3f"
    table["frame", "method", "dx", "dy", "rotation", "matched", "rms", "fwhm", "throughput",
          "used", "why"].pprint_all()  # fmt: skip
    done = f"{len(written)} of {plural(len(reg.frames), 'frame')}"
    print(f"{done} written to {out}; table: {table_path}")
    for notice in reg.notices:
        print(f"notice: {notice}")
    return 0
