"""A CCD whose properties are fixed: drawn once from a seed, the same in every frame it takes.

The tutorial draws a new flat, new hot pixels and a new bias pattern for every frame; a real
detector keeps its own, and calibration only works because it does. Here the bias pattern,
the dark-current map with its hot pixels and the flat response are properties of a
:class:`Detector`; each exposure adds only what is random: photon and dark shot noise, read
noise, cosmic rays, and a small drift of the bias level.

Examples
--------
>>> import numpy as np
>>> det = Detector.create(seed=1, shape=(32, 40))
>>> a = det.dark(60.0, np.random.default_rng(1))
>>> b = det.dark(60.0, np.random.default_rng(2))
>>> a.shape, a.header["IMAGETYP"], bool((det.hot_pixels == det.hot_pixels).all())
((32, 40), 'DARK', True)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..frame import Frame
from ..sections import format_section

ADC_MAX = 65535


@dataclass(frozen=True, eq=False)
class Detector:
    """Fixed properties of a simulated CCD (build it with :meth:`create`).

    Attributes
    ----------
    shape
        (ny, nx) of the light-sensitive area; raw frames add ``overscan`` columns on the right.
    gain
        e-/ADU.
    read_noise
        Read noise in electrons.
    bias_level
        Mean bias level in ADU.
    bias_pattern
        The fixed bias structure in ADU over the science area, level included.
    dark_current
        Dark current in e-/s per pixel, hot pixels included.
    hot_pixels
        Where the hot pixels are.
    full_well
        Electrons a pixel holds before it saturates.
    overscan
        Columns of overscan (bias and read noise, no light, no dark) right of the image.
    bias_drift
        RMS in ADU of the frame-to-frame change of the bias level (the overscan sees it).
    """

    shape: tuple[int, int]
    gain: float
    read_noise: float
    bias_level: float
    bias_pattern: np.ndarray = field(repr=False)
    bias_rows: np.ndarray = field(repr=False)  # the row component, which the overscan shows
    dark_current: np.ndarray = field(repr=False)
    hot_pixels: np.ndarray = field(repr=False)
    prnu: np.ndarray = field(repr=False)
    vignetting: float
    full_well: float
    overscan: int
    bias_drift: float
    seed: int

    @classmethod
    def create(
        cls,
        *,
        seed: int = 0,
        shape: tuple[int, int] = (200, 200),
        gain: float = 1.0,
        read_noise: float = 8.0,
        bias_level: float = 500.0,
        pattern_amplitude: float = 20.0,
        dark_rate: float = 0.2,
        hot_fraction: float = 0.001,
        hot_rate: tuple[float, float] = (50 / 60, 500 / 60),
        vignetting: float = 0.15,
        pixel_response: float = 0.02,
        full_well: float = 100_000.0,
        overscan: int = 0,
        bias_drift: float = 0.0,
    ) -> Detector:
        """Draw a detector from ``seed``; defaults are the tutorial's.

        Parameters
        ----------
        seed
            Seed of the detector's fixed properties.
        shape
            (ny, nx) of the science area.
        gain, read_noise, bias_level
            e-/ADU, electrons, ADU.
        pattern_amplitude
            Amplitude in ADU of the bias structure: ``a·sin(2πx/nx) + a/2·cos(2πy/ny)``.
        dark_rate
            Dark current of ordinary pixels, e-/s.
        hot_fraction, hot_rate
            Fraction of hot pixels and the range of their extra dark current (e-/s; the
            tutorial's +50..500 e- in 60 s).
        vignetting
            Fractional fall-off of the response at the edge: ``1 - v·r²`` with r = 1 at the
            half-width.
        pixel_response
            RMS of the pixel-to-pixel response (2 %).
        full_well
            Saturation in electrons.
        overscan
            Overscan columns in raw frames.
        bias_drift
            Frame-to-frame RMS of the bias level, ADU.
        """
        ny, nx = shape
        if ny < 8 or nx < 8:
            raise ValueError(f"detector shape must be at least 8x8, not {shape}")
        if not gain > 0 or read_noise < 0 or overscan < 0:
            raise ValueError("gain must be > 0, read_noise >= 0 and overscan >= 0")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
        x = np.arange(nx)[None, :]
        rows = (pattern_amplitude / 2) * np.cos(2 * np.pi * np.arange(ny) / ny)
        columns = pattern_amplitude * np.sin(2 * np.pi * x / nx)
        pattern = bias_level + columns + rows[:, None]
        dark = np.full(shape, float(dark_rate))
        nhot = round(hot_fraction * ny * nx)
        hot = np.zeros(shape, bool)
        if nhot:
            index = rng.choice(ny * nx, nhot, replace=False)
            hot.flat[index] = True
            dark.flat[index] += rng.uniform(*hot_rate, size=nhot)
        prnu = rng.normal(1.0, pixel_response, shape)
        return cls(
            shape=(ny, nx),
            gain=float(gain),
            read_noise=float(read_noise),
            bias_level=float(bias_level),
            bias_pattern=pattern.astype(np.float64),
            bias_rows=rows,
            dark_current=dark,
            hot_pixels=hot,
            prnu=prnu,
            vignetting=float(vignetting),
            full_well=float(full_well),
            overscan=int(overscan),
            bias_drift=float(bias_drift),
            seed=int(seed),
        )

    # ------------------------------------------------------------------ truth
    def flat_response(self, filter: str) -> np.ndarray:
        """The true flat of ``filter``: vignetting × pixel response × a mild colour term,
        normalized to median 1. The pixel response is the same in every filter; the colour
        term (a tilt of up to ±1 %, fixed per filter name) is not.

        Examples
        --------
        >>> det = Detector.create(seed=0, shape=(16, 16))
        >>> float(np.median(det.flat_response("V")))
        1.0
        """
        ny, nx = self.shape
        y, x = np.mgrid[0:ny, 0:nx]
        r = np.hypot(x - nx / 2, y - ny / 2) / (0.5 * min(nx, ny))
        vign = 1.0 - self.vignetting * np.clip(r, 0, 1) ** 2
        colour_rng = np.random.default_rng([self.seed, zlib.crc32(filter.encode())])
        tx, ty = colour_rng.uniform(-0.01, 0.01, 2)
        colour = 1 + tx * (x / nx - 0.5) + ty * (y / ny - 0.5)
        flat = vign * self.prnu * colour
        return flat / np.median(flat)

    @property
    def saturate_adu(self) -> float:
        """The level in ADU above which raw data are not linear (ADC ceiling or full well)."""
        return float(min(ADC_MAX, self.bias_level + self.full_well / self.gain))

    # ------------------------------------------------------------------ exposures
    def _header(self, kind: str, exptime: float, **extra: Any) -> dict[str, Any]:
        ny, nx = self.shape
        header: dict[str, Any] = {
            "IMAGETYP": kind,
            "EXPTIME": float(exptime),
            "GAIN": (self.gain, "[e-/ADU] detector gain"),
            "RDNOISE": (self.read_noise, "[e-] read noise"),
            "SATURATE": (self.saturate_adu, "[adu] saturation level"),
            "BUNIT": "adu",
            "INSTRUME": "ccdcal simulated CCD",
            "DETSEED": (self.seed, "seed of the detector's fixed properties"),
        }
        if self.overscan:
            header["BIASSEC"] = format_section(slice(0, ny), slice(nx, nx + self.overscan))
            header["TRIMSEC"] = format_section(slice(0, ny), slice(0, nx))
            header["DATASEC"] = header["TRIMSEC"]
        header.update(extra)
        return header

    def expose(
        self,
        electrons: np.ndarray | float,
        rng: np.random.Generator,
        *,
        deposits: np.ndarray | None = None,
    ) -> np.ndarray:
        """Read out an exposure: the ADC values of a raw frame (overscan included).

        Parameters
        ----------
        electrons
            Expected electrons per pixel (light and dark current together).
        rng
            Source of this exposure's randomness.
        deposits
            Electrons left by cosmic rays (added after the Poisson draw).

        Returns
        -------
        numpy.ndarray
            Integer ADU values 0..65535 (as float64), shape (ny, nx + overscan).
        """
        mean = np.broadcast_to(np.asarray(electrons, dtype=np.float64), self.shape)
        collected = rng.poisson(np.clip(mean, 0, None)).astype(np.float64)
        if deposits is not None:
            collected += deposits
        collected = np.minimum(collected, self.full_well)
        drift = rng.normal(0.0, self.bias_drift) if self.bias_drift > 0 else 0.0
        rn_adu = self.read_noise / self.gain
        ny, nx = self.shape
        raw = np.empty((ny, nx + self.overscan))
        raw[:, :nx] = collected / self.gain + self.bias_pattern + drift
        raw[:, nx:] = (self.bias_level + self.bias_rows + drift)[:, None]
        raw += rng.normal(0.0, rn_adu, raw.shape)
        return np.clip(np.rint(raw), 0, ADC_MAX)

    def bias(self, rng: np.random.Generator, **header: Any) -> Frame:
        """A bias frame (zero exposure)."""
        return Frame(self.expose(0.0, rng), header=self._header("BIAS", 0.0, **header))

    def dark(self, exptime: float, rng: np.random.Generator, **header: Any) -> Frame:
        """A dark frame: dark current for ``exptime`` seconds, on top of the bias."""
        return Frame(
            self.expose(self.dark_current * exptime, rng),
            header=self._header("DARK", exptime, **header),
        )

    def flat(
        self,
        level: float,
        filter: str,
        rng: np.random.Generator,
        *,
        exptime: float = 5.0,
        **header: Any,
    ) -> Frame:
        """A flat: a uniform source giving ``level`` electrons through the flat response."""
        electrons = level * self.flat_response(filter) + self.dark_current * exptime
        return Frame(
            self.expose(electrons, rng),
            header=self._header("FLAT", exptime, FILTER=filter, **header),
        )

    def light(
        self,
        rate: np.ndarray,
        exptime: float,
        filter: str,
        rng: np.random.Generator,
        *,
        cosmic_rate: float = 8.3e-6,
        **header: Any,
    ) -> tuple[Frame, np.ndarray]:
        """A light frame of a scene, and the mask of pixels hit by cosmic rays.

        Parameters
        ----------
        rate
            The scene in electrons per second per pixel (as seen above the telescope's flat).
        exptime
            Seconds.
        filter
            Filter name (selects the flat response).
        rng
            Source of this exposure's randomness.
        cosmic_rate
            Cosmic-ray hits per pixel per second.
        """
        electrons = self.flat_response(filter) * rate * exptime + self.dark_current * exptime
        deposits = cosmic_rays(self.shape, cosmic_rate * exptime, rng)
        # a hit matters once it stands above the read noise
        mask = deposits > 5 * self.read_noise
        frame = Frame(
            self.expose(electrons, rng, deposits=deposits),
            header=self._header("LIGHT", exptime, FILTER=filter, **header),
        )
        return frame, mask


def cosmic_rays(
    shape: tuple[int, int],
    hits_per_pixel: float,
    rng: np.random.Generator,
    *,
    energy: tuple[float, float] = (20_000.0, 80_000.0),
) -> np.ndarray:
    """Electrons deposited by cosmic rays in one exposure: single hits and short tracks.

    The number of hits is Poisson with mean ``hits_per_pixel × pixels``. Half are single
    pixels; the others are tracks of 2 to 8 pixels at a random angle, their energy (uniform in
    ``energy``, the tutorial's range) shared along the track.

    Examples
    --------
    >>> import numpy as np
    >>> d = cosmic_rays((100, 100), 1e-3, np.random.default_rng(0))
    >>> bool(d.max() >= 20_000 / 8), int((d > 0).sum()) > 5
    (True, True)
    """
    ny, nx = shape
    out = np.zeros(shape)
    nhits = rng.poisson(hits_per_pixel * ny * nx)
    for _ in range(nhits):
        y0, x0 = rng.uniform(0, ny), rng.uniform(0, nx)
        length = 1 if rng.random() < 0.5 else int(rng.integers(2, 9))
        angle = rng.uniform(0, np.pi)
        steps = np.arange(length)
        ys = np.clip((y0 + steps * np.sin(angle)).astype(int), 0, ny - 1)
        xs = np.clip((x0 + steps * np.cos(angle)).astype(int), 0, nx - 1)
        total = rng.uniform(*energy)
        share = rng.dirichlet(np.full(length, 4.0)) if length > 1 else np.ones(1)
        np.add.at(out, (ys, xs), total * share)
    return out


__all__ = ["ADC_MAX", "Detector", "cosmic_rays"]
