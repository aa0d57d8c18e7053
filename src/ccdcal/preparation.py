"""A master's raw inputs prepared as the combine reads them, band by band.

A master's inputs are raw frames made ready to combine: saturation flagged, overscan
subtracted, trimmed, the master bias and a scaled master dark subtracted
(:func:`ccdcal.masters.preprocess`, :func:`~ccdcal.masters.prepare_dark`,
:func:`~ccdcal.masters.prepare_flat`). Held as frames, thirty biases of 2048x2048 take
720 MB. Here each raw file is read once whole to learn what its preparation needs (its
header, the overscan level, the saturation level: :func:`plan`), and the combine then reads
it again band by band through a :class:`PreparedSource`, which applies the preparation to
each band as it is read. The values are those of the frame functions, operation for
operation in float32, so a master made so equals one made from prepared frames bit for bit
(``tests/test_masters.py``); nothing is held but the bands.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from ccdcal.frame import Frame
>>> path = os.path.join(tempfile.mkdtemp(), "b.fits")
>>> sections = {"BIASSEC": "[5:6,1:4]", "TRIMSEC": "[1:4,1:4]"}
>>> Frame(np.full((4, 6), 510.0), header=sections).write(path)
>>> prep = plan(path)
>>> prep.shape, float(prep.level)
((4, 4), 510.0)
>>> data, mask, _ = prep.combine_source(0).read(0, 4)
>>> float(data.max()), int(mask.max())
(0.0, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from . import flags
from .calibration import _check_shape, _dark_header, _dark_scale, exposure_time
from .errors import CcdcalError
from .fitsio import clean_header
from .frame import Frame, PathLike
from .overscan import Overscan, overscan_card, overscan_level, trimmed_header
from .robust import median
from .saturation import saturation_level
from .sections import Section, section_of
from .stacking.stream import FileSource, Source

#: rows of a flat sampled (every this many) for the check that light is left in it
FLAT_CHECK_STEP = 8


@dataclass(frozen=True, eq=False)
class Preparation:
    """How one raw file becomes a master's input.

    Attributes
    ----------
    path
        The raw file.
    header
        The prepared frame's header (as the frame functions leave it).
    shape
        The prepared frame's shape (trimmed).
    saturation
        Raw values at or above it are flagged SATURATED (None: none).
    level
        The overscan level subtracted (float32: 0-d, one per row (ny, 1) or one per column
        (1, nx) of the raw frame), or None.
    rows, cols
        The trimmed area in the raw frame.
    bias, dark, k
        The master bias and the master dark subtracted, the dark scaled by ``k``.
    """

    path: Path
    header: Any
    shape: tuple[int, int]
    saturation: float | None
    level: np.ndarray | None
    rows: slice
    cols: slice
    bias: Frame | None = None
    dark: Frame | None = None
    k: float = 0.0

    @property
    def exptime(self) -> float | None:
        """The prepared frame's exposure time."""
        return exposure_time(Frame(np.zeros((1, 1)), header=self.header))

    def combine_source(self, index: int) -> PreparedSource:
        """The combine's input that reads this file prepared (``index``: its place)."""
        return PreparedSource(self)

    def prepared(self, y0: int, y1: int, raw: np.ndarray, raw_mask: np.ndarray | None) -> Any:
        """Rows ``y0:y1`` of the prepared frame from those rows of the raw frame (the whole
        width): (data, mask)."""
        mask = np.zeros(raw.shape, np.uint16) if raw_mask is None else raw_mask.copy()
        if self.saturation is not None:  # as flag_saturation
            mask[raw >= np.float32(self.saturation)] |= flags.SATURATED
        mask[~np.isfinite(raw)] |= flags.NO_DATA
        data = raw
        if self.level is not None:  # as subtract_overscan
            level = self.level
            if level.ndim == 2 and level.shape[0] > 1:  # one value per raw row
                r0 = self.rows.start
                level = level[r0 + y0 : r0 + y1]
            data = data - level
        data, mask = data[:, self.cols], mask[:, self.cols]  # as trim
        for master, scale in ((self.bias, None), (self.dark, np.float32(self.k))):
            if master is None:
                continue
            # as subtract_bias and subtract_dark
            band = master.data[y0:y1]
            data = data - (band if scale is None else scale * band)
            if master.mask is not None:
                mask = mask | master.mask[y0:y1]
        return data, mask


