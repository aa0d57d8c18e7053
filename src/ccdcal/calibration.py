"""Calibration steps: bias, dark, flat, gain. Frame in, new Frame out.

Each step propagates the variance and the data-quality mask. Data stay in ADU until
:func:`gain_correct`, which converts to electrons; :func:`calibrate` runs the whole chain,
with the raw frame's saturation (:mod:`ccdcal.saturation`), overscan and trim
(:mod:`ccdcal.overscan`) first,

    (raw - overscan - bias - dark * t / t_dark) / flat * gain

and attaches a noise model (read noise + Poisson + the noise of the master frames).

Examples
--------
>>> import numpy as np
>>> raw = Frame(np.full((4, 4), 1100.0), header={"EXPTIME": 10.0, "GAIN": 2.0, "RDNOISE": 4.0})
>>> bias = Frame(np.full((4, 4), 100.0))
>>> out = calibrate(raw, bias=bias)
>>> float(out.data[0, 0]), out.header["BUNIT"]
(2000.0, 'electron')
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from . import flags
from .errors import CcdcalError, CcdcalWarning
from .frame import Frame, as_frame
from .overscan import Overscan, subtract_overscan, trim
from .robust import median, median_and_std
from .saturation import flag_saturation
from .sections import Section, is_none

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- helpers


def _check_shape(frame: Frame, other: Frame, what: str) -> None:
    if other.shape != frame.shape:
        raise CcdcalError(
            f"{frame.name}: shape {frame.shape} does not match the {what} "
            f"{other.name} of shape {other.shape} (trim both the same way)"
        )


def _new(frame: Frame, data: np.ndarray, variance: np.ndarray | None, mask: np.ndarray | None):
    """A new frame with the same header (copied) and extras dropped."""
    return replace(
        frame, data=data, variance=variance, mask=mask, header=frame.header.copy(), extras={}
    )


def _or_masks(*masks: np.ndarray | None, copy: bool = True) -> np.ndarray | None:
    """The masks ORed; ``copy=False``: into the first, which the caller owns."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    out = present[0].copy() if copy else present[0]
    for m in present[1:]:
        out |= m
    return out


# ---------------------------------------------------------------------------- masters
def subtract_bias(frame: Frame, bias: Frame) -> Frame:
    """Subtract a master bias (ADU); its variance and mask carry over.

    Examples
    --------
    >>> import numpy as np
    >>> float(subtract_bias(Frame(np.full((2, 2), 9.0)), Frame(np.ones((2, 2)))).data[0, 0])
    8.0
    """
    _check_shape(frame, bias, "master bias")
    variance = _add(frame.variance, bias.variance)
    return _new(frame, frame.data - bias.data, variance, _or_masks(frame.mask, bias.mask))


def _add(a: np.ndarray | None, b: np.ndarray | None, scale: float = 1.0) -> np.ndarray | None:
    if a is None:
        return None
    if b is None:
        return a
    return a + np.float32(scale * scale) * b


def exposure_time(frame: Frame, keys: Sequence[str] = ("EXPTIME", "EXPOSURE")) -> float | None:
    """The frame's exposure time in seconds from its header, or None.

    Examples
    --------
    >>> import numpy as np
    >>> exposure_time(Frame(np.zeros((1, 1)), header={"EXPOSURE": 30}))
    30.0
    """
    for key in keys:
        value = frame.header.get(key)
        if value is None or value == "":
            continue
        try:
            return float(value)
        except (TypeError, ValueError):
            raise CcdcalError(f"{frame.name}: {key} = {value!r} is not a number") from None
    return None


def subtract_dark(
    frame: Frame,
    dark: Frame,
    *,
    exptime: float | None = None,
    dark_exptime: float | None = None,
    bias: Frame | None = None,
) -> Frame:
    """Subtract a bias-subtracted master dark scaled by the ratio of exposure times.

    Parameters
    ----------
    frame
        Bias-subtracted frame (ADU).
    dark
        Bias-subtracted master dark (ADU) taken with ``dark_exptime`` seconds.
    exptime, dark_exptime
        Exposure times; default from each frame's EXPTIME (or EXPOSURE).
    bias
        The master bias subtracted from ``frame`` and from the darks: a master dark's
        variance (``DARKBVAR``) holds that bias's, and frame - B - k (D - B) holds it
        (1 - k)² times, so 2k times it comes off the k² times the dark's.

    Examples
    --------
    >>> import numpy as np
    >>> light = Frame(np.full((2, 2), 10.0), header={"EXPTIME": 30})
    >>> dark = Frame(np.full((2, 2), 4.0), header={"EXPTIME": 60})
    >>> float(subtract_dark(light, dark).data[0, 0])
    8.0
    """
    _check_shape(frame, dark, "master dark")
    k = _dark_scale(frame, dark, exptime, dark_exptime)
    variance = _add(frame.variance, dark.variance, k)
    if variance is not None and _dark_holds_bias_variance(dark, bias):
        assert bias is not None and bias.variance is not None
        variance = variance - np.float32(2.0 * k) * bias.variance
    out = _new(
        frame, frame.data - np.float32(k) * dark.data, variance, _or_masks(frame.mask, dark.mask)
    )
    _dark_header(out, k)
    return out


