"""Master calibration frames: bias, dark and flat, each a calibrate-then-combine.

Every master goes through the one engine, :func:`ccdcal.combine`. Masters stay in ADU:

- master bias: overscan-subtracted and trimmed bias frames, combined;
- master dark: darks minus the master bias, combined, kept with its exposure time so that it
  can be scaled to any exposure (dark · t / t_dark); hot pixels flagged HOT;
- master flat (one per filter): flats minus bias and scaled dark, each scaled to a common
  level, combined, normalized to median 1; pixels with too little response flagged BAD.

Raw files are read prepared (overscan-subtracted, trimmed, bias- and dark-subtracted) band
by band as the combine reads them (:mod:`ccdcal.preparation`): no prepared frame is held, and
a hundred flats of a 60-megapixel camera do not need 36 GB of memory. Frames, arrays and
compressed files are prepared whole, kept in memory when they fit the combine's memory limit,
else written one by one to a temporary folder (``workdir``) and streamed from there.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> biases = [Frame(500 + rng.normal(0, 8, (20, 20))) for _ in range(9)]
>>> mb = master_bias(biases)
>>> round(float(np.mean(mb.data)))
500
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import flags
from .calibration import exposure_time, subtract_bias, subtract_dark
from .errors import CcdcalError
from .frame import Frame, PathLike, as_frame
from .master_noise import (
    Noise,
    _above_bias_pattern,
    _plus,
    fitted_variance,
    single_frame_variance,
)
from .overscan import Overscan, subtract_overscan, trim
from .robust import median, median_and_std
from .saturation import flag_saturation
from .sections import Section

log = logging.getLogger(__name__)

FrameLike = Frame | PathLike | np.ndarray
Progress = Callable[[int], None]


@dataclass(frozen=True)
class CombineSpec:
    """How a set of frames is combined: method, rejection and extra ``combine`` options.

    Examples
    --------
    >>> CombineSpec("median").method
    'median'
    """

    method: str = "median"
    reject: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_options(cls, opts: Any) -> CombineSpec:
        """From a configuration's :class:`~ccdcal.config.CombineOptions`."""
        options = {name: getattr(opts, name) for name in ("scale", "zero") if getattr(opts, name)}
        return cls(opts.method, opts.rejection(), options)

    @classmethod
    def default(cls, kind: str) -> CombineSpec:
        """The default recipe for ``kind`` ("bias", "dark", "flat"): the configuration's.

        Examples
        --------
        >>> CombineSpec.default("bias").method
        'mean'
        """
        from .config import Config

        return cls.from_options(Config().combine_options(kind))

    def combination(self, **more: Any) -> Any:
        """This specification as a :class:`ccdcal.stacking.Combination` (``more`` added)."""
        from .stacking import Combination

        return Combination(method=self.method, reject=self.reject, **self.options, **more)

    def limited(self, memory_limit: int | None) -> CombineSpec:
        """This specification with ``memory_limit`` (bytes) for its combine, where one is
        given."""
        if memory_limit is None:
            return self
        return replace(self, options={**self.options, "memory_limit": memory_limit})

    def run(self, frames: Sequence[Any], **more: Any) -> Frame:
        """Combine ``frames`` with this specification through :func:`ccdcal.combine`."""
        return self.combination(**more)(frames)


@dataclass(frozen=True)
class PreparedInputs:
    """Master inputs ready to combine: frames in memory, or the files they were spilled to."""

    inputs: list[Frame] | list[Path]
    exptimes: list[float | None]


