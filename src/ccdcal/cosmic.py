"""Single-frame cosmic-ray detection: L.A.Cosmic (van Dokkum 2001) through astroscrappy.

For lights too few to stack with rejection. Detected pixels are flagged COSMIC_RAY in the
mask (the data are left as they are unless ``clean=True``), so that ``combine`` and
photometry skip them.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> img = rng.normal(1000, 30, (64, 64)).astype("float32")
>>> img[20, 30] += 5000
>>> f = Frame(img, header={"BUNIT": "electron", "RDNOISE": 8.0})
>>> out = flag_cosmic_rays(f)
>>> bool(out.mask[20, 30] & flags.COSMIC_RAY)
True
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from . import flags
from .frame import Frame

log = logging.getLogger(__name__)


def flag_cosmic_rays(
    frame: Frame,
    *,
    sigclip: float = 4.5,
    sigfrac: float = 0.3,
    objlim: float = 5.0,
    niter: int = 4,
    gain: float | None = None,
    read_noise: float | None = None,
    saturation: float | None = None,
    clean: bool = False,
) -> Frame:
    """Find cosmic rays in one frame with L.A.Cosmic and flag them COSMIC_RAY.

    Parameters
    ----------
    frame
        A calibrated frame that still holds its sky (L.A.Cosmic's noise model needs it).
    sigclip, sigfrac, objlim, niter
        L.A.Cosmic's parameters (see astroscrappy.detect_cosmics): detection limit in sigma,
        fraction of it for neighbouring pixels, contrast limit against stars, iterations.
    gain
        e-/ADU of the data; 1 for data in electrons (BUNIT 'electron'), else the header GAIN.
    read_noise
        Read noise in electrons; default the header's RDNOISE, else 5.
    saturation
        Level above which stars are saturated, in the data's unit.
    clean
        Replace flagged pixels with astroscrappy's median-cleaned values.

    Returns
    -------
    Frame
        A new frame with COSMIC_RAY flags (and cleaned data if asked); NCOSMIC in the header.
    """
    import astroscrappy

    in_electrons = str(frame.header.get("BUNIT", "")).lower().startswith("electron")
    g = gain if gain is not None else 1.0 if in_electrons else float(frame.header.get("GAIN", 1.0))
    rn = read_noise if read_noise is not None else float(frame.header.get("RDNOISE", 5.0))
    known_bad = ~frame.good
    data = np.where(known_bad, np.nanmedian(frame.data), frame.data).astype(np.float32)
    crmask, cleaned = astroscrappy.detect_cosmics(
        data,
        inmask=known_bad,
        sigclip=sigclip,
        sigfrac=sigfrac,
        objlim=objlim,
        niter=niter,
        gain=g,
        readnoise=rn,
        satlevel=saturation if saturation is not None else np.inf,
        verbose=False,
    )
    crmask = np.asarray(crmask, bool) & ~known_bad
    mask = frame.mask_or_zeros().copy()
    mask[crmask] |= flags.COSMIC_RAY
    out_data = np.where(crmask, cleaned, frame.data).astype(np.float32) if clean else frame.data
    out = replace(frame, data=out_data, mask=mask, header=frame.header.copy(), extras={})
    out.header["NCOSMIC"] = (int(crmask.sum()), "pixels flagged by L.A.Cosmic (astroscrappy)")
    log.debug("%s: %d cosmic-ray pixels", frame.name, int(crmask.sum()))
    return out


__all__ = ["flag_cosmic_rays"]
