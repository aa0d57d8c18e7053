"""ccdcal: CCD calibration from raw frames to science-ready stacks, and a faithful CCD simulator.

Examples
--------
>>> import ccdcal
>>> ccdcal.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .calibrate import calibrate  # bound here so that the submodule cannot shadow it
from .errors import CcdcalError, CcdcalWarning, FrameError
from .frame import Frame

# Heavier parts load on first use, so that `import ccdcal` and the CLI stay quick.
_LAZY = {
    "combine": ("ccdcal.combine", "combine"),
    "SigmaClip": ("ccdcal.combine", "SigmaClip"),
    "MinMaxClip": ("ccdcal.combine", "MinMaxClip"),
    "AvSigClip": ("ccdcal.combine", "AvSigClip"),
    "LinearFitClip": ("ccdcal.combine", "LinearFitClip"),
    "MedianSigmaClip": ("ccdcal.combine", "MedianSigmaClip"),
    "PClip": ("ccdcal.combine", "PClip"),
    "PercentileClip": ("ccdcal.combine", "PercentileClip"),
    "WinsorizedSigmaClip": ("ccdcal.combine", "WinsorizedSigmaClip"),
    "VarianceClip": ("ccdcal.combine", "VarianceClip"),
    "CCDClip": ("ccdcal.combine", "CCDClip"),
    "ESDClip": ("ccdcal.combine", "ESDClip"),
    "reduce": ("ccdcal.pipeline", "reduce"),
    "characterize": ("ccdcal.camera", "characterize"),
    "plan": ("ccdcal.pipeline", "plan"),
    "register": ("ccdcal.registration", "register"),
    "simulate": ("ccdcal.simulate", None),
    "flags": ("ccdcal.flags", None),
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ccdcal' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


__all__ = [
    "CcdcalError",
    "CcdcalWarning",
    "Frame",
    "FrameError",
    "__version__",
    "calibrate",
    *_LAZY,
]