class PreparedSource(Source):
    """A raw file read band by band with its :class:`Preparation` applied."""

    def __init__(self, prep: Preparation) -> None:
        self.prep = prep
        self._raw = FileSource(prep.path)
        self.name = str(prep.path)
        self.label = prep.path.name
        self.shape = prep.shape
        self.header = prep.header
        self.has_mask = True
        self.has_variance = False

    @property
    def threadsafe(self) -> bool:
        return self._raw.threadsafe

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        r0 = self.prep.rows.start
        raw, raw_mask, _ = self._raw.read(r0 + y0, r0 + y1)
        data, mask = self.prep.prepared(y0, y1, raw, raw_mask)
        return data, mask, None

    def close(self) -> None:
        self._raw.close()


def _slices(section: Section | None, shape: tuple[int, int]) -> tuple[slice, slice]:
    if section is None:
        return slice(0, shape[0]), slice(0, shape[1])
    rows, cols = section
    r = rows.indices(shape[0])
    c = cols.indices(shape[1])
    if r[2] != 1 or c[2] != 1:
        raise CcdcalError(f"a trim section with a step is not supported: {section}")
    return slice(r[0], r[1]), slice(c[0], c[1])


def plan(
    path: PathLike,
    *,
    bias: Frame | None = None,
    dark: Frame | None = None,
    biassec: str | Section | None = None,
    trimsec: str | Section | None = None,
    overscan: Overscan | str = "median",
    exptime: float | None = None,
    flat: bool = False,
) -> Preparation:
    """Read raw file ``path`` once and say how it is prepared: as
    :func:`ccdcal.masters.preprocess` (saturation, overscan, trim), then minus ``bias`` and
    minus ``dark`` scaled to its exposure (``exptime`` where its header has none).

    With ``flat``, a flat with no light left (a median of its prepared values at or below
    zero, on every :data:`FLAT_CHECK_STEP`-th row) is refused, as
    :func:`~ccdcal.masters.prepare_flat` refuses it.

    Raises
    ------
    CcdcalError
        The file cannot be read, its sections are wrong, it does not match the masters, or
        (a flat) no light is left.
    """
    from .masters import with_exptime

    source = FileSource(path)
    try:
        raw, raw_mask, _ = source.read(0, source.shape[0])
        header = clean_header(source.header)
    finally:
        source.close()
    frame = with_exptime(Frame(raw, mask=raw_mask, header=header, path=Path(path)), exptime)
    sat, card = saturation_level(frame)
    header = frame.header.copy()
    if card is not None:
        header["SATINFER"] = card
    ov = Overscan(overscan) if isinstance(overscan, str) else overscan
    level = None
    if ov.method != "none":  # the header's BIASSEC is not even read: it may be malformed
        strip = section_of(frame, biassec, "BIASSEC")
        if strip is not None:
            level = np.asarray(overscan_level(frame, strip, ov), np.float32)
            header["OVERSCAN"] = overscan_card(ov, level)
    section = section_of(frame, trimsec, "TRIMSEC")
    rows, cols = _slices(section, frame.shape)
    shape = (rows.stop - rows.start, cols.stop - cols.start)
    if section is not None:
        trimmed_header(header, shape)
    # what the frame functions' checks read of the prepared frame
    stand_in = SimpleNamespace(header=header, shape=shape, name=str(path))
    k = 0.0
    if bias is not None:
        _check_shape(stand_in, bias, "master bias")
    if dark is not None:
        _check_shape(stand_in, dark, "master dark")
        k = _dark_scale(stand_in, dark, None, None)
        _dark_header(stand_in, k)
    prep = Preparation(Path(path), stand_in.header, shape, sat, level, rows, cols, bias, dark, k)
    if flat:
        step = FLAT_CHECK_STEP
        picked = slice(rows.start, rows.stop, step)
        data, _ = _sampled(prep, raw[picked], None if raw_mask is None else raw_mask[picked])
        level = median(data, omit_nan=True)
        if not level > 0:
            raise CcdcalError(f"{path}: flat has median {level:.3g} after bias subtraction")
    return prep


def _sampled(prep: Preparation, raw: np.ndarray, raw_mask: np.ndarray | None) -> Any:
    """The prepared values of every :data:`FLAT_CHECK_STEP`-th row (a sample)."""
    step = FLAT_CHECK_STEP
    level = prep.level
    if level is not None and level.ndim == 2 and level.shape[0] > 1:  # one value per row
        level = level[prep.rows.start : prep.rows.stop : step]

    def rows_of(master: Frame | None) -> Frame | None:
        return None if master is None else Frame(master.data[::step])

    sampled = replace(prep, level=level, bias=rows_of(prep.bias), dark=rows_of(prep.dark),
                      rows=slice(0, raw.shape[0]))  # fmt: skip
    return sampled.prepared(0, raw.shape[0], raw, raw_mask)


__all__ = ["FLAT_CHECK_STEP", "Preparation", "PreparedSource", "plan"]
