"""Registration: align frames that move on the sky before they are stacked.

- :func:`find_stars` (:mod:`~ccdcal.registration.stars`): a frame's stars and its quality
  (star count, FWHM, ellipticity, sky level and noise);
- :func:`match` (:mod:`~ccdcal.registration.match`): the transform from one frame's stars
  to another's (astroalign's asterisms, refined on all stars), or :func:`wcs_transform`
  through their celestial WCS;
- :class:`Transform` and :func:`fit` (:mod:`~ccdcal.registration.transform`): shifts,
  similarities and affine transforms, fitted robustly;
- :func:`resample` (:mod:`~ccdcal.registration.resample`): a frame on another grid, with
  its variance and mask (Lanczos-3, bicubic, bilinear);
- :func:`register` (:mod:`~ccdcal.registration.api`): every frame onto a reference, with
  the selection of frames worth stacking.
"""

from __future__ import annotations

from ..compiled import guard_cache
from .api import (
    FrameRegistration,
    Registration,
    Selection,
    choose_reference,
    register,
    write_aligned,
)
from .match import Match, MatchError, match, wcs_transform
from .resample import KERNELS, resample
from .stars import Quality, Stars, find_stars
from .transform import Transform, fit

guard_cache()  # before any of the package's kernels is compiled

__all__ = [
    "KERNELS",
    "FrameRegistration",
    "Match",
    "MatchError",
    "Quality",
    "Registration",
    "Selection",
    "Stars",
    "Transform",
    "choose_reference",
    "find_stars",
    "fit",
    "match",
    "register",
    "resample",
    "wcs_transform",
    "write_aligned",
]
