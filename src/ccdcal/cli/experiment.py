"""``ccdcal experiment NAME``: run an experiment on simulated nights; table, CSV and figure."""

from __future__ import annotations

import argparse

from . import DEFAULT_SEED

NAMES = ("frames", "cosmic-rays", "vignetting")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="noise vs frames, cosmic-ray rejection, vignetting: measured on simulated nights",
        description="Run an experiment on simulated nights and write its table (CSV) and "
        "figure (PNG) into OUT. frames: background noise against the number of stacked "
        "frames; cosmic-rays: cosmic-ray pixels left by each combine method; vignetting: "
        "photometric error across the field for flats of several qualities.",
    )
    p.add_argument("name", metavar="NAME", choices=NAMES, help=" | ".join(NAMES))
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulation seed")
    p.add_argument("--size", default="200x200", help="detector size NXxNY (default: 200x200)")
    p.add_argument("--out", default=None, help="output folder (default: experiment-NAME)")
    p.add_argument("--quick", action="store_true", help="small and fast settings (tests)")
    p.add_argument("--keep", action="store_true", help="keep the simulated nights under OUT/nights")
    g = p.add_argument_group("ranges (comma-separated)")
    g.add_argument("--n", help="frames: numbers of frames to stack (default: 1,2,4,8,16,32)")
    g.add_argument("--rates", help="cosmic-rays: rates × the default (default: 1,5,20)")
    g.add_argument("--nframes", help="cosmic-rays: numbers of frames (default: 3,5,10)")
    g.add_argument("--strengths", help="vignetting: strengths (default: 0,0.15,0.3,0.5)")
    g.add_argument(
        "--flats", help="vignetting: flat qualities (default: good,few,other night,none)"
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .. import experiments as ex
    from ..errors import CcdcalError

    try:
        shape = ex.parse_size(args.size)
        options: dict = {"seed": args.seed, "shape": shape, "quick": args.quick}
        if args.name == "frames" and args.n:
            options["n"] = ex.parse_list(args.n, int)
        if args.name == "cosmic-rays":
            if args.rates:
                options["rates"] = ex.parse_list(args.rates, float)
            if args.nframes:
                options["nframes"] = ex.parse_list(args.nframes, int)
        if args.name == "vignetting":
            if args.strengths:
                options["strengths"] = ex.parse_list(args.strengths, float)
            if args.flats:
                options["flats"] = ex.parse_list(args.flats, str)
    except ValueError as err:
        raise CcdcalError(str(err)) from err
    out = Path(args.out or f"experiment-{args.name}")
    if args.keep:
        options["work_dir"] = out / "nights"
    result = ex.EXPERIMENTS[args.name](**options)
    paths = result.write(out)
    print(result.table())
    print()
    for path in paths:
        print(f"wrote {path}")
    return 0
