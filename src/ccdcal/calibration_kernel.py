"""The per-pixel arithmetic of :func:`ccdcal.calibration.calibrate` in one compiled pass.

The calibration steps (:func:`~ccdcal.calibration.subtract_bias`,
:func:`~ccdcal.calibration.subtract_dark`, :func:`~ccdcal.calibration.flat_correct`,
:func:`~ccdcal.calibration.gain_correct`) each return a new frame, which is what a user
composing them wants. Chained, they allocate and fill a dozen full-frame arrays: on a
2048x2048 frame that cost more than the arithmetic itself (fresh pages, zeroed by the
kernel, at every step). This pass reads each input once and writes the data and variance
once, with the same float32 operations in the same order, so its results equal the chained
steps' bit for bit (``tests/test_calibrate.py`` checks it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from . import threads
from .compiled import guard_cache

guard_cache()  # before the kernel is compiled

#: where the photon noise is counted from (``base`` of :func:`calibrate_pixels`)
NO_PHOTONS, ABOVE_BIAS, ABOVE_DARK, ABOVE_ZERO = range(4)


def calibrate_pixels(*args: Any) -> None:
    """Bias, scaled dark, flat and gain on ``data``, with the variance, into the outputs.

    ``k`` (float32) scales the dark and ``k2`` (float32 of k², computed in float64) its
    variance; ``flat_safe`` is the flat with 1 where ``flat_bad``; ``gfn`` (float32) is the
    gain used for the Poisson term and ``rn2`` (float32) the read noise² in ADU². The
    photons are counted above the master bias (``base`` ABOVE_BIAS), above the scaled dark
    where the dark holds the bias (ABOVE_DARK), above zero (ABOVE_ZERO: after the overscan
    or a constant bias level was subtracted), or not at all (NO_PHOTONS: no level
    is known, and counting the bias as photons would overstate the noise). ``out_common``
    receives the part of the variance the masters bring, the same in every light
    calibrated with them. With ``dark_holds_bvar`` the dark's variance holds the master
    bias's (as a master dark's does), which then enters as (1 - k)²: ``k2x`` (float32 of 2k)
    times it comes off again. With ``has_dfv``, ``dark_frame_var`` (one dark's own noise:
    read noise and dark current) takes the place of the read noise: where the dark holds the
    bias, the photons above it leave out the dark current's, which this counts. Arrays a
    flag says are absent may be any small array.

    Arguments, in order: ``data, has_bias, bias, has_bvar, bias_var, has_dark, k, k2, dark,
    has_dvar, dark_var, has_flat, flat_safe, flat_bad, has_fvar, flat_var, has_gain, g, gfn,
    rn2, base, dark_holds_bvar, k2x, has_dfv, dark_frame_var, out_data, out_var,
    out_common``. The rows are shared out over :func:`ccdcal.threads.split`.
    """
    # the inputs as read-only views: numba types a read-only array apart from a writable
    # one, and a pipeline's masters are read-only where a user's arrays are not; one
    # compiled kernel serves both
    inputs = [_read_only(a) for a in args[:-3]]
    threads.split(lambda y0, y1: _calibrate_rows(y0, y1, *inputs, *args[-3:]), args[0].shape[0])


def _read_only(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.flags.writeable:
        value = value.view()
        value.setflags(write=False)
    return value


@njit(cache=True, nogil=True, error_model="numpy")
def _calibrate_rows(
    y0, y1, data, has_bias, bias, has_bvar, bias_var, has_dark, k, k2, dark, has_dvar,
    dark_var, has_flat, flat_safe, flat_bad, has_fvar, flat_var, has_gain, g, gfn, rn2, base,
    dark_holds_bvar, k2x, has_dfv, dark_frame_var, out_data, out_var, out_common,
):  # fmt: skip
    """Rows ``y0:y1`` of :func:`calibrate_pixels`."""
    nx = data.shape[1]
    zero = np.float32(0.0)
    gg = g * g
    for y in range(y0, y1):
        for x in range(nx):
            d = data[y, x]
            if base == ABOVE_BIAS:
                ab = d - bias[y, x]
            elif base == ABOVE_DARK:
                ab = d - k * dark[y, x]
            elif base == ABOVE_ZERO:
                ab = d
            else:
                ab = zero
            # np.clip(ab, 0, None): NaN stays NaN
            p = (ab if (ab >= zero or ab != ab) else zero) / gfn
            v = p + (dark_frame_var[y, x] if has_dfv else rn2)
            c = zero
            if has_bias:
                d = d - bias[y, x]
                if has_bvar:
                    v = v + bias_var[y, x]
                    c = bias_var[y, x]
            if has_dark:
                d = d - k * dark[y, x]
                if has_dvar:
                    v = v + k2 * dark_var[y, x]
                    c = c + k2 * dark_var[y, x]
                    if dark_holds_bvar:
                        v = v - k2x * bias_var[y, x]
                        c = c - k2x * bias_var[y, x]
            if has_flat:
                s = flat_safe[y, x]
                d = d / s
                v = v / (s * s)
                c = c / (s * s)
                if has_fvar:
                    fv = zero if flat_bad[y, x] else flat_var[y, x]
                    v = v + (d * d) * fv / (s * s)
                    c = c + (d * d) * fv / (s * s)
            if has_gain:
                d = d * g
                v = v * gg
                c = c * gg
            out_data[y, x] = d
            out_var[y, x] = v
            out_common[y, x] = c


__all__ = ["ABOVE_BIAS", "ABOVE_DARK", "ABOVE_ZERO", "NO_PHOTONS", "calibrate_pixels"]
