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
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .._version import __version__
from ..errors import CcdcalError

#: the seed of simulate, demo and experiment, as of :func:`ccdcal.simulate.night`,
#: :func:`ccdcal.quality.demo` and the experiments (one night unless told otherwise)
DEFAULT_SEED = 0
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
    "compile",
)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with each option's default where it has one worth saying.

    Unlike :class:`argparse.ArgumentDefaultsHelpFormatter` it leaves out flags, ``None``
    and empty defaults (no value given) and options whose help already says its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or action.nargs == 0  # a flag: given or not
            or default is None
            or default is argparse.SUPPRESS
            or (isinstance(default, list | tuple) and not default)
            or (not action.option_strings and action.nargs not in ("?", "*"))
        ):
            return action.help
        return f"{text} (default: %(default)s)".strip()


class RawDescriptionHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """:class:`HelpFormatter` that keeps the description's and epilog's line breaks."""


def _add_verbosity(parser: argparse.ArgumentParser, *, default: bool) -> None:
    """``-v``/``-q`` on ``parser``; a subcommand's leave the top level's value unless given
    (argparse copies every attribute a sub-parser sets over the top level's)."""
    keep = argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=0 if default else keep,
                        help="more log output (debug messages)")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", default=False if default else keep,
                        help="only warnings and errors")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with one sub-parser per command.

    Each sub-parser takes ``-v``/``-q`` too (``ccdcal reduce -v ...`` as well as
    ``ccdcal -v reduce ...``), and its help shows the options' defaults.

    Examples
    --------
    >>> build_parser().parse_args(["info", "-v", "night/"]).verbose
    1
    """
    parser = argparse.ArgumentParser(
        prog="ccdcal",
        description="CCD calibration: masters, calibrated frames and clean stacks from raw FITS.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    _add_verbosity(parser, default=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            continue
        module.register(sub)
        command = sub.choices[name]
        raw = issubclass(command.formatter_class, argparse.RawDescriptionHelpFormatter)
        command.formatter_class = RawDescriptionHelpFormatter if raw else HelpFormatter
        _add_verbosity(command, default=False)
    return parser


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("ccdcal")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Terminated(BaseException):
    """SIGTERM, handled as Ctrl-C is: the work stops where it is, what is finished is kept
    (outputs are written under temporary names and renamed), exit status 143."""


def _on_sigterm() -> Any:
    """Turn SIGTERM into :class:`Terminated` in the main thread; the previous handler."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, frame: Any) -> None:
        raise Terminated

    return signal.signal(signal.SIGTERM, stop)


def os_error_line(err: OSError) -> str:
    """One line for an operating system's error: the file or folder, and what happened.

    Examples
    --------
    >>> import errno
    >>> os_error_line(OSError(errno.ENOSPC, "No space left on device", "out/masters"))
    'out/masters: no space left on the device; free some and rerun: finished outputs are kept'
    """
    import errno

    where = err.filename or "ccdcal"
    what = {
        errno.ENOSPC: "no space left on the device; free some and rerun: finished outputs are kept",
        errno.EDQUOT: "disk quota exceeded; free some and rerun: finished outputs are kept",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
    }.get(err.errno or -1, (err.strerror or str(err)).lower())
    return f"{where}: {what}"


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
    previous = _on_sigterm()
    try:
        return int(module.run(args))
    except CcdcalError as err:
        print(f"ccdcal: error: {err}", file=sys.stderr)
        return 1
    except FileNotFoundError as err:
        print(f"ccdcal: error: {err.filename}: no such file or folder", file=sys.stderr)
        return 1
    except OSError as err:  # a full disk, a folder that cannot be written, ...
        print(f"ccdcal: error: {os_error_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ccdcal: interrupted; rerun the same command to finish the job", file=sys.stderr)
        return 130
    except Terminated:
        print("ccdcal: terminated; rerun the same command to finish the job", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def entry() -> int:
    """The installed ``ccdcal`` command (and ``python -m ccdcal``): :func:`main`, then the
    interpreter's exit without its collections of the heap
    (:func:`ccdcal.process_state.skip_exit_collection`: 0.3-0.4 s of a ``ccdcal combine``;
    nothing tracked then is finalized, so every file is closed before). In a process that
    goes on, call :func:`main`.
    """
    code = main()
    from ..process_state import skip_exit_collection

    skip_exit_collection()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(entry())
