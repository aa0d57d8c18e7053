"""``execute``: build the products of a plan that are not up to date, here or elsewhere.

The products to build become a graph of tasks (:mod:`ccdcal.parallel`), one per product, in
dependency order; an executor runs it in this process, on local processes or on a Dask
cluster, so that independent products (the darks of several exposures, the flats of several
filters, the lights, the stacks of several objects) run at the same time.

A product made by a combine can be split into row bands: its inputs prepared one task each
(masters), one setup task, a task per band over all inputs, and one task that assembles and
writes it. On a cluster this happens by itself when a combine reads more than
:data:`SPLIT_BYTES`; ``band_rows`` asks for it anywhere. The file is the same either way.
"""

from __future__ import annotations

import logging
import math
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..errors import CcdcalError
from ..parallel import DaskCluster, Executor, Ref, Task, executor
from ..process_state import release_memory
from . import parts as pieces
from . import recipes
from .products import PARTS, Plan, Product, State, describe_inputs

log = logging.getLogger(__name__)

#: a combine that reads more than this is split into row bands on a cluster
SPLIT_BYTES = 2 * 2**30

_BAR = {
    "masters": "masters",
    "calibrated": "calibrate",
    "registered": "register",
    "stacks": "stacks",
}


@dataclass
class Outcome:
    """What :func:`execute` did.

    Attributes
    ----------
    built
        Products built by this run, in plan order.
    reused
        Products of the run's selection that were up to date and kept.
    states
        The products' states before the run (read from their files when asked for).
    """

    built: list[Product]
    reused: list[Product]
    states: Mapping[str, State]


def execute(
    the_plan: Plan,
    *,
    only: str | None = None,
    workers: int | Executor = 1,
    scheduler: Any = None,
    memory_limit: int | None = None,
    band_rows: int | None = None,
    progress: bool = False,
    states: Mapping[str, State] | None = None,
    made: Callable[[Product], None] | None = None,
) -> Outcome:
    """Build what ``the_plan`` needs built, in dependency order; keep the rest.

    Parameters
    ----------
    the_plan
        From :func:`ccdcal.plan`.
    only
        ``"masters"``, ``"calibrated"`` or ``"stacks"``: build just that part (and what it
        needs that is not up to date); default everything.
    workers, scheduler
        Where the tasks run (see :mod:`ccdcal.parallel`): here (``workers=1``), on
        ``workers`` local processes, or on the Dask cluster whose scheduler address (or
        ``distributed.Client``) is given; or ``workers`` an
        :class:`~ccdcal.parallel.Executor`. The files are the same.
    memory_limit
        Bytes each combine may use (default a quarter of the memory available where it
        runs); larger sets stream from disk.
    band_rows
        Split every combine into bands of about this many rows (default: only on a cluster,
        for combines that read more than :data:`SPLIT_BYTES`).
    progress
        One progress bar per part on standard error.
    states
        The products' states, when already known (:meth:`Plan.states`).
    made
        Called with each product as it is made, in this process (the report's early
        figures, :class:`~ccdcal.report.EarlyFigures`).

    Returns
    -------
    Outcome
        The products built and kept.
    """
    check_band_rows(band_rows)
    run = workers if isinstance(workers, Executor) else executor(workers, scheduler)
    states = the_plan.states() if states is None else states
    todo = the_plan.to_build(states, only)
    needed = {n for p in todo for n in p.needs}
    reused = [
        p
        for p in the_plan.products.values()
        if (only in (None, p.part) or p.name in needed) and states[p.name].up_to_date
    ]
    for product in reused:  # said apart from what is built: a rerun tells the truth
        log.info("%s: up to date", product.name)
    if not todo:
        return Outcome(built=[], reused=reused, states=states)
    tasks = graph(the_plan, todo, run, memory_limit=memory_limit, band_rows=band_rows)
    keys = {t.key for t in tasks}
    split = [p for p in todo if f"{p.name}#setup" in keys]
    products = {p.name: p for p in todo}
    try:
        with _bars(progress, todo, Counter(p.part for p in reused)) as bar:

            def done(key: str) -> None:
                product = products.get(key)  # the task that writes a product
                if product is not None:
                    log.info("%s: made from %s", product.name, describe_inputs(product))
                    bar(product.part)
                    if made is not None:
                        made(product)

            run.run(tasks, want=list(products), progress=done)
    finally:
        # the executor has stopped every task of the run by now, failed or not
        for p in split:
            shutil.rmtree(pieces.scratch(p), ignore_errors=True)
        recipes.forget_masters()
        release_memory()  # what the products' tasks freed: the report comes next
    return Outcome(built=todo, reused=reused, states=states)


def check_band_rows(band_rows: Any) -> None:
    """Refuse, in one line, a band height that is not a whole number of at least 1."""
    if band_rows is None:
        return
    if isinstance(band_rows, bool) or not isinstance(band_rows, int) or band_rows < 1:
        raise CcdcalError(f"band_rows must be a whole number of at least 1, not {band_rows!r}")


