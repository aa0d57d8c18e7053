"""Graphs of tasks run here, on local processes, or on a Dask cluster: the same results, only
sooner.

A reduction is a graph of tasks (build a master, calibrate a light, combine a band of a
stack, ...): each :class:`Task` is a module-level function and its arguments, where a
:class:`Ref` stands for the result of an earlier task. One interface, :class:`Executor`,
runs such a graph; three implementations are chosen by two options a user sets on
:func:`ccdcal.reduce` or on ``ccdcal reduce``:

- ``workers=1`` (the default): :class:`InProcess`, in this process, one task after another
  or, for a reduction, independent tasks on a few threads;
- ``workers=N``: :class:`LocalProcesses`, N local processes (Dask's multiprocessing
  scheduler); independent tasks run at the same time;
- ``scheduler="tcp://host:8786"`` (or a ``distributed.Client``): :class:`DaskCluster`, the
  workers of a Dask cluster, which must see the same files under the same paths (a shared
  file system). Results of tasks travel from worker to worker, not through this process.

A task's function and its arguments travel to the workers by pickle: module-level functions
and plain data only. An exception raised in a worker is raised here, unchanged.

See :class:`InProcess` for what threads gain, and :mod:`ccdcal.process_state` for how
warnings stay safe on them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import CcdcalError
from .process_state import (
    release_memory,
    restore_warning_state,
    skip_exit_collection,
    warning_state,
)

T = TypeVar("T")
R = TypeVar("R")

LOCAL_SCHEDULERS = ("processes",)

Progress = Callable[[str], Any]


@dataclass(frozen=True)
class Ref:
    """The result of the task named ``key``, as an argument of a later task."""

    key: str


@dataclass(frozen=True)
class Task:
    """``fn(*args)``, where each :class:`Ref` in ``args`` (or in a list among them) is
    replaced by that task's result.

    Examples
    --------
    >>> Task("b", abs, (Ref("a"),)).refs()
    ['a']
    """

    key: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    #: its work holds Python's lock most of the time (finding stars): where this process
    #: runs tasks on threads, it runs on a process beside them (see :class:`InProcess`)
    side: bool = False

    def refs(self) -> list[str]:
        """Keys of the tasks whose results this one takes."""
        out: list[str] = []
        for arg in self.args:
            for item in arg if isinstance(arg, list) else (arg,):
                if isinstance(item, Ref):
                    out.append(item.key)
        return out


def _resolve(args: tuple[Any, ...], value: Callable[[str], Any]) -> tuple[Any, ...]:
    def one(item: Any) -> Any:
        return value(item.key) if isinstance(item, Ref) else item

    return tuple([one(i) for i in a] if isinstance(a, list) else one(a) for a in args)


def _let_go(task: Task, users: Counter[str], keep: set[str], results: dict[str, Any]) -> None:
    """Count ``task``'s use of the results it took, and drop those that no later task
    needs and nobody wants back."""
    for key in task.refs():
        users[key] -= 1
        if users[key] == 0 and key not in keep:
            results.pop(key, None)


def _checked(tasks: Sequence[Task], want: Iterable[str] | None) -> tuple[list[Task], list[str]]:
    seen: set[str] = set()
    for task in tasks:
        if task.key in seen:
            raise CcdcalError(f"two tasks named {task.key!r}")
        missing = [k for k in task.refs() if k not in seen]
        if missing:
            raise CcdcalError(f"task {task.key!r} needs {missing[0]!r}, which does not come first")
        seen.add(task.key)
    wanted = [t.key for t in tasks] if want is None else list(want)
    unknown = [k for k in wanted if k not in seen]
    if unknown:
        raise CcdcalError(f"no task named {unknown[0]!r}")
    return list(tasks), wanted


class Executor:
    """Runs a graph of tasks; :meth:`run` returns the results of the tasks in ``want``."""

    def start(self) -> None:
        """Get ready to run (start workers); :meth:`run` does it too when needed."""

    def close(self) -> None:
        """Release what :meth:`start` took."""

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(
        self,
        tasks: Sequence[Task],
        *,
        want: Iterable[str] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Run ``tasks`` (each after the tasks it refers to, which come before it).

        Parameters
        ----------
        tasks
            The graph, in an order where every :class:`Ref` points to an earlier task.
        want
            Keys whose results to return (default all).
        progress
            Called with a task's key as each task finishes.

        When a task fails, its exception is raised here, after the tasks then running
        have finished or been cancelled (so that nothing writes behind the caller's back).
        """
        tasks, wanted = _checked(tasks, want)
        return self._run(tasks, wanted, progress or (lambda _key: None))

    def _run(self, tasks: list[Task], want: list[str], tick: Progress) -> dict[str, Any]:
        raise NotImplementedError