@contextmanager
def prepared_inputs(
    items: Sequence[FrameLike],
    step: Callable[[Frame], Frame],
    progress: Progress | None,
    exptimes: Sequence[float | None] | None = None,
    *,
    spec: CombineSpec | None = None,
    workdir: PathLike | None = None,
) -> Iterator[PreparedInputs]:
    """Run ``step`` on every input; keep the results in memory when all fit within the
    combine's memory limit, else write each to a temporary folder in ``workdir`` (removed on
    exit). Masters prepare raw frames so; stacks resample registered lights so."""
    if not items:
        raise CcdcalError("no frames given to build a master from")
    from .stacking.stream import default_memory_limit, parse_bytes

    option = None if spec is None else spec.options.get("memory_limit")
    budget = parse_bytes(option) or default_memory_limit()
    inputs: list[Any] = []
    times: list[float | None] = []
    spill: Path | None = None
    first: Frame | None = None
    try:
        for i, item in enumerate(items):
            frame = with_exptime(as_frame(item), None if exptimes is None else exptimes[i])
            out = step(frame)
            if first is None:
                first = out
                if _nbytes(out) * len(items) > budget:
                    spill = Path(tempfile.mkdtemp(prefix=".ccdcal-prepared-", dir=workdir))
                    log.info("%d prepared frames exceed %d bytes: kept in %s", len(items),
                             budget, spill)  # fmt: skip
            elif out.shape != first.shape:
                raise CcdcalError(
                    f"{out.name}: shape {out.shape} differs from {first.name} {first.shape}"
                )
            times.append(exposure_time(out))
            if spill is None:
                inputs.append(out)
            else:
                path = spill / f"{i:05d}.fits"
                out.to_hdulist().writeto(path)  # a scratch copy: no checksums, no fsync
                inputs.append(path)
            if progress:
                progress(1)
        yield PreparedInputs(inputs, times)
    finally:
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


def with_exptime(frame: Frame, exptime: float | None) -> Frame:
    """``frame`` with EXPTIME set to ``exptime`` when its header has no exposure time (the
    exposure came from another keyword, one of the configuration's fallbacks).

    Examples
    --------
    >>> import numpy as np
    >>> with_exptime(Frame(np.zeros((2, 2))), 30.0).header["EXPTIME"]
    30.0
    """
    if exptime is None or exposure_time(frame) is not None:
        return frame
    frame = replace(frame, header=frame.header.copy())
    frame.header["EXPTIME"] = (float(exptime), "[s] exposure (ccdcal)")
    return frame


def _streamed(items: Sequence[FrameLike]) -> bool:
    """Whether a master's inputs are all raw files that the combine can read prepared, band
    by band (:mod:`ccdcal.preparation`): uncompressed files (a compressed one cannot be
    read from the middle; those, frames and arrays are prepared whole, in memory)."""
    return bool(items) and all(
        isinstance(i, str | os.PathLike)
        and Path(i).suffix.lower() not in {".gz", ".fz", ".bz2", ".z"}
        for i in items
    )


def _plans(
    items: Sequence[FrameLike],
    progress: Progress | None,
    exptimes: Sequence[float | None] | None = None,
    **how: Any,
) -> list[Any]:
    """Each raw file's :class:`~ccdcal.preparation.Preparation` (read once each, whole),
    all of one shape."""
    from . import preparation

    plans = []
    for i, item in enumerate(items):
        exptime = None if exptimes is None else exptimes[i]
        prep = preparation.plan(item, exptime=exptime, **how)  # type: ignore[arg-type]
        if plans and prep.shape != plans[0].shape:
            raise CcdcalError(
                f"{prep.path}: shape {prep.shape} differs from {plans[0].path} {plans[0].shape}"
            )
        plans.append(prep)
        if progress:
            progress(1)
    return plans


def _nbytes(frame: Frame) -> int:
    return sum(a.nbytes for a in (frame.data, frame.mask, frame.variance) if a is not None)


def _finish(master: Frame, kind: str, count: int) -> Frame:
    master.header["IMAGETYP"] = (f"MASTER {kind.upper()}", "ccdcal master frame")
    master.header["NCOMBINE"] = (count, "frames combined")
    for key in ("HISTORY", "COMMENT"):
        if key in master.header:
            del master.header[key]
    return master


