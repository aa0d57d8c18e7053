"""Rejection algorithms: small frozen dataclasses that say *what* to reject, not how.

Each class validates its parameters and turns itself into the numbers the compiled kernel
reads (:meth:`Rejection.kernel_args`). Every algorithm works per output pixel on the values
that are left after masks and NaNs are excluded, and every one of them ends with a set of kept
values that is a contiguous run of the sorted values (bounds below and above), so that
``NREJLO``/``NREJHI`` count what fell below and above that run.

``nkeep`` (an argument of :func:`ccdcal.combine`) is the least number of values a pixel keeps:
iterative algorithms that would go below it add back the rejected values closest to the
centre, IRAF's rule; single-pass ones reject fewer values.

Examples
--------
>>> SigmaClip(low=2.5, high=3.0)
SigmaClip(low=2.5, high=3.0, maxiters=5, center='median', spread='std', rule='astropy')
>>> MinMaxClip(nhigh=2)
MinMaxClip(nlow=1, nhigh=2, rule='count')
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np

from ..errors import CcdcalError
from ..process_state import catching_warnings

# algorithm codes shared with kernels.py
NONE, SIGCLIP, MINMAX, PCLIP, WINSOR, CCDCLIP, ESD, VARCLIP, IRAFPCLIP, LINFIT, MEDSIG, AVSIG = (
    range(12)
)

#: number of float parameters the kernel reads
NPARAM = 8


def _nonneg(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise CcdcalError(f"{name} must be a finite number >= 0, not {value!r}")
    return value


def _maxiters(value: int | None) -> float:
    if value is None:
        return -1.0
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise CcdcalError(f"maxiters must be a positive integer or None, not {value!r}")
    return float(value)


class Rejection:
    """Base class of the rejection algorithms (for ``isinstance`` checks)."""

    code: ClassVar[int] = NONE

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        """(algorithm code, float64 parameters, float64 table) for a stack of ``n`` frames."""
        raise NotImplementedError


@dataclass(frozen=True)
class SigmaClip(Rejection):
    """Iterative sigma clipping about the median or the mean.

    Parameters
    ----------
    low, high
        Reject values below ``center - low*spread`` or above ``center + high*spread``.
    maxiters
        Most iterations (None: until nothing changes).
    center
        ``"median"`` or ``"mean"`` of the values still kept.
    spread
        ``"std"`` (population standard deviation about the mean, ddof=0) or ``"mad_std"``
        (1.4826 × median absolute deviation about the median).
    rule
        ``"astropy"``: exactly :func:`astropy.stats.sigma_clip` with ``axis=0`` (bounds from
        the values kept so far; iterate until nothing changes or ``maxiters``; the final
        kept set is every value within the last bounds). The bounds are computed in float64
        from sorted values, not by astropy's own summation order: with ``center="mean"`` a
        value within rounding (~1e-16 relative) of a bound may be decided the other way (3
        pixels in 1,200 random stacks in an independent review; none with the median).
        ``"siril"``: Siril 1.0's rule —
        centre is the median, spread the *sample* standard deviation (ddof=1), values are
        removed for good each pass, and rejection never leaves fewer than 4 values (Siril
        stops rejecting at 4; here the values closest to the median are added back instead
        of Siril's frame-order cut-off, so that the result does not depend on frame order).
        ``center`` and ``spread`` are ignored by the Siril rule.
    """

    low: float = 3.0
    high: float = 3.0
    maxiters: int | None = 5
    center: str = "median"
    spread: str = "std"
    rule: str = "astropy"

    code: ClassVar[int] = SIGCLIP

    def __post_init__(self) -> None:
        _nonneg("SigmaClip low", self.low)
        _nonneg("SigmaClip high", self.high)
        _maxiters(self.maxiters)
        if self.center not in ("median", "mean"):
            raise CcdcalError(f"SigmaClip center must be 'median' or 'mean', not {self.center!r}")
        if self.spread not in ("std", "mad_std"):
            raise CcdcalError(f"SigmaClip spread must be 'std' or 'mad_std', not {self.spread!r}")
        if self.rule not in ("astropy", "siril"):
            raise CcdcalError(f"SigmaClip rule must be 'astropy' or 'siril', not {self.rule!r}")

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:6] = (
            self.low,
            self.high,
            _maxiters(self.maxiters),
            self.center == "median",
            self.spread == "mad_std",
            self.rule == "siril",
        )
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class MinMaxClip(Rejection):
    """IRAF ``minmax``: drop the ``nlow`` lowest and ``nhigh`` highest valid values.

    An integer is a number of values, a float in (0, 1) a fraction of the valid values at
    the pixel: ``int(m · nlow + 0.001)`` of *m* (IRAF's truncation). With ``rule="count"``
    (the default) an integer is dropped at every pixel that has enough values;
    ``rule="iraf"`` is IRAF's rule exactly (``icombine.x`` and ``icmm.gx``): an integer is a
    number of the *n* inputs, turned into the fraction ``nlow / n`` of the values left at
    each pixel, so that where values are masked or missing fewer go (1 of 10 inputs drops
    none where fewer than 10 are valid: a masked cosmic ray is not a reason to drop a good
    value). When fewer than ``nkeep`` values would be left, fewer are dropped (high side
    first; IRAF's minmax has no nkeep). Tied values at the edge are dropped in frame order
    (later frames first).

    Examples
    --------
    >>> MinMaxClip(nlow=1, nhigh=2, rule="iraf").kernel_args(10)[1][:4].tolist()
    [0.1, 0.2, 0.0, 0.0]
    >>> MinMaxClip(nlow=1, nhigh=0.25).kernel_args(10)[1][:4].tolist()
    [1.0, 0.25, 1.0, 0.0]
    """

    nlow: float = 1
    nhigh: float = 1
    rule: str = "count"

    code: ClassVar[int] = MINMAX

    def __post_init__(self) -> None:
        for name in ("nlow", "nhigh"):
            value = getattr(self, name)
            _nonneg(f"MinMaxClip {name}", value)
            if value >= 1 and int(value) != value:
                raise CcdcalError(
                    f"MinMaxClip {name} must be an integer or a fraction below 1, not {value!r}"
                )
        if self.rule not in ("count", "iraf"):
            raise CcdcalError(f"MinMaxClip rule must be 'count' or 'iraf', not {self.rule!r}")

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        for side, value in enumerate((self.nlow, self.nhigh)):
            if value < 1:  # a fraction (or none)
                p[side] = value
            elif self.rule == "iraf":
                p[side] = value / max(n, 1)
            else:
                p[side], p[side + 2] = value, 1.0
        if self.rule == "iraf" and int(p[0] * n + 0.001) + int(p[1] * n + 0.001) >= n > 0:
            # IRAF's icombine.x: "Bad minmax rejection parameters"
            raise CcdcalError(
                f"MinMaxClip(rule='iraf'): nlow {self.nlow} and nhigh {self.nhigh} drop all "
                f"{n} inputs"
            )
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class PercentileClip(Rejection):
    """Percentile band: keep the values between the ``low`` and ``high`` percentiles.

    The percentiles are those of :func:`numpy.percentile` (linear interpolation) of the valid
    values at each pixel; values strictly below the ``low`` or strictly above the ``high``
    percentile are rejected. (A documented band rule rather than IRAF's ``pclip``.)
    """

    low: float = 10.0
    high: float = 90.0

    code: ClassVar[int] = PCLIP

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.high <= 100:
            raise CcdcalError(
                f"PercentileClip needs 0 <= low <= high <= 100, got low={self.low!r} "
                f"high={self.high!r}"
            )

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:2] = (np.true_divide(self.low, 100), np.true_divide(self.high, 100))
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class _Bounds(Rejection):
    """A rejection of ``low`` and ``high`` thresholds (in its σ) and ``maxiters`` passes."""

    low: float = 3.0
    high: float = 3.0
    maxiters: int | None = 5

    def __post_init__(self) -> None:
        _nonneg(f"{type(self).__name__} low", self.low)
        _nonneg(f"{type(self).__name__} high", self.high)
        _maxiters(self.maxiters)

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:3] = (self.low, self.high, _maxiters(self.maxiters))
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class LinearFitClip(_Bounds):
    """Siril's (and PixInsight's) linear fit clipping, for many frames of varying sky.

    At each pass the kept values, sorted, are fitted by a straight line against their rank
    (least squares); σ is their mean absolute deviation from it, and values more than
    ``low``·σ below or ``high``·σ above the line are rejected, for good. Passes repeat
    until nothing changes or ``maxiters``. A line follows a spread of levels (a sky that
    changed between frames) where a sigma clip about the median would take the ends for
    outliers. Never fewer than max(nkeep, 4) values are kept (Siril's floor of 4; the
    rejected values nearest the line come back).

    Siril's source (``rejection_float.c``) differs in details that we do not copy: values
    equal to 0 are dropped first (Siril's mark of no data; here NaN and masks do that), and
    since 2024 the fit keeps the rank centre and spread of the whole stack after
    rejections, which tilts the line (on 1..10 and 30 at 2σ it rejects 30, then 10, 9 and
    8 in turn); here the line is the exact fit to the values kept, as in its 2020 code.
    Its cap on rejections counts them over all passes; here the floor is on what is left.

    Examples
    --------
    >>> LinearFitClip(low=3.0, high=3.0).kernel_args(5)[1][:3].tolist()
    [3.0, 3.0, 5.0]
    """

    code: ClassVar[int] = LINFIT


@dataclass(frozen=True)
class MedianSigmaClip(Rejection):
    """Siril's median sigma clipping: outliers replaced by the median, not left out.

    Each pass takes the median and the sample standard deviation σ (about the mean) of all
    the values, and replaces those more than ``low``·σ below or ``high``·σ above the median
    by the median; passes repeat until none is replaced (Siril's ``SIGMEDIAN``, as its
    ``rejection_float.c``; the median of an even count is the mean of the middle two). No
    value leaves the stack, so the result is the mean (or median, or sum) of all of them,
    the replaced ones at the median: with few frames a hole in the count at a cosmic ray
    does not raise the noise there. NCOMBINE counts the values kept as they were, NREJLO
    and NREJHI those replaced (the REJECTED cube marks them); a propagated variance leaves
    out the replaced values' own. ``nkeep`` does not apply (nothing is removed).

    Examples
    --------
    >>> MedianSigmaClip(low=3.0, high=3.0).kernel_args(4)[1][:2].tolist()
    [3.0, 3.0]
    """

    low: float = 3.0
    high: float = 3.0

    code: ClassVar[int] = MEDSIG

    def __post_init__(self) -> None:
        _nonneg("MedianSigmaClip low", self.low)
        _nonneg("MedianSigmaClip high", self.high)

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:2] = (self.low, self.high)
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class PClip(Rejection):
    """IRAF's ``pclip``: σ from the distance between the median and a value near it.

    IRAF's rule exactly (``icombine.x``, ``icpclip.gx``): ``pclip`` (default -0.5, IRAF's)
    becomes, once for the *n* inputs, a number of places *p* from the median: a fraction
    (|pclip| < 1) of n // 2, truncated, at least 1 and at most n // 2 places, below the
    median (negative) or above it (positive). At each pixel of *m* sorted values σ is the
    distance from the median to the value *p* places away (counted from the lower middle
    value going down, from the upper one going up, where *m* is even); values at or beyond
    ``low``·σ below or ``high``·σ above the median are rejected (IRAF's ``>=``), in one pass,
    not iterated. A pixel of fewer than 3 values, or σ = 0, is left alone. Where fewer than
    ``nkeep`` would be kept, the rejected values nearest the median come back (IRAF also
    brings back values tied with them within 0.001 σ). Robust with few frames: σ comes
    from the central values, not from a scatter that the outliers inflate.

    Examples
    --------
    >>> PClip().kernel_args(10)[1][:3].tolist()
    [-2.0, 3.0, 3.0]
    """

    pclip: float = -0.5
    low: float = 3.0
    high: float = 3.0

    code: ClassVar[int] = IRAFPCLIP

    def __post_init__(self) -> None:
        if not math.isfinite(self.pclip) or self.pclip == 0:
            raise CcdcalError(f"PClip pclip must be a non-zero number, not {self.pclip!r}")
        _nonneg("PClip low", self.low)
        _nonneg("PClip high", self.high)

    def places(self, n: int) -> int:
        """The number of places from the median for ``n`` inputs (signed, as IRAF's)."""
        half = n // 2
        pc = self.pclip * half if abs(self.pclip) < 1 else self.pclip
        if pc < 0:
            return min(-1, max(-half, int(pc)))
        return max(1, min(half, int(pc)))

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:3] = (self.places(n), self.low, self.high)
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class WinsorizedSigmaClip(_Bounds):
    """Winsorized sigma clipping, as Siril 1.0 (and PixInsight) do it.

    Each pass: take the median *m* and sample standard deviation σ (ddof=1) of the kept
    values; then repeatedly winsorize a copy (clamp it to ``m ± 1.5σ``) and set
    σ = 1.134 × std(copy) until σ changes by less than 0.05 %; finally reject values below
    ``m - low·σ`` or above ``m + high·σ``. Passes repeat until nothing changes or
    ``maxiters``; as in Siril, rejection never leaves fewer than 4 values.
    """

    code: ClassVar[int] = WINSOR


@dataclass(frozen=True)
class AvSigClip(Rejection):
    """IRAF's ``avsigclip``: a noise model's σ without knowing the gain, from the image.

    IRAF's rule (``icaclip.gx``): for each image line one factor *s*, the square root of
    Σ (x - c)² / max(1, c) over every value of every pixel of that line with 3 values or
    more, divided by their count less one, *c* each pixel's mean leaving out its minimum
    and maximum (or its median, ``center="median"``); then at each pixel σ = s·√max(1, c)
    and values beyond ``low``·σ below or ``high``·σ above *c* are rejected, pass after
    pass (*c* the plain mean of the kept after the first pass), until none is or 2 are
    left; *s* is not measured again. Right where the noise grows as √signal and the gain
    is unknown. The factors are measured on the whole image before the combine (it reads
    the stack into memory for them; not in row bands). IRAF's restore by nkeep overwrites
    its line factor (a bug in ``icaclip.gx``): not copied.

    Examples
    --------
    >>> AvSigClip(low=3.0, high=3.0, line_sigma=(0.5, 0.6)).kernel_args(4)[2].tolist()
    [[0.5, 0.6]]
    """

    low: float = 3.0
    high: float = 3.0
    maxiters: int | None = 5
    center: str = "mean"
    line_sigma: tuple[float, ...] | None = field(default=None, repr=False)

    code: ClassVar[int] = AVSIG

    def __post_init__(self) -> None:
        _nonneg("AvSigClip low", self.low)
        _nonneg("AvSigClip high", self.high)
        _maxiters(self.maxiters)
        if self.center not in ("median", "mean"):
            raise CcdcalError(f"AvSigClip center must be 'median' or 'mean', not {self.center!r}")

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        if self.line_sigma is None:
            raise CcdcalError("AvSigClip needs its line factors: measured by combine() itself")
        p = np.zeros(NPARAM)
        p[:4] = (self.low, self.high, _maxiters(self.maxiters), self.center == "median")
        return self.code, p, np.array([self.line_sigma], np.float64)


def line_sigmas(values: np.ndarray, center: str = "mean") -> np.ndarray:
    """IRAF avsigclip's factor for each line of an (n, ny, nx) stack (NaN: left out).

    Examples
    --------
    >>> clean = [100, 110, 90, 105, 95]
    >>> line = np.array([clean, clean, clean, [400, 420, 380, 410, 600]], float).T[:, None, :]
    >>> round(float(line_sigmas(line)[0]), 4)
    2.2738
    """
    x = np.asarray(values, np.float64)
    valid = np.isfinite(x)
    n1 = valid.sum(axis=0)
    filled = np.where(valid, x, 0.0)
    total = filled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), catching_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pixel with no value: NaN
        if center == "median":
            c = np.nanmedian(np.where(valid, x, np.nan), axis=0)
        else:
            low = np.where(valid, x, np.inf).min(axis=0)
            high = np.where(valid, x, -np.inf).max(axis=0)
            c = (total - low - high) / (n1 - 2)
        use = n1 >= 3
        dev = np.where(valid, (x - c) ** 2, 0.0).sum(axis=0) / np.maximum(1.0, c)
        s = np.where(use, dev, 0.0).sum(axis=1)
        count = np.where(use, n1, 0).sum(axis=1)
        return np.where(count > 1, np.sqrt(s / np.maximum(count - 1, 1)), 0.0)


@dataclass(frozen=True)
class CCDClip(Rejection):
    """IRAF ``ccdclip``: sigma clipping with σ from the CCD noise model, not the scatter.

    σ = sqrt((read_noise/gain)² + max(0, c)/gain + (snoise·max(0, c - sky))²) in data units,
    with *c* the median of the values kept so far or, with ``center="mean"``, their mean
    leaving out one minimum and one maximum (where more than 2 are left), at every pass, as
    IRAF's ``iccclip.gx`` does (its help says the first pass only); a cosmic ray then
    cannot drag the mean away from the good values. ``gain`` in e-/ADU, ``read_noise`` in
    e-, ``snoise`` a fraction. IRAF's rule has ``sky = 0``: its ``snoise`` (a flat's or a
    misalignment's error) scales the whole value. A stack of lights of other seeing wants
    it to scale the stars only, above the ``sky`` level. Values below ``c - low·σ`` or
    above ``c + high·σ`` are removed; iterate until nothing changes or ``maxiters``. The
    data must be in ADU above the bias (the level that makes the photon noise). Zero
    offsets (``zero=``) here keep the mean level, so the model is evaluated at *c* directly
    — IRAF, whose offsets move the level, adds them back. The per-frame correction for
    scale factors that IRAF makes is left out (factors near 1). For calibrated frames,
    whose noise is known pixel by pixel, :class:`VarianceClip` is the better rule.
    """

    gain: float = 1.0
    read_noise: float = 0.0
    snoise: float = 0.0
    low: float = 3.0
    high: float = 3.0
    maxiters: int | None = 5
    center: str = "median"
    sky: float = 0.0

    code: ClassVar[int] = CCDCLIP

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain) and self.gain > 0):
            raise CcdcalError(f"CCDClip gain must be > 0 (e-/ADU), not {self.gain!r}")
        _nonneg("CCDClip read_noise", self.read_noise)
        _nonneg("CCDClip snoise", self.snoise)
        _nonneg("CCDClip low", self.low)
        _nonneg("CCDClip high", self.high)
        _maxiters(self.maxiters)
        if self.center not in ("median", "mean"):
            raise CcdcalError(f"CCDClip center must be 'median' or 'mean', not {self.center!r}")
        if not math.isfinite(self.sky):
            raise CcdcalError(f"CCDClip sky must be finite, not {self.sky!r}")

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:8] = (
            (self.read_noise / self.gain) ** 2,
            1.0 / self.gain,
            self.snoise**2,
            self.low,
            self.high,
            _maxiters(self.maxiters),
            self.center == "median",
            self.sky,
        )
        return self.code, p, np.zeros((1, 1))


