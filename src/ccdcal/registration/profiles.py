"""Which detections are stars: nothing that came through the optics is sharper than the PSF.

The light of every source on the sky reaches the detector spread by one point-spread
function, the same over the whole frame. A cosmic-ray hit or a hot pixel never passed the
optics and is sharper than the PSF somewhere: a hit on one pixel everywhere, a track in the
direction across it. On a 60 s light of 2048x2048 there are some two thousand such hits,
as bright as the stars (20,000 to 80,000 e-), against a few dozen stars: a single cut on
sharpness alone, or a "typical" width taken from all objects, follows the hits.

Three measures, each on the few pixels around an object's brightest one (cheap for
thousands of detections; SDSS's PHOTO rejects cosmic rays by the same principle, pixel by
pixel, against the PSF's value one pixel from its peak):

- width and length: the second moments of the light in the 5x5 pixels about its centroid,
  along its narrowest and its longest direction (px²). A star of FWHM ``f`` has about
  ``(f / 2.355)² + 1/12`` on every axis (0.26 at FWHM 1 px; 1.2 at 3 px in this window);
  a track is one pixel wide (0 to 0.12 across it), a one-pixel hit has 0.
- sharpness: the brightest pixel's share of the light of the 3x3 pixels around it (0.16 at
  FWHM 3 px; 0.25 to 0.6 at FWHM 1 px, as the star falls on its pixel; 1 for a one-pixel
  hit).
- falloff: the mean of the brightest pixel's two neighbours along an axis over the
  brightest pixel, the smaller of the two axes, and of the two diagonals (0.75 and 0.55 at
  FWHM 3 px, 0.16 and 0.02 at FWHM 1 px). Across a track its neighbours are dark: 0.

Two steps decide:

1. What no star can be, whatever the seeing: narrower than :data:`NARROWEST` (beyond its
   noise), or a one-pixel hit (sharpness of :data:`SINGLE` or more).
2. What the frame's own stars are not. The stars pile up where the PSF puts them in (width,
   length, sharpness), while hits that overlap by chance scatter: the densest cluster of
   the well-measured objects left is the frame's PSF (:func:`locus`). An object measured to
   S/N :data:`PRECISE` or better that is narrower (half the stars' width), sharper (1.5
   times) or falls off faster (half) than the frame's stars, by more than three times its
   noise, is no star. Fainter objects, too noisy for that, need only not be sharper than
   1.5 times the stars nor than :data:`SHARP` (faint hits are rare: a hit deposits tens of
   thousands of electrons).

The noise is the sky's per pixel, or the data's quantization where the sky's noise is
below one step of the data (see :func:`ccdcal.registration.stars.find_stars`).

Examples
--------
>>> import numpy as np
>>> from ccdcal.simulate.scene import render_stars
>>> rng = np.random.default_rng(1)
>>> y, x = np.mgrid[10:100:15, 10:100:15] + rng.uniform(-0.5, 0.5, (2, 6, 6))
>>> image = render_stars((110, 110), x.ravel(), y.ravel(), np.full(36, 3e4), 3.0)
>>> image[50, 20:25] += 8000.0  # a cosmic-ray track, five pixels long
>>> image[80, 95] += 20000.0  # a hit on one pixel
>>> image = rng.normal(image, 10.0)
>>> peaks_y = np.r_[np.round(y.ravel()), 50, 80].astype(int)
>>> peaks_x = np.r_[np.round(x.ravel()), 22, 95].astype(int)
>>> shapes = measure(image, np.zeros(image.shape, bool), peaks_y, peaks_x, 10.0)
>>> ok = stellar(shapes)
>>> int(ok[:36].sum()), bool(ok[36]), bool(ok[37])
(36, False, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the least width a star's light has across (px², second moment on the pixels): a star of
#: FWHM 1 px has 0.21 to 0.27 (as it falls on its pixel), a cosmic-ray track 0 to 0.12
NARROWEST = 0.15
#: the brightest pixel's share of its 3x3 pixels' light from which an object is one pixel
#: (a hit, a hot pixel): a star of FWHM 1 px centred on its pixel holds 0.6
SINGLE = 0.9
#: the brightest pixel's share of its 3x3 pixels' light that a star sampled by 1.5 pixels
#: per FWHM or more does not reach, even faint (a third at FWHM 1.5 px, a fifth at 2 px)
SHARP = 0.45
#: S/N of the light in the 5x5 pixels from which an object's shape is compared with the
#: frame's stars
PRECISE = 30.0
#: how far beyond its noise (sigmas) an object must be to be refused
SIGMAS = 3.0

_OFFSETS = np.arange(-2, 3, dtype=np.float64)
_DY, _DX = np.meshgrid(_OFFSETS, _OFFSETS, indexing="ij")


@dataclass(frozen=True, eq=False)
class Shapes:
    """The shape of the light around each object's brightest pixel (see the module).

    Attributes
    ----------
    flux
        Light in the 5x5 pixels (the frame's unit).
    snr
        Its signal-to-noise ratio against the sky noise.
    width, length
        Second moments of that light along its narrowest and longest direction, px².
    sharpness
        The brightest pixel's share of the 3x3 pixels' light.
    axis, diagonal
        Falloff: the mean of the brightest pixel's two neighbours over the brightest pixel,
        the smaller along the two axes, and along the two diagonals.
    width_err, sharpness_err, axis_err, diagonal_err
        Their standard errors from the sky noise.
    clean
        No excluded pixel (a saturated core) among the 5x5.
    """

    flux: np.ndarray
    snr: np.ndarray
    width: np.ndarray
    length: np.ndarray
    sharpness: np.ndarray
    axis: np.ndarray
    diagonal: np.ndarray
    width_err: np.ndarray
    sharpness_err: np.ndarray
    axis_err: np.ndarray
    diagonal_err: np.ndarray
    clean: np.ndarray


@dataclass(frozen=True)
class Locus:
    """Where the frame's stars lie: the low end of their width and falloffs (10th
    percentiles), the high end of their sharpness (90th), and how many there are."""

    width: float
    sharpness: float
    axis: float
    diagonal: float
    count: int


def _stamps(
    sub: np.ndarray, bad: np.ndarray, y: np.ndarray, x: np.ndarray, r: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2r+1, 2r+1) pixels around each (y, x), excluded pixels set to 0 (no light), and
    whether each has none excluded."""
    ny, nx = sub.shape
    d = np.arange(-r, r + 1)
    yy = np.clip(y[:, None, None] + d[None, :, None], 0, ny - 1)
    xx = np.clip(x[:, None, None] + d[None, None, :], 0, nx - 1)
    excluded = bad[yy, xx]
    return np.where(excluded, 0.0, sub[yy, xx].astype(np.float64)), ~excluded.any(axis=(1, 2))