def graph(
    the_plan: Plan,
    todo: Sequence[Product],
    run: Executor,
    *,
    memory_limit: int | None = None,
    band_rows: int | None = None,
) -> list[Task]:
    """The tasks that build ``todo`` (products in plan order), each after what it needs.

    A product is one task named as the product, or, split into bands, the tasks
    ``NAME#prepare-i`` (a master's or a registered stack's inputs), for a registered stack
    ``NAME#median`` and ``NAME#check-i`` (cosmic rays against the median), ``NAME#setup``,
    ``NAME#rows-i`` and ``NAME`` (the assembly, which writes the file).
    """
    building = {p.name for p in todo}
    # finding stars holds Python's lock: beside the threads that calibrate lights, where
    # there is enough of it to pay for a process's start
    stars = sum(p.kind == "stars" for p in todo)
    aside = stars > 0 and side_pays(stars, the_plan.shape)
    tasks: list[Task] = []
    for p in todo:
        after = [Ref(n) for n in p.needs if n in building]
        count = _bands(the_plan, p, run, band_rows)
        if count is None:
            side = aside and p.kind == "stars"
            tasks.append(Task(p.name, recipes.build, (p, memory_limit, after), side=side))
            continue
        if p.kind == "stack" and p.options.get("registration") is None:
            inputs: list[Ref] | None = None  # the calibrated lights themselves
        else:
            prepared = [
                Task(f"{p.name}#prepare-{i}", pieces.prepare, (p, i, after))
                for i in range(len(p.inputs))
            ]
            tasks += prepared
            inputs = [Ref(t.key) for t in prepared]
            if p.kind == "stack":  # cosmic rays against the median, where seeing differs
                median = Task(f"{p.name}#median", pieces.model, (p, inputs, memory_limit))
                checked = [
                    Task(f"{p.name}#check-{i}", pieces.check, (p, i, Ref(median.key), ref))
                    for i, ref in enumerate(inputs)
                ]
                tasks += [median, *checked]
                inputs = [Ref(t.key) for t in checked]
        setup = Task(f"{p.name}#setup", pieces.setup, (p, inputs, memory_limit, after))
        bands = [
            Task(f"{p.name}#rows-{i}", pieces.rows, (Ref(setup.key), i, count))
            for i in range(count)
        ]
        tasks += [setup, *bands]
        parts = [Ref(t.key) for t in bands]
        tasks.append(Task(p.name, pieces.assemble, (p, Ref(setup.key), parts)))
    return tasks


#: seconds of finding stars per pixel of a light (sep on 2048x2048 frames here: 0.15 s)
STARS_SECONDS_PER_PIXEL = 3.5e-8
#: a process beside takes about 1.3 s of CPU to start (spawn, imports): it is started where
#: the stars to find take at least this long
SIDE_SECONDS = 3.0


def side_pays(lights: int, shape: tuple[int, int] | None) -> bool:
    """Whether finding the stars of ``lights`` lights of ``shape`` is worth a process beside
    this one (:attr:`ccdcal.parallel.Task.side`): on a small night its start costs more than
    it gains (measured: the test suite's small nights took 2 minutes longer with one).

    Examples
    --------
    >>> side_pays(40, (2048, 2048)), side_pays(6, (1024, 1024)), side_pays(5, None)
    (True, False, False)
    """
    if shape is None:
        return False
    return lights * shape[0] * shape[1] * STARS_SECONDS_PER_PIXEL >= SIDE_SECONDS


def _bands(the_plan: Plan, product: Product, run: Executor, band_rows: int | None) -> int | None:
    """How many row bands ``product`` is combined in, or None for one task."""
    if product.kind not in recipes.COMBINED or the_plan.shape is None:
        return None
    ny, nx = the_plan.shape
    if band_rows is None:
        if not isinstance(run, DaskCluster):
            return None  # one machine's cores already share every combine (numba threads)
        # bands read data, variance and mask: 10 bytes a pixel (a master's prepared files too)
        count = math.ceil(len(product.inputs) * ny * nx * 10 / SPLIT_BYTES)
    else:
        count = math.ceil(ny / int(band_rows))
    return count if count >= 2 else None


@contextmanager
def _bars(enabled: bool, todo: Sequence[Product], reused: Counter[str]) -> Iterator[Callable]:
    """One progress bar per part, counting products; the returned function counts one
    finished product of a part."""
    from tqdm import tqdm

    counts = Counter(p.part for p in todo)
    bars: dict[str, Any] = {}
    shown = [part for part in PARTS if counts[part] or reused[part]]
    for position, part in enumerate(shown):
        bars[part] = tqdm(
            total=counts[part] + reused[part],
            initial=reused[part],
            desc=_BAR[part],
            position=position,
            disable=not enabled,
            leave=False,
            file=sys.stderr,
        )

    def tick(group: str) -> None:
        if group in bars:
            bars[group].update(1)

    try:
        yield tick
    finally:
        for bar in bars.values():
            bar.close()


__all__ = ["SPLIT_BYTES", "Outcome", "execute", "graph"]