@dataclass(frozen=True)
class VarianceClip(Rejection):
    """Sigma clipping with each value's σ from its own frame's variance plane.

    The noise of a calibrated frame is known pixel by pixel (photons, read noise, dark
    current, the flat's amplification), and it differs from frame to frame (another sky,
    another exposure). Each pass rejects the value *x_i* of frame *i* outside
    ``c - low·s_i .. c + high·s_i``, where *c* is the centre and *s_i* the spread of
    ``x_i - c``:

    - the variance ``v_i`` of frame *i* at the pixel is its random part (the variance less
      the masters' part, VARCOMMON, which is the same in every frame and makes no scatter),
      taken at the centre rather than at the value through the frame's photon slope ``a_i``
      (d variance / d value; ``slope``, per frame or one for all: 1 for data in electrons,
      1/F after a flat F, 0 where the variance does not follow the value), so that a
      value's own photons neither widen its bound above the centre nor narrow it below:
      ``v_i - a_i (x_i - c)``, never below a hundredth of ``v_i``; plus
      ``(snoise · max(c - sky, 0))²``, a noise in proportion to the signal above the sky
      (seeing that differs between frames, a misalignment), as IRAF's ``snoise``;
    - the first centre is the median, robust to any number of outliers short of half;
      after it, the inverse-variance mean of the values kept. Each pass tests every value
      again, so that a good value rejected by a noisy first centre comes back;
    - *s_i* counts the centre's own noise exactly for the mean (``v_i - 1/W`` for a value
      it holds, ``v_i + 1/W`` for one it does not, W = Σ 1/v) and to first order for the
      median (its scatter (π/2)(K - 1)/H² and the lift √(π/2)/H that a value at a bound
      gives it, H = Σ 1/√v);
    - photon noise is skewed (third cumulant a² x): the bounds move by the Cornish-Fisher
      term so that high and low values are rejected equally often.

    Passes repeat until the kept values no longer change, or ``maxiters`` passes after
    the median's (None: 100, as a set can cycle). When fewer than ``nkeep`` would be kept,
    the rejected ones nearest the centre (in *s_i*) come back, of those at one distance
    (within rounding) the lower first. On Gaussian values the fraction rejected is the
    normal distribution's for the thresholds (within a few per cent from 10 values up;
    tests/test_rejection_noise.py).
    IRAF's ``ccdclip`` rejects by the same kind of model, ``rn² + c/g``, one for all
    frames, without the rest.

    Every input needs a variance plane. Rejected values below the median of the kept
    count as NREJLO, above as NREJHI; the kept values need not be a contiguous run of the
    sorted ones.

    Examples
    --------
    >>> VarianceClip(low=3.0, high=3.0, slope=(1.0, 0.5)).kernel_args(2)[2].tolist()
    [[1.0, 0.5]]
    """

    low: float = 3.0
    high: float = 3.0
    maxiters: int | None = 10
    slope: float | tuple[float, ...] = 0.0
    snoise: float = 0.0
    sky: float = 0.0

    code: ClassVar[int] = VARCLIP

    def __post_init__(self) -> None:
        _nonneg("VarianceClip low", self.low)
        _nonneg("VarianceClip high", self.high)
        _maxiters(self.maxiters)
        _nonneg("VarianceClip snoise", self.snoise)
        if not math.isfinite(self.sky):
            raise CcdcalError(f"VarianceClip sky must be finite, not {self.sky!r}")
        slopes = (self.slope,) if isinstance(self.slope, int | float) else tuple(self.slope)
        for value in slopes:
            _nonneg("VarianceClip slope", value)
        if not isinstance(self.slope, int | float):
            object.__setattr__(self, "slope", tuple(float(v) for v in slopes))

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:6] = (
            self.low,
            self.high,
            _maxiters(self.maxiters),
            0.0,
            self.snoise**2,
            self.sky,
        )
        if isinstance(self.slope, int | float):
            slopes = np.full((1, n), float(self.slope))
        else:
            if len(self.slope) != n:
                raise CcdcalError(
                    f"VarianceClip slope: one per input ({n}) or one for all, not {len(self.slope)}"
                )
            slopes = np.array([self.slope], np.float64)
        return self.code, p, slopes


