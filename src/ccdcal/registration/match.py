"""Which star of one frame is which star of another, and the transform between them.

The first guess comes from astroalign, which matches triangles of the brightest stars by
their shape (invariant to shifts, rotation and scale), so frames may move by hundreds of
pixels, rotate freely and change scale by a few per cent. The guess is then refined on all
stars: every star is paired with the nearest reference star within a tolerance, the
transform is fitted to those pairs robustly (:func:`ccdcal.registration.transform.fit`),
and pairing and fitting are repeated until the pairs no longer change. The result does not
depend on astroalign's random choices, only on the pairs.

Where frames carry a celestial WCS, :func:`wcs_transform` maps one onto the other through
the sky instead (astropy.wcs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import CcdcalError
from ..process_state import catching_warnings
from ..wording import plural, verb
from .stars import Stars
from .transform import MIN_PAIRS, Transform, fit, position_error, residuals

#: stars astroalign's triangles are made of (the brightest of each frame)
CONTROL_POINTS = 50
#: the least share of the fewer stars (the frame's or the reference's) a match must pair
MIN_SHARE = 0.2


class MatchError(CcdcalError):
    """A frame's stars could not be matched to the reference's."""


@dataclass(frozen=True)
class Match:
    """A frame's transform to the reference and how well its stars fit it.

    Attributes
    ----------
    transform
        Frame pixels to reference pixels.
    matched
        Star pairs the fit kept.
    rms
        Root mean square distance of the kept pairs after the transform, pixels.
    throughput
        Median flux ratio of the frame's stars to the reference's (clouds, airmass).
    error
        Standard error of the transform where it maps the matched stars' region (the
        largest over its corners, per axis, pixels).
    """

    transform: Transform
    matched: int
    rms: float
    throughput: float
    error: float = 0.0


def _pairs(pred: np.ndarray, ref: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j) of one-to-one nearest pairs closer than ``tolerance``."""
    from scipy.spatial import cKDTree

    dist, j = cKDTree(ref).query(pred, distance_upper_bound=tolerance)
    i = np.nonzero(np.isfinite(dist))[0]
    j, dist = j[i], dist[i]
    order = np.argsort(dist)  # a reference star taken by two: the nearer one keeps it
    _, first = np.unique(j[order], return_index=True)
    keep = np.sort(order[first])
    return i[keep], j[keep]


