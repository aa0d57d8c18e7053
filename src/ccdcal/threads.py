"""The threads that share out the compiled kernels' work in one process.

The kernels are compiled without numba's ``parallel=True``: its loops cost most of a
kernel's compile time (a combine kernel took 40-60 s to compile with them; see
:mod:`ccdcal.compiled`), and a kernel that releases the GIL (``nogil=True``) runs as fast
on threads of this module, each given a contiguous run of the work.

The count follows ``NUMBA_NUM_THREADS`` (default the cores this process may use); a worker
process that shares the machine with others takes its share with :func:`set_count`.

Examples
--------
>>> out = [0] * 10
>>> def part(a, b):
...     for i in range(a, b):
...         out[i] = i * i
>>> split(part, 10)
>>> out[-1]
81
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_count: int | None = None
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def count() -> int:
    """How many threads share a kernel's work."""
    if _count is not None:
        return _count
    env = os.environ.get("NUMBA_NUM_THREADS", "")
    return max(1, int(env)) if env.isdigit() else _cores()


def set_count(n: int) -> None:
    """Use ``n`` threads (at least 1) from now on in this process."""
    global _count
    _count = max(1, int(n))


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, _cores() - 1), thread_name_prefix="ccdcal")
        return _pool


def split(part: Callable[[int, int], object], total: int, parts: int | None = None) -> None:
    """Run ``part(start, stop)`` over ``range(total)`` cut into ``parts`` contiguous runs
    (default :func:`count`), at the same time: the last in this thread, the others on the
    pool. Returns when all are done; the first exception of a run is raised here.
    """
    parts = max(1, min(parts or count(), total))
    if parts == 1:
        if total > 0:
            part(0, total)
        return
    edges = [total * k // parts for k in range(parts + 1)]
    pool = _executor()
    futures = [pool.submit(part, edges[k], edges[k + 1]) for k in range(parts - 1)]
    try:
        part(edges[-2], edges[-1])
    finally:
        for future in futures:  # every run finishes before this returns, failed or not
            future.exception()
    for future in futures:
        future.result()


__all__ = ["count", "set_count", "split"]