class InProcess(Executor):
    """Tasks in this process: one after another in order (``threads=1``), or on ``threads``
    threads, where a task starts as soon as the tasks it needs are done.

    On threads, of the tasks ready to start the one that became ready last goes first
    (depth first: a light's stars are found right after the light is calibrated, while the
    next light is being calibrated, instead of all stars after all lights), then the
    graph's order. Each result is freed once no later task needs it, so the bands of a
    split stack do not pile up.

    Threads help where a task spends its time outside Python's lock (the compiled kernels,
    reading and writing files, NumPy's sorts). A task that holds the lock most of its time
    (:attr:`Task.side`: finding stars) would only take turns with them: on threads it runs
    on one process beside this one (started with the run, ``side_warmup`` run first in
    it), two at a time there (one running, the next sent); the others wait for a free
    thread here, so that once the lights are done the threads find stars too. Measured on a
    night of 40 lights of 2048x2048 on 2 cores (issue 16's), without the report: one task
    after another 28.1 s; 2 threads 22.2 s; 2 threads and the side process 17.6 s, peak
    RSS 0.79 GB; 2 processes (``workers=2``) 24 s and 1.35 GB.

    Python's warning filters are process-wide: ccdcal's own blocks that catch warnings hold
    one lock (:func:`ccdcal.process_state.catching_warnings`), and the filters of before
    the run are put back after it.
    """

    def __init__(self, threads: int = 1, *, side_warmup: Callable[[], Any] | None = None) -> None:
        self.threads = max(1, int(threads))
        self.side_warmup = side_warmup
        self._side: Any = None
        self._lent = False

    def _start_side(self) -> Any:
        """The side process (started here), or None where this system cannot start one
        (no working semaphores, as in some sandboxes): its tasks then run on the threads."""
        if self._side is None:
            self._side = start_process(self.side_warmup)
        return self._side

    def lend_side(self) -> Any:
        """The side process, started now, for the caller to send its own work to beside the
        run's and to shut down when done with it (:meth:`close` then leaves it running): the
        report draws its figures there. None with one thread, or where no process starts."""
        if self.threads < 2:
            return None
        side = self._start_side()
        self._lent = side is not None
        return side

    def close(self) -> None:
        """Stop the side process, if one was started and not lent."""
        if self._side is not None:
            if not self._lent:
                self._side.shutdown(wait=True, cancel_futures=True)
            self._side = None
            self._lent = False

    def _run(self, tasks: list[Task], want: list[str], tick: Progress) -> dict[str, Any]:
        if self.threads > 1 and len(tasks) > 1:
            return self._run_threads(tasks, want, tick)
        users = Counter(k for t in tasks for k in t.refs())
        keep = set(want)
        results: dict[str, Any] = {}
        for task in tasks:
            results[task.key] = task.fn(*_resolve(task.args, results.__getitem__))
            _let_go(task, users, keep, results)
            tick(task.key)
        return {k: results[k] for k in want}

    def _run_threads(self, tasks: list[Task], want: list[str], tick: Progress) -> dict[str, Any]:
        import heapq
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        position = {t.key: i for i, t in enumerate(tasks)}
        waiting = {t.key: set(t.refs()) for t in tasks}
        followers: dict[str, list[Task]] = {}
        for task in tasks:
            for key in set(task.refs()):
                followers.setdefault(key, []).append(task)
        users = Counter(k for t in tasks for k in t.refs())
        keep = set(want)
        results: dict[str, Any] = {}
        # (-when it became ready, its place in the graph): the newest ready task first
        ready = [(0, position[t.key], t) for t in tasks if not waiting[t.key]]
        heapq.heapify(ready)
        finished = 0
        failure: BaseException | None = None
        running: dict[Any, tuple[Task, bool]] = {}
        here = aside = 0  # tasks running on this process's threads, sent to the side one
        sides = sum(t.side for t in tasks)  # side tasks not yet done
        side = self._start_side() if sides else None
        snapshot = warning_state()
        try:
            with ThreadPoolExecutor(self.threads, thread_name_prefix="ccdcal-task") as pool:
                while running or (ready and failure is None):
                    skipped = []  # tasks that wait for a free thread
                    while ready and failure is None:
                        item = heapq.heappop(ready)
                        task = item[2]
                        # a side task goes to the side process while it has fewer than two
                        # (one running, the next sent), else to a free thread: once the
                        # lights are done, the threads find stars too. No more tasks run
                        # at once than there are threads: the side process takes one's
                        # place (each task in flight holds its frames)
                        if task.side and side and aside < 2:
                            to = side
                        elif here + min(aside, 1) < self.threads:
                            to = pool
                        else:
                            skipped.append(item)
                            continue
                        args = _resolve(task.args, results.__getitem__)
                        here += to is pool
                        aside += to is side
                        call = (task.fn, *args) if to is pool else (then_release, task.fn, *args)
                        running[to.submit(*call)] = task, to is side
                    for item in skipped:
                        heapq.heappush(ready, item)
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in sorted(done, key=lambda f: position[running[f][0].key]):
                        task, was_aside = running.pop(future)
                        here -= not was_aside
                        aside -= was_aside
                        if future.exception() is not None:
                            failure = failure or future.exception()
                            continue
                        results[task.key] = future.result()
                        finished += 1
                        _let_go(task, users, keep, results)
                        sides -= task.side
                        if sides == 0:
                            self.close()  # its memory is the stack's
                        for follower in followers.get(task.key, ()):
                            waiting[follower.key].discard(task.key)
                            if not waiting[follower.key]:
                                heapq.heappush(ready, (-finished, position[follower.key],
                                                       follower))  # fmt: skip
                        tick(task.key)
        except BaseException:
            for future in running:  # the side process's queued tasks are dropped (also
                future.cancel()  # where it is lent, and so not shut down here)
            self.close()
            raise
        finally:
            restore_warning_state(snapshot)
        self.close()  # the side process lives as long as the run
        if failure is not None:
            raise failure
        return {k: results[k] for k in want}


