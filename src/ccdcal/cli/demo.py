"""``ccdcal demo [OUT_DIR]``: simulate a night, reduce it, and compare with the truth."""

from __future__ import annotations

import argparse

from . import DEFAULT_SEED


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a night, reduce it, compare with the truth",
        description="Simulate the default night into OUT_DIR/night, reduce it into "
        "OUT_DIR/reduced, and print how close the results come to the simulator's truth "
        "(also written as OUT_DIR/truth.md). Run again into the same folder, it keeps "
        "what it made.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", nargs="?", default="ccdcal-demo",
                   help="folder for the night and its reduction")  # fmt: skip
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="simulation seed")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..quality import demo

    outcome = demo(Path(args.out_dir), seed=args.seed)
    print(outcome.result.summary())
    print()
    print(outcome.truth.table())
    print(f"\ncomparison with the truth as Markdown: {Path(args.out_dir) / 'truth.md'}")
    if outcome.result.report is not None:
        print(f"report: {outcome.result.report}")
    return 0