def measure(sub: np.ndarray, bad: np.ndarray, y: np.ndarray, x: np.ndarray, noise: float) -> Shapes:
    """The shapes of the objects whose brightest pixels are at (``y``, ``x``).

    Parameters
    ----------
    sub
        The frame less its sky.
    bad
        Pixels to ignore (counted as no light).
    y, x
        Integer row and column of each object's brightest pixel.
    noise
        Sky noise per pixel (the frame's unit).

    Returns
    -------
    Shapes
    """
    stamp, clean = _stamps(sub, bad, np.asarray(y, np.intp), np.asarray(x, np.intp), 2)
    flux = stamp.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(flux > 0, 1.0 / flux, np.nan)
        mx = (stamp * _DX).sum(axis=(1, 2)) * inv
        my = (stamp * _DY).sum(axis=(1, 2)) * inv
        cxx = (stamp * _DX**2).sum(axis=(1, 2)) * inv - mx**2
        cyy = (stamp * _DY**2).sum(axis=(1, 2)) * inv - my**2
        cxy = (stamp * _DX * _DY).sum(axis=(1, 2)) * inv - mx * my
        half = (cxx + cyy) / 2.0
        root = np.sqrt(((cxx - cyy) / 2.0) ** 2 + cxy**2)
        width, length = half - root, half + root
        # d(moment)/d(pixel) = ((x - mx)^2 - moment) / flux, summed in quadrature over the
        # 5x5 pixels: 170 - 100 w + 25 w^2 (in units of the noise over the flux)
        width_err = noise * np.sqrt(170.0 - 100.0 * width + 25.0 * width**2) * inv
        core = stamp[:, 1:4, 1:4]
        peak = core[:, 1, 1]
        box = core.sum(axis=(1, 2))
        sharpness = np.where(box > 0, peak / box, np.nan)
        sharpness_err = noise * np.sqrt((1 - sharpness) ** 2 + 8 * sharpness**2) / box
        on_peak = np.where(peak > 0, 1.0 / peak, np.nan)
        pairs = np.stack([
            core[:, 1, 0] + core[:, 1, 2], core[:, 0, 1] + core[:, 2, 1],
            core[:, 0, 0] + core[:, 2, 2], core[:, 0, 2] + core[:, 2, 0],
        ])  # fmt: skip
        falloff = pairs / 2.0 * on_peak
        axis = np.minimum(falloff[0], falloff[1])
        diagonal = np.minimum(falloff[2], falloff[3])
        # d(falloff)/d(neighbour) = 1 / (2 peak) for two, d/d(peak) = -falloff / peak
        axis_err = noise * np.sqrt(0.5 + axis**2) * on_peak
        diagonal_err = noise * np.sqrt(0.5 + diagonal**2) * on_peak
    return Shapes(
        flux=flux, snr=flux / (5.0 * noise) if noise > 0 else np.full(len(flux), np.inf),
        width=width, length=length, sharpness=sharpness, axis=axis, diagonal=diagonal,
        width_err=width_err, sharpness_err=sharpness_err, axis_err=axis_err,
        diagonal_err=diagonal_err, clean=clean,
    )  # fmt: skip


