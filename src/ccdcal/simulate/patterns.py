"""The fixed maps of a simulated detector, as pure functions of shape and parameters.

:class:`~ccdcal.simulate.Detector` draws its random inputs from its seed and calls these;
they know nothing of seeds or frames.

Examples
--------
>>> bias_pattern((2, 4), level=500.0, amplitude=20.0, overscan=1).shape
(2, 5)
"""

from __future__ import annotations

import math

import numpy as np


def bias_pattern(
    shape: tuple[int, int], *, level: float, amplitude: float, overscan: int = 0
) -> np.ndarray:
    """The tutorial's bias, ``level + a·sin(2πx/nx) + (a/2)·cos(2πy/ny)`` ADU, on a raw frame.

    The overscan columns (virtual pixels, read out after each row) carry only the level and
    the row component, which is what an overscan correction can follow.

    Examples
    --------
    >>> p = bias_pattern((4, 4), level=100.0, amplitude=20.0, overscan=2)
    >>> p[0].round(6).tolist()
    [110.0, 130.0, 110.0, 90.0, 110.0, 110.0]
    """
    ny, nx = shape
    rows = level + (amplitude / 2) * np.cos(2 * np.pi * np.arange(ny) / ny)
    out = np.empty((ny, nx + overscan))
    out[:, :nx] = rows[:, None] + amplitude * np.sin(2 * np.pi * np.arange(nx) / nx)[None, :]
    out[:, nx:] = rows[:, None]
    return out


def hot_pixel_map(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    dark_rate: float,
    fraction: float,
    hot_rate: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Dark current (e-/s) with ``round(fraction·npix)`` hot pixels, and where they are.

    Examples
    --------
    >>> dark, hot = hot_pixel_map((10, 10), np.random.default_rng(0), dark_rate=0.2,
    ...                           fraction=0.03, hot_rate=(1.0, 2.0))
    >>> int(hot.sum()), bool((dark[hot] >= 1.2).all()), float(dark[~hot].max())
    (3, True, 0.2)
    """
    ny, nx = shape
    nhot = round(fraction * ny * nx)
    hot = np.zeros(ny * nx, bool)
    dark = np.full(ny * nx, float(dark_rate))
    index = rng.choice(ny * nx, nhot, replace=False)
    hot[index] = True
    dark[index] += rng.uniform(*hot_rate, size=nhot)
    return dark.reshape(ny, nx), hot.reshape(ny, nx)


def vignetting_map(shape: tuple[int, int], strength: float) -> np.ndarray:
    """The tutorial's vignetting: ``1 - v·min(r, 1)²``, r = 1 at the half-width.

    Examples
    --------
    >>> v = vignetting_map((4, 4), 0.2)
    >>> float(v[2, 2]), float(v[2, 0])
    (1.0, 0.8)
    """
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    r = np.hypot(x - nx / 2, y - ny / 2) / (0.5 * min(nx, ny))
    return 1.0 - strength * np.clip(r, 0.0, 1.0) ** 2


def flat_response(
    vignetting: np.ndarray,
    common: np.ndarray,
    own: np.ndarray,
    *,
    sigma: float,
    own_fraction: float,
) -> np.ndarray:
    """Vignetting × pixel response ``1 + σ·(√(1-f²)·common + f·own)``, median 1.

    ``common`` and ``own`` are unit-variance patterns: the detector's, shared by every
    filter, and one filter's; two filters' pixel responses correlate at ``1 - f²``.

    Examples
    --------
    >>> ones = np.ones((3, 3))
    >>> float(flat_response(ones, 0 * ones, 0 * ones, sigma=0.02, own_fraction=0.2)[1, 1])
    1.0
    """
    f = own_fraction
    pixel = 1.0 + sigma * (math.sqrt(1.0 - f * f) * common + f * own)
    flat = vignetting * np.clip(pixel, 0.01, None)  # a pixel never has negative response
    return flat / np.median(flat)


__all__ = ["bias_pattern", "flat_response", "hot_pixel_map", "vignetting_map"]
