"""Scale factors and zero offsets of the frames of a combine (IRAF's convention).

Frame *i* becomes ``x * (s̄ / s_i) + (z̄ - z_i)``: scaled to the mean level ``s̄`` of the
statistics ``s_i`` and shifted to the mean zero level ``z̄``, so that the result keeps the
mean input level. Both statistics come from one read of a sample of each frame: every row of
``scale_region`` when it holds at most :data:`SAMPLE_PIXELS` pixels, else evenly spaced
groups of rows holding about that many. ``z_i`` is the median of the *scaled* frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import threads
from ..errors import CcdcalError
from ..robust import median
from .stream import Source

#: pixels per frame used for the scaling statistics (a sample when the region is larger)
SAMPLE_PIXELS = 2**20
#: memory per sampled pixel while one frame's sample is reduced (values, mask, the
#: median's and the mode's float64 copies)
SAMPLE_BYTES_PER_PIXEL = 32
_GROUP = 8  # rows read together when sampling


def _region(region: Any, shape: tuple[int, int]) -> tuple[range, slice]:
    ny, nx = shape
    if region is None:
        return range(ny), slice(0, nx)
    try:
        sy, sx = region
    except (TypeError, ValueError) as err:
        raise CcdcalError(f"scale_region must be (slice_y, slice_x), not {region!r}") from err
    if not isinstance(sy, slice) or not isinstance(sx, slice):
        raise CcdcalError(f"scale_region must be (slice_y, slice_x), not {region!r}")
    rows = range(*sy.indices(ny))
    xs = range(*sx.indices(nx))
    if len(rows) == 0 or len(xs) == 0:
        raise CcdcalError(f"scale_region {region!r} is empty for images of shape {shape}")
    return rows, sx


def sample_rows(
    region: Any, shape: tuple[int, int], max_pixels: int = SAMPLE_PIXELS
) -> tuple[list[range], slice]:
    """Groups of rows (each a contiguous range to read) and the column slice to sample.

    Examples
    --------
    >>> groups, sx = sample_rows(None, (100, 50))
    >>> groups, sx
    ([range(0, 100)], slice(0, 50, None))
    """
    rows, sx = _region(region, shape)
    ncols = len(range(*sx.indices(shape[1])))
    max_pixels = min(max_pixels, SAMPLE_PIXELS)
    if len(rows) * ncols <= max_pixels:
        if rows.step == 1:
            return [rows], sx
        return [range(y, y + 1) for y in rows], sx
    group = max(1, min(_GROUP, max_pixels // ncols))
    want = max(1, max_pixels // (ncols * group))
    starts = np.linspace(0, len(rows) - group, want).astype(int) if len(rows) > group else [0]
    groups = []
    for s in sorted(set(int(v) for v in starts)):
        picked = rows[s : s + group]
        if picked.step == 1:
            groups.append(range(picked.start, picked.stop))
        else:
            groups.extend(range(y, y + 1) for y in picked)
    return groups, sx


def needs_sample(scale: Any, zero: Any) -> bool:
    """Whether the scaling reads a sample of every frame (levels measured, not given).

    Examples
    --------
    >>> needs_sample("median", None), needs_sample([1.0, 2.0], None), needs_sample(None, "median")
    (True, False, True)
    """
    return (isinstance(scale, str) and scale in ("median", "mode")) or (
        isinstance(zero, str) and zero == "median"
    )


def sample_bytes(region: Any, shape: tuple[int, int]) -> int:
    """Memory that reading and reducing one frame's scaling sample takes.

    The sample depends on the image shape and the region only, never on a memory limit:
    a stack combined under any limit gets the same scale factors.

    Examples
    --------
    >>> sample_bytes(None, (100, 50))
    160000
    """
    groups, sx = sample_rows(region, shape)
    ncols = len(range(*sx.indices(shape[1])))
    return sum(len(g) for g in groups) * ncols * SAMPLE_BYTES_PER_PIXEL


def _sample(source: Source, groups: list[range], sx: slice, exclude: int) -> np.ndarray:
    parts = []
    for g in groups:
        data, mask, _ = source.read(g.start, g.stop)
        block = np.asarray(data, dtype=np.float32)[:, sx]
        good = np.isfinite(block)
        if mask is not None:
            good &= (mask[:, sx] & exclude) == 0
        parts.append(block[good])
    return np.concatenate(parts) if parts else np.empty(0, np.float32)


def _mode(values: np.ndarray) -> float:
    """Pearson's mode, 3·median − 2·mean, of the 3σ-clipped values."""
    v = values.astype(np.float64)
    for _ in range(5):
        med = np.median(v)
        std = v.std()
        keep = np.abs(v - med) <= 3 * std
        if keep.all() or keep.sum() < 3:
            break
        v = v[keep]
    return float(3 * np.median(v) - 2 * v.mean())


