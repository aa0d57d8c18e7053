"""Plane transforms between frames, and their robust fit to matched stars.

A :class:`Transform` is a 3x3 matrix taking homogeneous pixel coordinates ``(x, y, 1)`` of
one frame to another's (0-based, pixel centres at integers). Three kinds are fitted:
``"shift"`` (2 parameters), ``"similarity"`` (shift, rotation and one scale: 4) and
``"affine"`` (6). :func:`fit` is a least-squares fit that leaves out, over a few rounds,
pairs whose residual is far above the others' (a wrong match, a star next to a cosmic ray).

Examples
--------
>>> import numpy as np
>>> src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [7.0, 3.0]])
>>> t = Transform.from_parameters(dx=2.0, dy=-1.0, rotation=90.0)
>>> fitted = fit(src, t.apply(src), "similarity")
>>> round(fitted.rotation, 6), round(fitted.scale, 6)
(90.0, 1.0)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import CcdcalError

KINDS = ("shift", "similarity", "affine")


@dataclass(frozen=True, eq=False)
class Transform:
    """A plane transform as a 3x3 matrix on homogeneous ``(x, y, 1)`` column vectors.

    Attributes
    ----------
    matrix
        The matrix (its last row is ``0 0 1``).
    kind
        ``"shift"``, ``"similarity"`` or ``"affine"``: what was fitted.
    """

    matrix: np.ndarray
    kind: str = "affine"

    def __post_init__(self) -> None:
        m = np.array(self.matrix, dtype=np.float64)
        if m.shape != (3, 3) or not np.allclose(m[2], [0, 0, 1]) or not np.isfinite(m).all():
            raise CcdcalError(f"a transform is a finite 3x3 matrix ending in 0 0 1, not {m!r}")
        if self.kind not in KINDS:
            raise CcdcalError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    @classmethod
    def identity(cls) -> Transform:
        """No motion."""
        return cls(np.eye(3), "shift")

    @classmethod
    def from_parameters(
        cls, *, dx: float = 0.0, dy: float = 0.0, rotation: float = 0.0, scale: float = 1.0
    ) -> Transform:
        """``scale · R(rotation)`` about the origin, then the shift ``(dx, dy)``."""
        t = math.radians(rotation)
        c, s = scale * math.cos(t), scale * math.sin(t)
        kind = "shift" if rotation == 0 and scale == 1 else "similarity"
        return cls(np.array([[c, -s, dx], [s, c, dy], [0.0, 0.0, 1.0]]), kind)

    def apply(self, xy: np.ndarray) -> np.ndarray:
        """The (n, 2) positions ``xy`` transformed."""
        xy = np.atleast_2d(np.asarray(xy, np.float64))
        return xy @ self.matrix[:2, :2].T + self.matrix[:2, 2]

    def inverse(self) -> Transform:
        """The transform back."""
        return Transform(np.linalg.inv(self.matrix), self.kind)

    def then(self, other: Transform) -> Transform:
        """This transform followed by ``other``."""
        kinds = {self.kind, other.kind}
        kind = (
            "affine" if "affine" in kinds else ("similarity" if "similarity" in kinds else "shift")
        )
        return Transform(other.matrix @ self.matrix, kind)

    @property
    def rotation(self) -> float:
        """Rotation, degrees (of the linear part's nearest similarity)."""
        m = self.matrix
        return math.degrees(math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))

    @property
    def scale(self) -> float:
        """Scale: the square root of the area change."""
        return math.sqrt(abs(float(np.linalg.det(self.matrix[:2, :2]))))

    def shift_at(self, x: float, y: float) -> tuple[float, float]:
        """How far the point (x, y) moves."""
        ((u, v),) = self.apply([[x, y]])
        return (float(u - x), float(v - y))

    def displacement(self, shape: tuple[int, int]) -> float:
        """The largest distance a pixel of an image of ``shape`` moves (at its corners)."""
        ny, nx = shape
        corners = np.array([[0, 0], [nx - 1, 0], [0, ny - 1], [nx - 1, ny - 1]], np.float64)
        return float(np.max(np.hypot(*(self.apply(corners) - corners).T)))

    def __repr__(self) -> str:
        m = self.matrix
        return (
            f"Transform({self.kind}: dx={m[0, 2]:.3f}, dy={m[1, 2]:.3f}, "
            f"rotation={self.rotation:.4f} deg, scale={self.scale:.5f})"
        )


