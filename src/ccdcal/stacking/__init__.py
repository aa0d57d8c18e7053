"""The one stacking engine: :func:`combine` and its rejection algorithms.

``ccdcal.combine`` is both this package and the function: the package is callable, so that
``ccdcal.combine(frames, ...)`` works whichever of the two an import left under that name.

Examples
--------
>>> import numpy as np
>>> import ccdcal
>>> frames = [np.full((2, 2), v, np.float32) for v in (1.0, 2.0, 3.0, 50.0)]
>>> float(ccdcal.combine(frames, reject=ccdcal.MinMaxClip(nlow=0, nhigh=1)).data[0, 0])
2.0
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .api import Combination, Rows, Setup, combine
from .rejection import (
    AvSigClip,
    CCDClip,
    ESDClip,
    LinearFitClip,
    MedianSigmaClip,
    MinMaxClip,
    PClip,
    PercentileClip,
    Rejection,
    SigmaClip,
    VarianceClip,
    WinsorizedSigmaClip,
)


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`combine`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return combine(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = [
    "AvSigClip",
    "CCDClip",
    "Combination",
    "ESDClip",
    "LinearFitClip",
    "MedianSigmaClip",
    "MinMaxClip",
    "PClip",
    "PercentileClip",
    "Rejection",
    "Rows",
    "Setup",
    "SigmaClip",
    "VarianceClip",
    "WinsorizedSigmaClip",
    "combine",
]
