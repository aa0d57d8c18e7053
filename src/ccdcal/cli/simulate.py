"""``ccdcal simulate OUT_DIR``: a whole observing night as raw FITS, and the truth behind it."""

from __future__ import annotations

import argparse


def _size(text: str) -> tuple[int, int]:
    try:
        nx, ny = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size must be WIDTHxHEIGHT, like 200x200, not {text!r}"
        ) from None
    if nx < 8 or ny < 8:
        raise argparse.ArgumentTypeError(f"size must be at least 8x8, not {text!r}")
    return ny, nx


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a night: raw FITS frames and the truth behind them",
        description="Write OUT_DIR/raw (bias, darks, flats, lights as a 16-bit camera writes "
        "them) and OUT_DIR/truth (scene, flats, dark current, bias, cosmic-ray masks, stars). "
        "The same seed gives byte-identical files.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=_size, default=(200, 200), metavar="WxH", help="default 200x200")
    for kind, default in (("bias", 25), ("dark", 15), ("flat", 15), ("light", 10)):
        p.add_argument(f"--n{kind}", type=int, default=default, metavar="N",
                       help=f"{kind} frames (default {default})")  # fmt: skip
    p.add_argument("--filters", default="V", help="comma-separated filters (default V)")
    p.add_argument("--overscan", type=int, default=0, metavar="N", help="overscan columns")
    p.add_argument("--exptime", type=float, default=60.0, help="light exposure, s")
    p.add_argument("--dark-exptime", type=float, default=60.0, help="dark exposure, s")
    p.add_argument("--gain", type=float, default=1.0, help="e-/ADU (default 1)")
    p.add_argument("--read-noise", type=float, default=8.0, help="electrons (default 8)")
    p.add_argument("--vignetting", type=float, default=0.15, help="edge fall-off (0.15)")
    p.add_argument("--cosmic-rate", type=float, default=None,
                   help="hits per pixel per second (default: the tutorial's)")  # fmt: skip
    p.add_argument("--bias-drift", type=float, default=0.0, help="bias level rms, adu")


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from ..simulate import DEFAULT_COSMIC_RATE, night

    result = night(
        args.out_dir, seed=args.seed, shape=args.size, nbias=args.nbias, ndark=args.ndark,
        nflat=args.nflat, nlight=args.nlight,
        filters=tuple(f.strip() for f in args.filters.split(",") if f.strip()),
        overscan=args.overscan, light_exptime=args.exptime, dark_exptime=args.dark_exptime,
        gain=args.gain, read_noise=args.read_noise, vignetting=args.vignetting,
        cosmic_rate=DEFAULT_COSMIC_RATE if args.cosmic_rate is None else args.cosmic_rate,
        bias_drift=args.bias_drift,
    )  # fmt: skip
    counts = Counter(p.name.split("_")[0] for p in result.raw)
    ny, nx = args.size
    print(f"simulated night (seed {args.seed}, {nx}x{ny}"
          f"{f' + {args.overscan} overscan' if args.overscan else ''}): "
          + ", ".join(f"{n} {kind}" for kind, n in counts.items()))  # fmt: skip
    print(f"raw frames: {result.raw_dir}")
    print(f"truth:      {result.folder / 'truth'}")
    return 0
