"""Where each simulated light looks: a telescope that is dithered, drifts and rotates, under
seeing and clouds that change from frame to frame.

A :class:`Pointing` maps the scene (the sky, on its own pixel grid) onto one frame:

    p_frame = scale · R(rotation) · (p_scene − c_scene) + c_frame + (dx, dy)

with ``c_frame`` the frame's centre, ``((nx − 1) / 2, (ny − 1) / 2)``, and ``c_scene`` the
scene point that an unmoved telescope puts there. A pointing also carries the frame's
seeing (``fwhm``, pixels) and transparency (relative throughput of sky and stars).

:func:`pointings` draws a night's pointings: random dithers, a steady drift in a random
direction, a field rotation growing from the first light to the last, and seeing and
transparency drawn per frame. :func:`frame_rate` renders the scene as one frame sees it:
the sky at each frame pixel's place on the sky, and every star integrated over the pixels
at its transformed place with the frame's seeing.

Examples
--------
>>> import numpy as np
>>> p = Pointing(dx=2.0, dy=-1.0, rotation=90.0)
>>> np.round(p.to_frame(np.array([11.0]), np.array([10.0]), (10.0, 10.0), (10.0, 10.0)), 6)
array([[12.],
       [10.]])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CcdcalError
from .scene import Scene, render_stars


@dataclass(frozen=True)
class Pointing:
    """One light's view of the scene: its transform, seeing and transparency.

    Attributes
    ----------
    dx, dy
        Shift of the frame, pixels (where the scene's reference point lands, from the
        frame's centre).
    rotation
        Field rotation, degrees, counter-clockwise in pixel coordinates.
    scale
        Frame pixels per scene pixel.
    fwhm
        Seeing: the PSF's full width at half maximum in this frame, pixels (None: the
        scene's own).
    transparency
        Fraction of the sky's light (stars and sky background) that reaches the detector.
    sky
        Brightness of the sky background relative to the scene's (moonlight, twilight,
        light pollution that changes): it scales the background, not the stars.
    """

    dx: float = 0.0
    dy: float = 0.0
    rotation: float = 0.0
    scale: float = 1.0
    fwhm: float | None = None
    transparency: float = 1.0
    sky: float = 1.0

    def matrix(self) -> np.ndarray:
        """The 2x2 linear part, scale · R(rotation), acting on (x, y) column vectors."""
        t = math.radians(self.rotation)
        c, s = math.cos(t), math.sin(t)
        return self.scale * np.array([[c, -s], [s, c]])

    def affine(
        self, scene_centre: tuple[float, float], frame_centre: tuple[float, float]
    ) -> np.ndarray:
        """The 3x3 matrix taking homogeneous scene (x, y, 1) to frame (x, y, 1)."""
        m = self.matrix()
        cs = np.asarray(scene_centre, float)
        cf = np.asarray(frame_centre, float)
        out = np.eye(3)
        out[:2, :2] = m
        out[:2, 2] = cf + np.array([self.dx, self.dy]) - m @ cs
        return out

    def to_frame(
        self,
        x: np.ndarray,
        y: np.ndarray,
        scene_centre: tuple[float, float],
        frame_centre: tuple[float, float],
    ) -> np.ndarray:
        """Scene coordinates to frame coordinates: a (2, n) array of (x, y)."""
        return _apply(self.affine(scene_centre, frame_centre), x, y)

    def to_scene(
        self,
        x: np.ndarray,
        y: np.ndarray,
        scene_centre: tuple[float, float],
        frame_centre: tuple[float, float],
    ) -> np.ndarray:
        """Frame coordinates to scene coordinates: a (2, n) array of (x, y)."""
        return _apply(np.linalg.inv(self.affine(scene_centre, frame_centre)), x, y)


def _apply(a: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The homogeneous matrix ``a`` applied to points (x, y): a (2, n) array."""
    return a[:2, :2] @ np.vstack([x, y]) + a[:2, 2:3]