def start_process(warmup: Callable[[], Any] | None = None) -> Any:
    """A pool of one spawned process (not forked: this process holds threads, numba's and
    the tasks', that a child cannot) running ``warmup`` first; None, with a log line, where
    this system cannot start one (no working semaphores, as in some sandboxes and
    serverless runtimes): the caller then does the work itself."""
    import logging
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_worker, initargs=(1,))  # fmt: skip
    except (OSError, ImportError, NotImplementedError) as err:
        logging.getLogger(__name__).info("no process beside this one (%s): working here", err)
        return None
    pool.submit(warmup or _nothing)
    return pool


def then_release(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, then what it freed given back (the tasks of a process beside, the
    stars' and the figures': its memory counts with this one's, and holding a frame's worth
    of freed heap across tasks cost the run's peak 50 MB; a figure's drawing 57 MB)."""
    try:
        return fn(*args)
    finally:
        release_memory()


def _nothing() -> None:
    """A task that starts a worker process and does nothing."""


def _start_worker(threads: int) -> None:
    """Runs first in each local worker process: the worker's share of the cores for the
    compiled kernels and its products (the processes would fight for them otherwise), and
    a quick exit (:func:`~ccdcal.process_state.skip_exit_collection`)."""
    import atexit

    from . import threads as cores

    cores.set_count(max(1, min(threads, cores.count())))
    atexit.register(skip_exit_collection)


class LocalProcesses(Executor):
    """``workers`` local processes (Dask's multiprocessing scheduler over a pool of freshly
    spawned processes, closed after the run).

    :meth:`start` starts every process at once and runs ``warmup`` (a module-level
    function: imports, compiled kernels) in each, while this process is still planning (a
    pool would otherwise start its second process only when a second task is ready:
    measured, one core then idled for about a second).
    """

    def __init__(self, workers: int, *, warmup: Callable[[], Any] | None = None) -> None:
        self.workers = workers
        self.warmup = warmup
        self._pool: Any = None

    def start(self) -> None:
        """Start the worker processes (they are closed by :meth:`close`)."""
        if self._pool is not None:
            return
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(
            self.workers,
            # not fork: this process may hold threads (numba's, astropy's) a child cannot
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(threads,),
        )
        for _ in range(self.workers):
            self._pool.submit(self.warmup or _nothing)

    def close(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _run(self, tasks: list[Task], want: list[str], tick: Progress) -> dict[str, Any]:
        own = self._pool is None
        self.start()
        try:
            result = self._compute(tasks, want, tick)
        except BaseException:
            self.close()  # waits for the tasks still running, cancels the others
            raise
        if own:
            self.close()
        return result

    def _compute(self, tasks: list[Task], want: list[str], tick: Progress) -> dict[str, Any]:
        import dask
        from dask.callbacks import Callback

        delayed: dict[str, Any] = {}
        for task in tasks:
            args = _resolve(task.args, delayed.__getitem__)
            delayed[task.key] = dask.delayed(task.fn, pure=False)(*args, dask_key_name=task.key)

        def done(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            tick(key)

        with Callback(posttask=done):
            values = dask.compute(
                *[delayed[k] for k in want],
                scheduler="processes",
                pool=self._pool,
                num_workers=self.workers,
                chunksize=1,  # tasks are coarse: sent one at a time, not in batches of six
                optimize_graph=False,  # every task stays a task: progress counts them all
            )
        return dict(zip(want, values, strict=True))


class DaskCluster(Executor):
    """The workers of a Dask cluster: a scheduler's address or a ``distributed.Client``."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def _client(self) -> tuple[Any, bool]:
        try:
            from distributed import Client
        except ImportError as err:
            raise CcdcalError(
                f"scheduler={self.scheduler!r}: a Dask cluster needs the 'distributed' package "
                "(pip install 'ccdcal[cluster]')"
            ) from err
        if isinstance(self.scheduler, Client):
            return self.scheduler, False
        try:
            return Client(self.scheduler, timeout="20s"), True
        except (OSError, TimeoutError, ValueError) as err:
            raise CcdcalError(f"scheduler {self.scheduler!r}: cannot connect ({err})") from None

    def _run(self, tasks: list[Task], want: list[str], tick: Progress) -> dict[str, Any]:
        from distributed import as_completed

        client, own = self._client()
        run = uuid.uuid4().hex[:8]  # a rerun on the same cluster must not meet old keys
        futures: dict[str, Any] = {}
        try:
            names = {}
            for task in tasks:
                args = _resolve(task.args, futures.__getitem__)
                key = f"{task.key}-{run}"
                futures[task.key] = client.submit(task.fn, *args, key=key, pure=False)
                names[key] = task
            users = Counter(k for t in tasks for k in t.refs())
            keep = set(want)
            for future in as_completed(list(futures.values())):
                if future.status == "error":
                    future.result()  # raises the task's exception
                task = names[future.key]
                tick(task.key)
                # a result no later task needs is let go (the scheduler frees it once the
                # tasks holding it are done): the bands of a stack do not pile up
                _let_go(task, users, keep, futures)
            values = client.gather([futures[k] for k in want])
            return dict(zip(want, values, strict=True))
        except BaseException:
            self._stop(client, list(futures.values()))
            raise
        finally:
            for future in futures.values():  # the cluster keeps nothing of the run
                future.release()
            if own:
                client.close()

    @staticmethod
    def _stop(client: Any, futures: list[Any], timeout: float = 60.0) -> None:
        """Cancel a failed run's tasks and wait (a while) for those already running."""
        import time

        keys = {f.key for f in futures}
        client.cancel(futures)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                busy = client.processing()
            except Exception:  # the scheduler is gone: nothing runs any more
                return
            if not any(k in keys for tasks in busy.values() for k in tasks):
                return
            time.sleep(0.1)


def executor(
    workers: int = 1,
    scheduler: Any = None,
    *,
    warmup: Callable[[], Any] | None = None,
    threads: int = 1,
    side_warmup: Callable[[], Any] | None = None,
) -> Executor:
    """The executor for ``workers`` and ``scheduler`` (see the module's documentation);
    ``warmup`` runs first in each local worker process; with ``workers=1``, independent
    tasks share ``threads`` threads of this process, and :attr:`Task.side` tasks run on a
    process beside it, where ``side_warmup`` runs first.

    Examples
    --------
    >>> type(executor()).__name__, type(executor(4)).__name__
    ('InProcess', 'LocalProcesses')
    >>> executor(threads=2).threads
    2
    """
    check(workers, scheduler)
    if scheduler is None or scheduler in LOCAL_SCHEDULERS:
        if workers == 1:
            return InProcess(threads, side_warmup=side_warmup)
        return LocalProcesses(workers, warmup=warmup)
    return DaskCluster(scheduler)


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
    items = list(items)
    run = executor(workers, scheduler)
    if isinstance(run, LocalProcesses) and len(items) <= 1:
        run = InProcess()
    tasks = [Task(f"task-{i}", fn, (item,)) for i, item in enumerate(items)]
    tick = progress or (lambda _n: None)
    results = run.run(tasks, progress=lambda _key: tick(1))
    return [results[t.key] for t in tasks]


def check(workers: Any, scheduler: Any) -> None:
    """Refuse, in one line, a worker count or scheduler that no executor can use.

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
            import importlib.util

            if importlib.util.find_spec("distributed") is None:  # before any work, not after
                raise CcdcalError(
                    f"scheduler {scheduler!r}: a Dask cluster needs the distributed package "
                    "(pip install 'ccdcal[cluster]')"
                )
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


__all__ = [
    "LOCAL_SCHEDULERS",
    "DaskCluster",
    "Executor",
    "InProcess",
    "LocalProcesses",
    "Ref",
    "Task",
    "check",
    "executor",
    "run_tasks",
]