def match(
    stars: Stars,
    reference: Stars,
    *,
    kind: str = "similarity",
    tolerance: float | None = None,
    name: str = "frame",
    guess: Transform | None = None,
) -> Match:
    """The transform taking ``stars`` (one frame's) onto ``reference`` (the reference's).

    Parameters
    ----------
    stars, reference
        Brightest first, as :func:`~ccdcal.registration.stars.find_stars` returns them.
    kind
        ``"shift"``, ``"similarity"`` or ``"affine"``.
    tolerance
        Pairing distance in pixels for the refinement (default: the larger of 2 pixels and
        the median FWHM of the reference's stars).
    name
        The frame's name, for errors.
    guess
        A transform near the answer (the previous frame's, in a series: a telescope drifts
        slowly), refined first; astroalign's triangles are drawn only where it pairs too
        few stars (the same test as for theirs). Measured on issue 16's night of 40 lights:
        the registration's 2.0 s of astroalign became 0.1 s of refining, every transform
        the same.

    Raises
    ------
    MatchError
        Too few stars in either frame, or no consistent set of triangles (a frame of clouds,
        another field).
    """
    import astroalign

    need = max(3, MIN_PAIRS[kind])
    if len(stars) < need or len(reference) < need:
        raise MatchError(
            f"{name}: {plural(len(stars), 'star')} found (reference: {len(reference)}); at least "
            f"{need} are needed to match it"
        )
    seeing = float(np.nanmedian(reference.fwhm)) if len(reference) else 2.0
    limit = tolerance if tolerance is not None else max(2.0, seeing)
    if guess is not None:
        found = _refined(stars, reference, guess, kind, limit, need, name)
        if found is not None:
            return found
    problem = ""
    try:
        transform: Transform | None = _guess(stars, reference)
    except (astroalign.MaxIterError, ValueError, TypeError) as err:
        # too few stars for a pattern (a small or sparse field): a frame that hardly moved
        # still pairs its stars with the reference's where they are
        transform = Transform.identity()
        i, _ = _pairs(stars.xy(), reference.xy(), limit)
        problem = str(err)
        if len(i) < max(need, 0.5 * min(len(stars), len(reference))):
            transform = None
    found = None if transform is None else _refined(stars, reference, transform, kind, limit,
                                                    need, name)  # fmt: skip
    # astroalign's RANSAC draws at random (unseeded) and can guess wrong on a dense field:
    # a frame that hardly moved still pairs as it is (one refinement; another draw would
    # cost a RANSAC run of its own)
    if found is None and transform is not None and not problem:
        found = _refined(stars, reference, Transform.identity(), kind, limit, need, name)
    if found is None and kind == "affine":
        mirrored = _mirrored_guess(stars, reference)
        if mirrored is not None:
            found = _refined(stars, reference, mirrored, kind, limit, need, name)
    if found is not None:
        return found
    hint = "" if kind == "affine" else "; a mirrored frame needs transform='affine'"
    raise MatchError(
        f"{name}: its {plural(len(stars), 'star')} {verb(len(stars), 'matches', 'match')} no "
        "pattern of the reference's "
        f"{len(reference)} (none pairs {MIN_SHARE:.0%} of them{'; ' if problem else ''}"
        f"{problem}{hint})"
    )


def _refined(
    stars: Stars,
    reference: Stars,
    transform: Transform,
    kind: str,
    limit: float,
    need: int,
    name: str,
) -> Match | None:
    """The guess refined (see :func:`_refine`) on the stars whose positions can be trusted
    (single, isolated, typical), or on all of them where too few of those land on each
    other; None where neither pairs :data:`MIN_SHARE` of the stars it used (three pairs
    that a wrong transform lands by chance on a field of fifty stars are no match)."""
    own, ref = stars.trusted(), reference.trusted()
    if len(own) >= need and len(ref) >= need:
        try:
            found = _refine(own, ref, transform, kind, limit, need, name)
            if found.matched >= MIN_SHARE * min(len(own), len(ref)):
                return found
        except MatchError:
            pass
    try:
        found = _refine(stars, reference, transform, kind, limit, need, name)
    except MatchError:
        return None
    return found if found.matched >= MIN_SHARE * min(len(stars), len(reference)) else None


def _guess(stars: Stars, reference: Stars) -> Transform:
    """astroalign's similarity from the brightest stars' triangles (raises its errors)."""
    import astroalign

    guess, _ = astroalign.find_transform(
        stars.brightest(CONTROL_POINTS).xy(),
        reference.brightest(CONTROL_POINTS).xy(),
        max_control_points=CONTROL_POINTS,
    )
    return Transform(np.asarray(guess.params, np.float64), "similarity")


#: x -> -x: a frame mirrored by the camera or a flip mirror (triangles' shapes do not tell)
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def _mirrored_guess(stars: Stars, reference: Stars) -> Transform | None:
    """The guess for a mirrored frame: astroalign on its stars with x negated, then the
    mirror; None where that matches no better."""
    import astroalign

    flipped = replace(stars, x=-stars.x)
    try:
        guess = _guess(flipped, reference)
    except (astroalign.MaxIterError, ValueError, TypeError):
        return None
    return Transform(guess.matrix @ _MIRROR, "affine")


