"""``ccdcal combine``: stack FITS frames with outlier rejection into one FITS file."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..errors import CcdcalError
from ..wording import plural

log = logging.getLogger(__name__)

ALGORITHMS = {
    "none": "no rejection",
    "sigclip": "iterative sigma clipping about the median/mean (astropy's sigma_clip, "
    "or --rule siril)",
    "minmax": "drop the --nlow lowest and --nhigh highest values (IRAF minmax)",
    "pclip": "keep values between the --low and --high percentiles",
    "iraf-pclip": "IRAF pclip: sigma from the median to the value --pclip places from it",
    "winsorized": "winsorized sigma clipping (Siril/PixInsight)",
    "linfit": "linear fit clipping: a line through the sorted values (Siril/PixInsight)",
    "medsig": "median sigma clipping: outliers replaced by the median (Siril)",
    "avsigclip": "IRAF avsigclip: sigma = s*sqrt(level), s measured on each image line",
    "ccdclip": "sigma clipping with sigma from the CCD noise model: --gain --rdnoise --snoise "
    "(IRAF ccdclip)",
    "esd": "generalized extreme Studentized deviate test, Rosner 1983 (--max-outliers, --alpha)",
    "varclip": "sigma clipping with each frame's own variance plane at each pixel (calibrated "
    "frames; photon slope from their VARSLOPE; --snoise)",
}


def register(subparsers: Any) -> None:
    """Add the ``combine`` sub-command."""
    epilog = "rejection algorithms (--reject):\n" + "\n".join(
        f"  {name:<11} {text}" for name, text in ALGORITHMS.items()
    )
    p = subparsers.add_parser(
        "combine",
        help="stack frames (mean/median/sum) with outlier rejection",
        description="Stack FITS frames pixel by pixel, streaming them from disk in row bands.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="input FITS files (one shape)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.fits", help="output file")
    p.add_argument("--method", choices=("mean", "median", "sum"), default="mean",
                   help="how the values left at a pixel are combined")  # fmt: skip
    p.add_argument("--reject", choices=tuple(ALGORITHMS), default="none",
                   help="outlier rejection (see below)")  # fmt: skip
    p.add_argument("--sigma", type=float, default=3.0, help="clipping threshold (both sides)")
    p.add_argument("--low", type=float, help="low threshold (sigma, or percentile for pclip)")
    p.add_argument("--high", type=float, help="high threshold (sigma, or percentile for pclip)")
    p.add_argument("--maxiters", type=int, default=5, help="most clipping iterations (0: no limit)")
    p.add_argument(
        "--center",
        choices=("median", "mean"),
        default="median",
        help="sigclip, ccdclip, avsigclip: the center the clipping measures from",
    )
    p.add_argument("--spread", choices=("std", "mad_std"), default="std",
                   help="sigclip: the spread its sigma is")  # fmt: skip
    p.add_argument(
        "--rule", choices=("astropy", "siril", "count", "iraf"),
        help="sigclip: astropy (default) or siril; minmax: count (default) or iraf",
    )  # fmt: skip
    p.add_argument("--pclip", type=float, default=-0.5, help="iraf-pclip: IRAF's pclip")
    p.add_argument(
        "--grow", type=float, default=0.0,
        help="also reject the pixels within this radius of a rejected one (IRAF grow)",
    )  # fmt: skip
    p.add_argument("--lthreshold", type=float, help="leave out raw values below this")
    p.add_argument("--hthreshold", type=float, help="leave out raw values above this")
    p.add_argument("--nlow", type=float, default=1, help="minmax: lowest values to drop")
    p.add_argument("--nhigh", type=float, default=1, help="minmax: highest values to drop")
    p.add_argument("--gain", type=float, help="ccdclip: gain in e-/ADU")
    p.add_argument("--rdnoise", type=float, help="ccdclip: read noise in e-")
    p.add_argument("--snoise", type=float, default=0.0, help="ccdclip, varclip: sensitivity noise")
    p.add_argument("--max-outliers", type=float, default=0.3, help="esd: count or fraction")
    p.add_argument("--alpha", type=float, default=0.05, help="esd: significance level")
    p.add_argument("--nkeep", type=int, default=1, help="least values kept per pixel")
    p.add_argument("--scale", choices=("none", "median", "mode", "exposure"), default="none",
                   help="bring each frame to a common level first, by this factor")  # fmt: skip
    p.add_argument(
        "--zero",
        choices=("none", "median"),
        default="none",
        help="additive offsets that bring each frame's median to a common level",
    )
    p.add_argument("--weights", choices=("none", "frame", "variance"), default="none",
                   help="frame: one weight per file, 1/its median variance (MEDVAR, written "
                   "by calibration), as reduce weights lights; variance: 1/each pixel's "
                   "variance (UNCERT)")  # fmt: skip
    p.add_argument("--memory-limit", metavar="SIZE", help="e.g. 2GB (default: 1/4 of free RAM)")
    p.add_argument(
        "--keep-rejected", action="store_true", help="also write the REJECTED cube extension"
    )


def _reject(args: argparse.Namespace) -> Any:
    """The rejection named on the command line, through the one name-to-class mapping."""
    from ..config import rejection_from_name

    low = args.sigma if args.low is None else args.low
    high = args.sigma if args.high is None else args.high
    maxiters = None if args.maxiters == 0 else args.maxiters
    if args.reject == "ccdclip" and (args.gain is None or args.rdnoise is None):
        raise CcdcalError("--reject ccdclip needs --gain (e-/ADU) and --rdnoise (e-)")
    params: dict[str, dict[str, Any]] = {
        "sigclip": {"low": low, "high": high, "maxiters": maxiters, "center": args.center,
                    "spread": args.spread, "rule": args.rule or "astropy"},
        "minmax": {"nlow": _count(args.nlow), "nhigh": _count(args.nhigh),
                   "rule": args.rule or "count"},
        "pclip": {"low": 10.0 if args.low is None else args.low,
                  "high": 90.0 if args.high is None else args.high},
        "winsorized": {"low": low, "high": high, "maxiters": maxiters},
        "iraf-pclip": {"pclip": args.pclip, "low": low, "high": high},
        "linfit": {"low": low, "high": high, "maxiters": maxiters},
        "medsig": {"low": low, "high": high},
        "avsigclip": {"low": low, "high": high, "maxiters": maxiters, "center": args.center},
        "ccdclip": {"gain": args.gain, "read_noise": args.rdnoise, "snoise": args.snoise,
                    "low": low, "high": high, "maxiters": maxiters, "center": args.center},
        "esd": {"max_outliers": _count(args.max_outliers), "alpha": args.alpha},
    }  # fmt: skip
    if args.reject == "varclip":  # the headers read only where they are needed
        params["varclip"] = {"low": low, "high": high, "maxiters": maxiters,
                             "snoise": args.snoise, "slope": _slopes(args.files)}  # fmt: skip
    rule = args.rule
    if rule is not None and not (
        (args.reject == "sigclip" and rule in ("astropy", "siril"))
        or (args.reject == "minmax" and rule in ("count", "iraf"))
    ):
        raise CcdcalError(f"--rule {rule} does not apply to --reject {args.reject}")
    return rejection_from_name(args.reject, **params.get(args.reject, {}))


def _slopes(files: list[str]) -> tuple[float, ...]:
    """Each file's photon slope of its variance (VARSLOPE, written by calibration; 0 where
    it is missing: the variance is then taken as it is)."""
    from astropy.io import fits

    return tuple(float(fits.getheader(f).get("VARSLOPE", 0.0)) for f in files)


def _weights(args: argparse.Namespace) -> Any:
    """``--weights`` as :func:`ccdcal.combine` takes it."""
    if args.weights == "frame":
        return _frame_weights(args.files)
    return None if args.weights == "none" else args.weights


def _frame_weights(files: list[str]) -> list[float]:
    """1 / each file's median variance (MEDVAR, written by calibration)."""
    from astropy.io import fits

    weights = []
    for f in files:
        medvar = fits.getheader(f).get("MEDVAR")
        if medvar is None or not float(medvar) > 0:
            raise CcdcalError(
                f"{f}: no MEDVAR (median variance) for --weights frame: a frame calibrated "
                "by ccdcal has it; or use --weights variance"
            )
        weights.append(1.0 / float(medvar))
    return weights


