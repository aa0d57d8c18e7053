"""Know the camera: gain, read noise, linearity, dark current and bad pixels measured from
the night's own calibration frames, and checked against what the headers say.

- Read noise from pairs of biases: the robust scatter of their difference over √2 (the
  fixed bias pattern cancels), per amplifier region.
- Gain by the photon-transfer method (Janesick, *Photon Transfer*, 2007): two flats of one
  level differ only by noise, whose variance is ``(μ₁ + k²μ₂)/g + (1 + k²)·σ_r²`` for the
  difference ``F₁ - k·F₂`` with ``k = μ₁/μ₂``; ``g`` follows from the measured variance,
  the bias-subtracted levels and the read noise in ADU. Measured in tiles, so that the
  vignetting does not widen the scatter and the tiles' spread gives the uncertainty.
- Linearity from flats at several exposure times: their level per second against the
  lower levels' one, and the level where the response departs by 1 %.
- Dark current from the darks (level per second above the bias) and hot pixels (their
  median per pixel more than five robust sigmas above the rest).
- Bad pixels from the ratio of two flats of different level, where a pixel that does not
  respond like its neighbours stands out (IRAF's ``ccdmask``, as ccdproc's ``ccdmask``).

Examples
--------
>>> import tempfile, ccdcal
>>> night = ccdcal.simulate.night(tempfile.mkdtemp(), shape=(96, 96), nbias=4, ndark=0,
...                               nflat=4, nlight=1, gain=2.0, read_noise=6.0, nstars=0)
>>> c = characterize(night.raw_dir)
>>> round(c.gain.value, 1), round(c.read_noise.value)
(2.0, 6)
"""

from __future__ import annotations

from .characterization import Characterization
from .measures import (
    Linearity,
    TransferPoint,
    Value,
    bad_pixels,
    clipped_std,
    linearity,
    photon_transfer,
    read_noise_adu,
)
from .night import characterize

__all__ = [
    "Characterization",
    "Linearity",
    "TransferPoint",
    "Value",
    "bad_pixels",
    "characterize",
    "clipped_std",
    "linearity",
    "photon_transfer",
    "read_noise_adu",
]