def _lstsq(src: np.ndarray, dst: np.ndarray, kind: str) -> np.ndarray:
    n = len(src)
    x, y = src[:, 0], src[:, 1]
    if kind == "shift":
        d = (dst - src).mean(axis=0)
        return np.array([[1.0, 0.0, d[0]], [0.0, 1.0, d[1]], [0.0, 0.0, 1.0]])
    if kind == "similarity":
        # u = a x - b y + tx ; v = b x + a y + ty
        a_mat = np.zeros((2 * n, 4))
        a_mat[0::2] = np.column_stack([x, -y, np.ones(n), np.zeros(n)])
        a_mat[1::2] = np.column_stack([y, x, np.zeros(n), np.ones(n)])
        p = np.linalg.lstsq(a_mat, dst.reshape(-1), rcond=None)[0]
        a, b, tx, ty = p
        return np.array([[a, -b, tx], [b, a, ty], [0.0, 0.0, 1.0]])
    design = np.column_stack([x, y, np.ones(n)])
    px = np.linalg.lstsq(design, dst[:, 0], rcond=None)[0]
    py = np.linalg.lstsq(design, dst[:, 1], rcond=None)[0]
    return np.vstack([px, py, [0.0, 0.0, 1.0]])


#: fewest pairs each kind of fit takes
MIN_PAIRS = {"shift": 1, "similarity": 2, "affine": 3}

#: candidate transforms a least-median start tries at most
_CANDIDATES = 500


def _subsets(n: int, k: int) -> np.ndarray:
    """At most :data:`_CANDIDATES` distinct sets of ``k`` of ``n`` pairs: all of them when
    there are no more, else a fixed random draw (the same pairs give the same result),
    never the whole list (n³/6 triples of a thousand pairs would not fit in memory)."""
    if math.comb(n, k) <= _CANDIDATES:
        return np.array(list(itertools.combinations(range(n), k)), np.int64).reshape(-1, k)
    rng = np.random.default_rng(0)
    found: np.ndarray = np.empty((0, k), np.int64)
    while len(found) < _CANDIDATES:
        draw = np.sort(rng.integers(0, n, (2 * _CANDIDATES, k)), axis=1)
        distinct = np.all(np.diff(draw, axis=1) > 0, axis=1)
        merged = np.concatenate([found, draw[distinct]])
        _, first = np.unique(merged, axis=0, return_index=True)
        found = merged[np.sort(first)]
    return found[:_CANDIDATES]


def _least_median(src: np.ndarray, dst: np.ndarray, kind: str) -> np.ndarray:
    """The transform through a minimal set of pairs with the least median residual over
    all pairs (Rousseeuw's least median of squares): a start that a third of wrong pairs
    (a star hit by a cosmic ray, a blend) cannot pull, as a least-squares start can."""
    n = len(src)
    k = MIN_PAIRS[kind]
    if n <= k + 1:
        return _lstsq(src, dst, kind)
    if kind == "shift":
        d = np.median(dst - src, axis=0)
        return np.array([[1.0, 0.0, d[0]], [0.0, 1.0, d[1]], [0.0, 0.0, 1.0]])
    subsets = _subsets(n, k)
    with np.errstate(all="ignore"):
        if kind == "similarity":  # through two pairs, in complex numbers: w = a z + t
            z = src[:, 0] + 1j * src[:, 1]
            w = dst[:, 0] + 1j * dst[:, 1]
            i, j = subsets[:, 0], subsets[:, 1]
            a = (w[j] - w[i]) / (z[j] - z[i])
            t = w[i] - a * z[i]
            mats = np.zeros((len(subsets), 3, 3))
            mats[:, 0, 0], mats[:, 0, 1], mats[:, 0, 2] = a.real, -a.imag, t.real
            mats[:, 1, 0], mats[:, 1, 1], mats[:, 1, 2] = a.imag, a.real, t.imag
        else:  # affine through three pairs
            ones = np.ones((*subsets.shape, 1))
            design = np.concatenate([src[subsets], ones], axis=2)  # (m, 3, 3)
            solvable = np.abs(np.linalg.det(design)) > 1e-9
            design, subsets = design[solvable], subsets[solvable]
            if not len(subsets):
                return _lstsq(src, dst, kind)
            rows = np.linalg.solve(design, dst[subsets])  # (m, 3, 2)
            mats = np.zeros((len(subsets), 3, 3))
            mats[:, :2, :] = np.transpose(rows, (0, 2, 1))
        mats[:, 2, 2] = 1.0
        moved = np.einsum("mij,nj->mni", mats[:, :2, :2], src) + mats[:, None, :2, 2]
        score = np.median(np.sum((moved - dst) ** 2, axis=2), axis=1)
    score = np.where(np.isfinite(score), score, np.inf)
    if not np.isfinite(score).any():
        return _lstsq(src, dst, kind)
    return mats[int(np.argmin(score))]