def _count(value: float) -> float:
    return int(value) if value >= 1 and value == int(value) else value


def run(args: argparse.Namespace) -> int:
    """Combine the files and write the result; returns the exit status."""
    import time

    from ..errors import CcdcalError
    from ..stacking import combine

    try:
        reject = _reject(args)
    except ValueError as err:
        raise CcdcalError(f"combine: {err}") from err
    start = time.perf_counter()
    try:
        frame = _combine(combine, args, reject)
    except CcdcalError:
        raise
    except ValueError as err:  # bad options or shapes: one line, exit status 1
        raise CcdcalError(str(err)) from err
    # combine() has written the provenance (step, inputs, parameters) into the header
    frame.write(args.output)
    log.info(
        "combined %s into %s in %.2f s",
        plural(len(args.files), "frame"),
        args.output,
        time.perf_counter() - start,
    )
    return 0


def _combine(combine: Any, args: argparse.Namespace, reject: Any) -> Any:
    return combine(
        args.files,
        method=args.method,
        reject=reject,
        scale=None if args.scale == "none" else args.scale,
        zero=None if args.zero == "none" else args.zero,
        weights=_weights(args),
        nkeep=args.nkeep,
        memory_limit=args.memory_limit,
        keep_rejected=args.keep_rejected,
        grow=args.grow,
        thresholds=(
            None
            if args.lthreshold is None and args.hthreshold is None
            else (args.lthreshold, args.hthreshold)
        ),
    )
