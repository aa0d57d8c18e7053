"""A physically faithful CCD simulator: a detector with fixed properties, a sky, whole nights.

Examples
--------
>>> import numpy as np
>>> from ccdcal.simulate import Detector, Scene
>>> det = Detector.create(seed=0, shape=(40, 40))
>>> scene = Scene.random(det.shape, np.random.default_rng(0), nstars=3)
>>> frame, crs = det.light(scene.rate, 60.0, "V", np.random.default_rng(1))
>>> frame.header["IMAGETYP"], crs.shape
('LIGHT', (40, 40))
"""

from .detector import ADC_MAX, Detector, cosmic_rays
from .night import DEFAULT_COSMIC_RATE, Night, night
from .scene import Scene

__all__ = ["ADC_MAX", "DEFAULT_COSMIC_RATE", "Detector", "Night", "Scene", "cosmic_rays", "night"]