def _per_frame(value: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (n,):
        raise CcdcalError(f"{what}: expected one value per input ({n}), got shape {arr.shape}")
    return arr


def factors(
    sources: Sequence[Source],
    *,
    scale: Any = None,
    zero: Any = None,
    scale_region: Any = None,
    exclude: int,
) -> tuple[np.ndarray, np.ndarray, dict[str, list[float]]]:
    """Multiplicative factors and additive offsets (float32, one per frame) and the statistics.

    Parameters
    ----------
    scale
        None, ``"median"``, ``"mode"``, ``"exposure"`` (header EXPTIME), or one level s_i
        per frame; frame *i* is multiplied by mean(s)/s_i.
    zero
        None, ``"median"``, or one level z_i per frame; frame *i* is shifted by mean(z) - z_i.
    scale_region
        ``(slice_y, slice_x)`` where the levels are measured; default the whole frame, of
        which at most ``SAMPLE_PIXELS`` pixels in evenly spread groups of rows are sampled.
    """
    n = len(sources)
    fscale = np.ones(n)
    fzero = np.zeros(n)
    info: dict[str, list[float]] = {}
    need_median = needs_sample(scale, zero)
    if isinstance(scale, str) and scale not in ("median", "mode", "exposure"):
        raise CcdcalError(
            f"scale must be None, 'median', 'mode', 'exposure' or levels, not {scale!r}"
        )
    if isinstance(zero, str) and zero != "median":
        raise CcdcalError(f"zero must be None, 'median' or levels, not {zero!r}")
    medians = np.full(n, np.nan)
    modes = np.full(n, np.nan)
    if need_median:
        groups, sx = sample_rows(scale_region, sources[0].shape)

        def measure(start: int, stop: int) -> None:
            for i in range(start, stop):
                values = _sample(sources[i], groups, sx, exclude)
                if values.size == 0:
                    raise CcdcalError(f"{sources[i].name}: no valid pixel in the scaling region")
                medians[i] = median(values)
                if isinstance(scale, str) and scale == "mode":
                    modes[i] = _mode(values)

        # the frames read and sorted on the cores at once (both let go of Python's lock)
        threads.split(measure, n)
    if scale is not None:
        if isinstance(scale, str):
            if scale == "median":
                levels = medians
            elif scale == "mode":
                levels = modes
            else:
                levels = np.array([np.nan if s.exptime is None else s.exptime for s in sources])
                for s, t in zip(sources, levels, strict=True):
                    if not np.isfinite(t):
                        raise CcdcalError(
                            f"{s.name}: no EXPTIME in the header for scale='exposure'"
                        )
        else:
            levels = _per_frame(scale, n, "scale")
        for s, level in zip(sources, levels, strict=True):
            if not (np.isfinite(level) and level > 0):
                raise CcdcalError(
                    f"{s.name}: scaling level {level!r} is not positive; choose another "
                    f"scale or scale_region"
                )
        fscale = levels.mean() / levels
        info["scale_levels"] = [float(v) for v in levels]
    if zero is not None:
        if isinstance(zero, str):
            zlevels = medians * fscale
        else:
            zlevels = _per_frame(zero, n, "zero")
            if not np.all(np.isfinite(zlevels)):
                raise CcdcalError(f"zero levels must be finite, got {list(zlevels)}")
        fzero = zlevels.mean() - zlevels
        info["zero_levels"] = [float(v) for v in zlevels]
    return fscale.astype(np.float32), fzero.astype(np.float32), info


__all__ = ["SAMPLE_PIXELS", "factors", "sample_rows"]