def fit(
    src: np.ndarray,
    dst: np.ndarray,
    kind: str = "similarity",
    *,
    clip: float = 4.0,
    floor: float = 0.05,
    rounds: int = 5,
) -> Transform:
    """The ``kind`` of transform taking ``src`` (n, 2) to ``dst`` (n, 2), fitted robustly.

    The fit starts from the least-median-of-squares transform (through a minimal set of
    pairs); each round then fits the pairs kept by least squares and leaves out pairs whose
    residual exceeds ``clip`` times the residuals' robust sigma per axis (from their median
    distance; and at least ``floor`` pixels), until the pairs kept no longer change or
    ``rounds`` rounds are done. ``clip=inf`` is a plain least-squares fit.
    :func:`residuals` of the result say how good it is.

    Raises
    ------
    ValueError
        Fewer pairs than the kind needs (1, 2 or 3), or an unknown kind.
    """
    if kind not in KINDS:
        raise CcdcalError(f"transform must be one of {', '.join(KINDS)}, not {kind!r}")
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    if len(src) != len(dst):
        raise CcdcalError(f"{len(src)} source positions but {len(dst)} targets")
    if len(src) < MIN_PAIRS[kind]:
        raise CcdcalError(f"a {kind} fit needs {MIN_PAIRS[kind]} pairs of stars, not {len(src)}")
    matrix = _least_median(src, dst, kind) if math.isfinite(clip) else _lstsq(src, dst, kind)
    r = np.hypot(*(src @ matrix[:2, :2].T + matrix[:2, 2] - dst).T)
    sigma = float(np.median(r)) / math.sqrt(2.0 * math.log(2.0))
    keep = r <= max(clip * sigma, floor)
    if keep.sum() < MIN_PAIRS[kind]:
        keep = np.ones(len(src), bool)
    matrix = _lstsq(src[keep], dst[keep], kind)
    for _ in range(rounds):
        r = np.hypot(*(src @ matrix[:2, :2].T + matrix[:2, 2] - dst).T)
        # per-axis sigma from the median distance (Rayleigh: median = 1.1774 sigma)
        sigma = float(np.median(r[keep])) / math.sqrt(2.0 * math.log(2.0))
        limit = max(clip * sigma, floor)
        new = r <= limit
        if new.sum() < MIN_PAIRS[kind] or np.array_equal(new, keep):
            break
        keep = new
        matrix = _lstsq(src[keep], dst[keep], kind)
    return Transform(matrix, kind)


def _design(src: np.ndarray, kind: str) -> np.ndarray:
    """Rows (2 per point: x, then y) of the linear model of each kind's parameters."""
    n = len(src)
    x, y = src[:, 0], src[:, 1]
    one, zero = np.ones(n), np.zeros(n)
    if kind == "shift":
        cols = [(one, zero), (zero, one)]
    elif kind == "similarity":
        cols = [(x, y), (-y, x), (one, zero), (zero, one)]
    else:
        cols = [(x, zero), (y, zero), (one, zero), (zero, x), (zero, y), (zero, one)]
    design = np.zeros((2 * n, len(cols)))
    for k, (cx, cy) in enumerate(cols):
        design[0::2, k] = cx
        design[1::2, k] = cy
    return design


def position_error(src: np.ndarray, kind: str, sigma: float, points: np.ndarray) -> float:
    """The largest standard error of a fitted transform's mapping of ``points`` (per axis,
    pixels), from the least-squares covariance of a fit to ``src`` whose residuals have a
    per-axis sigma of ``sigma``.

    Examples
    --------
    >>> src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    >>> round(position_error(src, "shift", 0.1, src), 4)  # 0.1 / sqrt(4)
    0.05
    """
    design = _design(np.asarray(src, np.float64), kind)
    cov = sigma**2 * np.linalg.pinv(design.T @ design)
    at = _design(np.asarray(points, np.float64), kind)
    var = np.einsum("ij,jk,ik->i", at, cov, at)
    return float(np.sqrt(np.max(np.clip(var, 0.0, None))))


def residuals(transform: Transform, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance of each transformed source position from its target, pixels."""
    return np.hypot(*(transform.apply(src) - np.asarray(dst, np.float64)).T)


__all__ = ["KINDS", "MIN_PAIRS", "Transform", "fit", "position_error", "residuals"]
