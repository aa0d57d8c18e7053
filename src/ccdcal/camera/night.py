"""Measuring the camera from a folder of raw frames: which frames, read and prepared as the
reduction would, make which measurement (:func:`characterize`)."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..classify import FrameInfo
from ..collection import Collection, scan
from ..config import Config, load_config
from ..errors import CcdcalError
from ..frame import Frame
from ..robust import median
from ..wording import plural
from .characterization import Characterization
from .measures import (
    MAX_PAIRS,
    PAIR_TOLERANCE,
    QUANTIZED,
    Value,
    _level,
    _weighted,
    bad_pixels,
    clipped_std,
    linearity,
    photon_transfer,
    read_noise_adu,
)

log = logging.getLogger(__name__)
PathLike = str | os.PathLike[str]


class _Reader:
    """Reads raw frames prepared as the reduction would (overscan, trim, SATURATED flagged),
    in float32, cut to a central ``window`` when one is given, and learns the ADC's step
    (1, or 16 for 12-bit values stored shifted left) from the raw values."""

    def __init__(self, cfg: Config, window: int | None) -> None:
        from ..overscan import Overscan

        det = cfg.detector
        self.cfg = cfg
        self.window = window
        self.overscan = Overscan(det.overscan, order=det.overscan_order,
                                 sigma=det.overscan_sigma, axis=det.readout_axis)  # fmt: skip
        self.step: float | None = None
        self.leveled = False  # an overscan was subtracted
        self.first: tuple[FrameInfo, tuple[int, ...]] | None = None

    def __call__(self, info: FrameInfo) -> tuple[np.ndarray, np.ndarray]:
        from ..masters import preprocess
        from ..saturation import flag_saturation

        det = self.cfg.detector
        frame = Frame.read(info.path)
        if self.step is None:
            self.step = _adc_step(frame.data)
        if det.saturation is not None or info.saturation is not None:
            frame = flag_saturation(frame, det.saturation or info.saturation)
        frame = preprocess(frame, biassec=det.biassec, trimsec=det.trimsec,
                           overscan=self.overscan, copy=False)  # fmt: skip
        self.leveled = self.leveled or "OVERSCAN" in frame.header
        if self.first is None:
            self.first = (info, frame.shape)
        elif frame.shape != self.first[1]:
            (ny, nx), (my, mx) = frame.shape, self.first[1]
            raise CcdcalError(
                f"{info.path}: {info.kind} of shape {nx}x{ny} differs from "
                f"{self.first[0].path.name}'s {mx}x{my}; move it out"
            )
        if self.window is not None:  # the window alone is copied and tested
            region = _central(frame.shape, self.window)
            frame = replace(frame, data=frame.data[region], variance=None, extras={},
                            mask=None if frame.mask is None else frame.mask[region])  # fmt: skip
        return frame.data.astype(np.float32), _good(frame)


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
    from .. import flags

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
    from ..sections import SectionError, parse_section

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
        out.bias_level = float(median(master))
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
            source = plural(len(values), "bias pair")
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
            f"{plural(coarse, 'flat pair')} with a photon noise of about one "
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
        source = f"{plural(n, 'flat pair')} ({filt})"
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
        per_pixel = np.median(frames, axis=0)  # robust against cosmic rays, pixel by pixel
        if master is not None:
            per_pixel = per_pixel - master
        centre, spread, n = clipped_std(per_pixel)  # hot pixels and what is left of hits out
        levels.append((t, centre, spread / math.sqrt(max(n, 1))))
        longest = (t, per_pixel, len(frames))
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
        out.dark_current = Value(
            float(slope) * scale,
            float(error) * scale,
            unit,
            f"{plural(n, 'dark')} at {plural(len(t), 'exposure time')}",
        )
    else:
        out.notes.append("no biases: the darks' level holds the bias; dark current not measured")
    t, image, n = longest
    centre, sigma, _ = clipped_std(image)
    if not sigma >= QUANTIZED * (read.step or 1.0) / math.sqrt(n):
        out.notes.append("the darks' noise is below the ADC's step: hot pixels not counted")
        return
    hot = image > centre + 5.0 * sigma
    out.hot_pixels, out.hot_mask = int(hot.sum()), hot


__all__ = ["characterize"]
