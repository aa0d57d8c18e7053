"""Data-quality bit flags carried in every frame's mask (uint16).

A pixel's mask value is the bitwise OR of the reasons it is suspect; zero means good.
The values are part of the file format: never renumber them.

Examples
--------
>>> from ccdcal import flags
>>> m = flags.HOT | flags.SATURATED
>>> flags.describe(m)
['HOT', 'SATURATED']
>>> bool(m & flags.EXCLUDE)  # saturated: excluded from a combine
True
>>> bool(flags.HOT & flags.EXCLUDE)  # hot but dark-corrected: kept
False
"""

from __future__ import annotations

import numpy as np

BAD = np.uint16(1 << 0)  #: generic bad pixel (dead, low response in the flat)
HOT = np.uint16(1 << 1)  #: high dark current
COLD = np.uint16(1 << 2)  #: low response / dead in the flat
SATURATED = np.uint16(1 << 3)  #: reached full well or the ADC limit in the raw frame
COSMIC_RAY = np.uint16(1 << 4)  #: hit by a cosmic ray (single-frame detection)
REJECTED = np.uint16(1 << 5)  #: rejected by a combine's outlier rejection
NO_DATA = np.uint16(1 << 6)  #: no valid input contributed (NaN in the data)
UNFLATTENED = np.uint16(1 << 7)  #: flat correction not applied (flat unusable here)
NONLINEAR = np.uint16(1 << 8)  #: above the linearity limit, below saturation

NAMES: dict[str, np.uint16] = {
    "BAD": BAD,
    "HOT": HOT,
    "COLD": COLD,
    "SATURATED": SATURATED,
    "COSMIC_RAY": COSMIC_RAY,
    "REJECTED": REJECTED,
    "NO_DATA": NO_DATA,
    "UNFLATTENED": UNFLATTENED,
    "NONLINEAR": NONLINEAR,
}

#: flags that exclude a pixel from a combine by default. HOT and COLD are informational:
#: a hot pixel has had its dark current subtracted and a cold one has been flat-fielded, so
#: both still measure the sky (with more noise). Excluding them would leave a hole at the same
#: place in every frame of an undithered stack.
EXCLUDE = np.uint16(BAD | SATURATED | COSMIC_RAY | NO_DATA)


def describe(value: int) -> list[str]:
    """Names of the flags set in one mask value.

    Parameters
    ----------
    value
        A mask value (bitwise OR of flags).

    Returns
    -------
    list of str
        Flag names in bit order.

    Examples
    --------
    >>> describe(0)
    []
    >>> describe(int(COSMIC_RAY))
    ['COSMIC_RAY']
    """
    return [name for name, bit in NAMES.items() if int(value) & int(bit)]


def header_cards() -> list[tuple[str, int, str]]:
    """FITS cards documenting the bit values, written into every MASK extension.

    Examples
    --------
    >>> header_cards()[0]
    ('MASKB0', 1, 'BAD')
    """
    return [(f"MASKB{int(bit).bit_length() - 1}", int(bit), name) for name, bit in NAMES.items()]