def _refine(
    stars: Stars,
    reference: Stars,
    transform: Transform,
    kind: str,
    limit: float,
    need: int,
    name: str,
) -> Match:
    """The fit refined from a first guess: pair, fit, repeat until the pairs settle."""
    src_all, ref_all = stars.xy(), reference.xy()
    chosen: tuple[np.ndarray, np.ndarray] | None = None
    for _ in range(5):
        i, j = _pairs(transform.apply(src_all), ref_all, limit)
        if len(i) < need:
            raise MatchError(
                f"{name}: only {len(i)} of its stars land on reference stars; at least "
                f"{need} are needed"
            )
        if chosen is not None and np.array_equal(i, chosen[0]) and np.array_equal(j, chosen[1]):
            break
        chosen = (i, j)
        transform = fit(src_all[i], ref_all[j], kind)
        r = residuals(transform, src_all[i], ref_all[j])
        # pairs from the refined transform: 5 sigma of its scatter, never under 0.5 px
        sigma = float(np.median(r)) / math.sqrt(2.0 * math.log(2.0))
        limit = min(limit, max(0.5, 5.0 * sigma))
    assert chosen is not None
    i, j = chosen
    r = residuals(transform, src_all[i], ref_all[j])
    kept = r <= max(0.5, 4.0 * float(np.median(r)) / math.sqrt(2.0 * math.log(2.0)))
    ratio = stars.flux[i][kept] / reference.flux[j][kept]
    used = src_all[i][kept]
    rms = float(np.sqrt(np.mean(r[kept] ** 2)))
    p = {"shift": 2, "similarity": 4, "affine": 6}[kind]
    dof = max(2 * len(used) - p, 1)
    sigma = float(np.sqrt(np.sum(r[kept] ** 2) / dof))  # per axis
    lo, hi = used.min(axis=0), used.max(axis=0)
    corners = np.array([[lo[0], lo[1]], [hi[0], lo[1]], [lo[0], hi[1]], [hi[0], hi[1]]])
    return Match(
        transform=transform,
        matched=int(kept.sum()),
        rms=rms,
        throughput=float(np.median(ratio)) if ratio.size else math.nan,
        error=position_error(used, kind, max(sigma, 1e-3), corners),
    )


def wcs_transform(
    header: Any, reference_header: Any, shape: tuple[int, int], *, name: str = "frame"
) -> Match:
    """The affine transform from a frame to the reference through their celestial WCS.

    A grid of 10x10 points over the frame goes to the sky with the frame's WCS and back to
    the reference's pixels with the reference's; the affine fit to them is the transform,
    and its rms the distortion it leaves (``matched`` is 0: no stars were used).

    Raises
    ------
    MatchError
        Either header has no celestial WCS, or it cannot map the frame.
    """
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with catching_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            own, ref = WCS(header), WCS(reference_header)
        except (ValueError, KeyError, MemoryError) as err:
            raise MatchError(f"{name}: unreadable WCS ({err})") from None
    if not (own.has_celestial and ref.has_celestial):
        raise MatchError(f"{name}: no celestial WCS in it or in the reference")
    ny, nx = shape
    gy, gx = np.meshgrid(np.linspace(0, ny - 1, 10), np.linspace(0, nx - 1, 10), indexing="ij")
    src = np.column_stack([gx.ravel(), gy.ravel()])
    try:
        sky = own.celestial.pixel_to_world_values(src[:, 0], src[:, 1])
        u, v = ref.celestial.world_to_pixel_values(*sky)
    except Exception as err:  # astropy raises many kinds for a bad projection
        raise MatchError(f"{name}: its WCS cannot map it onto the reference ({err})") from None
    dst = np.column_stack([u, v])
    if not np.isfinite(dst).all():
        raise MatchError(f"{name}: its WCS maps part of it off the reference's sky")
    transform = fit(src, dst, "affine", clip=math.inf)
    r = residuals(transform, src, dst)
    return Match(transform, 0, float(np.sqrt(np.mean(r**2))), math.nan)


__all__ = ["CONTROL_POINTS", "Match", "MatchError", "match", "wcs_transform"]
