"""The measurements of a camera on arrays: clipped statistics, read noise from two biases,
photon-transfer gain from two flats, linearity from levels and exposure times, bad pixels
from a flat ratio (see :mod:`ccdcal.camera`)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import CcdcalError
from ..robust import median, median_and_std

#: at most this many frames of each kind are read (pairs beyond these add little)
MAX_PAIRS = 8
#: two flats form a pair when their levels differ by less than this fraction
PAIR_TOLERANCE = 0.1
#: measured and header values that differ by more than this fraction are reported
DISAGREEMENT = 0.30
#: noise (ADU rms) below which integer data are quantized too coarsely to measure it: the
#: rounding alone scatters by 0.29 ADU
QUANTIZED = 0.5
#: clipping of the difference images, in robust sigmas (kept: all but 6e-7 of a Gaussian)
_CLIP = 5.0


# ---------------------------------------------------------------------------- statistics
def clipped_std(values: np.ndarray, *, sigma: float = _CLIP) -> tuple[float, float, int]:
    """Mean, standard deviation and count of ``values`` clipped at ``sigma`` about the mean.

    Starts from the median and the MAD, then iterates; the standard deviation is corrected
    for the Gaussian tails the clip removes, so that it is unbiased for Gaussian noise at
    any ``sigma`` (at 2.5σ as at 5σ).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(0.0, 2.0, 100_000)
    >>> x[:50] = 1e4  # cosmic rays
    >>> mean, std, n = clipped_std(x)
    >>> round(std, 2), n
    (2.0, 99950)
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 2:
        return math.nan, math.nan, int(x.size)
    centre, spread = median_and_std(x)
    if spread == 0:
        spread = float(np.std(x))
    kept = x
    # the spread is corrected for the tails the clip removes at every pass, so that the
    # clip converges to ``sigma`` true sigmas and the correction holds at any ``sigma``
    shrink = math.sqrt(_truncated_variance(sigma))
    for _ in range(20):
        if spread == 0:
            break
        trial = x[np.abs(x - centre) < sigma * spread]
        if trial.size < 2:
            break
        kept = trial
        new_centre, new_spread = float(kept.mean()), float(kept.std(ddof=1)) / shrink
        if new_centre == centre and abs(new_spread - spread) <= 1e-9 * spread:
            break
        centre, spread = new_centre, new_spread
    return centre, spread, int(kept.size)


@functools.lru_cache(maxsize=8)
def _truncated_variance(sigma: float) -> float:
    """Variance of a normal distribution truncated at ±sigma, relative to the untruncated."""
    kept_fraction = math.erf(sigma / math.sqrt(2.0))  # 2 Φ(σ) - 1
    density = math.exp(-0.5 * sigma * sigma) / math.sqrt(2.0 * math.pi)
    return float(1.0 - 2.0 * sigma * density / kept_fraction)


@dataclass(frozen=True)
class Value:
    """A measured number with its uncertainty, unit and what it came from.

    Examples
    --------
    >>> print(Value(2.013, 0.011, "e-/ADU", "7 flat pairs"))
    2.013 ± 0.011 e-/ADU
    """

    value: float
    error: float
    unit: str
    source: str

    def __str__(self) -> str:
        digits = max(0, 1 - math.floor(math.log10(self.error))) if self.error > 0 else 3
        digits = min(digits, 6)
        return f"{self.value:.{digits}f} ± {self.error:.{digits}f} {self.unit}"


def _weighted(values: Sequence[float], errors: Sequence[float]) -> tuple[float, float, float]:
    """Inverse-variance mean, its error (scaled up by the scatter when the values disagree
    beyond their errors) and the reduced chi-square."""
    v, e = np.asarray(values, float), np.asarray(errors, float)
    ok = np.isfinite(v) & np.isfinite(e)
    v, e = v[ok], e[ok]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    # an error of 0 (values quantized to one level) must not take all the weight
    floor = float(np.median(e[e > 0])) if (e > 0).any() else 1.0
    w = 1.0 / np.maximum(e, 1e-3 * floor) ** 2
    mean = float((w * v).sum() / w.sum())
    error = float(1.0 / math.sqrt(w.sum()))
    chi2 = float((w * (v - mean) ** 2).sum() / (len(v) - 1)) if len(v) > 1 else 1.0
    return mean, error * math.sqrt(max(1.0, chi2)), chi2


# ---------------------------------------------------------------------------- read noise
def read_noise_adu(
    first: np.ndarray, second: np.ndarray, *, region: tuple[slice, slice] | None = None
) -> tuple[float, float]:
    """Read noise (ADU) of one frame from the difference of two biases, and its error.

    The fixed bias pattern cancels in the difference, whose robust standard deviation is
    √2 times one frame's read noise (quantization included, as in every frame).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> pattern = rng.uniform(480, 520, (200, 200))
    >>> a, b = (pattern + rng.normal(0, 3.0, (200, 200)) for _ in range(2))
    >>> round(read_noise_adu(a, b)[0], 1)
    3.0
    """
    region = region or (slice(None), slice(None))
    diff = np.asarray(first, np.float64)[region] - np.asarray(second, np.float64)[region]
    # 2^20 pixels give the read noise to 0.07 %: more only costs time
    stride = max(1, math.ceil(math.sqrt(diff.size / 2**20)))
    _, std, n = clipped_std(diff[::stride, ::stride])
    rn = std / math.sqrt(2.0)
    return rn, rn / math.sqrt(2.0 * max(n - 1, 1))


