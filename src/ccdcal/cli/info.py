"""``ccdcal info DIR``: what is in a folder, as a table of frames and a summary by type.

Only headers are read. Unreadable files are listed with their problem and do not change
the exit status; a missing folder, or one without FITS files, is an error (exit 1).

Examples
--------
>>> import tempfile
>>> from ccdcal.cli import main
>>> main(["info", tempfile.mkdtemp()])  # "ccdcal: error: ...: no FITS files" on stderr
1
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``info`` sub-command."""
    p = sub.add_parser(
        "info",
        help="list the frames in a folder by type, exposure and filter",
        description="Scan DIR (recursively) for FITS files, classify each from its header and "
        "print a table and a summary by type. Only headers are read.",
    )
    p.add_argument("dir", metavar="DIR", nargs="?", help="folder of FITS files")
    p.add_argument("--config", metavar="TOML",
                   help="the night's configuration: keywords, rules, detector, combine options "
                   "(ccdcal info --example-config prints every key with its default)")  # fmt: skip
    p.add_argument("--why", action="store_true", help="add how each frame was classified")
    p.add_argument(
        "--no-recursive", action="store_true", help="do not look into sub-folders of DIR"
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="also read the pixels through, to find truncated or corrupt compressed files",
    )
    p.add_argument(
        "--example-config",
        action="store_true",
        help="print a commented configuration with every default and exit",
    )


def run(args: argparse.Namespace) -> int:
    """Print the table and the summary; 0, or 1 for a missing or empty folder."""
    from ..config import Config, example_toml, load_config

    if args.example_config:
        print(example_toml(), end="")
        return 0
    from ..collection import FITS_SUFFIXES, scan
    from ..errors import CcdcalError

    if args.dir is None:
        raise CcdcalError("info: give the folder to look into (ccdcal info DIR)")
    config = load_config(args.config) if args.config else Config()
    collection = scan(args.dir, config=config, recursive=not args.no_recursive, verify=args.verify)
    if not collection.frames:
        raise CcdcalError(f"{args.dir}: no FITS files ({', '.join(FITS_SUFFIXES)})")
    print(collection.table(why=args.why))
    print()
    print(collection.summary())
    return 0