def moves(
    *,
    dither: float = 0.0,
    drift: float = 0.0,
    rotate: float = 0.0,
    fwhm_range: tuple[float, float] | None = None,
    transparency_range: tuple[float, float] | None = None,
    sky_range: tuple[float, float] | None = None,
) -> bool:
    """Whether these options make the lights differ from one another (else a night is the
    unmoved one of earlier versions, byte for byte).

    Examples
    --------
    >>> moves(), moves(drift=0.5)
    (False, True)
    """
    return bool(dither or drift or rotate or fwhm_range or transparency_range or sky_range)


def _range(value: tuple[float, float] | None, name: str, low: float) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)  # type: ignore[misc]
    if not (low < lo <= hi) or not math.isfinite(hi):
        raise CcdcalError(f"{name} must be MIN,MAX with {low} < MIN <= MAX, not {value!r}")
    return lo, hi


def pointings(
    n: int,
    rng: np.random.Generator,
    *,
    dither: float = 0.0,
    drift: float = 0.0,
    rotate: float = 0.0,
    fwhm: float = 3.0,
    fwhm_range: tuple[float, float] | None = None,
    transparency_range: tuple[float, float] | None = None,
    sky_range: tuple[float, float] | None = None,
) -> list[Pointing]:
    """The pointings of ``n`` lights, in the order they are taken.

    Parameters
    ----------
    n
        Number of lights.
    rng
        Source of randomness (the night's pointing stream).
    dither
        Each light is offset by a random shift uniform within ±``dither`` pixels in x and y.
    drift
        The telescope drifts by ``drift`` pixels per frame in one random direction.
    rotate
        The field rotates by ``rotate`` degrees from the first light to the last, evenly.
    fwhm, fwhm_range
        Seeing: ``fwhm`` pixels in every frame, or uniform within ``fwhm_range``.
    transparency_range
        Relative throughput uniform within this range (default 1 in every frame).
    sky_range
        Relative sky brightness uniform within this range (default 1 in every frame).

    Examples
    --------
    >>> ps = pointings(3, np.random.default_rng(0), drift=1.0)
    >>> round(math.hypot(ps[2].dx, ps[2].dy), 6)
    2.0
    """
    if n < 0:
        raise CcdcalError(f"n must be >= 0, not {n}")
    for name, value in (("dither", dither), ("drift", drift), ("rotate", rotate)):
        if not (math.isfinite(value) and value >= 0):
            raise CcdcalError(f"{name} must be a number >= 0, not {value!r}")
    seeing = _range(fwhm_range, "fwhm_range", 0.0) if fwhm_range else (fwhm, fwhm)
    clouds = _range(transparency_range, "transparency_range", 0.0) if transparency_range else None
    if clouds is not None and clouds[1] > 1.0:
        raise CcdcalError(f"transparency_range must lie within (0, 1], not {transparency_range!r}")
    skies = _range(sky_range, "sky_range", 0.0) if sky_range else None
    angle = rng.uniform(0.0, 2 * math.pi)
    out = []
    for i in range(n):
        jx, jy = rng.uniform(-dither, dither, 2) if dither else (0.0, 0.0)
        seen = float(rng.uniform(*seeing)) if fwhm_range else float(fwhm)
        through = float(rng.uniform(*clouds)) if clouds else 1.0
        bright = float(rng.uniform(*skies)) if skies else 1.0
        out.append(
            Pointing(
                dx=float(i * drift * math.cos(angle) + jx),
                dy=float(i * drift * math.sin(angle) + jy),
                rotation=float(rotate * i / (n - 1)) if n > 1 else 0.0,
                fwhm=seen,
                transparency=through,
                sky=bright,
            )
        )
    return out