def preprocess(
    frame: Frame,
    *,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
    copy: bool = True,
) -> Frame:
    """Overscan-subtract and trim one raw frame (ADU), as every master's inputs are.
    ``copy=False``, for a caller that owns ``frame``: the result may share its data (as
    :func:`~ccdcal.overscan.trim`).

    Examples
    --------
    >>> import numpy as np
    >>> f = Frame(np.full((3, 5), 7.0), header={"BIASSEC": "[5:5,1:3]", "TRIMSEC": "[1:4,1:3]"})
    >>> out = preprocess(f)
    >>> out.shape, float(out.data.max())
    ((3, 4), 0.0)
    """
    flagged = flag_saturation(frame)  # saturated flats must not enter the master
    # the flagged frame's mask and header are its own, only its data the caller's: one
    # copy at most, in trim
    leveled = subtract_overscan(flagged, biassec=biassec, overscan=overscan, copy=False)
    return trim(leveled, trimsec, copy=copy)


def master_bias(
    frames: Sequence[FrameLike],
    *,
    combine: CombineSpec | None = None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
    progress: Progress | None = None,
    workdir: PathLike | None = None,
    noise: Noise | None = None,
) -> Frame:
    """Combine bias frames (overscan-subtracted and trimmed when the headers say how).

    Parameters
    ----------
    frames
        Raw bias frames (paths, Frames or arrays), in ADU.
    combine
        Combination method and rejection; default the configuration's (a mean with
        generalized-ESD rejection).
    biassec, trimsec, overscan
        See :func:`ccdcal.calibration.calibrate`.
    progress
        Called with 1 after each frame is prepared.
    workdir
        Where prepared frames go when they do not fit in memory (default the system's
        temporary folder).
    noise
        Gain and read noise, for the variance of a master made of one frame (default the
        frame's header; see :func:`single_frame_variance`).

    Returns
    -------
    Frame
        The master bias in ADU with its variance (of the mean, from the frames' scatter).
    """
    spec = combine or CombineSpec.default("bias")
    how = {"biassec": biassec, "trimsec": trimsec, "overscan": overscan}
    if _streamed(frames):
        plans = _plans(frames, progress, **how)
        return finish_bias(spec.run(plans), len(plans), noise=noise)
    with prepared_inputs(
        frames, lambda f: preprocess(f, **how), progress, spec=spec, workdir=workdir
    ) as prepared:
        return finish_bias(spec.run(prepared.inputs), len(prepared.inputs), noise=noise)


def finish_bias(combined: Frame, count: int, *, noise: Noise | None = None) -> Frame:
    """The master bias from the combine of ``count`` prepared bias frames (one frame: its
    variance from the read noise, see :func:`single_frame_variance`)."""
    if count == 1:
        combined = replace(combined, variance=single_frame_variance(combined, noise, False))
    else:
        combined = replace(combined, variance=fitted_variance(combined))
    return _finish(combined, "bias", count)


def master_dark(
    frames: Sequence[FrameLike],
    *,
    bias: Frame | None,
    combine: CombineSpec | None = None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
    hot_sigma: float = 5.0,
    exptimes: Sequence[float | None] | None = None,
    progress: Progress | None = None,
    workdir: PathLike | None = None,
    noise: Noise | None = None,
) -> Frame:
    """Combine darks of one exposure time after subtracting the master bias.

    The result (ADU, EXPTIME kept) can be scaled to another exposure by
    :func:`ccdcal.calibration.subtract_dark`. Pixels whose dark signal stands more than
    ``hot_sigma`` robust standard deviations above the median are flagged HOT. ``exptimes``
    supplies exposure times for files whose header has no EXPTIME (found under another
    keyword); ``combine`` defaults to the configuration's recipe; ``workdir`` and ``noise``
    as for :func:`master_bias`. The variance is the mean's (from the darks' scatter) plus
    the master bias's, which every dark had subtracted.
    """
    spec = combine or CombineSpec.default("dark")
    how = {"biassec": biassec, "trimsec": trimsec, "overscan": overscan}
    if _streamed(frames):
        plans = _plans(frames, progress, exptimes, bias=bias, **how)
        times = _one_exposure([p.exptime for p in plans])
        combined, count = spec.run(plans), len(plans)
    else:
        with prepared_inputs(
            frames, lambda f: prepare_dark(f, bias=bias, **how), progress, exptimes, spec=spec,
            workdir=workdir,
        ) as prepared:  # fmt: skip
            times = _one_exposure(prepared.exptimes)
            combined, count = spec.run(prepared.inputs), len(prepared.inputs)
    return finish_dark(combined, count, exptime=times, hot_sigma=hot_sigma, bias=bias,
                       noise=noise)  # fmt: skip


