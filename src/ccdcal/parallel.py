"""Independent tasks (one per frame) run one after another, on local processes, or on a Dask
cluster: the same results, only sooner.

ccdcal's combine kernels already use every core of one machine; what is left to spread out
is the per-frame work of a night (calibrating each light, finding its cosmic rays). This
module runs a function over such tasks with Dask, chosen by two options a user sets on
:func:`ccdcal.reduce` or on ``ccdcal reduce``:

- ``workers=1`` (the default): in this process, in order;
- ``workers=N``: N local processes (Dask's multiprocessing scheduler);
- ``scheduler="tcp://host:8786"`` (or a ``distributed.Client``): the workers of a Dask
  cluster, which must see the same files under the same paths (a shared file system).

A task's function and its argument travel to the workers by pickle: module-level functions
and plain data only. An exception raised in a worker is raised here, unchanged.

There is no thread scheduler on purpose: Python's warning filters are process-wide, and the
``warnings.catch_warnings`` blocks that astropy and ccdcal run while reading files would
undo one another across threads (measured: a run on threads left filters behind that hid
every later warning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .errors import CcdcalError

T = TypeVar("T")
R = TypeVar("R")

LOCAL_SCHEDULERS = ("processes",)


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 1,
    scheduler: Any = None,
    progress: Callable[[int], Any] | None = None,
) -> list[R]:
    """``fn(item)`` for every item, the results in the items' order.

    Parameters
    ----------
    fn
        A module-level function (it is pickled to reach a worker).
    items
        Its arguments, one per task.
    workers
        Local workers; 1 runs the tasks here, one after another.
    scheduler
        None or ``"processes"``: local processes; the address
        of a Dask scheduler (``"tcp://host:8786"``) or a ``distributed.Client``: that
        cluster, whatever ``workers`` says.
    progress
        Called with 1 as each task finishes.

    Returns
    -------
    list
        ``[fn(item) for item in items]``.

    Raises
    ------
    CcdcalError
        ``workers`` below 1, or a cluster asked for without the ``distributed`` package.

    Examples
    --------
    >>> run_tasks(abs, [-1, 2, -3])
    [1, 2, 3]
    """
    check(workers, scheduler)
    items = list(items)
    tick = progress or (lambda _n: None)
    local = scheduler is None or scheduler in LOCAL_SCHEDULERS
    if local and (workers == 1 or len(items) <= 1):
        out = []
        for item in items:
            out.append(fn(item))
            tick(1)
        return out
    if local:
        return _run_local(fn, items, workers, scheduler or "processes", tick)
    return _run_cluster(fn, items, scheduler, tick)


def check(workers: Any, scheduler: Any) -> None:
    """Refuse, in one line, a worker count or scheduler that :func:`run_tasks` cannot use.

    Examples
    --------
    >>> check(2, "tcp://cluster:8786")
    >>> check(0, None)
    Traceback (most recent call last):
    ...
    ccdcal.errors.CcdcalError: workers must be a whole number of at least 1, not 0
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise CcdcalError(f"workers must be a whole number of at least 1, not {workers!r}")
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        return
    if isinstance(scheduler, str):
        if "://" in scheduler or ":" in scheduler:
            return
        raise CcdcalError(
            f"scheduler {scheduler!r}: expected 'processes' or a Dask scheduler's "
            "address such as tcp://host:8786"
        )
    if type(scheduler).__name__ != "Client":
        raise CcdcalError(
            f"scheduler must be a name, an address or a distributed.Client, not "
            f"{type(scheduler).__name__}"
        )


def _run_local(
    fn: Callable[[T], R], items: list[T], workers: int, scheduler: str, tick: Callable[[int], Any]
) -> list[R]:
    import dask
    from dask.callbacks import Callback

    tasks = [dask.delayed(fn, pure=False)(item) for item in items]

    def done(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        tick(1)

    with Callback(posttask=done):
        return list(dask.compute(*tasks, scheduler=scheduler, num_workers=workers))


def _run_cluster(
    fn: Callable[[T], R], items: list[T], scheduler: Any, tick: Callable[[int], Any]
) -> list[R]:
    try:
        from distributed import Client, as_completed
    except ImportError as err:
        raise CcdcalError(
            f"scheduler={scheduler!r}: a Dask cluster needs the 'distributed' package "
            "(pip install 'ccdcal[cluster]')"
        ) from err
    if isinstance(scheduler, Client):
        client = scheduler
    else:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as err:
            raise CcdcalError(f"scheduler {scheduler!r}: cannot connect ({err})") from None
    try:
        futures = client.map(fn, items, pure=False)
        for _ in as_completed(futures):
            tick(1)
        return list(client.gather(futures))
    finally:
        if client is not scheduler:
            client.close()


__all__ = ["LOCAL_SCHEDULERS", "check", "run_tasks"]
