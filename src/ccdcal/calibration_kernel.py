"""The per-pixel arithmetic of :func:`ccdcal.calibrate.calibrate` in one compiled pass.

The calibration steps (:func:`~ccdcal.calibrate.subtract_bias`,
:func:`~ccdcal.calibrate.subtract_dark`, :func:`~ccdcal.calibrate.flat_correct`,
:func:`~ccdcal.calibrate.gain_correct`) each return a new frame, which is what a user
composing them wants. Chained, they allocate and fill a dozen full-frame arrays: on a
2048x2048 frame that cost more than the arithmetic itself (fresh pages, zeroed by the
kernel, at every step). This pass reads each input once and writes the data and variance
once, with the same float32 operations in the same order, so its results equal the chained
steps' bit for bit (``tests/test_calibrate.py`` checks it).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True, nogil=True, error_model="numpy")
def calibrate_pixels(
    data, has_bias, bias, has_bvar, bias_var, has_dark, k, k2, dark, has_dvar, dark_var,
    has_flat, flat_safe, flat_bad, has_fvar, flat_var, has_gain, g, gfn, rn2,
    out_data, out_var,
):  # fmt: skip
    """Bias, scaled dark, flat and gain on ``data``, with the variance, into the outputs.

    ``k`` (float32) scales the dark and ``k2`` (float32 of k², computed in float64) its
    variance; ``flat_safe`` is the flat with 1 where ``flat_bad``; ``gfn`` (float32) is the
    gain used for the Poisson term and ``rn2`` (float32) the read noise² in ADU². Arrays a
    flag says are absent may be any small array.
    """
    ny, nx = data.shape
    zero = np.float32(0.0)
    gg = g * g
    for y in prange(ny):
        for x in range(nx):
            d = data[y, x]
            ab = d - bias[y, x] if has_bias else d
            # np.clip(ab, 0, None): NaN stays NaN
            p = (ab if (ab >= zero or ab != ab) else zero) / gfn
            v = p + rn2
            if has_bias:
                d = d - bias[y, x]
                if has_bvar:
                    v = v + bias_var[y, x]
            if has_dark:
                d = d - k * dark[y, x]
                if has_dvar:
                    v = v + k2 * dark_var[y, x]
            if has_flat:
                s = flat_safe[y, x]
                d = d / s
                v = v / (s * s)
                if has_fvar:
                    fv = zero if flat_bad[y, x] else flat_var[y, x]
                    v = v + (d * d) * fv / (s * s)
            if has_gain:
                d = d * g
                v = v * gg
            out_data[y, x] = d
            out_var[y, x] = v


__all__ = ["calibrate_pixels"]