def _dark_holds_bias_variance(dark: Frame | None, bias: Frame | None) -> bool:
    """Whether a master dark's variance holds the master bias's (a ccdcal master dark's
    does: DARKBVAR), with that bias and both variances at hand."""
    return (
        dark is not None
        and bias is not None
        and dark.variance is not None
        and bias.variance is not None
        and dark.header.get("DARKBVAR") is True
    )


def _dark_header(frame: Frame, k: float) -> None:
    frame.header["DARKSCAL"] = (round(k, 6), "master dark scaled by EXPTIME ratio")


def _dark_scale(
    frame: Frame, dark: Frame, exptime: float | None, dark_exptime: float | None = None
) -> float:
    """t / t_dark, the factor of a bias-subtracted master dark for this frame."""
    t = exptime if exptime is not None else exposure_time(frame)
    td = dark_exptime if dark_exptime is not None else exposure_time(dark)
    if t is None or td is None or td <= 0:
        raise CcdcalError(
            f"{frame.name}: cannot scale the dark {dark.name}: exposure time unknown "
            f"(light {t}, dark {td}); set EXPTIME or the config's exptime keyword"
        )
    return t / td


def flat_correct(frame: Frame, flat: Frame, *, min_value: float = 0.1) -> Frame:
    """Divide by a normalized master flat; pixels where it is below ``min_value`` or flagged
    BAD are left undivided and flagged BAD (never divided by ~0).

    Examples
    --------
    >>> import numpy as np
    >>> flat = Frame(np.array([[0.5, 1.0], [2.0, 0.0]]))
    >>> out = flat_correct(Frame(np.full((2, 2), 4.0)), flat)
    >>> out.data.tolist(), flags.describe(out.mask[1, 1])
    ([[8.0, 4.0], [2.0, 4.0]], ['BAD', 'UNFLATTENED'])
    """
    _check_shape(frame, flat, "master flat")
    divisor = _flat_divisor(flat, min_value)
    bad, safe = divisor.bad, divisor.safe
    data = frame.data / safe
    variance = None
    if frame.variance is not None:
        variance = frame.variance / (safe * safe)
        if flat.variance is not None:
            variance = variance + (data * data) * np.where(bad, 0, flat.variance) / (safe * safe)
    mask = _flag_unflattened(frame.mask, flat, bad)
    return _new(frame, data.astype(np.float32), variance, mask)


def _flag_unflattened(mask: np.ndarray | None, flat: Frame, bad: np.ndarray) -> np.ndarray | None:
    """The frame's mask with the flat's, and the pixels not flattened flagged."""
    mask = _or_masks(mask, flat.mask)
    if bad.any():
        mask = np.zeros(bad.shape, np.uint16) if mask is None else mask
        mask[bad] |= flags.BAD | flags.UNFLATTENED
    return mask


class _Divisor:
    """A flat ready to divide by: the pixels not to flatten (too little response, not
    finite, BAD) and ``safe``, the flat with 1 at those pixels (both read-only)."""

    def __init__(self, bad: np.ndarray, safe: np.ndarray) -> None:
        self.bad = bad
        self.safe = safe

    @functools.cached_property
    def slope(self) -> float:
        """The photons' 1/F, median over the flat: how a flattened light's variance grows
        with its value."""
        sample = self.safe[::3, ::3]
        good = np.isfinite(sample) & (sample > 0)
        slope = float(median(1.0 / sample[good])) if good.any() else 1.0
        return round(slope, 6)


#: the divisors of read-only flats, by (data, mask, minimum): a night's master flat, which
#: the pipeline holds read-only, divides every light of its filter (18 ms a 2048x2048 light)
_DIVISORS: dict[tuple[int, int, float], tuple[Any, Any, _Divisor]] = {}


