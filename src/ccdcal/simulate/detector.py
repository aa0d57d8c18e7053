"""A CCD whose properties are fixed: drawn once from a seed, the same in every frame it takes.

The tutorial draws a new flat, new hot pixels and a new bias pattern for every frame; a real
detector keeps its own, and calibration only works because it does. Here the bias pattern,
the dark-current map with its hot pixels and the flat response of each filter are
properties of a :class:`Detector`; an exposure adds only what is random: photon and dark
shot noise, cosmic rays, read noise, and a drift of the bias level.

The model of one exposure, per pixel of the science area::

    electrons = min(Poisson(flat * rate * t + dark_current * t) + cosmic deposits, full_well)
    adu       = electrons / gain + bias_pattern + drift + Normal(0, read_noise / gain)
    raw       = clip(round(adu), 0, 65535)                    # the 16-bit ADC

and in the overscan columns (virtual pixels: no light, no dark current, no cosmic rays)
only the bias level, the row component of the bias pattern, the drift and read noise.

Examples
--------
>>> import numpy as np
>>> det = Detector.create(seed=1, shape=(32, 40), overscan=4)
>>> frame = det.dark(60.0, np.random.default_rng(1))
>>> frame.shape, frame.header["IMAGETYP"], frame.header["BIASSEC"]
((32, 44), 'DARK', '[41:44,1:32]')
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import CcdcalError
from ..frame import Frame
from ..sections import format_section
from . import patterns
from .cosmics import DEFAULT_COSMIC_RATE, cosmic_rays
from .scene import Scene

log = logging.getLogger(__name__)

#: the largest value of the 16-bit ADC
ADC_MAX = 65535

#: a cosmic-ray deposit is marked in the truth mask above this many read-noise sigmas
COSMIC_MASK_SIGMAS = 5.0

# streams of the detector's own randomness (see Detector._stream)
_HOT, _RESPONSE, _FILTER = 1, 2, 3


def _filter_key(name: str) -> int:
    """A stable number for a filter name (``hash()`` changes from run to run; crc32 does not)."""
    return zlib.crc32(name.encode("utf-8"))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Detector:
    """Fixed properties of a simulated CCD; build one with :meth:`create`.

    Every random property (hot pixels, pixel response) is drawn from ``seed`` when the
    detector is made; the exposure methods take their own generator for what changes from
    frame to frame. Frames come back in ADU as :class:`~ccdcal.Frame` objects whose float32
    data hold the integer values of the ADC, with the header a camera would write.

    Attributes
    ----------
    shape
        (ny, nx) of the light-sensitive (science) area; raw frames add ``overscan``
        columns on the right.
    gain
        e-/ADU.
    read_noise
        Read noise, electrons.
    bias_level
        Mean bias level, ADU.
    pattern_amplitude
        Amplitude of the fixed bias structure, ADU: ``a·sin(2πx/nx) + (a/2)·cos(2πy/ny)``
        (the tutorial's 20 and 10).
    bias_drift
        Frame-to-frame RMS of the bias level, ADU; the overscan shows the same drift.
    dark_rate
        Dark current of ordinary pixels, e-/s.
    hot_fraction
        Fraction of pixels that are hot.
    hot_rate
        Range (uniform) of a hot pixel's extra dark current, e-/s: the tutorial's
        +50..500 e- in 60 s.
    vignetting
        Fractional fall-off of the response at the half-width: ``1 - v·r²``, r = 1 there.
    vignetting_spread
        Each filter's vignetting differs from ``vignetting`` by up to this fraction of it
        (fixed per filter name): the optics are not achromatic.
    pixel_response
        RMS of the pixel-to-pixel response (2 %).
    filter_response
        RMS fraction of the pixel response that differs between filters; the rest is
        common, so two filters' pixel patterns correlate at ``1 - filter_response²``.
    full_well
        Electrons a pixel holds; charge above it is lost.
    nonlinearity
        Fractional loss of response at the full well: ``n`` electrons read as
        ``n·(1 - nonlinearity·n/full_well)``, so the response departs by 1 % at
        ``0.01·full_well/nonlinearity`` electrons (0: linear).
    adc_bits
        Bits of the ADC: values 0..2^bits - 1 (12- and 14-bit cameras exist).
    adc_shift
        Bits the ADC's value is shifted left in the 16-bit file, as CMOS cameras store
        12-bit values (multiples of 16, up to 65520); ``gain`` is per stored ADU.
    overscan
        Overscan columns right of the science area.
    seed
        Seed of the fixed properties.

    Examples
    --------
    >>> det = Detector.create(seed=3, shape=(20, 30), gain=2.0)
    >>> det.raw_shape, det.gain, int(det.hot_pixels.sum())
    ((20, 30), 2.0, 1)
    """

    shape: tuple[int, int] = (200, 200)
    gain: float = 1.0
    read_noise: float = 8.0
    bias_level: float = 500.0
    pattern_amplitude: float = 20.0
    bias_drift: float = 0.0
    dark_rate: float = 0.2
    hot_fraction: float = 0.001
    hot_rate: tuple[float, float] = (50.0 / 60.0, 500.0 / 60.0)
    vignetting: float = 0.15
    vignetting_spread: float = 0.05
    pixel_response: float = 0.02
    filter_response: float = 0.2
    full_well: float = 100_000.0
    nonlinearity: float = 0.0
    adc_bits: int = 16
    adc_shift: int = 0
    overscan: int = 0
    seed: int = 0
    _bias: np.ndarray = field(init=False, repr=False)
    _dark: np.ndarray = field(init=False, repr=False)
    _hot: np.ndarray = field(init=False, repr=False)
    _response: np.ndarray = field(init=False, repr=False)
    _flats: dict[str, np.ndarray] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._validate()
        set_ = object.__setattr__  # frozen: fields are set once, here
        set_(self, "shape", (int(self.shape[0]), int(self.shape[1])))
        set_(self, "hot_rate", (float(self.hot_rate[0]), float(self.hot_rate[1])))
        set_(self, "overscan", int(self.overscan))
        ny, nx = self.shape

        bias = patterns.bias_pattern(
            self.shape, level=self.bias_level, amplitude=self.pattern_amplitude,
            overscan=self.overscan,
        )  # fmt: skip
        set_(self, "_bias", _readonly(bias))
        dark, hot = patterns.hot_pixel_map(
            self.shape, self._stream(_HOT), dark_rate=self.dark_rate,
            fraction=self.hot_fraction, hot_rate=self.hot_rate,
        )  # fmt: skip
        set_(self, "_hot", _readonly(hot))
        set_(self, "_dark", _readonly(dark))
        # unit-variance pixel pattern shared by all filters
        set_(self, "_response", _readonly(self._stream(_RESPONSE).standard_normal((ny, nx))))
        log.debug("detector %r: %d hot pixels", self, int(hot.sum()))

    def _validate(self) -> None:
        ny, nx = self.shape
        checks = [
            (int(ny) >= 4 and int(nx) >= 4, f"shape must be at least (4, 4), not {self.shape}"),
            (self.gain > 0, f"gain must be > 0, not {self.gain}"),
            (self.read_noise >= 0, f"read_noise must be >= 0, not {self.read_noise}"),
            (self.bias_drift >= 0, f"bias_drift must be >= 0, not {self.bias_drift}"),
            (self.dark_rate >= 0, f"dark_rate must be >= 0, not {self.dark_rate}"),
            (0 <= self.hot_fraction <= 1, f"hot_fraction must be within 0..1: {self.hot_fraction}"),
            (0 <= self.hot_rate[0] <= self.hot_rate[1], f"hot_rate must be (low, high) >= 0: "
             f"{self.hot_rate}"),
            (0 <= self.vignetting < 1, f"vignetting must be within 0..1, not {self.vignetting}"),
            (0 <= self.vignetting_spread < 1, "vignetting_spread must be within 0..1"),
            (0 <= self.pixel_response < 0.5, f"pixel_response must be within 0..0.5, not "
             f"{self.pixel_response}"),
            (0 <= self.filter_response <= 1, "filter_response must be within 0..1"),
            (self.full_well > 0, f"full_well must be > 0, not {self.full_well}"),
            (int(self.overscan) >= 0, f"overscan must be >= 0, not {self.overscan}"),
            (0 <= self.nonlinearity < 1, f"nonlinearity must be within 0..1: {self.nonlinearity}"),
            (int(self.adc_bits) >= 8 and int(self.adc_shift) >= 0
             and int(self.adc_bits) + int(self.adc_shift) <= 16,
             f"adc_bits ({self.adc_bits}) + adc_shift ({self.adc_shift}) must fit 16 bits"),
        ]  # fmt: skip
        for ok, message in checks:
            if not ok:
                raise CcdcalError(message)

    @classmethod
    def create(
        cls, *, seed: int = 0, shape: tuple[int, int] = (200, 200), **params: Any
    ) -> Detector:
        """Draw a detector from ``seed``; the defaults are the tutorial's CCD.

        Parameters
        ----------
        seed
            Seed of the fixed properties (hot pixels, pixel response, filter terms).
        shape
            (ny, nx) of the science area.
        **params
            Any other attribute of :class:`Detector` (``gain``, ``read_noise``,
            ``bias_level``, ``pattern_amplitude``, ``bias_drift``, ``dark_rate``,
            ``hot_fraction``, ``hot_rate``, ``vignetting``, ``vignetting_spread``,
            ``pixel_response``, ``filter_response``, ``full_well``, ``nonlinearity``,
            ``adc_bits``, ``adc_shift``, ``overscan``).

        Examples
        --------
        >>> a = Detector.create(seed=5, shape=(16, 16))
        >>> b = Detector.create(seed=5, shape=(16, 16))
        >>> bool((a.dark_current == b.dark_current).all())
        True
        """
        return cls(shape=shape, seed=seed, **params)

    def _stream(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=key))

    # ------------------------------------------------------------------ truth
    @property
    def raw_shape(self) -> tuple[int, int]:
        """(ny, nx + overscan): the shape of a raw frame."""
        return self.shape[0], self.shape[1] + self.overscan

    @property
    def bias_pattern(self) -> np.ndarray:
        """The expected value of a bias frame, ADU, over the whole raw frame (overscan
        included; level and pattern included). Read-only."""
        return self._bias

    @property
    def dark_current(self) -> np.ndarray:
        """Dark current per pixel of the science area, e-/s, hot pixels included."""
        return self._dark

    @property
    def hot_pixels(self) -> np.ndarray:
        """Boolean map of the hot pixels."""
        return self._hot

    @property
    def adc_max(self) -> int:
        """The largest value the camera writes, ADU: ``(2^adc_bits - 1) << adc_shift``.

        Examples
        --------
        >>> Detector.create(shape=(8, 8), adc_bits=12, adc_shift=4).adc_max
        65520
        """
        return ((1 << int(self.adc_bits)) - 1) << int(self.adc_shift)

    @property
    def saturate_adu(self) -> float:
        """The lowest raw value a saturated pixel can read, ADU (SATURATE in headers).

        The ADC ceiling, or the full well converted to ADU on the lowest bias of the frame,
        less five sigma of read noise and drift, whichever is lower; pixels at or above it
        may not be linear.

        Examples
        --------
        >>> Detector.create(shape=(8, 8)).saturate_adu  # ADC clips first at gain 1
        65535.0
        >>> Detector.create(shape=(8, 8), gain=4.0).saturate_adu  # 470 + 25000 - 5 * 2
        25460.0
        """
        science = self._bias[:, : self.shape[1]]
        spread = 5.0 * math.hypot(self.read_noise / self.gain, self.bias_drift)
        full = float(science.min()) + self.full_well / self.gain - spread
        return float(min(self.adc_max, math.floor(full)))

    def filter_vignetting(self, filter: str) -> float:
        """The vignetting strength of ``filter`` (``vignetting`` within ± the spread).

        Examples
        --------
        >>> det = Detector.create(shape=(8, 8), vignetting_spread=0.0)
        >>> det.filter_vignetting("R")
        0.15
        """
        u = self._stream(_FILTER, _filter_key(filter), 0).uniform(-1.0, 1.0)
        return self.vignetting * (1.0 + self.vignetting_spread * u)

    def flat_response(self, filter: str) -> np.ndarray:
        """The true flat of ``filter``, normalized to median 1 over the science area.

        Vignetting ``1 - v·r²`` (the tutorial's, with ``v`` from :meth:`filter_vignetting`)
        times the pixel response ``1 + σ·(√(1-f²)·common + f·own)``, where ``common`` is the
        detector's and ``own`` this filter's unit-variance pattern.

        Examples
        --------
        >>> det = Detector.create(seed=0, shape=(16, 16))
        >>> round(float(np.median(det.flat_response("V"))), 12)
        1.0
        """
        cached = self._flats.get(filter)
        if cached is not None:
            return cached
        own = self._stream(_FILTER, _filter_key(filter), 1).standard_normal(self.shape)
        flat = patterns.flat_response(
            patterns.vignetting_map(self.shape, self.filter_vignetting(filter)),
            self._response, own, sigma=self.pixel_response, own_fraction=self.filter_response,
        )  # fmt: skip
        _readonly(flat)
        self._flats[filter] = flat
        return flat

    def to_dict(self) -> dict[str, Any]:
        """The detector's parameters as plain JSON-able values (for ``detector.json``).

        Examples
        --------
        >>> Detector.create(shape=(8, 8), gain=1.5).to_dict()["gain"]
        1.5
        """
        ny, nx = self.shape
        out: dict[str, Any] = {
            "shape": [ny, nx],
            "raw_shape": list(self.raw_shape),
            "gain": self.gain,
            "read_noise": self.read_noise,
            "bias_level": self.bias_level,
            "pattern_amplitude": self.pattern_amplitude,
            "bias_drift": self.bias_drift,
            "dark_rate": self.dark_rate,
            "hot_fraction": self.hot_fraction,
            "hot_rate": list(self.hot_rate),
            "n_hot": int(self._hot.sum()),
            "vignetting": self.vignetting,
            "vignetting_spread": self.vignetting_spread,
            "pixel_response": self.pixel_response,
            "filter_response": self.filter_response,
            "full_well": self.full_well,
            "saturate_adu": self.saturate_adu,
            "adc_max": self.adc_max,
            "overscan": self.overscan,
            "detector_seed": self.seed,
        }
        # only where set: a detector of earlier versions keeps its detector.json bytes
        for key, plain in (("nonlinearity", 0.0), ("adc_bits", 16), ("adc_shift", 0)):
            if getattr(self, key) != plain:
                out[key] = getattr(self, key)
        out.update({k.lower(): v for k, v in self.sections().items()})
        return {k: float(v) if isinstance(v, np.floating) else v for k, v in out.items()}

    def sections(self) -> dict[str, str]:
        """BIASSEC, TRIMSEC and DATASEC as FITS sections; empty without an overscan.

        Examples
        --------
        >>> Detector.create(shape=(200, 200), overscan=32).sections()["BIASSEC"]
        '[201:232,1:200]'
        """
        if not self.overscan:
            return {}
        ny, nx = self.shape
        science = format_section(slice(0, ny), slice(0, nx))
        return {
            "BIASSEC": format_section(slice(0, ny), slice(nx, nx + self.overscan)),
            "TRIMSEC": science,
            "DATASEC": science,
        }

    # ------------------------------------------------------------------ exposures
    def header(self, imagetyp: str, exptime: float, filter: str | None = None) -> fits.Header:
        """The header a camera writes with a frame of this detector.

        Examples
        --------
        >>> h = Detector.create(shape=(8, 8)).header("FLAT", 5.0, "V")
        >>> h["IMAGETYP"], h["FILTER"], h["BUNIT"]
        ('FLAT', 'V', 'adu')
        """
        h = fits.Header()
        h["IMAGETYP"] = (imagetyp, "type of exposure")
        h["EXPTIME"] = (float(exptime), "[s] exposure time")
        if filter is not None:
            h["FILTER"] = (str(filter), "filter name")
        h["GAIN"] = (self.gain, "[e-/adu] detector gain")
        h["RDNOISE"] = (self.read_noise, "[e-] read noise")
        h["SATURATE"] = (self.saturate_adu, "[adu] lowest level that may be saturated")
        h["BUNIT"] = ("adu", "raw ADC units")
        h["INSTRUME"] = ("ccdcal-sim", "ccdcal simulated CCD")
        h["DETSEED"] = (self.seed, "seed of the detector's fixed properties")
        for key, value in self.sections().items():
            h[key] = (value, {"BIASSEC": "overscan", "TRIMSEC": "science area"}.get(key,
                      "light-sensitive pixels"))  # fmt: skip
        return h

    def read_out(self, electrons: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
        """The ADC values of collected charge: bias, drift, read noise, quantization to the
        ADC's steps and range (:attr:`adc_max`).

        Parameters
        ----------
        electrons
            Electrons in each pixel of the science area (already capped at the full well).
        rng
            This exposure's generator.

        Returns
        -------
        numpy.ndarray
            float32, shape :attr:`raw_shape`, integer values 0..:attr:`adc_max`.

        Examples
        --------
        >>> import numpy as np
        >>> det = Detector.create(shape=(8, 8), read_noise=0.0, pattern_amplitude=0.0)
        >>> float(det.read_out(100.0, np.random.default_rng(0)).max())
        600.0
        """
        _ny, nx = self.shape
        adu = self._bias.copy()
        if self.bias_drift > 0:
            adu += rng.normal(0.0, self.bias_drift)  # the whole frame, overscan included
        adu[:, :nx] += np.asarray(electrons, dtype=np.float64) / self.gain
        if self.read_noise > 0:
            adu += rng.normal(0.0, self.read_noise / self.gain, adu.shape)
        step = float(1 << int(self.adc_shift))
        top = float((1 << int(self.adc_bits)) - 1)
        return (np.clip(np.rint(adu / step), 0, top) * step).astype(np.float32)

    def expose(
        self,
        mean_electrons: np.ndarray | float,
        exptime: float,
        rng: np.random.Generator,
        *,
        cosmic_rate: float = 0.0,
        cosmic_threshold: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One exposure of ``mean_electrons`` of light plus the dark current for ``exptime``.

        Parameters
        ----------
        mean_electrons
            Expected photo-electrons per pixel of the science area (after the flat
            response); dark current is added here.
        exptime
            Seconds (dark current and cosmic rays).
        rng
            This exposure's generator.
        cosmic_rate
            Cosmic-ray hits per pixel per second.
        cosmic_threshold
            Deposits above this many electrons are marked in the returned mask; default
            five times the read noise (at least 1 e-).

        Returns
        -------
        raw : numpy.ndarray
            ADC values (see :meth:`read_out`).
        cosmic_mask : numpy.ndarray
            bool, science-area shape: pixels whose cosmic-ray deposit exceeds the threshold.
        """
        if exptime < 0:
            raise CcdcalError(f"exptime must be >= 0, not {exptime}")
        mean = np.asarray(mean_electrons, dtype=np.float64) + self._dark * float(exptime)
        electrons = rng.poisson(np.clip(mean, 0.0, None)).astype(np.float64)
        hits = cosmic_rays(self.shape, exptime, cosmic_rate, rng)
        electrons += hits.deposit
        np.minimum(electrons, self.full_well, out=electrons)  # charge beyond the well is lost
        if self.nonlinearity > 0:
            electrons *= 1.0 - self.nonlinearity * electrons / self.full_well
        threshold = cosmic_threshold
        if threshold is None:
            threshold = max(COSMIC_MASK_SIGMAS * self.read_noise, 1.0)
        return self.read_out(electrons, rng), hits.deposit > threshold

    def bias(self, rng: np.random.Generator) -> Frame:
        """A bias frame: zero exposure, so bias structure, drift and read noise only.

        Examples
        --------
        >>> import numpy as np
        >>> Detector.create(shape=(8, 8)).bias(np.random.default_rng(0)).header["EXPTIME"]
        0.0
        """
        raw, _ = self.expose(0.0, 0.0, rng)
        return Frame(raw, header=self.header("BIAS", 0.0))

    def dark(self, exptime: float, rng: np.random.Generator, *, cosmic_rate: float = 0.0) -> Frame:
        """A dark frame: dark current for ``exptime`` seconds on top of the bias (real darks
        are not bias-subtracted). ``cosmic_rate`` adds cosmic rays (none by default)."""
        raw, _ = self.expose(0.0, exptime, rng, cosmic_rate=cosmic_rate)
        return Frame(raw, header=self.header("DARK", exptime))

    def flat(
        self,
        level_e: float,
        filter: str,
        rng: np.random.Generator,
        *,
        exptime: float = 5.0,
        cosmic_rate: float = 0.0,
    ) -> Frame:
        """A flat: a uniform source giving ``level_e`` electrons where the response is 1,
        times the flat response of ``filter``, plus dark current for ``exptime``.

        Examples
        --------
        >>> import numpy as np
        >>> det = Detector.create(shape=(16, 16))
        >>> f = det.flat(10_000.0, "V", np.random.default_rng(0))
        >>> 10_000 < float(np.median(f.data)) - 500 < 10_100
        True
        """
        if level_e < 0:
            raise CcdcalError(f"flat level must be >= 0 electrons, not {level_e}")
        raw, _ = self.expose(
            level_e * self.flat_response(filter), exptime, rng, cosmic_rate=cosmic_rate
        )
        return Frame(raw, header=self.header("FLAT", exptime, filter))

    def light(
        self,
        scene: Scene | np.ndarray,
        exptime: float,
        filter: str,
        rng: np.random.Generator,
        *,
        cosmic_rate: float = DEFAULT_COSMIC_RATE,
        cosmic_threshold: float | None = None,
    ) -> tuple[Frame, np.ndarray]:
        """A light frame of ``scene`` and the mask of pixels that cosmic rays hit.

        Parameters
        ----------
        scene
            A :class:`Scene`, or its rate (electron/s per pixel before the flat response).
        exptime
            Seconds.
        filter
            Filter name; selects the flat response.
        rng
            This exposure's generator.
        cosmic_rate
            Hits per pixel per second (default: the tutorial's ~20 per 200x200 in 60 s).
        cosmic_threshold
            See :meth:`expose`.

        Returns
        -------
        frame : Frame
            Raw frame in ADU (overscan included).
        cosmic_mask : numpy.ndarray
            bool, science-area shape.

        Examples
        --------
        >>> import numpy as np
        >>> det = Detector.create(shape=(32, 32))
        >>> scene = Scene.random(det.shape, np.random.default_rng(0), nstars=2)
        >>> frame, crs = det.light(scene, 60.0, "V", np.random.default_rng(1))
        >>> frame.header["IMAGETYP"], crs.dtype
        ('LIGHT', dtype('bool'))
        """
        rate = scene.rate if isinstance(scene, Scene) else np.asarray(scene, dtype=np.float64)
        if rate.shape != self.shape:
            raise CcdcalError(f"scene shape {rate.shape} differs from the detector's {self.shape}")
        raw, mask = self.expose(
            self.flat_response(filter) * rate * float(exptime),
            exptime,
            rng,
            cosmic_rate=cosmic_rate,
            cosmic_threshold=cosmic_threshold,
        )
        return Frame(raw, header=self.header("LIGHT", exptime, filter)), mask


__all__ = ["ADC_MAX", "COSMIC_MASK_SIGMAS", "Detector"]