def _one_exposure(exptimes: Sequence[float | None]) -> float | None:
    """The one exposure time of a master dark's inputs; refused when they have several."""
    times = set(exptimes)
    if len(times) > 1:
        raise CcdcalError(
            f"darks of different exposure times combined together: {sorted(map(str, times))}"
        )
    return times.pop()


def prepare_dark(
    frame: Frame,
    *,
    bias: Frame | None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
) -> Frame:
    """One raw dark ready to combine: overscan-subtracted, trimmed, minus the master bias."""
    out = preprocess(frame, biassec=biassec, trimsec=trimsec, overscan=overscan)
    return out if bias is None else subtract_bias(out, bias)


def finish_dark(
    combined: Frame,
    count: int,
    *,
    exptime: float | None,
    hot_sigma: float = 5.0,
    bias: Frame | None = None,
    noise: Noise | None = None,
) -> Frame:
    """The master dark from the combine of ``count`` prepared darks of ``exptime`` seconds:
    EXPTIME kept, hot pixels flagged HOT, the variance of the master ``bias`` they had
    subtracted added (a dark without one holds the bias, whose level is no photons)."""
    if count == 1:
        variance = single_frame_variance(combined, noise, photons=bias is not None)
    elif bias is None:
        variance = fitted_variance(combined, level=_above_bias_pattern(combined.data))
    else:
        variance = fitted_variance(combined)
    master = _finish(replace(combined, variance=_plus(variance, bias)), "dark", count)
    master.header["BIASSUB"] = (bias is not None, "master bias subtracted from the darks")
    if bias is not None and bias.variance is not None and master.variance is not None:
        master.header["DARKBVAR"] = (True, "variance holds the master bias's")
    if exptime is not None:
        master.header["EXPTIME"] = (exptime, "[s] exposure time of the darks")
    hot = find_hot_pixels(master.data, sigma=hot_sigma)
    mask = master.mask_or_zeros().copy()
    mask[hot] |= flags.HOT
    master = replace(master, mask=mask)
    master.header["NHOTPIX"] = (int(hot.sum()), f"pixels > {hot_sigma} sigma above median dark")
    return master


def find_hot_pixels(dark: np.ndarray, *, sigma: float = 5.0) -> np.ndarray:
    """Pixels whose dark signal lies more than ``sigma`` robust std above the median.

    Examples
    --------
    >>> import numpy as np
    >>> d = np.random.default_rng(1).normal(10, 1, (50, 50)); d[3, 4] = 100
    >>> np.argwhere(find_hot_pixels(d)).tolist()
    [[3, 4]]
    """
    finite = np.isfinite(dark)
    level, spread = median_and_std(dark[finite], overwrite=True)
    if not spread > 0:
        spread = np.std(dark[finite]) or 1.0
    return finite & (dark > level + sigma * spread)


