"""The sky a simulated detector looks at: a smooth background plus Gaussian stars.

A :class:`Scene` is a rate in electrons per second per pixel *before* the detector's flat
response (what a perfect, uniform detector would collect), plus the table of its stars, so
that photometry and calibrated images can be checked against the truth.

Coordinates are 0-based pixel coordinates with pixel centres at integers: pixel ``[j, i]``
covers ``i - 0.5 <= x < i + 0.5`` and ``j - 0.5 <= y < j + 0.5``.

Examples
--------
>>> import numpy as np
>>> scene = Scene.random((64, 64), np.random.default_rng(0), nstars=5)
>>> scene.shape, len(scene.stars)
((64, 64), 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from scipy.special import ndtr

from ..errors import CcdcalError

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...

_BOX_SIGMAS = 6.0  # stars are drawn out to this many sigma: the rest is < 1e-8 of the flux
_CHUNK = 4096  # stars rendered at once (bounds the memory of the stamps)


def render_stars(
    shape: tuple[int, int],
    x: np.ndarray,
    y: np.ndarray,
    flux: np.ndarray,
    fwhm: float,
) -> np.ndarray:
    """Circular Gaussian stars integrated over each pixel, summed into an image.

    Each star is evaluated only in a box of about ±6 sigma around it; integrating the
    Gaussian over the pixel area (rather than sampling it at the centre) makes the image's
    sum equal the stars' total flux even for undersampled PSFs.

    Parameters
    ----------
    shape
        (ny, nx) of the image.
    x, y
        Star centres, 0-based pixel coordinates.
    flux
        Total flux of each star (any unit; the image has that unit per pixel).
    fwhm
        Full width at half maximum of the PSF, pixels.

    Returns
    -------
    numpy.ndarray
        float64 image; flux falling outside the image is lost.

    Examples
    --------
    >>> img = render_stars((21, 21), np.array([10.0]), np.array([10.0]), np.array([100.0]), 3.0)
    >>> round(float(img.sum()), 6)
    100.0
    """
    ny, nx = shape
    x = np.atleast_1d(np.asarray(x, float))
    y = np.atleast_1d(np.asarray(y, float))
    flux = np.atleast_1d(np.asarray(flux, float))
    if not x.shape == y.shape == flux.shape:
        raise CcdcalError(f"x, y and flux differ in length: {x.size}, {y.size}, {flux.size}")
    if fwhm <= 0:
        raise CcdcalError(f"fwhm must be > 0, not {fwhm}")
    sigma = fwhm / FWHM_PER_SIGMA
    half = math.ceil(_BOX_SIGMAS * sigma)
    offsets = np.arange(-half, half + 1)
    image = np.zeros(ny * nx)
    for s in range(0, x.size, _CHUNK):
        cx, cy, cf = x[s : s + _CHUNK], y[s : s + _CHUNK], flux[s : s + _CHUNK]
        ix = np.rint(cx).astype(np.int64)[:, None] + offsets  # (n, box)
        iy = np.rint(cy).astype(np.int64)[:, None] + offsets
        # fraction of a 1-D Gaussian falling into each pixel: difference of the normal CDF
        gx = ndtr((ix + 0.5 - cx[:, None]) / sigma) - ndtr((ix - 0.5 - cx[:, None]) / sigma)
        gy = ndtr((iy + 0.5 - cy[:, None]) / sigma) - ndtr((iy - 0.5 - cy[:, None]) / sigma)
        stamps = cf[:, None, None] * gy[:, :, None] * gx[:, None, :]
        xx = np.broadcast_to(ix[:, None, :], stamps.shape)
        yy = np.broadcast_to(iy[:, :, None], stamps.shape)
        inside = (xx >= 0) & (xx < nx) & (yy >= 0) & (yy < ny)
        image += np.bincount((yy * nx + xx)[inside], stamps[inside], minlength=ny * nx)
    return image.reshape(ny, nx)


def sky_plane(shape: tuple[int, int], level: float, gradient: float = 0.0) -> np.ndarray:
    """A smooth sky: ``level`` times a plane that changes by ``gradient`` corner to corner.

    Examples
    --------
    >>> p = sky_plane((3, 3), 10.0, 0.2)
    >>> float(p[0, 0]), float(p[1, 1]), float(p[2, 2])
    (9.0, 10.0, 11.0)
    """
    ny, nx = shape
    u = np.linspace(-0.5, 0.5, nx)[None, :]
    v = np.linspace(-0.5, 0.5, ny)[:, None]
    return level * (1.0 + 0.5 * gradient * (u + v))


@dataclass(frozen=True, eq=False)
class Scene:
    """A sky scene as a rate: electrons per second per pixel, before the flat response.

    Build one with :meth:`random` or :meth:`from_stars`; a scene never changes (its arrays
    are read-only), :meth:`with_stars` returns a new one.

    Attributes
    ----------
    rate
        (ny, nx) float64, electron/s per pixel: sky plus stars.
    stars
        One row per star: ``id``, ``x``, ``y`` (0-based pixel coordinates), ``peak_rate``
        (amplitude of the continuous Gaussian, electron/s) and ``flux_rate`` (total,
        electron/s, = 2 pi sigma^2 peak_rate). A copy is returned on each access.
    sky_rate
        Mean sky level, electron/s per pixel.
    fwhm
        PSF full width at half maximum, pixels.

    Examples
    --------
    >>> s = Scene.from_stars((32, 32), [16.0], [16.0], [1000.0], sky_rate=2.0)
    >>> round(float(s.rate.sum() - 2.0 * 32 * 32), 3) == round(float(s.stars["flux_rate"][0]), 3)
    True
    """

    rate: np.ndarray
    _stars: Table
    sky_rate: float = 0.0
    fwhm: float = 3.0

    def __post_init__(self) -> None:
        rate = np.array(self.rate, dtype=np.float64)
        if rate.ndim != 2:
            raise CcdcalError(f"a scene's rate is a 2-D image, not of shape {rate.shape}")
        if not np.all(np.isfinite(rate)) or (rate < 0).any():
            raise CcdcalError("a scene's rate must be finite and >= 0 everywhere")
        rate.setflags(write=False)
        object.__setattr__(self, "rate", rate)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.rate.shape  # type: ignore[return-value]

    @property
    def stars(self) -> Table:
        """The star table (a copy)."""
        return self._stars.copy()

    def expected(self, exptime: float) -> np.ndarray:
        """Electrons a perfect detector collects in ``exptime`` seconds (rate x time).

        Examples
        --------
        >>> s = Scene.from_stars((8, 8), [], [], [], sky_rate=1.5)
        >>> float(s.expected(10.0)[0, 0])
        15.0
        """
        return self.rate * float(exptime)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_stars(
        cls,
        shape: tuple[int, int],
        x: Sequence[float] | np.ndarray,
        y: Sequence[float] | np.ndarray,
        peak_rate: Sequence[float] | np.ndarray,
        *,
        fwhm: float = 3.0,
        sky_rate: float = 0.0,
        sky_gradient: float = 0.0,
    ) -> Scene:
        """A scene with stars at given places and peak rates on a smooth sky.

        Parameters
        ----------
        shape
            (ny, nx).
        x, y
            Star centres, 0-based pixel coordinates.
        peak_rate
            Peak of each star's continuous Gaussian profile, electron/s.
        fwhm
            PSF FWHM, pixels.
        sky_rate
            Sky level, electron/s per pixel.
        sky_gradient
            Fractional change of the sky from the (0, 0) corner to the opposite one.

        Examples
        --------
        >>> s = Scene.from_stars((20, 20), [10.0], [10.0], [50.0], fwhm=2.0)
        >>> list(s.stars.colnames)
        ['id', 'x', 'y', 'peak_rate', 'flux_rate']
        """
        ny, nx = (int(v) for v in shape)
        if ny < 1 or nx < 1:
            raise CcdcalError(f"shape must be positive, not {shape}")
        if sky_rate < 0:
            raise CcdcalError(f"sky_rate must be >= 0, not {sky_rate}")
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        peak = np.asarray(peak_rate, float)
        if (peak < 0).any():
            raise CcdcalError("star peak rates must be >= 0")
        sigma = fwhm / FWHM_PER_SIGMA
        flux = 2.0 * math.pi * sigma**2 * peak
        rate = sky_plane((ny, nx), sky_rate, sky_gradient)
        if x.size:
            rate = rate + render_stars((ny, nx), x, y, flux, fwhm)
        stars = Table(
            {
                "id": np.arange(1, x.size + 1, dtype=np.int64),
                "x": x,
                "y": y,
                "peak_rate": peak,
                "flux_rate": flux,
            },
            units={"x": "pix", "y": "pix", "peak_rate": "electron/s", "flux_rate": "electron/s"},
            meta={"fwhm": float(fwhm), "sky_rate": float(sky_rate)},
        )
        return cls(rate, stars, float(sky_rate), float(fwhm))

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
        exptime_ref: float = 60.0,
        margin: float = 10.0,
        sky_gradient: float = 0.0,
    ) -> Scene:
        """Stars at uniform random places with uniform random peaks, on a smooth sky.

        The defaults are the tutorial's field: in an exposure of ``exptime_ref`` seconds the
        sky gives ``sky`` electrons per pixel and star peaks reach ``peak`` electrons.

        Parameters
        ----------
        shape
            (ny, nx).
        rng
            Source of randomness.
        nstars
            Number of stars.
        fwhm
            PSF FWHM, pixels.
        sky
            Sky, electrons per pixel in ``exptime_ref``.
        peak
            Range of star peaks, electrons in ``exptime_ref`` (uniform).
        exptime_ref
            The exposure time that ``sky`` and ``peak`` refer to, seconds.
        margin
            Star centres keep at least this distance from the edges, pixels.
        sky_gradient
            Fractional change of the sky across the field, corner to corner.

        Examples
        --------
        >>> import numpy as np
        >>> s = Scene.random((40, 40), np.random.default_rng(2), nstars=3, sky=60.0)
        >>> s.sky_rate
        1.0
        """
        ny, nx = (int(v) for v in shape)
        if ny <= 2 * margin or nx <= 2 * margin:
            raise CcdcalError(
                f"shape {shape} leaves no room for stars {margin} px from the edges; "
                f"use a larger shape or a smaller margin"
            )
        if nstars < 0:
            raise CcdcalError(f"nstars must be >= 0, not {nstars}")
        if exptime_ref <= 0:
            raise CcdcalError(f"exptime_ref must be > 0, not {exptime_ref}")
        x = rng.uniform(margin, nx - margin, nstars)
        y = rng.uniform(margin, ny - margin, nstars)
        peaks = rng.uniform(peak[0], peak[1], nstars)
        scene = cls.from_stars(
            (ny, nx),
            x,
            y,
            peaks / exptime_ref,
            fwhm=fwhm,
            sky_rate=sky / exptime_ref,
            sky_gradient=sky_gradient,
        )
        scene._stars.meta["exptime_ref"] = float(exptime_ref)
        return scene

    def with_stars(
        self,
        x: Sequence[float] | np.ndarray,
        y: Sequence[float] | np.ndarray,
        peak_rate: Sequence[float] | np.ndarray,
    ) -> Scene:
        """A new scene with more stars (same PSF) added to this one.

        Examples
        --------
        >>> s = Scene.from_stars((20, 20), [], [], [], sky_rate=1.0)
        >>> len(s.with_stars([10.0], [10.0], [500.0]).stars)
        1
        """
        extra = Scene.from_stars(self.shape, x, y, peak_rate, fwhm=self.fwhm)
        table = self._stars.copy()
        more = extra._stars.copy()
        more["id"] += len(table)
        for row in more:
            table.add_row(row)
        return Scene(self.rate + extra.rate, table, self.sky_rate, self.fwhm)


__all__ = ["FWHM_PER_SIGMA", "Scene", "render_stars", "sky_plane"]
