"""ccdcal: CCD calibration from raw frames to science-ready stacks, and a faithful CCD simulator.

Every public name resolves one way: ``ccdcal.calibrate`` and ``ccdcal.combine`` are the
functions, and ``ccdcal.calibration``, ``ccdcal.stacking``, ``ccdcal.experiments``,
``ccdcal.simulate`` ... the modules. Names and modules load on first use, so that
``import ccdcal`` and the command line stay quick.

Examples
--------
>>> import ccdcal
>>> ccdcal.__version__
'0.1.0'
>>> ccdcal.experiments.__name__
'ccdcal.experiments'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import CcdcalError, CcdcalWarning, FrameError

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from . import (
        calibration,
        camera,
        config,
        experiments,
        flags,
        pipeline,
        quality,
        registration,
        report,
        simulate,
        stacking,
    )
    from .calibration import calibrate
    from .camera import characterize
    from .frame import Frame
    from .pipeline import plan, reduce
    from .registration import register
    from .stacking import (
        AvSigClip,
        CCDClip,
        ESDClip,
        LinearFitClip,
        MedianSigmaClip,
        MinMaxClip,
        PClip,
        PercentileClip,
        SigmaClip,
        VarianceClip,
        WinsorizedSigmaClip,
        combine,
    )

#: names of other modules, loaded on first use: name -> (module, attribute)
_LAZY = {
    "Frame": ("ccdcal.frame", "Frame"),
    "calibrate": ("ccdcal.calibration", "calibrate"),
    "combine": ("ccdcal.stacking", "combine"),
    "SigmaClip": ("ccdcal.stacking", "SigmaClip"),
    "MinMaxClip": ("ccdcal.stacking", "MinMaxClip"),
    "AvSigClip": ("ccdcal.stacking", "AvSigClip"),
    "LinearFitClip": ("ccdcal.stacking", "LinearFitClip"),
    "MedianSigmaClip": ("ccdcal.stacking", "MedianSigmaClip"),
    "PClip": ("ccdcal.stacking", "PClip"),
    "PercentileClip": ("ccdcal.stacking", "PercentileClip"),
    "WinsorizedSigmaClip": ("ccdcal.stacking", "WinsorizedSigmaClip"),
    "VarianceClip": ("ccdcal.stacking", "VarianceClip"),
    "CCDClip": ("ccdcal.stacking", "CCDClip"),
    "ESDClip": ("ccdcal.stacking", "ESDClip"),
    "reduce": ("ccdcal.pipeline", "reduce"),
    "characterize": ("ccdcal.camera", "characterize"),
    "plan": ("ccdcal.pipeline", "plan"),
    "register": ("ccdcal.registration", "register"),
}

#: the modules a user reaches from ``ccdcal`` (every other submodule loads on first use too)
SUBPACKAGES = (
    "calibration",
    "camera",
    "config",
    "experiments",
    "flags",
    "pipeline",
    "quality",
    "registration",
    "report",
    "simulate",
    "stacking",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
    elif name.startswith("__"):
        raise AttributeError(f"module 'ccdcal' has no attribute {name!r}")
    else:  # a submodule: ccdcal.experiments, ccdcal.masters, ...
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'ccdcal' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# the API and the modules (``from ccdcal import *`` loads them all)
__all__ = [
    "AvSigClip",
    "CCDClip",
    "CcdcalError",
    "CcdcalWarning",
    "ESDClip",
    "Frame",
    "FrameError",
    "LinearFitClip",
    "MedianSigmaClip",
    "MinMaxClip",
    "PClip",
    "PercentileClip",
    "SigmaClip",
    "VarianceClip",
    "WinsorizedSigmaClip",
    "__version__",
    "calibrate",
    "calibration",
    "camera",
    "characterize",
    "combine",
    "config",
    "experiments",
    "flags",
    "pipeline",
    "plan",
    "quality",
    "reduce",
    "register",
    "registration",
    "report",
    "simulate",
    "stacking",
]
