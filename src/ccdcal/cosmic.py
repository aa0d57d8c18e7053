"""Cosmic rays found and flagged COSMIC_RAY in the mask, so that ``combine`` and photometry
skip them (the data are left as they are).

- :func:`flag_cosmic_rays`: in one frame, with L.A.Cosmic (van Dokkum 2001) through
  astroscrappy; for lights too few to stack with rejection.
- :func:`flag_against_model`: in each frame of a stack, against the median of the stack's
  aligned frames brought back onto the frame's own pixels (AstroDrizzle's "blot"),
  allowing for the frames' different seeing and for small misalignments. The stack's own
  rejection cannot do this when the seeing changes: a sharp frame's star peak stands as
  far above the others as a cosmic ray does. Flagged in the frame's own pixels, a hit's
  flag then reaches every resampled pixel it touches.

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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

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


def median_model(
    frames: list[Any],
    *,
    throughput: Sequence[float] | None = None,
    memory_limit: int | str | None = None,
) -> Frame:
    """The median of aligned frames (Frames or paths, streamed within ``memory_limit``), a
    cosmic-ray-free model of each of them for :func:`flag_against_model`.

    Each frame is first scaled by its ``throughput`` (the flux of its stars relative to the
    others', from the registration; clouds) to the mean one and offset to the common sky
    level (its median), so that a frame of brighter sky or under cloud neither drags the
    median nor stands out against it.
    """
    from .stacking import combine

    scale = None
    if throughput is not None:
        t = np.asarray(throughput, np.float64)
        good = np.isfinite(t) & (t > 0)
        if good.any() and not np.allclose(t[good], t[good][0]):
            scale = [float(v) for v in np.where(good, t, np.median(t[good]))]
    return combine(frames, method="median", scale=scale, zero="median",
                   memory_limit=memory_limit)  # fmt: skip


#: a frame with more of its good pixels above its model than this is not flagged at all: its
#: model does not fit it (a sky gradient, a passing cloud), and the stack's rejection decides
MAX_FLAGGED = 0.01


def flag_against_model(
    frame: Frame,
    model: Frame,
    *,
    throughput: float = 1.0,
    seeing: tuple[float, float] = (0.0, 0.0),
    snr: tuple[float, float] = (5.0, 3.0),
    scale: tuple[float, float] = (1.2, 0.7),
) -> Frame:
    """Flag COSMIC_RAY where a frame stands above a model of it (the median of the night's
    aligned frames, brought onto this frame's pixels) by more than the noise, the model's
    local slope and the frame's seeing allow.

    The model is first brought to the frame's level: multiplied by ``throughput`` (the
    frame's star flux relative to the model's) and offset by the median difference, so
    that another sky level or a thin cloud is no excess. A pixel is then a cosmic ray when
    ``x - m > snr * noise + scale * slope + seeing allowance``, with ``noise`` the root sum
    of the frame's and the model's variances, ``slope`` the largest difference between
    ``m`` and its four neighbours (for small misalignments; AstroDrizzle's ``driz_cr`` has
    this term), and the seeing allowance ``|laplacian(m)| / 2 * |s² - s_m²| * max(1, s_m² /
    s²)`` from ``seeing = (s², s_m²)``, the frame's and the model's Gaussian PSF variances
    (pixels²). A Gaussian star changes with its width as ∂I/∂(s²) = ∇²I / 2; the last
    factor makes the allowance the exact difference of the peaks where the frame is the
    sharper (the linear term alone is half of it when the seeing differs by a third). The
    first of each pair of thresholds flags the cores, the second the neighbours of a core.
    Where more than :data:`MAX_FLAGGED` of the good pixels would be flagged, the model does
    not describe the frame: nothing is flagged and NCRSTACK is -1.

    Returns
    -------
    Frame
        The frame with COSMIC_RAY added to its mask; NCRSTACK in its header.

    Examples
    --------
    >>> import numpy as np
    >>> sky = np.random.default_rng(0).normal(100.0, 1.0, (32, 32)).astype(np.float32)
    >>> light = sky + 200.0  # a brighter sky: no excess
    >>> light[5, 7] += 500.0  # a cosmic ray
    >>> out = flag_against_model(Frame(light, variance=np.ones_like(light)),
    ...                          Frame(np.full((32, 32), 100.0, np.float32)))
    >>> np.argwhere(out.mask & flags.COSMIC_RAY).tolist()
    [[5, 7]]
    """
    from scipy import ndimage

    # float32 and few whole-frame temporaries: this runs once per light of a stack
    k = np.float32(throughput if np.isfinite(throughput) and throughput > 0 else 1.0)
    m = np.nan_to_num(model.data, copy=True).astype(np.float32, copy=False)
    m *= k
    usable = frame.good & np.isfinite(model.data) & model.good & np.isfinite(frame.data)
    sample = (frame.data - m)[::3, ::3][usable[::3, ::3]]
    if sample.size:
        m += np.float32(np.median(sample))
    ny, nx = m.shape
    pad = np.pad(m, 1, mode="edge")
    slope = np.zeros_like(m)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        np.maximum(slope, np.abs(pad[1 + dy : 1 + dy + ny, 1 + dx : 1 + dx + nx] - m), out=slope)
    del pad
    own, other = (max(float(v), 0.0) for v in seeing)
    factor = abs(own - other) / 2.0 * (max(1.0, other / own) if own > 0 else 1.0)
    allowance = np.abs(ndimage.laplace(m)) * np.float32(factor)
    noise = np.zeros_like(m) if frame.variance is None else frame.variance.astype(np.float32)
    if model.variance is not None:
        noise += np.nan_to_num(model.variance) * (k * k)
    np.sqrt(np.clip(noise, 0.0, None, out=noise), out=noise)
    excess = frame.data - m
    del m
    core = excess > snr[0] * noise + scale[0] * slope + allowance
    near = ndimage.binary_dilation(core, np.ones((3, 3), bool))
    hit = core | (near & (excess > snr[1] * noise + scale[1] * slope + allowance))
    del noise, slope, allowance, excess, near
    hit &= usable
    count = int(hit.sum())
    header = frame.header.copy()
    if count > MAX_FLAGGED * max(int(usable.sum()), 1):
        log.warning("%s: %d pixels stand above the median of the aligned lights: its model does "
                    "not fit, none flagged", frame.name, count)  # fmt: skip
        header["NCRSTACK"] = (-1, "model does not fit: none flagged against the median")
        return replace(frame, header=header)
    mask = frame.mask_or_zeros().copy()
    mask[hit] |= flags.COSMIC_RAY
    header["NCRSTACK"] = (count, "cosmic-ray pixels flagged against the median")
    return replace(frame, mask=mask, header=header)


__all__ = ["flag_against_model", "flag_cosmic_rays", "median_model"]
