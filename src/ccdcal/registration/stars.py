"""Stars of one frame and what they say of it: positions, fluxes, seeing, shape, background.

Detection is sep's (Source Extractor's algorithms as a library): a background map, objects
5 sigma above it over at least 5 connected pixels, then windowed centroids (``sep.winpos``).
Measured on simulated frames of 1024x1024 (``benchmarks/register_vs_peers.py``), sep found
stars faster than photutils' DAOStarFinder and its windowed centroids came 3x closer to the
truth, so ccdcal uses sep. Of what sep detects, cosmic-ray hits and tracks and hot pixels,
sharper than the frame's point-spread function, are left out before anything else is
measured (:mod:`~ccdcal.registration.profiles`).

The FWHM of a star is twice its half-light radius (exact for a Gaussian), corrected for the
pixel's own width (an integrated pixel adds 1/12 to a Gaussian's variance on each axis).

Examples
--------
>>> import numpy as np
>>> from ccdcal.simulate.scene import render_stars
>>> rng = np.random.default_rng(0)
>>> y, x = np.mgrid[20:200:30, 20:200:30] + rng.uniform(-0.5, 0.5, (2, 6, 6))
>>> image = render_stars((200, 200), x.ravel(), y.ravel(), np.full(36, 5e4), 4.0) + 100.0
>>> image = rng.normal(image, 10.0).astype(np.float32)
>>> stars, quality = find_stars(image)
>>> quality.nstars, round(quality.fwhm, 1)
(36, 4.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import flags
from ..frame import Frame
from .profiles import measure, stellar

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_HALF_LIGHT_PER_SIGMA = math.sqrt(2.0 * math.log(2.0))  # a Gaussian's r(50 %) / sigma


@dataclass(frozen=True, eq=False)
class Stars:
    """Stars of one frame, brightest first (0-based pixel coordinates, centres at integers).

    Attributes
    ----------
    x, y
        Windowed centroids, pixels.
    flux
        Flux above the background (the frame's unit), in an aperture of 3 FWHM diameter.
    fwhm
        Each star's FWHM, pixels.
    ellipticity
        1 - b/a of each star's second moments.
    good
        Stars whose position and shape can be trusted: single (not deblended from a blend),
        isolated (no other detection within 3 FWHM), of the frame's typical FWHM (0.7 to
        1.5 times the median: not a blend, not a star whose core the full well clipped) and
        round (ellipticity below 0.5). Transforms are fitted to these.
    """

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    fwhm: np.ndarray
    ellipticity: np.ndarray
    good: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.good is None:
            object.__setattr__(self, "good", np.ones(len(self.x), bool))

    def __len__(self) -> int:
        return len(self.x)

    def xy(self) -> np.ndarray:
        """(n, 2) array of positions."""
        return np.column_stack([self.x, self.y])

    def _columns(self) -> tuple[np.ndarray, ...]:
        assert self.good is not None
        return (self.x, self.y, self.flux, self.fwhm, self.ellipticity, self.good)

    def brightest(self, n: int) -> Stars:
        """The ``n`` brightest."""
        return Stars(*(a[:n] for a in self._columns()))

    def trusted(self) -> Stars:
        """The :attr:`good` stars only."""
        return Stars(*(a[self.good] for a in self._columns()))


@dataclass(frozen=True)
class Quality:
    """What a frame's stars and sky say of it.

    Attributes
    ----------
    nstars
        Stars found.
    fwhm
        Median FWHM of the well-measured stars, pixels (NaN without any).
    ellipticity
        Their median ellipticity.
    background
        Sky level: the median of the sky's mesh, SExtractor's global background (the
        frame's unit).
    noise
        Sky noise, robust rms (the frame's unit).
    fwhm_err
        Standard error of ``fwhm`` (from the scatter of the stars' FWHM).
    """

    nstars: int
    fwhm: float
    ellipticity: float
    background: float
    noise: float
    fwhm_err: float = math.nan


def _data_and_mask(image: Frame | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(image, Frame):
        data = image.data
        bad = ~np.isfinite(data)
        if image.mask is not None:
            bad |= (image.mask & flags.EXCLUDE) != 0
    else:
        data = np.asarray(image)
        bad = ~np.isfinite(data)
    data = np.ascontiguousarray(np.where(bad, 0.0, data), dtype=np.float32)
    return data, bad


def find_stars(
    image: Frame | np.ndarray,
    *,
    threshold: float = 5.0,
    min_area: int = 5,
    max_stars: int = 1000,
) -> tuple[Stars, Quality]:
    """Detect the stars of a frame and measure its quality.

    Parameters
    ----------
    image
        A calibrated :class:`~ccdcal.frame.Frame` (pixels flagged with excluding mask bits
        and non-finite values are ignored) or a 2-D array.
    threshold
        Detection threshold, in units of the sky noise.
    min_area
        Least number of connected pixels above the threshold.
    max_stars
        Keep at most this many, the brightest.

    Returns
    -------
    stars : Stars
        Brightest first. Cosmic-ray hits and tracks and hot pixels (sharper than the
        frame's stars, see :func:`~ccdcal.registration.profiles.stellar`) and objects at
        the image edge or touching excluded pixels are left out.
    quality : Quality
        Star count, median FWHM and ellipticity, sky level and noise.
    """
    import sep

    data, bad = _data_and_mask(image)
    ny, nx = data.shape
    background = sep.Background(data, mask=bad)
    # SExtractor's global level and noise: the medians of the sky's mesh (the median of the
    # interpolated sky map, as before, differed from it by under 2e-4 of the sky on issue
    # 16's night and took a fifth of this function's time)
    level = float(background.globalback)
    noise = float(background.globalrms)
    # the sky's sample for the quantization's test, taken before the sky is subtracted from
    # the data in place (the data are this function's copy: a sky map and a difference
    # beside them were two frames more in memory)
    sampled = (data[::_SAMPLE, ::_SAMPLE].copy(), bad[::_SAMPLE, ::_SAMPLE])
    sub = data
    background.subfrom(sub)
    found, segments = sep.extract(sub, threshold, err=noise, mask=bad, minarea=min_area,
                                  deblend_cont=0.005, segmentation_map=True)  # fmt: skip
    empty = Stars(*(np.empty(0) for _ in range(5)))
    if len(found) == 0:
        return empty, Quality(0, math.nan, math.nan, level, noise)
    # objects at the edges or on excluded pixels: their centroids would be biased
    x0, x1, y0, y1 = found["xmin"], found["xmax"], found["ymin"], found["ymax"]
    inside = (x0 > 1) & (y0 > 1) & (x1 < nx - 2) & (y1 < ny - 2)
    number = np.arange(1, len(found) + 1)[inside]  # in the segmentation map
    found = found[inside]
    # cosmic rays and hot pixels: sharper than the PSF (see profiles.py); left out before
    # anything is measured on them (a long light has thousands), and their pixels set to
    # the sky, so that a hit beside a star pulls neither its centroid nor its width
    scatter = _pixel_noise(*sampled, segments[::_SAMPLE, ::_SAMPLE], noise)
    star = stellar(measure(sub, bad, found["ypeak"], found["xpeak"], scatter))
    if not star.all():
        refused = np.zeros(len(inside) + 1, bool)
        refused[number[~star]] = True
        sub[refused[segments]] = 0.0
    found = found[star]
    if len(found) == 0:
        return empty, Quality(0, math.nan, math.nan, level, noise)
    # the half-light radius within one aperture for all, three times the frame's typical
    # FWHM (first from the objects' second moments, then from a first pass): an aperture
    # grown with each star's own size would take in its neighbours' light
    single = ((found["flag"] & sep.OBJ_MERGED) == 0) & (
        found["b"] > 0.5 * np.maximum(found["a"], 1e-3)
    )  # single and round: the stars whose width is the seeing's

    def typical_of(width: np.ndarray) -> float:
        return float(np.median(width[single] if single.sum() >= 3 else width))

    typical = typical_of(FWHM_PER_SIGMA * np.sqrt((found["a"] ** 2 + found["b"] ** 2) / 2.0))
    for _ in range(2):
        rmax = np.full(len(found), max(3.0 * typical, 4.0))
        # excluded pixels are left out of it: one in a star's wings (a saturated hit)
        # takes almost none of its light; one in its core is refused below
        half, _ = sep.flux_radius(sub, found["x"], found["y"], rmax, 0.5, mask=bad,
                                  subpix=5)  # fmt: skip
        sigma_eff = half / _HALF_LIGHT_PER_SIGMA
        fwhm = FWHM_PER_SIGMA * np.sqrt(np.clip(sigma_eff**2 - 1.0 / 12.0, 1e-6, None))
        typical = typical_of(fwhm)
    sig_win = np.clip(fwhm / FWHM_PER_SIGMA, 0.3, None)
    x, y, wflag = sep.winpos(sub, found["x"], found["y"], sig_win, mask=bad)
    flux, _, fflag = sep.sum_circle(sub, x, y, 1.5 * np.maximum(fwhm, 1.0), mask=bad, subpix=5)
    b = np.maximum(found["b"], 1e-3)
    ellipticity = 1.0 - b / np.maximum(found["a"], b)
    ok = (
        (wflag == 0)
        & np.isfinite(x)
        & np.isfinite(y)
        & (flux > 0)
        & np.isfinite(fwhm)
        & ((fflag & sep.APER_HASMASKED) == 0)
    )
    x, y, flux, fwhm, ellipticity = (v[ok] for v in (x, y, flux, fwhm, ellipticity))
    merged = (found["flag"][ok] & sep.OBJ_MERGED) != 0
    # cosmic rays and hot pixels: far sharper than the frame's stars
    if len(fwhm) >= 3:
        typical = (
            float(np.median(fwhm[~merged])) if (~merged).sum() >= 3 else float(np.median(fwhm))
        )
        sharp = fwhm < 0.5 * typical
        x, y, flux, fwhm, ellipticity, merged = (
            v[~sharp] for v in (x, y, flux, fwhm, ellipticity, merged)
        )
    good = _trustworthy(x, y, fwhm, ellipticity, merged, typical)
    order = np.argsort(-flux)[:max_stars]
    stars = Stars(x[order], y[order], flux[order], fwhm[order], ellipticity[order], good[order])
    clean = stars.good
    assert clean is not None
    seeing = stars.fwhm[clean] if clean.sum() >= 3 else stars.fwhm
    shape = stars.ellipticity[clean] if clean.sum() >= 3 else stars.ellipticity
    spread = 1.4826 * float(np.median(np.abs(seeing - np.median(seeing)))) if len(seeing) else 0
    quality = Quality(
        nstars=len(stars),
        fwhm=float(np.median(seeing)) if len(seeing) else math.nan,
        ellipticity=float(np.median(shape)) if len(shape) else math.nan,
        background=level,
        noise=noise,
        # the standard error of a median: 1.2533 sigma / sqrt(n)
        fwhm_err=1.2533 * spread / math.sqrt(len(seeing)) if len(seeing) >= 3 else math.nan,
    )
    return stars, quality


#: every 4th pixel of every 4th row: enough for the sky's median, cheap on any frame
_SAMPLE = 4


def _pixel_noise(data: np.ndarray, bad: np.ndarray, segments: np.ndarray, noise: float) -> float:
    """The sky noise, or the data's quantization where it is larger. Where most of the
    sky's pixels hold one same value (Feder's 8-bit frames: 0 around objects made of steps
    of about 1 ADU), the sky's noise is below the data's step, and a pixel is known only to
    the step over sqrt(12) (the step: the median distance of the other sky values from that
    one). In other frames the sky's values are spread like the noise: nothing changes.
    ``data``, ``bad`` and ``segments`` are the frame's sampled every :data:`_SAMPLE`
    pixels."""
    sky = data[(segments == 0) & ~bad]
    if sky.size < 100:
        return noise
    level = np.median(sky)
    off = np.abs(sky[sky != level] - level)
    if off.size > 0.5 * sky.size or off.size == 0:
        return noise
    return max(noise, float(np.median(off)) / math.sqrt(12.0))


def _trustworthy(
    x: np.ndarray,
    y: np.ndarray,
    fwhm: np.ndarray,
    ellipticity: np.ndarray,
    merged: np.ndarray,
    typical: float,
) -> np.ndarray:
    """Which stars are single, isolated, of typical width and round (see :class:`Stars`)."""
    good = ~merged & (ellipticity < 0.5)
    if len(x) == 0:
        return good
    if len(x) > 1:
        from scipy.spatial import cKDTree

        dist, _ = cKDTree(np.column_stack([x, y])).query(np.column_stack([x, y]), k=2)
        good &= dist[:, 1] > 3.0 * max(typical, 1.0)
    base = fwhm[good] if good.sum() >= 3 else fwhm
    typical = float(np.median(base))
    return good & (fwhm > 0.7 * typical) & (fwhm < 1.5 * typical)


def stars_table(stars: Stars, quality: Quality) -> Any:
    """Stars and quality as an astropy Table (the quality in its meta), to write as ECSV.

    Examples
    --------
    >>> q = Quality(1, 3.0, 0.1, 100.0, 5.0)
    >>> s = Stars(*(np.array([v]) for v in (1.0, 2.0, 50.0, 3.0, 0.1)))
    >>> back = stars_from_table(stars_table(s, q))
    >>> back[1] == q, float(back[0].flux[0])
    (True, 50.0)
    """
    from astropy.table import Table

    table = Table(
        {"x": stars.x, "y": stars.y, "flux": stars.flux, "fwhm": stars.fwhm,
         "ellipticity": stars.ellipticity, "good": stars.good},
        units={"x": "pix", "y": "pix", "fwhm": "pix"},
    )  # fmt: skip
    table.meta.update(
        nstars=quality.nstars, fwhm=quality.fwhm, ellipticity=quality.ellipticity,
        background=quality.background, noise=quality.noise, fwhm_err=quality.fwhm_err,
    )  # fmt: skip
    table.meta["comment"] = [
        "stars of one frame, brightest first: windowed centroids (0-based pixels), flux "
        "above the sky, FWHM and ellipticity; the frame's quality in the header"
    ]
    return table


def stars_from_table(table: Any) -> tuple[Stars, Quality]:
    """The inverse of :func:`stars_table`."""
    m = table.meta
    columns = ("x", "y", "flux", "fwhm", "ellipticity")
    good = np.asarray(table["good"], bool) if "good" in table.colnames else None
    stars = Stars(*(np.asarray(table[c], np.float64) for c in columns), good)
    quality = Quality(int(m["nstars"]), float(m["fwhm"]), float(m["ellipticity"]),
                      float(m["background"]), float(m["noise"]),
                      float(m.get("fwhm_err", math.nan)))  # fmt: skip
    return stars, quality


__all__ = ["Quality", "Stars", "find_stars", "stars_from_table", "stars_table"]