@dataclass(frozen=True)
class Footprint:
    """The scene grid that covers every frame of a night, and where frames sit on it.

    Attributes
    ----------
    shape
        (ny, nx) of the scene.
    centre
        The scene point an unmoved frame's centre sees (``c_scene``).
    frame_shape
        (ny, nx) of a frame.
    """

    shape: tuple[int, int]
    centre: tuple[float, float]
    frame_shape: tuple[int, int]

    @property
    def frame_centre(self) -> tuple[float, float]:
        """``c_frame``: the centre of a frame, pixel coordinates."""
        ny, nx = self.frame_shape
        return ((nx - 1) / 2.0, (ny - 1) / 2.0)

    @property
    def offset(self) -> tuple[float, float]:
        """Scene minus frame coordinates of an unmoved frame."""
        cx, cy = self.frame_centre
        return (self.centre[0] - cx, self.centre[1] - cy)


def footprint(
    frame_shape: tuple[int, int], views: Sequence[Pointing], *, margin: float = 0.0
) -> Footprint:
    """The smallest scene grid (plus ``margin`` pixels all round) that every frame sees.

    Examples
    --------
    >>> f = footprint((20, 30), [Pointing(), Pointing(dx=5.0, dy=-2.0)])
    >>> f.shape, f.centre
    ((22, 35), (19.5, 9.5))
    """
    ny, nx = frame_shape
    cf = ((nx - 1) / 2.0, (ny - 1) / 2.0)
    corners_x = np.array([-0.5, nx - 0.5, nx - 0.5, -0.5])
    corners_y = np.array([-0.5, -0.5, ny - 0.5, ny - 0.5])
    xs, ys = [], []
    for p in views or [Pointing()]:
        rx, ry = p.to_scene(corners_x, corners_y, (0.0, 0.0), cf)  # relative to c_scene
        xs.extend(rx)
        ys.extend(ry)
    eps = 1e-9
    # c_scene = c_frame + whole pixels, so that the scene's pixels line up with an unmoved
    # frame's; the scene's left edge (x = -0.5) lies at -nx/2 - ox from c_scene
    ox = math.ceil(-nx / 2 - (min(xs) - margin) - eps)
    oy = math.ceil(-ny / 2 - (min(ys) - margin) - eps)
    snx = math.ceil(max(xs) + margin + nx / 2 + ox - eps)
    sny = math.ceil(max(ys) + margin + ny / 2 + oy - eps)
    return Footprint((sny, snx), (cf[0] + ox, cf[1] + oy), (ny, nx))


def frame_rate(
    scene: Scene, view: Pointing, where: Footprint, *, sky_gradient: float = 0.0
) -> np.ndarray:
    """The scene as one frame sees it: electron/s per frame pixel, before the flat response.

    The sky is the scene's smooth sky (its level, and ``sky_gradient`` corner to corner as
    :func:`~ccdcal.simulate.scene.sky_plane` draws it) at each frame pixel's place on the
    sky; each star of the scene's table is integrated over the frame's pixels at its
    transformed place, with the frame's seeing; the sky is scaled by the frame's sky
    brightness, and both by its transparency.
    (Rotation and scale move the stars; a star's total flux is kept.)
    """
    ny, nx = where.frame_shape
    cs, cf = where.centre, where.frame_centre
    stars = scene.stars
    fwhm = scene.fwhm if view.fwhm is None else view.fwhm
    xy = view.to_frame(np.asarray(stars["x"]), np.asarray(stars["y"]), cs, cf)
    rate = np.zeros((ny, nx))
    if len(stars):
        rate = render_stars((ny, nx), xy[0], xy[1], np.asarray(stars["flux_rate"]), fwhm)
    # the sky plane of the scene, evaluated where each frame pixel looks
    gy, gx = np.mgrid[0:ny, 0:nx]
    sx, sy = view.to_scene(gx.ravel().astype(float), gy.ravel().astype(float), cs, cf)
    sny, snx = scene.shape
    u = sx / max(snx - 1, 1) - 0.5
    v = sy / max(sny - 1, 1) - 0.5
    sky = scene.sky_rate * view.sky * (1.0 + 0.5 * sky_gradient * (u + v))
    rate += sky.reshape(ny, nx)
    return rate * view.transparency


__all__ = ["Footprint", "Pointing", "footprint", "frame_rate", "moves", "pointings"]
