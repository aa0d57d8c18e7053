"""The ``ccdcal`` command: a thin layer over the Python API.

Each subcommand lives in its own module of this package with two functions,
``register(subparsers)`` (cheap: builds the argument parser) and ``run(args) -> int``
(imports what it needs and calls the API). Errors the user can fix become one line
``ccdcal: error: <file>: <problem>`` and exit status 1.

Examples
--------
>>> main(["--version"])  # doctest: +ELLIPSIS
ccdcal ...
0
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import CcdcalError

#: subcommands in the order ``ccdcal --help`` lists them
COMMANDS = (
    "simulate",
    "info",
    "characterize",
    "combine",
    "register",
    "reduce",
    "demo",
    "experiment",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="ccdcal",
        description="CCD calibration: masters, calibrated frames and clean stacks from raw FITS.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("ccdcal")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ccdcal`` command line; returns the exit status.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        print(f"ccdcal {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    _configure_logging(args.verbose, args.quiet)
    module = importlib.import_module(f"{__name__}.{args.command}")
    try:
        return int(module.run(args))
    except CcdcalError as err:
        print(f"ccdcal: error: {err}", file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"ccdcal: error: {err.filename}: no such file or folder", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ccdcal: interrupted; rerun the same command to finish the job", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
