"""Saturation in raw frames: the level (given, the header's SATURATE, or the ADC's ceiling
where the counts reach it) and the pixels flagged SATURATED.

Examples
--------
>>> import numpy as np
>>> raw = Frame(np.array([[10.0, 4095.0, 4095.0]]))
>>> saturation_level(raw)[0], flags.describe(flag_saturation(raw).mask[0, 1])
(4095.0, ['SATURATED'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from . import flags
from .frame import Frame


def header_float(frame: Frame, keys: Sequence[str]) -> float | None:
    """The first of ``keys`` in the header that reads as a number; None where none does.

    Examples
    --------
    >>> header_float(Frame(np.zeros((1, 1)), header={"SATURATE": "n/a", "DATAMAX": 4095}),
    ...              ("SATURATE", "DATAMAX"))
    4095.0
    """
    for key in keys:
        value = frame.header.get(key)
        try:
            if value is not None and value != "":
                return float(value)
        except (TypeError, ValueError):
            continue
    return None


def adc_ceiling(data: np.ndarray) -> tuple[float, str] | None:
    """The ADC's ceiling where raw counts reach it, and what ADC it is; None otherwise.

    The largest value equals ``2^k - 1`` for a 12-, 14- or 16-bit ADC, or that shifted
    left in 16 bits (CMOS cameras that store 12-bit values as multiples of 16, up to
    65520): then every value is a multiple of the step. Below 16 bits it must be reached
    by two pixels or more, so that a chance maximum of a deeper ADC is not taken for it.

    Examples
    --------
    >>> import numpy as np
    >>> adc_ceiling(np.array([[100.0, 4095.0, 4095.0]]))
    (4095.0, '12-bit')
    >>> adc_ceiling(np.array([[160.0, 65520.0, 65520.0]]))
    (65520.0, '12-bit, stored shifted left by 4 bits')
    >>> adc_ceiling(np.array([[100.0, 4000.0]])) is None
    True
    """
    lo, hi = float(data.min(initial=np.inf)), float(data.max(initial=-np.inf))
    if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN or inf present (or no data): look closer
        finite = data[np.isfinite(data)]
        if not finite.size:
            return None
        lo, hi = float(finite.min()), float(finite.max())
    if lo < 0 or hi > 65535 or hi != int(hi):
        return None
    from .classify import ADC_CEILINGS

    if int(hi) not in ADC_CEILINGS:
        return None
    bits, shift = ADC_CEILINGS[int(hi)]
    if bits == 16:
        return hi, "16-bit"
    if np.count_nonzero(data == hi) < 2:
        return None
    if shift:
        if np.any(np.mod(data[np.isfinite(data)], 1 << shift) != 0):
            return None
        return hi, f"{bits}-bit, stored shifted left by {shift} bits"
    return hi, f"{bits}-bit"


def saturation_mask(frame: Frame, saturation: float | None) -> np.ndarray:
    """Pixels at or above the saturation level (ADU) of a raw frame.

    Examples
    --------
    >>> import numpy as np
    >>> saturation_mask(Frame(np.array([[10.0, 65535.0]])), 65535).tolist()
    [[False, True]]
    """
    if saturation is None:
        return np.zeros(frame.shape, bool)
    return frame.data >= np.float32(saturation)


def saturation_level(
    frame: Frame, saturation: float | None = None
) -> tuple[float | None, tuple[float, str] | None]:
    """The saturation level (ADU) of a raw frame, and the SATINFER card where it was
    inferred: ``saturation``, else the header's SATURATE, else the ADC's ceiling where the
    data reach it (:func:`adc_ceiling`).

    Examples
    --------
    >>> import numpy as np
    >>> saturation_level(Frame(np.array([[10.0, 4095.0, 4095.0]])))
    (4095.0, (4095.0, '[adu] saturation: 12-bit ADC ceiling'))
    """
    sat = saturation if saturation is not None else header_float(frame, ("SATURATE",))
    if sat is not None:
        return sat, None
    ceiling = adc_ceiling(frame.data)
    if ceiling is None:
        return None, None
    short = ceiling[1].replace(", stored shifted left by ", "<<").removesuffix(" bits")
    return ceiling[0], (ceiling[0], f"[adu] saturation: {short} ADC ceiling")


def flag_saturation(frame: Frame, saturation: float | None = None) -> Frame:
    """A copy of a raw frame with SATURATED (and NO_DATA for NaN) set in its mask.

    The level is ``saturation`` (ADU), else the header's SATURATE, else the ADC's ceiling
    where the data reach it (:func:`adc_ceiling`: 12-, 14- or 16-bit, or shifted left in
    16 bits), recorded in SATINFER.

    Examples
    --------
    >>> import numpy as np
    >>> out = flag_saturation(Frame(np.array([[10.0, 65535.0]])))
    >>> flags.describe(out.mask[0, 1])
    ['SATURATED']
    """
    sat, card = saturation_level(frame, saturation)
    header = frame.header.copy()
    if card is not None:
        header["SATINFER"] = card
    mask = frame.mask_or_zeros().copy()
    mask[saturation_mask(frame, sat)] |= flags.SATURATED
    mask[~np.isfinite(frame.data)] |= flags.NO_DATA
    return replace(frame, mask=mask, header=header, extras={})


__all__ = ["adc_ceiling", "flag_saturation", "header_float", "saturation_level", "saturation_mask"]
