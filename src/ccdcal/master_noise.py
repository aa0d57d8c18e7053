"""The noise of a master frame: the variance its UNCERT plane holds.

A master's variance from the scatter of its few frames at each pixel is a poor estimate
(from three darks its error bars scatter by 100 % from pixel to pixel); the frames' noise
follows their level, read noise and photons, so :func:`fitted_variance` fits that line to
their own scatter and gives every pixel the line's value. A master of one frame has no
scatter: :func:`single_frame_variance` takes the camera's read noise and gain. Used by
:mod:`ccdcal.masters`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .frame import Frame


@dataclass(frozen=True)
class Noise:
    """A camera's gain (e-/ADU) and read noise (e-), where known.

    Examples
    --------
    >>> Noise(2.0, 6.0).read_variance_adu
    9.0
    """

    gain: float | None = None
    read_noise: float | None = None

    @property
    def read_variance_adu(self) -> float | None:
        """(read noise / gain)², ADU²; None where the read noise is unknown."""
        if self.read_noise is None:
            return None
        return (self.read_noise / (self.gain or 1.0)) ** 2


def single_frame_variance(frame: Frame, noise: Noise | None, photons: bool) -> np.ndarray | None:
    """The variance of a master made of one prepared frame, which no scatter can give: the
    read noise, and with ``photons`` the Poisson noise of the signal above the bias, in ADU²;
    ``noise`` (default the frame's GAIN and RDNOISE) says how much. None where neither the
    read noise nor the gain is known: unknown, never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> f = Frame(np.array([[400.0, -3.0]]), header={"GAIN": 2.0, "RDNOISE": 8.0})
    >>> single_frame_variance(f, None, photons=True).tolist()
    [[216.0, 16.0]]
    """
    if noise is None:
        gain, rn = frame.header.get("GAIN"), frame.header.get("RDNOISE")
        noise = Noise(None if gain is None else float(gain), None if rn is None else float(rn))
    read = noise.read_variance_adu
    if read is None and not (photons and noise.gain):
        return None
    variance = np.full(frame.shape, read or 0.0, np.float32)
    if photons and noise.gain:
        variance += np.clip(np.nan_to_num(frame.data), 0.0, None) / np.float32(noise.gain)
    return variance


#: level bins of the fit in :func:`fitted_variance`
FIT_BINS = 48


def _above_bias_pattern(dark: np.ndarray) -> np.ndarray:
    """A dark that holds the bias: its level less the bias pattern of rows and columns.

    Its ordinary pixels' levels follow the bias pattern, which makes no noise; against
    them a noise line ``a + b * level`` comes out flat, and hot pixels, whose dark current
    does make noise, would get the ordinary pixels' variance. A CCD's bias pattern is one
    of rows and columns (the readout's): the median of each column, then of each row of
    what is left, take it away and leave the dark current, hot pixels, clusters and glow
    alike, with their noise.
    """
    finite = np.isfinite(dark)
    typical = float(np.median(dark[finite])) if finite.any() else 0.0
    filled = np.where(finite, dark, typical).astype(np.float64)
    columns = np.median(filled, axis=0) - typical
    rows = np.median(filled - columns[None, :], axis=1) - typical
    return np.where(finite, filled - columns[None, :] - rows[:, None], np.nan)


#: at most this many pixels go into a master's noise fit (a sample in raster order)
FIT_PIXELS = 1 << 19


def fitted_variance(combined: Frame, level: np.ndarray | None = None) -> np.ndarray | None:
    """A master's variance from its frames' noise model, fitted to their own scatter.

    The combine's variance from the scatter of the few values at each pixel is a poor
    estimate (a χ² of n - 1 degrees of freedom: from three darks its error bars scatter by
    100 % from pixel to pixel). The frames' noise follows their level: read noise and
    photons, ``a + b * level`` per frame. So the per-frame variance at each pixel
    (combine variance × frames combined there) is averaged in bins of level (48 of equal
    width between the 0.1 and 99.99 percentiles, each of 10 pixels or more; values beyond
    10 robust sigma of their bin left out), ``a`` and ``b``
    fitted to the bins (weighted least squares, ``b >= 0``), and the master's variance is
    ``(a + b * level) / frames combined`` at each pixel; ``level`` replaces the master's
    own where its level is not the signal (a dark that holds the bias). None when the combine has no
    variance to fit (a single frame, see :func:`single_frame_variance`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> level = np.linspace(100.0, 5000.0, 200 * 200).reshape(200, 200)
    >>> frames = [Frame(level + rng.normal(0, np.sqrt(25.0 + level / 2.0))) for _ in range(5)]
    >>> from ccdcal.stacking import combine
    >>> v = fitted_variance(combine(frames))
    >>> [round(float(v[0, 0]) * 5 / 75.0, 1), round(float(v[-1, -1]) * 5 / 2525.0, 1)]
    [1.0, 1.0]
    """
    variance, counts = combined.variance, combined.extras.get("NCOMBINE")
    if variance is None or counts is None:
        return None
    given = combined.data if level is None else level
    usable = np.flatnonzero((counts >= 2) & np.isfinite(variance) & np.isfinite(given))
    if usable.size < 10 * FIT_BINS:
        return None
    # a fixed sample of at most FIT_PIXELS: plenty for a line (taken before anything is
    # computed in float64: the whole frame's per-frame variance was half this function's time)
    usable = usable[:: -(-usable.size // FIT_PIXELS)]
    x = given.ravel()[usable].astype(np.float64)
    v = variance.ravel()[usable].astype(np.float64) * counts.ravel()[usable]
    # bins of equal width in level, between its 0.1 and 99.99 percentiles, not of equal
    # count: where the levels differ by their noise alone (a dark's ordinary pixels) bins of
    # equal count would sort pixels by their noise, and a line through them would come out
    # too flat (regression dilution); and a dark's hot pixels, over a wide range of levels,
    # would share the top bin with as many ordinary ones and be cut from it as outliers
    lo, hi = np.percentile(x, [0.1, 99.99])
    edges = np.linspace(lo, hi, FIT_BINS + 1) if hi > lo else np.array([lo, lo + 1.0])
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, edges.size - 2)
    order = np.argsort(which, kind="stable")
    cuts = np.searchsorted(which[order], np.arange(edges.size))
    xs, ys, ws = [], [], []
    for part in (order[a:b] for a, b in itertools.pairwise(cuts)):
        if part.size < 10:
            continue
        bx, bv = x[part], v[part]
        med = float(np.median(bv))
        spread = 1.4826 * float(np.median(np.abs(bv - med))) or float(np.std(bv)) or 1.0
        keep = np.abs(bv - med) <= 10.0 * spread
        bv = bv[keep]
        if bv.size < 3:
            continue
        xs.append(float(np.mean(bx[keep])))
        ys.append(float(np.mean(bv)))
        # weights between least squares over the pixels (a line through a bias-holding
        # dark's few hot pixels) and over the bins' errors (size / mean², which lets the
        # many ordinary pixels, whose levels differ by their noise alone, flatten it)
        ws.append(bv.size / max(float(np.mean(bv)), 1e-30))
    if len(xs) < 2:
        return None
    xa, ya, wa = np.array(xs), np.array(ys), np.array(ws)
    design = np.column_stack([np.ones_like(xa), xa]) * np.sqrt(wa)[:, None]
    (a, b), *_ = np.linalg.lstsq(design, ya * np.sqrt(wa), rcond=None)
    if not b >= 0:  # no photons to see (a bias): the mean noise
        a, b = float(np.sum(wa * ya) / np.sum(wa)), 0.0
    # never below the line at the lowest level fitted: beyond it a line with a negative
    # intercept (a level that holds the bias) would give less than the read noise
    floor = max(a + b * max(float(np.min(x)), 0.0), 0.0)
    n = counts.astype(np.float64)
    level = given.astype(np.float64)
    line = np.maximum(a + b * np.clip(np.nan_to_num(level), 0.0, None), floor)
    model = line / np.maximum(n, 1.0)
    out = np.where(n >= 1, model, np.nan).astype(np.float32)
    return np.where(np.isfinite(variance) | (n == 1), out, np.nan).astype(np.float32)


def _plus(variance: np.ndarray | None, master: Frame | None, k: float = 1.0) -> np.ndarray | None:
    """``variance`` with a subtracted master's (× k²): the same in every frame it was taken
    from, so no scatter between them shows it."""
    if variance is None or master is None or master.variance is None:
        return variance
    return variance + np.float32(k * k) * np.nan_to_num(master.variance)


__all__ = ["FIT_BINS", "FIT_PIXELS", "Noise", "fitted_variance", "single_frame_variance"]