def _flat_divisor(flat: Frame, min_value: float) -> _Divisor:
    """``flat`` ready to divide by; kept, for a flat that cannot change, as long as it.

    A flat cannot change when its arrays are read-only and own their memory (a read-only
    view of a writable array changes with it), as the pipeline's masters are; code that
    makes such an array writable again to change it must give a new Frame."""
    frozen = all(
        plane is None or (plane.flags.owndata and not plane.flags.writeable)
        for plane in (flat.data, flat.mask)
    )
    key = (id(flat.data), id(flat.mask), min_value)
    if frozen and (hit := _DIVISORS.get(key)) is not None:
        data_ref, mask, divisor = hit
        if data_ref() is flat.data and mask is flat.mask:  # the same arrays, not a new id
            return divisor
    divisor = _divisor(flat, min_value)
    if frozen:  # kept as long as the flat's data
        _DIVISORS[key] = (weakref.ref(flat.data), flat.mask, divisor)
        weakref.finalize(flat.data, _DIVISORS.pop, key, None)
    return divisor


def _divisor(flat: Frame, min_value: float) -> _Divisor:
    f = flat.data
    bad = ~np.isfinite(f) | (f < min_value)
    if flat.mask is not None:
        bad |= (flat.mask & flags.BAD) != 0
    if bad.all():
        raise CcdcalError(f"{flat.name}: no pixel of the flat is at or above {min_value:g}")
    kept = f[::4, ::4][~bad[::4, ::4]]
    level = float(median(kept)) if kept.size else 1.0
    if not FLAT_LEVELS[0] <= level <= FLAT_LEVELS[1]:
        # a raw flat, or one normalized wrongly, would scale every frame by its level
        raise CcdcalError(
            f"{flat.name}: the flat's median is {level:.4g}, not about 1: a master flat is "
            "normalized (ccdcal.masters.master_flat makes one)"
        )
    safe = np.where(bad, np.float32(1.0), f)
    bad.setflags(write=False)
    safe.setflags(write=False)
    return _Divisor(bad, safe)


def gain_correct(frame: Frame, gain: float) -> Frame:
    """Convert ADU to electrons; BUNIT becomes 'electron'.

    Examples
    --------
    >>> import numpy as np
    >>> gain_correct(Frame(np.ones((1, 1))), 2.5).header["BUNIT"]
    'electron'
    """
    if not gain > 0:
        raise CcdcalError(f"{frame.name}: gain must be positive, not {gain}")
    g = np.float32(gain)
    variance = None if frame.variance is None else frame.variance * (g * g)
    out = _new(frame, frame.data * g, variance, frame.mask)
    _gain_header(out, gain)
    return out


def _gain_header(frame: Frame, gain: float) -> None:
    frame.header["BUNIT"] = ("electron", "calibrated: electrons")
    frame.header["GAINCORR"] = (float(gain), "[e-/ADU] gain applied")


# ---------------------------------------------------------------------------- the chain
#: the median a normalized flat may have: about 1 (vignetting and filters move it a little)
FLAT_LEVELS = (0.2, 5.0)

#: the scale factors of a master dark (t / t_dark) that calibrate accepts: a dark of 0.001 s
#: scaled ×5,000 to a flat of 5 s amplifies its noise and the error of its level 5,000 times
MIN_DARK_SCALE, MAX_DARK_SCALE = 0.0, 100.0


