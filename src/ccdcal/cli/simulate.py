"""``ccdcal simulate OUT_DIR``: a whole observing night as raw FITS, and the truth behind it."""

from __future__ import annotations

import argparse

from . import DEFAULT_SEED

MIN_SIZE = 24  # stars keep 10 pixels from the edges: smaller frames have no room for them


def parse_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (or one number for a square) as numpy's ``(ny, nx)``.

    Examples
    --------
    >>> parse_size("300x200"), parse_size("64")
    ((200, 300), (64, 64))
    """
    parts = text.lower().replace(" ", "").split("x")
    try:
        values = [int(v) for v in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise argparse.ArgumentTypeError(
            f"size must be WIDTHxHEIGHT in pixels, like 200x200, not {text!r}"
        )
    nx, ny = values
    if nx < MIN_SIZE or ny < MIN_SIZE:
        raise argparse.ArgumentTypeError(
            f"size must be at least {MIN_SIZE}x{MIN_SIZE}, not {text!r}"
        )
    return ny, nx


def _filters(text: str) -> tuple[str, ...]:
    names = tuple(f.strip() for f in text.split(",") if f.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"give at least one filter name, like V,R; not {text!r}")
    return names


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if not 0 <= n <= 999:
        raise argparse.ArgumentTypeError(f"a number of frames is 0..999, not {text!r}")
    return n


def _nonnegative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, not {text!r}")
    return value


def _positive(text: str) -> float:
    value = _nonnegative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, not {text!r}")
    return value


def _times(text: str) -> float | list[float]:
    times = [_positive(t) for t in text.split(",")]
    if len(set(times)) != len(times):
        raise argparse.ArgumentTypeError(f"exposure times repeat in {text!r}")
    return times[0] if len(times) == 1 else times


def _range(text: str) -> tuple[float, float]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected MIN,MAX, like 2.5,4; not {text!r}")
    low, high = (_positive(v) for v in parts)
    if low > high:
        raise argparse.ArgumentTypeError(f"MIN must not exceed MAX in {text!r}")
    return low, high


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a night: raw FITS frames and the truth behind them",
        description="Write OUT_DIR/raw (biases, darks, flats and lights as a 16-bit camera "
        "writes them) and OUT_DIR/truth (scene, flat responses, dark current, bias, hot "
        "pixels, cosmic-ray masks, star table, detector.json). One detector takes every "
        "frame: its bias pattern, hot pixels and flat are the same in all of them. The same "
        "seed gives byte-identical files.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write raw/ and truth/ into")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of everything")
    p.add_argument("--size", type=parse_size, default=(200, 200), metavar="WxH",
                   help="science area, width x height in pixels (default: 200x200)")  # fmt: skip
    for kind, default in (("bias", 25), ("dark", 15), ("flat", 15), ("light", 10)):
        per = " per filter" if kind in ("flat", "light") else ""
        p.add_argument(f"--n{kind}", type=_count, default=default, metavar="N",
                       help=f"{kind} frames{per} (default: {default})")  # fmt: skip
    p.add_argument("--filters", type=_filters, default=("V",), metavar="F1,F2",
                   help="comma-separated filter names (default: V)")  # fmt: skip
    p.add_argument("--overscan", type=int, default=0, metavar="N",
                   help="overscan columns right of the image (default: 0)")  # fmt: skip
    p.add_argument("--exptime", type=_positive, default=60.0, metavar="S",
                   help="light exposure, seconds (default: 60)")  # fmt: skip
    p.add_argument("--dark-exptime", type=_times, default=60.0, metavar="S[,S...]",
                   help="dark exposure, seconds; several (e.g. 5,30,120) take --ndark darks "
                   "at each (default: 60)")  # fmt: skip
    p.add_argument("--flat-level", type=_positive, default=30_000.0, metavar="E",
                   help="flat illumination, electrons (default: 30000)")  # fmt: skip
    p.add_argument("--gain", type=_positive, default=1.0, metavar="G",
                   help="e-/ADU (default: 1)")  # fmt: skip
    p.add_argument("--read-noise", type=_nonnegative, default=8.0, metavar="E",
                   help="read noise, electrons (default: 8)")  # fmt: skip
    p.add_argument("--vignetting", type=_nonnegative, default=0.15, metavar="V",
                   help="fractional fall-off of the flat at the edge (default: 0.15)")  # fmt: skip
    p.add_argument("--cosmic-rate", type=_nonnegative, default=None, metavar="R",
                   help="cosmic-ray hits per pixel per second in lights (default: "
                   "20/(200*200*60), the tutorial's)")  # fmt: skip
    p.add_argument("--bias-drift", type=_nonnegative, default=0.0, metavar="ADU",
                   help="frame-to-frame rms of the bias level (default: 0)")  # fmt: skip
    p.add_argument("--nstars", type=_count, default=30, metavar="N",
                   help="stars in the field (default: 30)")  # fmt: skip
    p.add_argument("--fwhm", type=_positive, default=3.0, metavar="PIX",
                   help="seeing: stars' FWHM, pixels (default: 3)")  # fmt: skip
    p.add_argument("--nonlinearity", type=_nonnegative, default=0.0, metavar="F",
                   help="fractional loss of response at the full well (default: 0)")  # fmt: skip
    p.add_argument("--adc-bits", type=int, default=16, choices=range(8, 17), metavar="B",
                   help="bits of the ADC (default: 16; 12 and 14 are common)")  # fmt: skip
    p.add_argument("--adc-shift", type=int, default=0, choices=range(0, 9), metavar="S",
                   help="bits the values are shifted left in the 16-bit file, as CMOS "
                   "cameras store 12-bit values (default: 0)")  # fmt: skip
    motion = p.add_argument_group(
        "a telescope that moves, under seeing and clouds that change (each light's transform, "
        "seeing, transparency and sky go to truth/pointing.ecsv)"
    )
    motion.add_argument("--dither", type=_nonnegative, default=0.0, metavar="PIX",
                        help="random offsets of each light within +-PIX pixels")  # fmt: skip
    motion.add_argument("--drift", type=_nonnegative, default=0.0, metavar="PIX",
                        help="steady drift, PIX pixels per frame, random direction")  # fmt: skip
    motion.add_argument("--rotate", type=_nonnegative, default=0.0, metavar="DEG",
                        help="field rotation, first light to last, degrees")  # fmt: skip
    motion.add_argument("--fwhm-range", type=_range, default=None, metavar="MIN,MAX",
                        help="seeing drawn per light, FWHM in pixels")  # fmt: skip
    motion.add_argument("--transparency-range", type=_range, default=None, metavar="MIN,MAX",
                        help="relative throughput drawn per light, within (0, 1]")  # fmt: skip
    motion.add_argument("--sky-range", type=_range, default=None, metavar="MIN,MAX",
                        help="relative sky brightness per light (moon, twilight)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..errors import CcdcalError
    from ..simulate import DEFAULT_COSMIC_RATE, night

    try:
        result = night(
            args.out_dir, seed=args.seed, shape=args.size, nbias=args.nbias,
            ndark=args.ndark, nflat=args.nflat, nlight=args.nlight, filters=args.filters,
            overscan=args.overscan, light_exptime=args.exptime,
            dark_exptime=args.dark_exptime, flat_level=args.flat_level, gain=args.gain,
            read_noise=args.read_noise, vignetting=args.vignetting,
            cosmic_rate=DEFAULT_COSMIC_RATE if args.cosmic_rate is None else args.cosmic_rate,
            bias_drift=args.bias_drift, nstars=args.nstars, fwhm=args.fwhm,
            dither=args.dither, drift=args.drift, rotate=args.rotate,
            fwhm_range=args.fwhm_range, transparency_range=args.transparency_range,
            sky_range=args.sky_range, nonlinearity=args.nonlinearity,
            adc_bits=args.adc_bits, adc_shift=args.adc_shift,
        )  # fmt: skip
    except ValueError as err:
        # a bad combination of options (say, vignetting >= 1): one line, exit status 1
        if isinstance(err, CcdcalError):
            raise
        raise CcdcalError(f"simulate: {err}") from err
    print(result.summary())
    return 0