# ---------------------------------------------------------------------------- gain
@dataclass(frozen=True)
class TransferPoint:
    """One pair of flats on the photon-transfer curve.

    Attributes
    ----------
    files
        The two flats.
    level
        Their mean level above the bias, ADU.
    variance
        Photon variance of one frame at that level (read noise taken out), ADU².
    gain, error
        e-/ADU from this pair, and its error.
    """

    files: tuple[str, str]
    level: float
    variance: float
    gain: float
    error: float


#: tiles measured at most per pair of flats: 256 of 64×64 pixels give the gain to ~0.3 %
MAX_TILES = 256


def _level(data: np.ndarray, good: np.ndarray) -> float:
    """Median of the good pixels, from about 2^18 of them (a level to 0.01 %)."""
    stride = max(1, math.ceil(math.sqrt(data.size / 2**18)))
    sample = data[::stride, ::stride][good[::stride, ::stride]]
    return float(median(sample)) if sample.size else math.nan


def _tiles(shape: tuple[int, int], size: int) -> list[tuple[slice, slice]]:
    """Tiles of ``size``² pixels over the frame, at most :data:`MAX_TILES` spread evenly."""
    ny, nx = shape
    step_y, step_x = max(8, min(size, ny // 2)), max(8, min(size, nx // 2))
    tiles = [
        (slice(y, y + step_y), slice(x, x + step_x))
        for y in range(0, ny - step_y + 1, step_y)
        for x in range(0, nx - step_x + 1, step_x)
    ]
    if len(tiles) <= MAX_TILES:
        return tiles
    pick = np.linspace(0, len(tiles) - 1, MAX_TILES).round().astype(int)
    return [tiles[i] for i in pick]


def photon_transfer(
    first: np.ndarray,
    second: np.ndarray,
    *,
    read_noise: float = 0.0,
    bias_noise: float = 0.0,
    good: np.ndarray | None = None,
    tile: int = 64,
    files: tuple[str, str] = ("", ""),
) -> TransferPoint:
    """Gain (e-/ADU) from two bias-subtracted flats of about the same level.

    Parameters
    ----------
    first, second
        The flats, ADU above the bias (the same master bias subtracted from both).
    read_noise
        One frame's read noise, ADU (from :func:`read_noise_adu`).
    bias_noise
        Noise of the subtracted master bias, ADU per pixel: it cancels in the difference
        only when the levels are equal.
    good
        Pixels to use (default: all finite ones).
    tile
        Side of the tiles, pixels, each measured on its own.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> response = 1 + 0.02 * rng.standard_normal((256, 256))
    >>> a, b = (rng.poisson(20_000 * response) / 2.5 for _ in range(2))  # 2.5 e-/ADU
    >>> p = photon_transfer(a, b)
    >>> abs(p.gain / 2.5 - 1) < 3 * p.error / 2.5
    True
    """
    a, b = np.asarray(first, np.float64), np.asarray(second, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if good is not None:
        ok &= good
    mu1, mu2 = _level(a, ok), _level(b, ok)
    if not (mu1 > 0 and mu2 > 0):
        raise CcdcalError(f"{files[0]}, {files[1]}: flats at no level above the bias")
    k = mu1 / mu2
    noise = (1.0 + k * k) * read_noise**2 + (1.0 - k) ** 2 * bias_noise**2
    gains, levels, variances = [], [], []
    for region in _tiles(a.shape, tile):
        use = ok[region]
        if use.sum() < 32:
            continue
        ta, tb = a[region][use], b[region][use]
        mean, std, n = clipped_std(ta - k * tb)
        if n < 32:
            continue
        kept = np.abs(ta - k * tb - mean) < _CLIP * std
        photon = std**2 - noise
        if photon <= 0 or kept.sum() < 32:
            continue
        m1, m2 = float(ta[kept].mean()), float(tb[kept].mean())
        gains.append((m1 + k * k * m2) / photon)
        levels.append(m1)
        variances.append(photon / (1.0 + k * k * m2 / m1))
    if len(gains) < 2:
        raise CcdcalError(f"{files[0]}, {files[1]}: too few usable pixels to measure the gain")
    g = np.asarray(gains)
    # the tiles' spread gives the error: each tile is an independent estimate
    return TransferPoint(
        files=files,
        level=float(np.mean(levels)),
        variance=float(np.mean(variances)),
        gain=float(np.mean(g)),
        error=float(np.std(g, ddof=1) / math.sqrt(len(g))),
    )


# ---------------------------------------------------------------------------- linearity
@dataclass(frozen=True)
class Linearity:
    """How the flats' level follows their exposure time.

    Attributes
    ----------
    levels, exptimes
        Each exposure time's median level above the bias (ADU) and the time (s).
    deviation
        Each level's response relative to the lower levels' (0 = linear).
    limit
        Raw level above the bias (ADU) where the response departs by 1 %; None when it
        stays within 1 % up to the highest level measured.
    measured
        False when the lower levels already scatter beyond 0.5 % (twilight flats, whose
        sky fades: their levels do not follow their exposure times); see ``note``.
    note
        One line for the user.
    """

    levels: tuple[float, ...]
    exptimes: tuple[float, ...]
    deviation: tuple[float, ...]
    limit: float | None
    measured: bool
    note: str


def linearity(levels: Sequence[float], exptimes: Sequence[float]) -> Linearity:
    """Linearity from flats of one lamp at several exposure times.

    Examples
    --------
    >>> lin = linearity([1000, 2000, 4000, 8000, 15400], [1, 2, 4, 8, 16])
    >>> lin.measured, round(lin.limit)
    (True, 9973)
    """
    t = np.asarray(exptimes, float)
    level = np.asarray(levels, float)
    order = np.argsort(level)
    t, level = t[order], level[order]
    rate = level / t
    low = max(2, len(level) // 2)
    # the response at zero level, extrapolated along the lower half: exact for the usual
    # quadratic roll-off, and flat where the response is linear up to a knee
    slope, reference = np.polyfit(level[:low], rate[:low], 1) if low > 2 else (0.0, 0.0)
    if low <= 2 or not reference > 0:
        slope, reference = 0.0, float(np.median(rate[:low]))
    dev = rate / reference - 1.0
    fit = (slope * level[:low] + reference) / reference - 1.0
    spread = float(np.max(np.abs(dev[:low] - fit))) if low > 2 else float(np.ptp(dev[:low]))
    common = {"levels": tuple(level), "exptimes": tuple(t), "deviation": tuple(dev)}
    if spread > 0.005:
        return Linearity(
            **common, limit=None, measured=False,
            note=f"the lower flats' level per second scatters by {100 * spread:.1f} % "
            "(twilight flats?): linearity not measured; use flats of a steady lamp",
        )  # fmt: skip
    beyond = np.nonzero(np.abs(dev) > 0.01)[0]
    if beyond.size == 0:
        return Linearity(
            **common, limit=None, measured=True,
            note=f"linear within 1 % up to {level[-1]:.0f} ADU (the highest flat)",
        )  # fmt: skip
    i = int(beyond[0])
    if i == 0:
        limit = float(level[0])
    else:  # where |deviation| crosses 1 %, between the last level within and the first beyond
        d0, d1 = abs(dev[i - 1]), abs(dev[i])
        limit = float(level[i - 1] + (0.01 - d0) / (d1 - d0) * (level[i] - level[i - 1]))
    return Linearity(
        **common, limit=limit, measured=True,
        note=f"response departs by 1 % at {limit:.0f} ADU above the bias",
    )  # fmt: skip


# ---------------------------------------------------------------------------- bad pixels
def bad_pixels(
    ratio: np.ndarray, *, box: int = 7, lsigma: float = 9.0, hsigma: float = 9.0
) -> np.ndarray:
    """Pixels of a flat ratio that depart from their neighbourhood (IRAF's ``ccdmask``).

    ``ratio`` is one flat over another of a different level: the flat-field pattern
    cancels, and what is left is pixels whose response changes with level (non-linear,
    dead, hot or trapped). A pixel is bad when it differs from the median of the
    ``box × box`` pixels around it by more than ``lsigma`` (below) or ``hsigma`` (above)
    robust sigmas of the whole residual: ccdproc's ``ccdmask`` defaults, without its
    search for bad columns.

    Examples
    --------
    >>> import numpy as np
    >>> r = 1 + 0.01 * np.random.default_rng(0).standard_normal((64, 64))
    >>> r[10, 20] = 0.7
    >>> np.argwhere(bad_pixels(r)).tolist()
    [[10, 20]]
    """
    from scipy.ndimage import median_filter

    x = np.asarray(ratio, np.float64)
    finite = np.isfinite(x)
    filled = np.where(finite, x, np.nanmedian(x) if finite.any() else 0.0)
    residual = filled - median_filter(filled, size=box, mode="nearest")
    _, sigma, _ = clipped_std(residual[finite])
    if not sigma > 0:
        return ~finite
    return ~finite | (residual < -lsigma * sigma) | (residual > hsigma * sigma)


__all__ = [
    "DISAGREEMENT",
    "MAX_PAIRS",
    "PAIR_TOLERANCE",
    "QUANTIZED",
    "Linearity",
    "TransferPoint",
    "Value",
    "bad_pixels",
    "clipped_std",
    "linearity",
    "photon_transfer",
    "read_noise_adu",
]
