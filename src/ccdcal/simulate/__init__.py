"""A physically consistent CCD simulator: a detector with fixed properties, a sky, whole nights.

- :class:`Detector`: what stays the same from frame to frame (bias structure, dark current
  and hot pixels, flat response per filter, gain, read noise, full well, overscan), and
  methods that take a bias, dark, flat or light with a :class:`numpy.random.Generator`.
- :class:`Scene`: the sky as a rate in electrons per second (smooth sky, Gaussian stars)
  with its star table.
- :func:`night`: a whole observing night written as raw 16-bit FITS plus the truth.

Examples
--------
>>> import numpy as np
>>> from ccdcal.simulate import Detector, Scene
>>> det = Detector.create(seed=0, shape=(40, 40))
>>> scene = Scene.random(det.shape, np.random.default_rng(0), nstars=3)
>>> frame, crs = det.light(scene, 60.0, "V", np.random.default_rng(1))
>>> frame.header["IMAGETYP"], crs.shape
('LIGHT', (40, 40))
"""

from .cosmics import DEFAULT_COSMIC_ENERGY, DEFAULT_COSMIC_RATE, CosmicHits, cosmic_rays
from .detector import ADC_MAX, COSMIC_MASK_SIGMAS, Detector
from .night import Night, night
from .scene import Scene, render_stars

__all__ = [
    "ADC_MAX",
    "COSMIC_MASK_SIGMAS",
    "DEFAULT_COSMIC_ENERGY",
    "DEFAULT_COSMIC_RATE",
    "CosmicHits",
    "Detector",
    "Night",
    "Scene",
    "cosmic_rays",
    "night",
    "render_stars",
]