def master_flat(
    frames: Sequence[FrameLike],
    *,
    bias: Frame | None,
    dark: Frame | None = None,
    combine: CombineSpec | None = None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
    min_response: float = 0.5,
    exptimes: Sequence[float | None] | None = None,
    progress: Progress | None = None,
    workdir: PathLike | None = None,
    noise: Noise | None = None,
) -> Frame:
    """Combine flats of one filter into a flat normalized to median 1.

    Each flat has the bias and the exposure-scaled dark subtracted, is scaled to the common
    level by its own median (``scale="median"``) and combined; the result is divided by its
    median. Pixels with response below ``min_response`` (dead, dusty) are flagged BAD.
    ``workdir`` and ``noise`` as for :func:`master_bias`. The variance is the combine's
    (from the flats' scatter) plus the subtracted bias's and scaled dark's.
    """

    how = {"bias": bias, "dark": dark, "biassec": biassec, "trimsec": trimsec,
           "overscan": overscan}  # fmt: skip
    spec = flat_spec(combine or CombineSpec.default("flat"))
    if _streamed(frames):
        plans = _plans(frames, progress, exptimes, flat=True, **how)
        combined, count, times = spec.run(plans), len(plans), [p.exptime for p in plans]
    else:
        with prepared_inputs(
            frames, lambda f: prepare_flat(f, **how), progress, exptimes, spec=spec,
            workdir=workdir,
        ) as prepared:  # fmt: skip
            combined = spec.run(prepared.inputs)
            count = len(prepared.inputs)
            times = prepared.exptimes
    return finish_flat(combined, count, min_response=min_response, bias=bias, dark=dark,
                       exptimes=times, noise=noise)  # fmt: skip


def prepare_flat(
    frame: Frame,
    *,
    bias: Frame | None,
    dark: Frame | None = None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
) -> Frame:
    """One raw flat ready to combine: overscan-subtracted, trimmed, minus bias and scaled
    dark; refused when no light is left."""
    out = prepare_dark(frame, bias=bias, biassec=biassec, trimsec=trimsec, overscan=overscan)
    out = out if dark is None else subtract_dark(out, dark)
    level = median(out.data, omit_nan=True)
    if not level > 0:
        raise CcdcalError(f"{out.name}: flat has median {level:.3g} after bias subtraction")
    return out


def flat_spec(spec: CombineSpec) -> CombineSpec:
    """``spec`` with flats' default scaling: each flat to the common level by its median.

    Examples
    --------
    >>> flat_spec(CombineSpec("mean")).options
    {'scale': 'median'}
    """
    return replace(spec, options={"scale": "median", **spec.options})


def finish_flat(
    combined: Frame,
    count: int,
    *,
    min_response: float = 0.5,
    bias: Frame | None = None,
    dark: Frame | None = None,
    exptimes: Sequence[float | None] = (),
    noise: Noise | None = None,
) -> Frame:
    """The master flat from the combine of ``count`` prepared flats: the variance of the
    subtracted ``bias`` and ``dark`` (scaled to the flats' mean exposure, ``exptimes``)
    added, normalized to median 1, pixels of response below ``min_response`` flagged BAD
    and COLD."""
    if count == 1:
        variance = single_frame_variance(combined, noise, photons=True)
    else:
        variance = fitted_variance(combined)
    variance = _plus(variance, bias)
    if dark is not None:
        times = [t for t in exptimes if t is not None]
        dark_time = exposure_time(dark)
        if times and dark_time:
            variance = _plus(variance, dark, float(np.mean(times)) / dark_time)
    norm = float(median(combined.data[np.isfinite(combined.data)]))
    data = combined.data / np.float32(norm)
    variance = None if variance is None else variance / np.float32(norm * norm)
    mask = combined.mask_or_zeros().copy()
    low = ~np.isfinite(data) | (data < min_response)
    mask[low] |= flags.BAD | flags.COLD
    master = replace(combined, data=data, variance=variance, mask=mask)
    master = _finish(master, "flat", count)
    master.header["FLATNORM"] = (norm, "[adu] median level before normalization")
    master.header["NBADPIX"] = (int(low.sum()), f"pixels with response < {min_response}")
    master.header["BUNIT"] = ("", "normalized response")
    return master


__all__ = [
    "CombineSpec",
    "Noise",
    "find_hot_pixels",
    "finish_bias",
    "finish_dark",
    "finish_flat",
    "flat_spec",
    "master_bias",
    "master_dark",
    "master_flat",
    "prepare_dark",
    "prepare_flat",
    "prepared_inputs",
    "preprocess",
    "single_frame_variance",
    "with_exptime",
]