def locus(shapes: Shapes, candidates: np.ndarray, *, radius: float = 0.15, least: int = 5,
          most: int = 3000) -> Locus | None:  # fmt: skip
    """The frame's stars among ``candidates`` (a boolean mask): the densest cluster in
    (log width, log length, log sharpness), each candidate counting the others within
    ``radius`` (a box); its members are those within twice ``radius`` of the cluster's
    centre. None when fewer than ``least`` objects make the densest cluster. Only the
    ``most`` brightest candidates are counted (the cost grows with their square)."""
    from scipy.spatial import cKDTree

    index = np.nonzero(candidates)[0]
    if len(index) < least:
        return None
    if len(index) > most:
        index = index[np.argsort(-shapes.flux[index], kind="stable")[:most]]
    points = np.column_stack([np.log(shapes.width[index]), np.log(shapes.length[index]),
                              np.log(shapes.sharpness[index])])  # fmt: skip
    tree = cKDTree(points)
    counts = tree.query_ball_point(points, radius, p=np.inf, return_length=True)
    best = int(np.argmax(counts))
    if counts[best] < least:
        return None
    centre = np.median(points[tree.query_ball_point(points[best], radius, p=np.inf)], axis=0)
    members = index[tree.query_ball_point(centre, 2.0 * radius, p=np.inf)]
    return Locus(
        width=float(np.percentile(shapes.width[members], 10)),
        sharpness=float(np.percentile(shapes.sharpness[members], 90)),
        axis=float(np.percentile(shapes.axis[members], 10)),
        diagonal=float(np.percentile(shapes.diagonal[members], 10)),
        count=len(members),
    )


def stellar(shapes: Shapes) -> np.ndarray:
    """Which objects can be stars (see the module): not narrower than a star can be, not
    one pixel, and, where measured well, not sharper than the frame's own stars."""
    k = SIGMAS
    with np.errstate(invalid="ignore"):
        possible = (
            (shapes.flux > 0)
            & (shapes.width + k * shapes.width_err >= NARROWEST)
            & (shapes.sharpness < SINGLE)
        )
        well_measured = (
            possible
            & shapes.clean
            & (shapes.snr >= 20.0)
            & (shapes.width >= NARROWEST)
            & (shapes.sharpness > 0)
            & (shapes.axis > 0)
            & (shapes.diagonal > 0)
        )
        stars = locus(shapes, well_measured)
        if stars is None:
            return possible
        alike = (
            (shapes.width + k * shapes.width_err >= 0.5 * stars.width)
            & (shapes.sharpness - k * shapes.sharpness_err <= 1.5 * stars.sharpness)
            & (shapes.axis + k * shapes.axis_err >= 0.5 * stars.axis)
            & (shapes.diagonal + k * shapes.diagonal_err >= 0.5 * stars.diagonal)
        )
        # fainter objects, too noisy for the comparison, are still not much sharper than
        # the stars (nor than SHARP, which a well-sampled star's noise hardly reaches)
        sharpest = max(SHARP, 1.5 * stars.sharpness)
        return possible & (shapes.sharpness <= sharpest) & (alike | ~(shapes.snr >= PRECISE))


__all__ = [
    "NARROWEST",
    "PRECISE",
    "SHARP",
    "SINGLE",
    "Locus",
    "Shapes",
    "locus",
    "measure",
    "stellar",
]
