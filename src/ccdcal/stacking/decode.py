"""FITS pixels as stored (big-endian) decoded into float32 rows (numba; the files of a band
are decoded on several threads at once, see :func:`ccdcal.stacking.stream.iter_bands`).

A combine reads each band of each file as stored (:class:`ccdcal.stacking.stream.FileSource`,
one ``pread``) and decodes it into the band buffer: 32-bit floats are byte-swapped, 16-bit
integers are swapped, scaled (BSCALE, BZERO) and their BLANK value made NaN on the way. The
arithmetic is astropy's, in float32: ``float32(stored) * float32(BSCALE) + float32(BZERO)``,
each step only where its keyword is not the identity.

Measured on the 2-core development machine, sigma-clipped mean of 20 frames of 2048x2048
float32 files in the page cache: 0.12 s read this way, 0.11 s decoded straight from a
memory mapping; the mapping's pages, though, counted in the process (see FileSource), so
the bands are read.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def swap32_into(words: np.ndarray, out: np.ndarray) -> None:
    """Byte-swap 32-bit words (big-endian FITS floats) into ``out``.

    Examples
    --------
    >>> a = np.array([[1.5, -2.0]], dtype=">f4").view(np.uint32)
    >>> out = np.empty((1, 2), np.float32)
    >>> swap32_into(a, out.view(np.uint32))
    >>> out.tolist()
    [[1.5, -2.0]]
    """
    for y in range(words.shape[0]):
        src = words[y]
        dst = out[y]
        for x in range(src.shape[0]):
            v = src[x]
            dst[x] = (
                ((v >> 24) & 0xFF)
                | ((v >> 8) & 0xFF00)
                | ((v << 8) & 0xFF0000)
                | ((v << 24) & 0xFF000000)
            )


@njit(cache=True, nogil=True)
def decode16(
    raw: np.ndarray,
    out: np.ndarray,
    bscale: np.float32,
    bzero: np.float32,
    blank: int,
    has_blank: bool,
) -> None:
    """Big-endian 16-bit integers (read as native uint16 words) into float32 ``out``.

    ``out = float32(stored) * bscale + bzero``, the product only when ``bscale != 1`` and
    the sum only when ``bzero != 0``; a stored value equal to ``blank`` becomes NaN when
    ``has_blank``.

    Examples
    --------
    >>> stored = np.array([[-32768, 0, 32767]], dtype=">i2")
    >>> out = np.empty((1, 3), np.float32)
    >>> decode16(stored.view(np.uint16), out, np.float32(1), np.float32(32768), 0, False)
    >>> out.tolist()
    [[0.0, 32768.0, 65535.0]]
    """
    scale = bscale != np.float32(1.0)
    offset = bzero != np.float32(0.0)
    nan32 = np.float32(np.nan)
    for y in range(raw.shape[0]):
        src = raw[y]
        dst = out[y]
        for x in range(src.shape[0]):
            u = np.int32(src[x])
            s = ((u >> 8) | (u << 8)) & 0xFFFF
            v = s - ((s & 0x8000) << 1)  # two's complement: the stored signed value
            f = np.float32(v)
            if scale:
                f = f * bscale
            if offset:
                f = f + bzero
            dst[x] = nan32 if has_blank and v == blank else f


__all__ = ["decode16", "swap32_into"]
