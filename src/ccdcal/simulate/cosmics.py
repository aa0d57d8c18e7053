"""Cosmic-ray hits: single-pixel events and short tracks at random angles.

A hit deposits a total charge drawn uniformly in ``energy`` (the tutorial's 20000–80000 e-)
either into one pixel or along a straight track a few pixels long. Along a track the charge
is shared unevenly between sample points (Gamma-distributed weights), because ionization
along a path fluctuates; the sample points are spaced a quarter pixel apart so that a track
is always an 8-connected chain of pixels.

Examples
--------
>>> import numpy as np
>>> hits = cosmic_rays((50, 60), 60.0, 1e-4, np.random.default_rng(0))
>>> hits.deposit.shape, hits.count > 0
((50, 60), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import CcdcalError

#: default hit rate per pixel per second: the tutorial's ~20 hits on a 200x200 frame in 60 s
DEFAULT_COSMIC_RATE = 20.0 / (200 * 200 * 60.0)

#: default total charge per hit, electrons (uniform between the two)
DEFAULT_COSMIC_ENERGY = (20_000.0, 80_000.0)

_SAMPLES_PER_PIXEL = 4  # track sampling: 0.25 px steps keep the pixel chain connected


@dataclass(frozen=True, eq=False)
class CosmicHits:
    """The cosmic rays of one exposure.

    Attributes
    ----------
    deposit
        Charge deposited per pixel, electrons (float64, shape of the exposed area).
    count
        Number of hits (including tracks that left the frame).
    x, y
        Centre of each hit, 0-based pixel coordinates.
    energy
        Total charge of each hit, electrons (the part that fell off the frame included).
    length
        Track length in pixels (0 for single-pixel hits).
    """

    deposit: np.ndarray
    count: int
    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray
    length: np.ndarray


def cosmic_rays(
    shape: tuple[int, int],
    exptime: float,
    rate: float,
    rng: np.random.Generator,
    *,
    energy: tuple[float, float] = DEFAULT_COSMIC_ENERGY,
    single_fraction: float = 0.4,
    max_length: float = 8.0,
) -> CosmicHits:
    """Draw the cosmic-ray hits of one exposure.

    Parameters
    ----------
    shape
        (ny, nx) of the light-sensitive area.
    exptime
        Exposure time, seconds.
    rate
        Hits per pixel per second; the number of hits is Poisson with mean
        ``rate * ny * nx * exptime``.
    rng
        Source of randomness.
    energy
        Range of the total charge of one hit, electrons (uniform).
    single_fraction
        Fraction of hits that fall into a single pixel (nearly perpendicular incidence);
        the rest are tracks.
    max_length
        Tracks are uniformly 1.5 to ``max_length`` pixels long, at a uniform random angle.

    Returns
    -------
    CosmicHits

    Examples
    --------
    >>> import numpy as np
    >>> hits = cosmic_rays((40, 40), 100.0, 0.0, np.random.default_rng(1))
    >>> hits.count, float(hits.deposit.sum())
    (0, 0.0)
    """
    ny, nx = shape
    if rate < 0 or exptime < 0:
        raise CcdcalError(f"cosmic rate and exposure time must be >= 0, not {rate}, {exptime}")
    if not 0.0 <= single_fraction <= 1.0:
        raise CcdcalError(f"single_fraction must be within 0..1, not {single_fraction}")
    lo, hi = energy
    if not 0 <= lo <= hi:
        raise CcdcalError(f"energy must be a range (low, high) with 0 <= low <= high, not {energy}")
    n = int(rng.poisson(rate * ny * nx * exptime)) if rate > 0 and exptime > 0 else 0
    x0 = rng.uniform(-0.5, nx - 0.5, n)
    y0 = rng.uniform(-0.5, ny - 0.5, n)
    total = rng.uniform(lo, hi, n)
    single = rng.random(n) < single_fraction
    length = np.where(single, 0.0, rng.uniform(1.5, max(max_length, 1.5), n))
    angle = rng.uniform(0.0, np.pi, n)

    # every hit becomes a run of sample points along its track (one point for a single hit)
    npts = np.maximum(1, np.ceil(length * _SAMPLES_PER_PIXEL)).astype(np.int64)
    owner = np.repeat(np.arange(n), npts)
    start = np.cumsum(npts) - npts
    frac = (np.arange(owner.size) - start[owner] + 0.5) / npts[owner] - 0.5  # -0.5 .. 0.5
    xs = x0[owner] + frac * length[owner] * np.cos(angle[owner])
    ys = y0[owner] + frac * length[owner] * np.sin(angle[owner])
    weight = rng.gamma(2.0, size=owner.size)
    weight *= (total / np.bincount(owner, weight, minlength=n))[owner] if n else 1.0

    xi = np.rint(xs).astype(np.int64)
    yi = np.rint(ys).astype(np.int64)
    inside = (xi >= 0) & (xi < nx) & (yi >= 0) & (yi < ny)
    deposit = np.bincount(
        (yi * nx + xi)[inside], weights=weight[inside], minlength=ny * nx
    ).reshape(ny, nx)
    return CosmicHits(deposit, n, x0, y0, total, length)


__all__ = ["DEFAULT_COSMIC_ENERGY", "DEFAULT_COSMIC_RATE", "CosmicHits", "cosmic_rays"]
