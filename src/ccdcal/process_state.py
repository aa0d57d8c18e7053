"""What belongs to a whole process rather than to one thread: Python's warning filters, the
heap's freed memory and the collections at its exit.

Tasks of a reduction share a process's threads (:class:`ccdcal.parallel.InProcess`), so
ccdcal's blocks that catch warnings hold one lock (:func:`catching_warnings`; never
``warnings.catch_warnings`` directly), a threaded run puts the filters back as they were
(:func:`warning_state`, :func:`restore_warning_state`), and memory freed by the tasks is
given back to the system at a few points (:func:`release_memory`); a command and a worker
process leave their objects out of the interpreter's collections at exit
(:func:`skip_exit_collection`).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def release_memory() -> None:
    """Give the memory freed in this process back to the system (glibc's ``malloc_trim``;
    elsewhere nothing).

    Arrays of a few MB are taken from malloc's heaps, one heap per thread, and what is
    freed in them stays there for the next ones: after the lights of a night were
    calibrated on two threads, about 0.3 GB freed was still counted in the process. Called
    after each combine, after each task of the side process and once a run's tasks are
    done (before the report); not after each light here: taking the memory back page by
    page after every task cost a night of 40 lights 2.5 s.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


#: held by every block of ccdcal's that catches or filters warnings (see
#: :func:`catching_warnings`)
_WARNINGS = threading.RLock()


@contextmanager
def catching_warnings(*, record: bool = False) -> Iterator[list[Any] | None]:
    """``warnings.catch_warnings(record=record)``, one such block of ccdcal's at a time.

    Python's warning filters belong to the process: two blocks that overlap on two threads
    restore each other's filters in the wrong order and leave one behind (measured: a run on
    threads once left filters that hid every later warning). ccdcal's blocks hold one lock,
    so that tasks on threads (:class:`ccdcal.parallel.InProcess`) can catch warnings safely.

    Examples
    --------
    >>> import warnings
    >>> with catching_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("careful")
    >>> [str(w.message) for w in caught]
    ['careful']
    """
    import warnings

    with _WARNINGS, warnings.catch_warnings(record=record) as caught:
        yield caught


def warning_state() -> tuple[Any, ...]:
    import warnings

    return (list(warnings.filters), warnings.showwarning)


def restore_warning_state(state: tuple[Any, ...]) -> None:
    """Put the warning filters back as they were before a run on threads: a block of
    another library's that caught warnings while one of ccdcal's did may have left its
    filters behind."""
    import warnings

    filters, show = state
    if warnings.filters != filters or warnings.showwarning is not show:
        warnings.filters[:] = filters
        warnings.showwarning = show
        warnings._filters_mutated()  # type: ignore[attr-defined]


def skip_exit_collection() -> None:
    """Leave every object tracked now out of the collections the interpreter makes as it
    exits.

    Those collections walk the whole heap, and with numba's, astropy's and matplotlib's
    objects in it they took 0.3-0.4 s of a ``ccdcal combine`` of 20 frames, as it exited,
    and as long of a reduction's end, which waits for its process beside to exit. The
    exit's handlers still run (logging's, multiprocessing's, ``weakref.finalize``), but
    no object tracked now is finalized, garbage cycles not yet collected included: what
    must reach a file is written and closed before this is called (ccdcal writes its
    outputs in ``with`` blocks and renames them into place). Called last, as the command
    returns (:func:`ccdcal.cli.entry`), or from an exit handler (worker processes:
    :mod:`ccdcal.parallel`).

    Examples
    --------
    >>> import gc
    >>> skip_exit_collection(); gc.get_freeze_count() > 0
    True
    >>> gc.unfreeze()
    """
    import gc

    gc.freeze()


__all__ = [
    "catching_warnings",
    "release_memory",
    "restore_warning_state",
    "skip_exit_collection",
    "warning_state",
]
