"""``ccdcal reduce RAW_DIR OUT_DIR``: masters, calibrated lights, stacks and a report."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reduce",
        help="reduce a night: masters, calibrated lights, stacks, report",
        description="Scan RAW_DIR, build master bias/darks/flats, calibrate every light, stack "
        "them per object and filter with outlier rejection, and write a report. A rerun keeps "
        "outputs that are complete and up to date.",
    )
    p.add_argument("raw_dir", metavar="RAW_DIR", help="folder of raw FITS files")
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder")
    p.add_argument("--config", metavar="TOML",
                   help="the night's configuration: keywords, rules, detector, combine options "
                   "(ccdcal info --example-config prints every key with its default)")  # fmt: skip
    p.add_argument("--no-report", action="store_true", help="skip figures and the HTML report")
    p.add_argument(
        "--cosmic",
        choices=("none", "lacosmic"),
        help="single-frame cosmic-ray detection on each calibrated light",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="memory for each master and stack, e.g. 2GB (default: 1/4 of free RAM); "
        "larger sets are streamed from disk",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="build the products on N local processes, independent ones at the same time "
        "(default: 1: in this process, independent products on its threads)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="build the products on a Dask cluster, e.g. tcp://host:8786 (its workers must "
        "see the same paths)",
    )
    p.add_argument(
        "--only",
        choices=("masters", "calibrated", "registered", "stacks"),
        help="build just this part of the reduction (and what it needs that is not up to "
        "date); no report",
    )
    p.add_argument(
        "--durable",
        action="store_true",
        help="flush the outputs to the disk before the run ends (without it, a power cut "
        "soon after a run can leave outputs torn: the next run tells them by their "
        "checksums and makes them again)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (each product, its inputs, and whether it is up to date or why "
        "it would be built) and build nothing",
    )
    p.add_argument(
        "--band-rows",
        type=int,
        metavar="N",
        help="combine masters and stacks in row bands of about N rows, each band a task "
        "(default: only on a cluster, for combines of several GB)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..config import Config, load_config
    from ..pipeline import reduce

    config = load_config(args.config) if args.config else Config()
    if args.cosmic:
        config = replace(config, cosmic=replace(config.cosmic, method=args.cosmic))
    if args.dry_run:
        from ..pipeline import plan
        from ..pipeline.execution import check_band_rows

        check_band_rows(args.band_rows)

        the_plan = plan(args.raw_dir, args.out_dir, config=config)
        print(the_plan.table(only=args.only))
        for notice in the_plan.notices:
            print(f"notice: {notice}")
        for path, problem in the_plan.failures:
            print(f"ccdcal: error: {path}: {problem}", file=sys.stderr)
        return 1 if the_plan.failures else 0
    result = reduce(
        args.raw_dir,
        args.out_dir,
        config=config,
        report=not args.no_report,
        workers=args.workers,
        scheduler=args.scheduler,
        memory_limit=args.memory_limit,
        only=args.only,
        band_rows=args.band_rows,
        durable=args.durable,
    )
    print(result.summary())
    if result.report is not None:
        print(f"report: {result.report}")
    for path, problem in result.failures:
        print(f"ccdcal: error: {path}: {problem}", file=sys.stderr)
    return 1 if result.failures else 0