@dataclass(frozen=True)
class ESDClip(Rejection):
    """Generalized extreme Studentized deviate test (Rosner 1983).

    For up to ``r`` outliers: remove, one at a time, the value farthest from the mean of
    those left, recording R_i = |x - mean| / s (s with ddof=1); the number of outliers is the
    largest *i* with R_i > λ_i, λ_i = (m-i) t_{p, m-i-1} / sqrt((m-i-1+t²)(m-i+1)),
    p = 1 - α/(2(m-i+1)), *m* the number of valid values. ``max_outliers`` is ``r`` as an
    integer, or a fraction (0, 1) of *m* (floored). At most m - 2 values are tested.
    Outliers below the mean count as low rejections, above as high.
    """

    max_outliers: float = 0.3
    alpha: float = 0.05

    code: ClassVar[int] = ESD

    def __post_init__(self) -> None:
        value = self.max_outliers
        _nonneg("ESDClip max_outliers", value)
        if value >= 1 and int(value) != value:
            raise CcdcalError(
                f"ESDClip max_outliers must be an integer or a fraction below 1, not {value!r}"
            )
        if not 0 < self.alpha < 1:
            raise CcdcalError(f"ESDClip alpha must be in (0, 1), not {self.alpha!r}")

    def kernel_args(self, n: int) -> tuple[int, np.ndarray, np.ndarray]:
        p = np.zeros(NPARAM)
        p[:2] = (self.max_outliers, 0 < self.max_outliers < 1)
        return self.code, p, esd_critical_values(n, self.alpha)


