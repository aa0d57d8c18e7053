"""Reducing a night: a plan of products, executed here, on local processes or on a cluster.

- :func:`plan` scans a raw folder and returns a :class:`Plan`: the graph of products (the
  camera measured from the night's frames, master bias, master darks, master flats,
  calibrated lights, stacks), each with its output path,
  inputs, recipe, options and key (:mod:`~ccdcal.pipeline.products`,
  :mod:`~ccdcal.pipeline.planning`);
- :func:`execute` builds the products that are not up to date, in dependency order, with an
  executor of :mod:`ccdcal.parallel` (:mod:`~ccdcal.pipeline.execution`); the recipes are
  in :mod:`~ccdcal.pipeline.recipes`;
- :func:`reduce` is plan, execute, report (:mod:`~ccdcal.pipeline.reduction`).

Examples
--------
>>> import tempfile, ccdcal
>>> tmp = tempfile.mkdtemp()
>>> night = ccdcal.simulate.night(tmp + "/night", seed=3, shape=(48, 48), nbias=3, ndark=3,
...                               nflat=3, nlight=2)
>>> p = ccdcal.plan(tmp + "/night/raw", tmp + "/out")
>>> outcome = execute(p, only="masters")
>>> [product.label for product in outcome.built]
['camera', 'bias', 'dark_60s', 'flat_V']
>>> [str(s) for s in p.states().values()][-3:]
['to build: no output yet', 'to build: no output yet', 'to build: no output yet']
"""

from __future__ import annotations

from .execution import Outcome, execute
from .planning import choose_dark, plan
from .products import PARTS, Plan, Product, State
from .reduction import ReduceResult, reduce

__all__ = [
    "PARTS",
    "Outcome",
    "Plan",
    "Product",
    "ReduceResult",
    "State",
    "choose_dark",
    "execute",
    "plan",
    "reduce",
]