def _checked(
    frame: Frame, name: str, value: Any, *, zero_ok: bool, negative_ok: bool = False
) -> float | None:
    """A number option checked: finite, and > 0 (>= 0 with ``zero_ok``); None stays None."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CcdcalError(f"{frame.name}: {name} must be a number, not {value!r}") from None
    if not math.isfinite(v) or (not negative_ok and (v < 0 or (v == 0 and not zero_ok))):
        bound = ">= 0" if zero_ok else "> 0"
        raise CcdcalError(f"{frame.name}: {name} must be a finite number {bound}, not {value!r}")
    return v


def _header_number(
    frame: Frame, keys: Sequence[str], what: str, *, zero_ok: bool = False
) -> float | None:
    """The first of ``keys`` in the header, refused when it is not a valid ``what``."""
    for key in keys:
        value = frame.header.get(key)
        if value is None or value == "":
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise CcdcalError(f"{frame.name}: {key} = {value!r} is not a number") from None
        if not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
            raise CcdcalError(f"{frame.name}: {key} = {value!r} is not a valid {what}")
        return v
    return None


def calibrate(
    frame: Frame,
    *,
    bias: Frame | None = None,
    dark: Frame | None = None,
    flat: Frame | None = None,
    gain: float | None = None,
    read_noise: float | None = None,
    saturation: float | None = None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
    exptime: float | None = None,
    flat_min: float = 0.1,
    warn_no_gain: bool = True,
    bias_level: float | None = None,
    from_header: bool = True,
) -> Frame:
    """Calibrate a raw frame: overscan, trim, bias, dark (scaled), flat, gain; with variance.

    Parameters
    ----------
    frame
        Raw frame in ADU (as read from the camera's file).
    bias, dark, flat
        Master frames, already trimmed like the result will be. ``dark`` is bias-subtracted
        and scaled by the ratio of EXPTIMEs (unless its header says ``BIASSUB = F``: a dark
        made without a master bias holds the bias, and is subtracted as it is from a frame
        of its own exposure); ``flat`` is normalized to about 1. Any may be None to skip
        that step.
    gain
        e-/ADU; default the header's GAIN. Without one the result stays in ADU (with a
        :class:`~ccdcal.errors.CcdcalWarning`).
    read_noise
        Read noise in electrons; default the header's RDNOISE. Without one the variance holds
        only Poisson and master-frame noise.
    saturation
        Saturation level in ADU of the raw data; default the header's SATURATE, else 65535
        for 16-bit unsigned data. Such pixels are flagged SATURATED.
    biassec, trimsec
        Overscan and science sections (FITS strings or numpy slices); default from the header.
    overscan
        How to use the overscan (see :class:`Overscan`).
    exptime
        Exposure time; default the header's EXPTIME.
    flat_min
        Flat values below this are not divided by and are flagged BAD.
    warn_no_gain
        Warn when the gain is unknown, or when no bias level is known for the photon noise;
        a caller that reports it once for many frames (as :func:`ccdcal.reduce` does) turns
        this off.
    bias_level
        The raw level (ADU) no photon made, subtracted as a constant bias where nothing
        else gives it. The photons are those above the master bias; without one, above a
        dark that holds the bias (so the dark current's own photon noise is not counted),
        above zero after an overscan subtraction, else above ``bias_level``; with none of
        these the variance holds the read noise and the masters' noise only.
    from_header
        Take a gain, read noise and exposure time not given from the frame's header (GAIN,
        RDNOISE, EXPTIME). A caller that read and checked the header once (as
        :func:`ccdcal.reduce` does) turns this off: None then means unknown.

    Returns
    -------
    Frame
        In electrons (BUNIT 'electron') when the gain is known, with variance and mask; the
        part of the variance that the masters bring (the same in every frame calibrated
        with them, which a stack must not average down) in ``extras["VARCOMMON"]`` where
        a master has a variance.

    Examples
    --------
    >>> import numpy as np
    >>> raw = Frame(np.full((2, 3), 600.0), header={"EXPTIME": 1.0, "GAIN": 1.0, "RDNOISE": 5.0})
    >>> out = calibrate(raw, bias=Frame(np.full((2, 3), 500.0)))
    >>> float(out.data[0, 0]), float(out.variance[0, 0])
    (100.0, 125.0)
    """
    frame = as_frame(frame, "frame")
    masters = ((bias, "bias"), (dark, "dark"), (flat, "flat"))
    bias, dark, flat = (None if m is None else as_frame(m, what) for m, what in masters)
    if from_header:
        gain = gain if gain is not None else _header_number(frame, ("GAIN", "EGAIN"), "gain")
        read_noise = read_noise if read_noise is not None else _header_number(
            frame, ("RDNOISE", "READNOIS"), "read noise", zero_ok=True)  # fmt: skip
    g = _checked(frame, "gain", gain, zero_ok=False)
    rn = _checked(frame, "read_noise", read_noise, zero_ok=True)
    _checked(frame, "saturation", saturation, zero_ok=False)
    _checked(frame, "bias_level", bias_level, zero_ok=True, negative_ok=True)
    if not (np.isfinite(flat_min) and flat_min > 0):
        raise CcdcalError(f"{frame.name}: flat_min must be > 0, not {flat_min!r}")
    gain_for_noise = g if g else 1.0
    rn_adu = (rn / gain_for_noise) if rn else 0.0

    # the flagged frame's mask and header are this function's own, its data only read: no
    # copies of the whole frame on the way (two of them were a tenth of its time)
    work = replace(flag_saturation(frame, saturation), variance=None)
    work = subtract_overscan(work, biassec=biassec, overscan=overscan, copy=False)
    work = trim(work, trimsec, copy=False)
    t = exptime if exptime is not None or not from_header else exposure_time(work)
    t = _checked(frame, "exptime", t, zero_ok=True)

    # Poisson noise is that of every electron collected: light and dark current, measured
    # before the dark is subtracted, so the raw signal above bias sets it. The arithmetic
    # of subtract_bias, subtract_dark, flat_correct and gain_correct runs as one compiled
    # pass (same float32 operations, same results; see calibration_kernel).
    for master, what in ((bias, "master bias"), (dark, "master dark"), (flat, "master flat")):
        if master is not None:
            _check_shape(work, master, what)
    from .calibration_kernel import (
        ABOVE_BIAS,
        ABOVE_DARK,
        ABOVE_ZERO,
        NO_PHOTONS,
        calibrate_pixels,  # here: numba loads in 0.2 s
    )
    from .compiled import say_if_compiling

    say_if_compiling(("calibrate",))

    holds_bias = bias is None and dark is not None and dark.header.get("BIASSUB") is False
    if dark is not None and t is None and not from_header:
        raise CcdcalError(f"{frame.name}: no exposure time known: the dark cannot be scaled to it")
    k = _dark_scale(work, dark, t) if dark is not None else 0.0
    if dark is not None and not (MIN_DARK_SCALE <= k <= MAX_DARK_SCALE) and not (k == 0 and t == 0):
        raise CcdcalError(
            f"{frame.name}: the master dark {dark.name} would be scaled by {k:.4g} to this "
            f"exposure; beyond {MIN_DARK_SCALE:g}..{MAX_DARK_SCALE:g} its noise and any error "
            "in its level are amplified out of measure: take darks nearer this exposure"
        )
    if holds_bias and abs(k - 1.0) > 1e-6:
        raise CcdcalError(
            f"{frame.name}: the master dark {dark.name} holds the bias (made without a master "
            f"bias), so it cannot be scaled by {k:.4g} to this exposure"
        )
    divisor = _flat_divisor(flat, flat_min) if flat is not None else None
    bad, safe = (None, None) if divisor is None else (divisor.bad, divisor.safe)
    data = np.empty(work.shape, np.float32)
    variance = np.empty(work.shape, np.float32)
    common = np.empty(work.shape, np.float32)
    none = np.zeros((1, 1), np.float32)
    dark_frame = None  # one dark's own noise, where the photons are counted above the dark
    if bias is not None:
        base = ABOVE_BIAS
    elif holds_bias:
        base = ABOVE_DARK
        counts = dark.extras.get("NCOMBINE") if dark is not None else None
        if dark is not None and dark.variance is not None and counts is not None:
            dark_frame = np.ascontiguousarray(
                np.nan_to_num(dark.variance) * counts.astype(np.float32), np.float32
            )
    elif "OVERSCAN" in work.header:
        base = ABOVE_ZERO
    elif bias_level is not None:
        # a constant bias: subtracted, and the photons counted above it
        base = ABOVE_ZERO
        work = replace(work, data=work.data - np.float32(bias_level))
        work.header["BIASLEVL"] = (float(bias_level), "[adu] constant bias subtracted")
    else:
        base = NO_PHOTONS
        if warn_no_gain:
            warnings.warn(
                f"{frame.name}: no bias level known (no master bias, no dark holding the bias, "
                "no overscan, no bias_level): the variance counts no photon noise",
                CcdcalWarning,
                stacklevel=2,
            )

    def plane(frame: Frame | None, what: str) -> np.ndarray:
        array = None if frame is None else getattr(frame, what)
        return none if array is None else np.ascontiguousarray(array, np.float32)

    calibrate_pixels(
        np.ascontiguousarray(work.data, np.float32),
        bias is not None, plane(bias, "data"),
        bias is not None and bias.variance is not None, plane(bias, "variance"),
        dark is not None, np.float32(k), np.float32(k * k), plane(dark, "data"),
        dark is not None and dark.variance is not None, plane(dark, "variance"),
        flat is not None, none if safe is None else safe,
        np.zeros((1, 1), bool) if bad is None else bad,
        flat is not None and flat.variance is not None, plane(flat, "variance"),
        bool(g), np.float32(g or 1.0), np.float32(gain_for_noise), np.float32(rn_adu * rn_adu),
        base, _dark_holds_bias_variance(dark, bias), np.float32(2.0 * k),
        dark_frame is not None, none if dark_frame is None else dark_frame, data, variance,
        common,
    )  # fmt: skip
    # into flag_saturation's own mask (or a view of it)
    masters = (m.mask for m in (bias, dark) if m is not None)
    mask = _or_masks(work.mask, *masters, copy=False)
    assert mask is not None
    if flat is not None:
        assert bad is not None
        mask = _flag_unflattened(mask, flat, bad)
    with_noise = [m for m in (bias, dark, flat) if m is not None and m.variance is not None]
    extras = {"VARCOMMON": common} if with_noise else {}
    work = replace(work, data=data, variance=variance, mask=mask, extras=extras)
    if dark is not None:
        _dark_header(work, k)
    if g:
        _gain_header(work, g)
    else:
        if warn_no_gain:
            warnings.warn(
                f"{frame.name}: no GAIN in the header or the options: the result stays in ADU",
                CcdcalWarning,
                stacklevel=2,
            )
        work.header["BUNIT"] = ("adu", "calibrated, gain unknown")
    if rn is not None:
        work.header["RDNOISE"] = (float(rn), "[e-] read noise")
    # one number for the frame's noise: stacks weight frames by it. Every 3rd pixel of every
    # 3rd row is plenty for a median (the whole frame's took a tenth of the calibration)
    sample = replace(
        work,
        data=work.data[::3, ::3],
        variance=None,
        mask=None if work.mask is None else work.mask[::3, ::3],
        extras={},
    )
    good = sample.good & np.isfinite(work.variance[::3, ::3])
    if good.any():
        work.header["MEDVAR"] = (
            float(median(work.variance[::3, ::3][good])),
            "median variance of good pixels (1 in 9 sampled)",
        )
        # the level and the robust scatter the variance must explain: a stack leaves out a
        # light whose pixels scatter far more or less than its variance says (see
        # ccdcal.pipeline.screening)
        values = work.data[::3, ::3][good].astype(np.float64)
        level = float(median(values))
        work.header["MEDLEVEL"] = (level, "median of good pixels (1 in 9)")
        # the noise from neighbours' differences: gradients, nebulae and crowded fields
        # cancel in them, as they do not in a whole frame's spread. Each sampled pixel and
        # its right-hand neighbour: 1 pair in 9, as many as the medians above take (a pair
        # at every pixel of every 3rd row took three times as long for no better number)
        ok = np.isfinite(work.data[::3])
        if work.mask is not None:
            ok &= (work.mask[::3] & flags.EXCLUDE) == 0
        width = (work.shape[1] - 1 + 2) // 3  # pairs (3k, 3k + 1) within the frame
        left, right = work.data[::3, 0::3][:, :width], work.data[::3, 1::3][:, :width]
        both = ok[:, 0::3][:, :width] & ok[:, 1::3][:, :width]
        if both.any():
            diff = (right - left)[both].astype(np.float64)
            noise = median_and_std(diff, overwrite=True)[1]  # a copy of its own
            work.header["LOCNOISE"] = (noise / np.sqrt(2.0), "noise from neighbours' differences")
    work.header["VARSLOPE"] = (_variance_slope(base, divisor), "d variance / d value (photons)")
    steps = [
        name
        for name, done in (
            ("overscan", "OVERSCAN" in work.header),
            ("trim", not is_none(trimsec) and (trimsec is not None or "TRIMSEC" in frame.header)),
            ("bias", bias is not None),
            ("dark", dark is not None),
            ("flat", flat is not None),
            ("gain", bool(g)),
        )
        if done
    ]
    work.header["CALSTEPS"] = (" ".join(steps), "calibration steps applied")
    log.debug("%s: calibrated (%s)", frame.name, ", ".join(steps))
    return work


def _variance_slope(base: int, divisor: _Divisor | None) -> float:
    """How a calibrated light's variance grows with its value: the photons' 1/F (median over
    the frame; 0 where no photons are counted). Rejection by each frame's variance
    (:class:`~ccdcal.stacking.VarianceClip`) takes it at the stack's centre with it."""
    from .calibration_kernel import NO_PHOTONS

    if base == NO_PHOTONS:
        return 0.0
    return 1.0 if divisor is None else divisor.slope


__all__ = [
    "calibrate",
    "exposure_time",
    "flat_correct",
    "gain_correct",
    "subtract_bias",
    "subtract_dark",
]
