"""Experiments on simulated nights: the tutorial's "try it" questions, measured.

``frames``
    Background noise of a stack against the number of frames: 1/√N until the noise the
    master frames leave in every frame sets a floor (:func:`frames`).
``cosmic-rays``
    Cosmic-ray pixels left by a plain mean, a median and each rejection algorithm, for
    several rates and numbers of frames, with the noise each costs (:func:`cosmic_rays`).
``vignetting``
    Photometric error against distance from the centre for several vignetting strengths and
    flat-field qualities (:func:`vignetting`).

Each returns a result with ``.table()``, ``.to_csv(path)``, ``.plot(path)`` and
``.write(out_dir)``; the same seed gives the same numbers. From the command line:
``ccdcal experiment frames --seed 1 --out results/``.

Examples
--------
>>> sorted(EXPERIMENTS)
['cosmic-rays', 'frames', 'vignetting']
"""

from __future__ import annotations

from collections.abc import Callable

from ._common import ExperimentResult, parse_list, parse_size
from .cosmic import CosmicRaysResult, cosmic_rays
from .frames import FramesResult, frames
from .vignetting import FLAT_QUALITIES, VignettingResult, vignetting

#: experiment name (as on the command line) -> function
EXPERIMENTS: dict[str, Callable[..., ExperimentResult]] = {
    "frames": frames,
    "cosmic-rays": cosmic_rays,
    "vignetting": vignetting,
}

__all__ = [
    "EXPERIMENTS",
    "FLAT_QUALITIES",
    "CosmicRaysResult",
    "ExperimentResult",
    "FramesResult",
    "VignettingResult",
    "cosmic_rays",
    "frames",
    "parse_list",
    "parse_size",
    "vignetting",
]
