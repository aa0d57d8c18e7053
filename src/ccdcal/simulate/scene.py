"""The truth scene: smooth sky plus Gaussian stars, as a rate in electrons per second.

Examples
--------
>>> import numpy as np
>>> scene = Scene.random((64, 64), np.random.default_rng(0), nstars=5)
>>> scene.rate.shape, len(scene.stars)
((64, 64), 5)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True, eq=False)
class Scene:
    """A sky seen above the telescope: ``rate`` in e-/s per pixel and the table of its stars.

    Attributes
    ----------
    rate
        Electrons per second per pixel (sky and stars).
    stars
        Table with ``x``, ``y`` (0-based pixel coordinates), ``peak_rate`` and ``flux_rate``
        (e-/s; flux is the integral of the Gaussian).
    sky_rate
        The smooth sky's mean level, e-/s per pixel.
    fwhm
        Full width at half maximum of the stars, pixels.
    """

    rate: np.ndarray = field(repr=False)
    stars: Table = field(repr=False)
    sky_rate: float
    fwhm: float

    @classmethod
    def random(
        cls,
        shape: tuple[int, int],
        rng: np.random.Generator,
        *,
        nstars: int = 30,
        fwhm: float = 3.0,
        sky: float = 100.0,
        peak: tuple[float, float] = (2_000.0, 20_000.0),
        exptime: float = 60.0,
        sky_gradient: float = 0.0,
        margin: float = 10.0,
    ) -> Scene:
        """A random star field; ``sky`` and ``peak`` are electrons in ``exptime`` seconds.

        The defaults reproduce the tutorial in a 60 s light: 30 stars of FWHM 3 whose peaks
        reach 2,000–20,000 e-, on a sky of 100 e-, at least 10 pixels from the edges.

        Parameters
        ----------
        shape
            (ny, nx).
        rng
            Source of positions and fluxes.
        nstars, fwhm
            Number of stars and their FWHM in pixels.
        sky, peak
            Sky level and range of star peaks, electrons in ``exptime`` seconds.
        exptime
            The exposure the levels refer to; the scene is stored as a rate.
        sky_gradient
            Fractional change of the sky across the field (a linear tilt in x).
        margin
            Least distance of a star from the edges, pixels.
        """
        ny, nx = shape
        margin = min(margin, nx / 4, ny / 4)
        sigma = fwhm / FWHM_PER_SIGMA
        x = rng.uniform(margin, nx - margin, nstars)
        y = rng.uniform(margin, ny - margin, nstars)
        peaks = rng.uniform(*peak, nstars) / exptime
        xx = np.arange(nx)
        sky_rate = sky / exptime
        rate = np.full(shape, sky_rate) * (1 + sky_gradient * (xx / nx - 0.5))[None, :]
        half = int(np.ceil(6 * sigma))  # the star beyond 6 sigma is below 1e-8 of its peak
        for x0, y0, p in zip(x, y, peaks, strict=True):
            i0, i1 = max(int(y0) - half, 0), min(int(y0) + half + 1, ny)
            j0, j1 = max(int(x0) - half, 0), min(int(x0) + half + 1, nx)
            dy = (np.arange(i0, i1) - y0)[:, None]
            dx = (np.arange(j0, j1) - x0)[None, :]
            rate[i0:i1, j0:j1] += p * np.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
        stars = Table(
            {
                "id": np.arange(nstars),
                "x": x,
                "y": y,
                "peak_rate": peaks,
                "flux_rate": peaks * 2 * np.pi * sigma * sigma,
            }
        )
        stars.meta["fwhm"] = fwhm
        return cls(rate=rate, stars=stars, sky_rate=sky_rate, fwhm=fwhm)


__all__ = ["Scene"]
