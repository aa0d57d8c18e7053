"""``ccdcal compile``: compile ccdcal's kernels now, into numba's cache, and its modules'
bytecode, so that the first reduction on this machine does not (``make`` runs it when it
installs ccdcal).

By default the kernels a reduction with the default configuration calls; ``--all`` every
rejection algorithm's too. Kernels already in the cache are left as they are.

Examples
--------
>>> from ccdcal.cli import build_parser
>>> build_parser().parse_args(["compile", "--all"]).all
True
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compile`` sub-command."""
    p = sub.add_parser(
        "compile",
        help="compile the kernels now, once per machine and version (make does it)",
        description="Compile ccdcal's numba kernels into numba's cache, several at once, and "
        "its modules' bytecode, so that the first reduction on this machine starts at full "
        "speed. Without --all: the "
        "kernels a reduction with the default configuration calls; the others are compiled "
        "when first used.",
    )
    p.add_argument("--all", action="store_true",
                   help="every rejection algorithm's kernel too")  # fmt: skip
    p.add_argument("--processes", type=int, metavar="N",
                   help="processes compiling at once (default: one per core)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Compile what is missing and say what was done; 0."""
    import logging
    import time

    from ..compiled import compile_bytecode, compile_now, every_kernel
    from ..errors import CcdcalError
    from ..pipeline.reduction import default_kernels

    if args.processes is not None and args.processes < 1:
        raise CcdcalError(f"--processes must be at least 1, not {args.processes}")
    log = logging.getLogger("ccdcal")
    if not compile_bytecode():
        log.debug("not every module's bytecode was written (a folder this user cannot "
                  "write, or a module that does not compile)")  # fmt: skip
    names = every_kernel() if args.all else default_kernels()
    start = time.perf_counter()
    done = compile_now(names, args.processes)
    if not done:
        log.info("all %d kernels were compiled already", len(names))
    else:
        log.info("compiled %d of %d kernels in %.1f s: %s", len(done), len(names),
                 time.perf_counter() - start, ", ".join(done))  # fmt: skip
    return 0