@lru_cache(maxsize=32)
def _esd_table(n: int, alpha: float) -> np.ndarray:
    # Student's t quantile from scipy.special (stdtrit equals stats.t.ppf): importing
    # scipy.stats cost 0.6 s of every master bias's time
    from scipy.special import stdtrit

    table = np.full((n + 1, n + 1), np.inf)
    for m in range(3, n + 1):
        i = np.arange(1, m - 1)  # m - i - 1 >= 1 degrees of freedom
        prob = 1.0 - alpha / (2.0 * (m - i + 1))
        t = stdtrit((m - i - 1).astype(np.float64), prob)
        table[m, 1 : m - 1] = (m - i) * t / np.sqrt((m - i - 1 + t * t) * (m - i + 1))
    table.setflags(write=False)
    return table


def esd_critical_values(n: int, alpha: float) -> np.ndarray:
    """Rosner's λ_i for every number of valid values m ≤ n: ``table[m, i]`` (inf if untested).

    Examples
    --------
    >>> round(float(esd_critical_values(10, 0.05)[10, 1]), 3)
    2.29
    """
    return _esd_table(int(n), float(alpha))


__all__ = [
    "AvSigClip",
    "CCDClip",
    "ESDClip",
    "LinearFitClip",
    "MedianSigmaClip",
    "MinMaxClip",
    "PClip",
    "PercentileClip",
    "Rejection",
    "SigmaClip",
    "VarianceClip",
    "WinsorizedSigmaClip",
    "esd_critical_values",
]
