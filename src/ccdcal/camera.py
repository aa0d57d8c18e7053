"""Know the camera: gain, read noise, linearity, dark current and bad pixels measured from
the night's own calibration frames, and checked against what the headers say.

- Read noise from pairs of biases: the robust scatter of their difference over √2 (the
  fixed bias pattern cancels), per amplifier region.
- Gain by the photon-transfer method (Janesick, *Photon Transfer*, 2007): two flats of one
  level differ only by noise, whose variance is ``(μ₁ + k²μ₂)/g + (1 + k²)·σ_r²`` for the
  difference ``F₁ - k·F₂`` with ``k = μ₁/μ₂``; ``g`` follows from the measured variance,
  the bias-subtracted levels and the read noise in ADU. Measured in tiles, so that the
  vignetting does not widen the scatter and the tiles' spread gives the uncertainty.
- Linearity from flats at several exposure times: their level per second against the
  lower levels' one, and the level where the response departs by 1 %.
- Dark current from the darks (level per second above the bias) and hot pixels (their
  median per pixel more than five robust sigmas above the rest).
- Bad pixels from the ratio of two flats of different level, where a pixel that does not
  respond like its neighbours stands out (IRAF's ``ccdmask``, as ccdproc's ``ccdmask``).

Examples
--------
>>> import tempfile, ccdcal
>>> night = ccdcal.simulate.night(tempfile.mkdtemp(), shape=(96, 96), nbias=4, ndark=0,
...                               nflat=4, nlight=1, gain=2.0, read_noise=6.0, nstars=0)
>>> c = characterize(night.raw_dir)
>>> round(c.gain.value, 1), round(c.read_noise.value)
(2.0, 6)
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .classify import FrameInfo
from .collection import Collection, scan
from .config import Config, load_config
from .errors import CcdcalError
from .frame import Frame

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]

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
    centre = float(np.median(x))
    spread = 1.482602218505602 * float(np.median(np.abs(x - centre)))
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
    return float(np.median(sample)) if sample.size else math.nan


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


# ---------------------------------------------------------------------------- the camera
@dataclass
class Characterization:
    """What the night's calibration frames say about the camera (:func:`characterize`).

    Attributes
    ----------
    gain
        e-/ADU by photon transfer, or None (no pair of flats).
    read_noise
        Electrons (in ADU when no gain is known), or None (no pair of biases).
    read_noise_adu
        ADU.
    regions
        Read noise per amplifier region, ``(section, Value in ADU)``.
    transfer
        The photon-transfer points, one per pair of flats.
    bias_level
        Median level of the biases, ADU (above the overscan when one is subtracted).
    dark_current
        e-/s (ADU/s without a gain) of ordinary pixels, or None (no darks).
    hot_pixels
        Pixels whose dark current is more than five sigmas above the rest, or None.
    linearity
        :class:`Linearity`, or None (no flats at three or more exposure times).
    bad_pixels
        Boolean mask from a ratio of flats, or None (no flats of two levels).
    header
        What the headers say: ``{"gain": (keyword, value), "rdnoise": (keyword, value)}``
        (keyword None when absent).
    gain_unsure
        ``(keyword, value)`` of a gain keyword of varying meaning (CCDGAIN) where no other
        gain is known: shown beside the measurement, never used to convert.
    amplifier_noise_adu
        The read noise in ADU without the ADC's rounding, or None.
    notes
        What the user should know, one line each.
    """

    gain: Value | None = None
    read_noise: Value | None = None
    read_noise_adu: Value | None = None
    regions: list[tuple[str, Value]] = field(default_factory=list)
    transfer: list[TransferPoint] = field(default_factory=list)
    bias_level: float | None = None
    dark_current: Value | None = None
    hot_pixels: int | None = None
    hot_mask: np.ndarray | None = None
    linearity: Linearity | None = None
    bad_pixels: np.ndarray | None = None
    header: dict[str, tuple[str | None, float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gain_unsure: tuple[str, float] | None = None
    amplifier_noise_adu: float | None = None

    def disagreements(self, limit: float = DISAGREEMENT) -> list[str]:
        """One line per header value that differs from the measurement by more than
        ``limit`` (a fraction)."""
        out = []
        for name, measured, unit in (("gain", self.gain, "e-/ADU"),
                                     ("read noise", self.read_noise, "e-")):  # fmt: skip
            key, value = self.header.get("gain" if name == "gain" else "rdnoise", (None, None))
            if measured is None or value is None or measured.unit != unit:
                continue
            if abs(value / measured.value - 1.0) > limit:
                out.append(
                    f"header {name} {key} = {value:g} {unit} differs from the {name} measured "
                    f"from {measured.source}, {measured.value:.3g} {unit} "
                    f"({100 * (value / measured.value - 1):+.0f} %)"
                )
        return out

    def table(self) -> str:
        """The measurements beside the header's values, as a text table.

        Examples
        --------
        >>> c = Characterization(gain=Value(2.01, 0.01, "e-/ADU", "3 flat pairs"),
        ...                      header={"gain": ("GAIN", 2.0)})
        >>> print(c.table())  # doctest: +NORMALIZE_WHITESPACE
        quantity  measured              from          header    header vs measured
        --------  --------------------  ------------  --------  ------------------
        gain      2.010 ± 0.010 e-/ADU  3 flat pairs  GAIN = 2  -0.5 %
        """
        rows = [["quantity", "measured", "from", "header", "header vs measured"]]

        def header_cells(name: str, measured: Value | None) -> list[str]:
            key, value = self.header.get(name, (None, None))
            unsure = ""
            if (key is None or value is None) and name == "gain" and self.gain_unsure:
                (key, value), unsure = self.gain_unsure, " (unsure)"
            if key is None or value is None:
                return ["-", ""]
            agree = ""
            if measured is not None and measured.value > 0 and measured.unit != "ADU":
                agree = f"{100 * (value / measured.value - 1):+.1f} %"
            return [f"{key} = {value:g}{unsure}", agree]

        if self.gain is not None or self.header.get("gain", (None,))[0] or self.gain_unsure:
            g = self.gain
            rows.append(["gain", str(g) if g else "-", g.source if g else "no flat pairs",
                         *header_cells("gain", g)])  # fmt: skip
        if self.read_noise is not None:
            r = self.read_noise
            rows.append(["read noise", str(r), r.source, *header_cells("rdnoise", r)])
        if self.read_noise_adu is not None and self.read_noise_adu is not self.read_noise:
            rows.append(["read noise", str(self.read_noise_adu), self.read_noise_adu.source,
                         "", ""])  # fmt: skip
        for section, value in self.regions:
            rows.append([f"  region {section}", str(value), value.source, "", ""])
        if self.bias_level is not None:
            rows.append(["bias level", f"{self.bias_level:.1f} ADU", "biases", "", ""])
        if self.dark_current is not None:
            d = self.dark_current
            rows.append(["dark current", str(d), d.source, "", ""])
        if self.hot_pixels is not None:
            rows.append(["hot pixels", str(self.hot_pixels), "darks (> 5 sigma)", "", ""])
        if self.linearity is not None:
            lin = self.linearity
            what = (
                "not measured"
                if not lin.measured
                else ("within 1 %" if lin.limit is None else f"1 % at {lin.limit:.0f} ADU")
            )
            rows.append(["linearity", what, f"flats at {len(lin.levels)} exposures", "", ""])
        if self.bad_pixels is not None:
            rows.append(["bad pixels", str(int(self.bad_pixels.sum())), "flat ratio", "", ""])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]  # fmt: skip
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_toml(self, source: str = "") -> str:
        """A ``[detector]`` section with the measured gain and read noise, for ``--config``.

        Examples
        --------
        >>> c = Characterization(gain=Value(2.013, 0.011, "e-/ADU", "7 flat pairs"))
        >>> print(c.to_toml())
        # measured by ccdcal characterize
        [detector]
        gain = 2.013  # e-/ADU ± 0.011, from 7 flat pairs
        """
        lines = ["# measured by ccdcal characterize" + (f" from {source}" if source else "")]
        lines.append("[detector]")
        if self.gain is not None:
            g = self.gain
            lines.append(f"gain = {g.value:.4g}  # e-/ADU ± {g.error:.2g}, from {g.source}")
        if self.read_noise is not None and self.read_noise.unit == "e-":
            r = self.read_noise
            lines.append(f"rdnoise = {r.value:.4g}  # e- ± {r.error:.2g}, from {r.source}")
        if len(lines) == 2:
            lines.append("# nothing measured: no pairs of biases or flats")
        return "\n".join(lines)


class _Reader:
    """Reads raw frames prepared as the reduction would (overscan, trim, SATURATED flagged),
    in float32, cut to a central ``window`` when one is given, and learns the ADC's step
    (1, or 16 for 12-bit values stored shifted left) from the raw values."""

    def __init__(self, cfg: Config, window: int | None) -> None:
        from .calibrate import Overscan

        det = cfg.detector
        self.cfg = cfg
        self.window = window
        self.overscan = Overscan(det.overscan, order=det.overscan_order,
                                 sigma=det.overscan_sigma, axis=det.readout_axis)  # fmt: skip
        self.step: float | None = None
        self.leveled = False  # an overscan was subtracted
        self.first: tuple[FrameInfo, tuple[int, ...]] | None = None

    def __call__(self, info: FrameInfo) -> tuple[np.ndarray, np.ndarray]:
        from .calibrate import flag_saturation
        from .masters import preprocess

        det = self.cfg.detector
        frame = Frame.read(info.path)
        if self.step is None:
            self.step = _adc_step(frame.data)
        if det.saturation is not None or info.saturation is not None:
            frame = flag_saturation(frame, det.saturation or info.saturation)
        frame = preprocess(frame, biassec=det.biassec, trimsec=det.trimsec,
                           overscan=self.overscan)  # fmt: skip
        self.leveled = self.leveled or "OVERSCAN" in frame.header
        if self.first is None:
            self.first = (info, frame.shape)
        elif frame.shape != self.first[1]:
            (ny, nx), (my, mx) = frame.shape, self.first[1]
            raise CcdcalError(
                f"{info.path}: {info.kind} of shape {nx}x{ny} differs from "
                f"{self.first[0].path.name}'s {mx}x{my}; move it out"
            )
        data, good = frame.data.astype(np.float32), _good(frame)
        if self.window is not None:
            region = _central(data.shape, self.window)
            data, good = data[region], good[region]
        return data, good


def _central(shape: tuple[int, ...], size: int) -> tuple[slice, slice]:
    ny, nx = shape[-2:]
    h, w = min(ny, size), min(nx, size)
    return slice((ny - h) // 2, (ny - h) // 2 + h), slice((nx - w) // 2, (nx - w) // 2 + w)


def _adc_step(data: np.ndarray) -> float:
    """The spacing of a raw frame's values: their greatest common divisor (1 for most
    cameras; 16 for 12-bit values stored shifted left in 16 bits), from a sample."""
    sample = data[::7, ::7] if data.ndim == 2 else data.ravel()[::49]
    sample = sample[np.isfinite(sample)]
    if not sample.size or np.any(sample != np.round(sample)) or sample.max() > 2**31:
        return 1.0
    step = int(np.gcd.reduce(np.abs(sample.astype(np.int64))))
    return float(step) if step > 1 else 1.0


def _good(frame: Frame) -> np.ndarray:
    from . import flags

    good = np.isfinite(frame.data)
    if frame.mask is not None:
        good &= (frame.mask & flags.EXCLUDE) == 0
    return good


def _header_values(infos: Sequence[FrameInfo], cfg: Config) -> dict[str, Any]:
    def first(name: str) -> tuple[str | None, float | None]:
        configured = getattr(cfg.detector, name)
        if isinstance(configured, int | float):
            return "[detector]", float(configured)
        for info in infos:
            value = getattr(info, name)
            if value is not None:
                return info.sources.get(name, "header").split(" = ")[0], value
        return None, None

    return {"gain": first("gain"), "rdnoise": first("rdnoise")}


def characterize(
    raw: PathLike | Collection,
    *,
    config: Config | PathLike | None = None,
    regions: Sequence[str] = (),
    max_pairs: int = MAX_PAIRS,
    darks: bool = True,
    bad_pixels: bool = True,
    window: int | None = None,
) -> Characterization:
    """Measure the camera from a folder's biases, flats and darks.

    Parameters
    ----------
    raw
        Folder of raw frames (classified as ``ccdcal info`` does), or its scanned
        :class:`~ccdcal.collection.Collection`.
    config
        Keywords, rules, sections and overscan as for ``reduce``.
    regions
        Amplifier regions (FITS sections of the trimmed frame) whose read noise is measured
        on its own; the whole frame is always measured.
    max_pairs
        Pairs of biases, and of flats, to use at most.
    darks, bad_pixels
        Also measure the dark current and hot pixels, and the bad pixels of a flat ratio.
    window
        Measure gain and read noise in the central ``window × window`` pixels only (what a
        reduction does: 1024² pixels give them to 0.2 %, in a fraction of the memory);
        default the whole frame.

    Returns
    -------
    Characterization
        Print :meth:`~Characterization.table`; :meth:`~Characterization.to_toml` writes
        the ``[detector]`` section.

    Raises
    ------
    CcdcalError
        A region that is not a section of the frame, or frames of different shapes.
    """
    from .sections import SectionError, parse_section

    cfg = load_config(config) if isinstance(config, str | os.PathLike) else (config or Config())
    collection = raw if isinstance(raw, Collection) else scan(raw, config=cfg)
    usable = [f for f in collection.frames if f.error is None]
    lights = [f for f in usable if f.kind == "light"]
    biases = [f for f in usable if f.kind == "bias"][: 2 * max_pairs]
    flats = [f for f in usable if f.kind == "flat"]
    dark_frames = [f for f in usable if f.kind == "dark"] if darks else []
    shapes = {f.shape for f in (*biases, *flats, *dark_frames) if f.shape is not None}
    if len(shapes) > 1:
        first = (*biases, *flats, *dark_frames)[0]
        other = next(f for f in (*biases, *flats, *dark_frames) if f.shape != first.shape)
        raise CcdcalError(
            f"{other.path}: {other.kind} of shape {other.shape[1]}x{other.shape[0]} differs "
            f"from {first.path.name}'s {first.shape[1]}x{first.shape[0]}; move it out"
        )
    out = Characterization(header=_header_values(lights + biases + flats + dark_frames, cfg))
    unsure = next((f.gain_unsure for f in (*lights, *flats, *biases) if f.gain_unsure), None)
    out.gain_unsure = unsure if out.header["gain"][0] is None else None
    read = _Reader(cfg, None if (bad_pixels or regions) else window)

    # biases: read noise from consecutive pairs, and the master bias the flats need
    master: np.ndarray | None = None
    rn_adu = None
    if biases:
        total: np.ndarray | None = None
        values, region_values = [], {text: [] for text in regions}
        previous: np.ndarray | None = None
        for i, info in enumerate(biases):
            data, _ = read(info)
            total = data.astype(np.float64) if total is None else total + data
            if i % 2 == 0:
                previous = data
                continue
            values.append(read_noise_adu(previous, data))
            for text in regions:
                try:
                    region = parse_section(text, shape=data.shape)
                except SectionError as err:
                    raise CcdcalError(f"--region {text!r}: {err}") from err
                region_values[text].append(read_noise_adu(previous, data, region=region))
        assert total is not None
        master = total / len(biases)
        out.bias_level = float(np.median(master))
        if read.leveled:
            out.notes.append(f"bias level {out.bias_level:.1f} ADU is above the overscan's")
        step = read.step or 1.0
        rn, err, _ = _weighted(*zip(*values, strict=True)) if values else (0.0, 0.0, 0.0)
        if values and not rn >= QUANTIZED * step:
            out.notes.append(
                f"the biases differ by {rn:.2g} ADU rms, less than the ADC's step: the data "
                "were quantized more coarsely than their noise; read noise not measured"
            )
        elif values:
            source = f"{len(values)} bias pair{'s' if len(values) > 1 else ''}"
            rn_adu = out.read_noise_adu = Value(rn, err, "ADU", source)
            for text, v in region_values.items():
                r, e, _ = _weighted(*zip(*v, strict=True))
                out.regions.append((text, Value(r, e, "ADU", source)))
        else:
            out.notes.append("one bias: read noise needs two")
        if regions and not values:
            out.notes.append("no bias pairs: the regions' read noise not measured")
    else:
        out.notes.append("no biases: read noise not measured")

    # flats: photon transfer from pairs of about equal level, per filter
    if flats:
        offset = None if master is not None else cfg.detector.bias_level
        _flat_pairs(out, flats, read, master, offset, rn_adu, len(biases), max_pairs,
                    bad_pixels)  # fmt: skip
    else:
        out.notes.append("no flats: gain not measured")
    if out.read_noise_adu is not None:
        r = out.read_noise_adu
        # the amplifier's noise, as RDNOISE means it: the ADC's rounding (step²/12 per
        # frame, Sheppard's correction) is taken out; it stays in the ADU value, which is
        # what a frame's pixels scatter by
        step = read.step or 1.0
        amp = math.sqrt(max(r.value**2 - step**2 / 12.0, 0.0))
        amp_error = r.error * r.value / amp if amp > 0 else r.error
        out.amplifier_noise_adu = amp
        if out.gain is not None:
            g = out.gain
            error = math.hypot(amp_error * g.value, amp * g.error)
            out.read_noise = Value(amp * g.value, error, "e-",
                                   f"{r.source}, measured gain")  # fmt: skip
        elif out.header["gain"][1] is not None:
            key, value = out.header["gain"]
            out.read_noise = Value(amp * value, amp_error * value, "e-",
                                   f"{r.source}, {key} gain")  # fmt: skip
        else:  # no gain to be sure of (an unsure keyword's is not): it stays in ADU
            out.read_noise = out.read_noise_adu
    if dark_frames:
        darks_read = _Reader(cfg, read.window)  # the master bias is cut the same way
        darks_read.first, darks_read.step = read.first, read.step
        _darks(out, dark_frames, darks_read, master)
    return out


def _flat_pairs(
    out: Characterization,
    flats: Sequence[FrameInfo],
    read: _Reader,
    master: np.ndarray | None,
    offset: float | None,
    rn_adu: Value | None,
    nbias: int,
    max_pairs: int,
    find_bad: bool,
) -> None:
    by_filter: dict[str, list[FrameInfo]] = {}
    for f in flats:
        by_filter.setdefault(f.filter or "none", []).append(f)
    # the filter with the most flats gives the pairs (the gain does not depend on it)
    filt, group = max(sorted(by_filter.items()), key=lambda item: len(item[1]))
    frames: list[tuple[FrameInfo, np.ndarray, np.ndarray, float]] = []
    for info in group[: 2 * max_pairs + 2]:
        data, good = read(info)
        if master is not None:
            data = data - master.astype(np.float32)
        elif offset is not None:
            data = data - np.float32(offset)
        if good.mean() < 0.5:
            out.notes.append(f"{info.name}: over half its pixels saturated; not used")
            continue
        frames.append((info, data, good, _level(data, good)))
    if master is None and offset is None and not read.leveled:
        # the flats' levels still hold the bias: a gain from them would be too high
        out.notes.append(
            "no biases, no overscan and no [detector] bias_level: the flats' level above "
            "the bias is unknown; gain and linearity not measured"
        )
        return
    frames.sort(key=lambda item: item[3])
    pairs = []
    i = 0
    while i + 1 < len(frames) and len(pairs) < max_pairs:
        a, b = frames[i], frames[i + 1]
        if a[3] > 0 and abs(b[3] / a[3] - 1.0) < PAIR_TOLERANCE:
            pairs.append((a, b))
            i += 2
        else:
            i += 1
    rn = rn_adu.value if rn_adu is not None else 0.0
    bias_noise = rn / math.sqrt(nbias) if nbias else 0.0
    if rn_adu is None and pairs:
        out.notes.append("gain measured without the read noise (no usable bias pairs): "
                         "slightly high at low flat levels")  # fmt: skip
    coarse = 0
    step = read.step or 1.0
    for (ia, a, ga, _), (ib, b, gb, _) in pairs:
        try:
            point = photon_transfer(a, b, read_noise=rn, bias_noise=bias_noise, good=ga & gb,
                                    files=(ia.name, ib.name))  # fmt: skip
        except CcdcalError as err:
            out.notes.append(str(err))
            continue
        if point.variance < (2 * QUANTIZED * step) ** 2:
            coarse += 1  # the photon noise hardly spans two ADC steps: quantization rules
            continue
        out.transfer.append(point)
    if coarse:
        out.notes.append(
            f"{coarse} flat pair{'s' if coarse > 1 else ''} with a photon noise of about one "
            "ADC step or less (data quantized more coarsely than their noise): not used"
        )
    by_time: dict[float, list[float]] = {}
    for info, _, _, level in frames:
        if info.exptime:
            by_time.setdefault(float(info.exptime), []).append(level)
    if len(by_time) >= 3:
        times = sorted(by_time)
        out.linearity = linearity([float(np.median(by_time[t])) for t in times], times)
        out.notes.append(out.linearity.note)
    points = out.transfer
    if out.linearity is not None and out.linearity.limit is not None:
        # above the limit the photon-transfer gain grows with the level: leave those out
        below = [p for p in points if p.level < out.linearity.limit]
        points = below or points[:1]
    if points:
        g, err, chi2 = _weighted([p.gain for p in points], [p.error for p in points])
        n = len(points)
        source = f"{n} flat pair{'s' if n > 1 else ''} ({filt})"
        out.gain = Value(g, err, "e-/ADU", source)
        if chi2 > 4 and n > 2:
            out.notes.append(
                f"the flat pairs' gains disagree (reduced chi-square {chi2:.1f}): the response "
                "may not be linear over their levels; see the photon-transfer points"
            )
    elif not pairs:
        out.notes.append(
            f"no two flats of the same level (within {100 * PAIR_TOLERANCE:.0f} %) in {filt}: "
            "gain not measured"
        )
    if find_bad and len(frames) >= 2 and frames[-1][3] > 1.5 * frames[0][3] > 0:
        low, high = frames[0], frames[-1]
        ratio = np.where(low[2] & high[2], high[1] / np.where(low[1] == 0, np.nan, low[1]),
                         np.nan)  # fmt: skip
        out.bad_pixels = bad_pixels(ratio / np.nanmedian(ratio))


def _darks(
    out: Characterization, darks: Sequence[FrameInfo], read: _Reader, master: np.ndarray | None
) -> None:
    by_time: dict[float, list[FrameInfo]] = {}
    for f in darks:
        if f.exptime:
            by_time.setdefault(float(f.exptime), []).append(f)
    if not by_time:
        out.notes.append("darks without an exposure time: dark current not measured")
        return
    levels, longest, used = [], None, 0
    for t in sorted(by_time):
        frames = [read(f)[0] for f in by_time[t][:8]]
        used += len(frames)
        median = np.median(frames, axis=0)  # robust against cosmic rays, pixel by pixel
        if master is not None:
            median = median - master
        centre, spread, n = clipped_std(median)  # hot pixels and what is left of hits out
        levels.append((t, centre, spread / math.sqrt(max(n, 1))))
        longest = (t, median, len(frames))
    assert longest is not None
    scale = out.gain.value if out.gain is not None else 1.0
    unit = "e-/s" if out.gain is not None else "ADU/s"
    if master is not None:
        t = np.array([x for x, _, _ in levels])
        level = np.array([y for _, y, _ in levels])
        spread = np.array([e for _, _, e in levels])
        if len(t) > 2 or (len(t) > 1 and (spread > 0).all()):
            weights = 1.0 / spread if (spread > 0).all() else None
            scaled: Any = "unscaled" if weights is not None else True
            (slope, _), cov = np.polyfit(t, level, 1, w=weights, cov=scaled)
            error = math.sqrt(cov[0, 0])
        elif len(t) > 1:
            slope, error = (level[-1] - level[0]) / (t[-1] - t[0]), 0.0
        else:
            slope, error = level[0] / t[0], spread[0] / t[0]
        n = used
        out.dark_current = Value(float(slope) * scale, float(error) * scale, unit,
                                 f"{n} darks at {len(t)} exposure time"
                                 + ("s" if len(t) > 1 else ""))  # fmt: skip
    else:
        out.notes.append("no biases: the darks' level holds the bias; dark current not measured")
    t, image, n = longest
    centre, sigma, _ = clipped_std(image)
    if not sigma >= QUANTIZED * (read.step or 1.0) / math.sqrt(n):
        out.notes.append("the darks' noise is below the ADC's step: hot pixels not counted")
        return
    hot = image > centre + 5.0 * sigma
    out.hot_pixels, out.hot_mask = int(hot.sum()), hot


__all__ = [
    "Characterization",
    "Linearity",
    "TransferPoint",
    "Value",
    "bad_pixels",
    "characterize",
    "clipped_std",
    "linearity",
    "photon_transfer",
    "read_noise_adu",
]
