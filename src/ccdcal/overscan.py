"""A raw frame's borders: the bias level of its overscan strip subtracted (one level, one
per line, or a fitted polynomial), and the frame trimmed to its data section.

Examples
--------
>>> import numpy as np
>>> raw = Frame(np.full((4, 6), 500.0), header={"BIASSEC": "[5:6,1:4]", "TRIMSEC": "[1:4,1:4]"})
>>> out = trim(subtract_overscan(raw))
>>> out.shape, float(out.data[0, 0]), out.header["OVERSCAN"]
((4, 4), 0.0, 'median 500.00')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from .errors import CcdcalError
from .frame import Frame
from .sections import Section, format_section, section_of

OverscanMethod = Literal["none", "mean", "median", "rows", "poly"]


@dataclass(frozen=True)
class Overscan:
    """How to estimate the bias level from the overscan strip.

    Parameters
    ----------
    method
        ``"mean"`` or ``"median"``: one sigma-clipped level for the whole strip (robust, the
        least noisy); ``"rows"``: one value per line along the readout (follows bias drifts
        within a frame, noisier); ``"poly"``: the per-line values fitted with a polynomial of
        ``order`` (sigma-clipped), the IRAF way; ``"none"``: skip.
    order
        Polynomial order for ``"poly"``.
    sigma
        Clipping threshold for the level and the fit.
    axis
        The readout direction for ``"rows"`` and ``"poly"``: ``"x"`` (serial readout along
        rows: one value per row), ``"y"`` (one value per column), or ``"auto"``: along the
        strip's long side.

    Examples
    --------
    >>> Overscan("poly", order=2)
    Overscan(method='poly', order=2, sigma=3.0, axis='auto')
    """

    method: OverscanMethod = "median"
    order: int = 1
    sigma: float = 3.0
    axis: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in ("none", "mean", "median", "rows", "poly"):
            raise CcdcalError(
                f"overscan method must be none, mean, median, rows or poly, not {self.method!r}"
            )
        if self.axis not in ("auto", "x", "y"):
            raise CcdcalError(f"overscan axis must be auto, x or y, not {self.axis!r}")
        if self.order < 0:
            raise CcdcalError(f"overscan order must be >= 0, not {self.order}")


def overscan_level(frame: Frame, biassec: Section, overscan: Overscan = Overscan()) -> np.ndarray:
    """The bias level estimated from the overscan, broadcastable to the frame's shape.

    The readout direction is taken from the strip's shape: a strip of columns spanning every
    row gives one value per row, a strip of rows one value per column.

    Examples
    --------
    >>> import numpy as np
    >>> data = np.zeros((5, 8)); data[:, 6:] = 10.0
    >>> float(overscan_level(Frame(data), (slice(None), slice(6, 8))).ravel()[0])
    10.0
    """
    strip = frame.data[biassec]
    if strip.size == 0:
        raise CcdcalError(f"{frame.name}: the overscan section is empty")
    if overscan.axis == "auto":
        along_rows = strip.shape[0] >= strip.shape[1]  # a strip of columns: a value per row
    else:
        along_rows = overscan.axis == "x"
    if overscan.method in ("mean", "median"):
        # imported here, not at the top: astropy.stats loads astropy.units (slow to start)
        from astropy.stats import sigma_clipped_stats

        mean, median, _ = sigma_clipped_stats(strip, sigma=overscan.sigma, maxiters=5)
        return np.asarray(mean if overscan.method == "mean" else median, dtype=np.float32)
    line = np.median(strip, axis=1 if along_rows else 0).astype(np.float64)
    if overscan.method == "poly":
        line = _clipped_polyfit(line, overscan.order, overscan.sigma)
    # the strip may cover only some rows (or columns): extend to the full frame
    full = np.full(frame.shape[0] if along_rows else frame.shape[1], np.nan)
    index = biassec[0] if along_rows else biassec[1]
    full[index] = line
    if np.isnan(full).any():
        filled = np.interp(np.arange(full.size), np.flatnonzero(~np.isnan(full)), line)
        full = filled
    full32 = full.astype(np.float32)
    return full32[:, None] if along_rows else full32[None, :]


def _clipped_polyfit(values: np.ndarray, order: int, sigma: float) -> np.ndarray:
    x = np.linspace(-1.0, 1.0, values.size)
    keep = np.isfinite(values)
    fit = np.full_like(values, np.nanmedian(values))
    for _ in range(5):
        if keep.sum() <= order:
            break
        poly = np.polynomial.Legendre.fit(x[keep], values[keep], order)
        fit = poly(x)
        resid = values - fit
        std = np.std(resid[keep])
        new_keep = np.isfinite(values) & (np.abs(resid) <= sigma * std if std > 0 else True)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return fit


def subtract_overscan(
    frame: Frame,
    *,
    biassec: str | Section | None = None,
    overscan: Overscan | str = "median",
    copy: bool = True,
) -> Frame:
    """Subtract the bias level measured in the overscan strip.

    Parameters
    ----------
    frame
        Raw frame in ADU.
    biassec
        The overscan region (FITS string or numpy slices); default the header's BIASSEC;
        ``"none"``: no overscan, whatever the header says.
    overscan
        An :class:`Overscan` or its method name.
    copy
        False: ``frame`` itself where there is no overscan to subtract, for a caller that
        owns it (a frame just read; the copy of a 2048x2048 frame and its mask was a tenth
        of a calibration's time).

    Returns
    -------
    Frame
        A new frame; unchanged (a copy, or ``frame`` where ``copy`` is False) when there is
        no overscan section.

    Examples
    --------
    >>> import numpy as np
    >>> f = Frame(np.full((4, 6), 500.0), header={"BIASSEC": "[5:6,1:4]"})
    >>> float(subtract_overscan(f).data[0, 0])
    0.0
    """
    ov = Overscan(overscan) if isinstance(overscan, str) else overscan
    if ov.method == "none":  # the header's BIASSEC is not even read: it may be malformed
        return frame.copy() if copy else frame
    section = section_of(frame, biassec, "BIASSEC")
    if section is None:
        return frame.copy() if copy else frame
    level = overscan_level(frame, section, ov)
    # the level's own noise (read noise / sqrt(pixels of the strip)) is left out of the
    # variance: hundreds of pixels make it negligible beside one pixel's read noise
    out = replace(frame, data=frame.data - level, header=frame.header.copy(), extras={})
    out.header["OVERSCAN"] = overscan_card(ov, level)
    return out


def overscan_card(overscan: Overscan, level: np.ndarray) -> tuple[str, str]:
    """The OVERSCAN card of a frame whose overscan ``level`` was subtracted.

    Examples
    --------
    >>> import numpy as np
    >>> overscan_card(Overscan("median"), np.float32(500.004))
    ('median 500.00', 'overscan method and mean level (ADU)')
    """
    return f"{overscan.method} {float(np.mean(level)):.2f}", "overscan method and mean level (ADU)"


def trim(frame: Frame, trimsec: str | Section | None = None, *, copy: bool = True) -> Frame:
    """Cut the frame to its science area (TRIMSEC by default, ``"none"`` to ignore it); a copy
    when there is none. ``copy=False``, for a caller that owns ``frame``: views of its
    arrays, and ``frame`` itself when there is no section.

    Examples
    --------
    >>> import numpy as np
    >>> trim(Frame(np.zeros((4, 6)), header={"TRIMSEC": "[2:4,1:3]"})).shape
    (3, 3)
    """
    section = section_of(frame, trimsec, "TRIMSEC")
    if section is None:
        return frame.copy() if copy else frame

    def cut(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else array[section].copy() if copy else array[section]

    out = replace(frame, data=cut(frame.data), variance=cut(frame.variance), mask=cut(frame.mask),
                  header=frame.header.copy(), extras={})  # fmt: skip
    trimmed_header(out.header, out.shape)
    return out


def trimmed_header(header: Any, shape: tuple[int, int]) -> None:
    """Say in ``header`` that its frame was trimmed to ``shape``: TRIMSEC the whole image,
    BIASSEC and DATASEC renamed (they point into the untrimmed frame).

    Examples
    --------
    >>> from astropy.io import fits
    >>> h = fits.Header({"BIASSEC": "[5:6,1:4]"})
    >>> trimmed_header(h, (4, 4))
    >>> h["TRIMSEC"], h["OLDBIASS"]
    ('[1:4,1:4]', '[5:6,1:4]')
    """
    header["TRIMSEC"] = (
        format_section(slice(0, shape[0]), slice(0, shape[1])),
        "trimmed: whole image",
    )
    for key in ("BIASSEC", "DATASEC"):
        if key in header:
            header.rename_keyword(key, f"OLD{key[:5]}")


__all__ = [
    "Overscan",
    "OverscanMethod",
    "overscan_card",
    "overscan_level",
    "subtract_overscan",
    "trim",
    "trimmed_header",
]
