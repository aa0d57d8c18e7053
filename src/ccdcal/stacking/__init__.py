"""The one stacking engine: :func:`combine` and its rejection algorithms (``ccdcal.combine``
is the function, this package ``ccdcal.stacking``).

Examples
--------
>>> import numpy as np
>>> import ccdcal
>>> frames = [np.full((2, 2), v, np.float32) for v in (1.0, 2.0, 3.0, 50.0)]
>>> float(ccdcal.combine(frames, reject=ccdcal.MinMaxClip(nlow=0, nhigh=1)).data[0, 0])
2.0
"""

from __future__ import annotations

from ..compiled import guard_cache
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

guard_cache()  # before any of the package's kernels is compiled

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
