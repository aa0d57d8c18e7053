"""The one type that crosses module boundaries: a 2-D image with variance, mask and header.

Examples
--------
>>> import numpy as np
>>> f = Frame(np.ones((3, 4)), header={"EXPTIME": 60.0})
>>> f.data.dtype, f.shape, f.header["EXPTIME"]
(dtype('float32'), (3, 4), 60.0)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.io import fits

from . import flags
from .errors import CcdcalError, CcdcalTypeError, FrameError
from .fitsio import (
    COMMON_EXT,
    FLAGS_EXT,
    MASK_EXT,
    UNCERT_EXT,
    ImageReader,
    clean_header,
    write_hdul,
)
from .provenance import add_history

if TYPE_CHECKING:
    from astropy.nddata import CCDData

PathLike = str | os.PathLike[str]

#: extensions of a combined frame: frames used, and rejected low/high, per pixel
COUNT_EXTS = ("NCOMBINE", "NREJLO", "NREJHI")
#: the extensions :meth:`Frame.read` keeps in ``extras``
EXTRA_EXTS = (*COUNT_EXTS, COMMON_EXT)


@dataclass(eq=False)
class Frame:
    """A CCD image: float32 data, optional variance and data-quality mask, and its header.

    Steps never modify a frame they are given; they return a new one.

    Parameters
    ----------
    data
        2-D image; converted to float32.
    variance
        Per-pixel variance in the square of the data's unit, or None when unknown.
    mask
        Data-quality bit flags (uint16, see :mod:`ccdcal.flags`), or None for all good.
    header
        FITS header (observation keywords; storage keywords are dropped).
    extras
        Further per-pixel images written as named extensions (for a stack: NCOMBINE,
        NREJLO, NREJHI; for calibrated frames and stacks: VARCOMMON, the part of the
        variance the master frames bring).
    path
        The file the frame was read from, if any.

    Examples
    --------
    >>> import numpy as np
    >>> f = Frame(np.arange(6).reshape(2, 3))
    >>> f.good.all()
    np.True_
    """

    data: np.ndarray
    variance: np.ndarray | None = None
    mask: np.ndarray | None = None
    header: fits.Header = field(default_factory=fits.Header)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 2:
            raise CcdcalError(f"a frame is 2-D; got data of shape {data.shape}")
        self.data = data.astype(np.float32, copy=False)
        if self.variance is not None:
            self.variance = self._check_plane(self.variance, "variance").astype(
                np.float32, copy=False
            )
        if self.mask is not None:
            mask = self._check_plane(self.mask, "mask")
            if mask.dtype == bool:
                mask = np.where(mask, flags.BAD, 0)
            self.mask = mask.astype(np.uint16, copy=False)
        if not isinstance(self.header, fits.Header):
            header = fits.Header()
            for key, value in dict(self.header or {}).items():
                header[key] = value  # a (value, comment) tuple sets the comment too
            self.header = header
        if self.path is not None:
            self.path = Path(self.path)

    def _check_plane(self, plane: Any, name: str) -> np.ndarray:
        plane = np.asarray(plane)
        if plane.shape != self.data.shape:
            raise CcdcalError(f"{name} shape {plane.shape} differs from data shape {self.shape}")
        return plane

    # ------------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def good(self) -> np.ndarray:
        """Boolean map of pixels with a finite value and no excluding flag."""
        ok = np.isfinite(self.data)
        if self.mask is not None:
            ok &= (self.mask & flags.EXCLUDE) == 0
        return ok

    @property
    def name(self) -> str:
        """File name when read from a file, else ``"<memory>"``."""
        return self.path.name if self.path else "<memory>"

    def copy(self, **changes: Any) -> Frame:
        """A copy with independent arrays and header; keyword arguments replace fields."""
        base = replace(
            self,
            data=self.data.copy(),
            variance=None if self.variance is None else self.variance.copy(),
            mask=None if self.mask is None else self.mask.copy(),
            header=self.header.copy(),
            extras={k: v.copy() for k, v in self.extras.items()},
        )
        return replace(base, **changes) if changes else base

    def mask_or_zeros(self) -> np.ndarray:
        """The mask, or an all-zero mask when the frame has none."""
        return np.zeros(self.shape, np.uint16) if self.mask is None else self.mask

    # ------------------------------------------------------------------ FITS
    @classmethod
    def read(cls, path: PathLike, *, variance: bool = True, extras: bool = True) -> Frame:
        """Read the first image of a FITS file, with its MASK and UNCERT extensions if present.

        Handles BITPIX 8, 16 (BZERO 32768 as unsigned), 32, -32, -64, and gzip-compressed
        files. Raises :class:`~ccdcal.errors.FrameError` naming the file on any problem.
        ``variance=False`` and ``extras=False`` leave those planes unread (a calibrated
        2048x2048 light's stars need a third of its bytes).

        Examples
        --------
        >>> import tempfile, os, numpy as np
        >>> p = os.path.join(tempfile.mkdtemp(), "a.fits")
        >>> Frame(np.full((2, 2), 7.0)).write(p)
        >>> Frame.read(p).data[0, 0]
        np.float32(7.0)
        """
        with ImageReader(path, memmap=False) as reader:
            data = reader.rows()
            frame = cls(
                data,
                variance=reader.variance_rows() if variance else None,
                mask=reader.mask_rows(),
                header=clean_header(reader.header),
                extras={
                    name: reader.extension(name)  # type: ignore[misc]
                    for name in (reader.extension_names() if extras else ())
                    if name in EXTRA_EXTS
                },
                path=Path(path),
            )
        return frame

    def to_hdulist(self, *, dtype: str | None = None) -> fits.HDUList:
        """The frame as FITS HDUs: image in the primary HDU, then MASK, FLAGS, UNCERT and
        extras.

        MASK is what astropy's ``CCDData.read`` takes as its mask, 1 where a pixel is not to
        be used (a flag of :data:`ccdcal.flags.EXCLUDE`): the mask of :meth:`to_ccddata`.
        FLAGS holds every bit flag (HOT and COLD pixels are flagged and used), which
        :meth:`read` reads. A DATE-OBS gets its MJD-OBS, as astropy's WCS would otherwise
        add it with a warning on every read.

        Parameters
        ----------
        dtype
            ``None`` writes float32. ``"uint16"`` rounds and clips to 0..65535 and writes
            BITPIX 16 with BZERO 32768, as a camera's ADC does; ``"uint8"`` (masks) BITPIX 8.

        Examples
        --------
        >>> import numpy as np
        >>> from ccdcal import flags
        >>> mask = np.array([[0, flags.HOT], [flags.SATURATED, 0]])
        >>> hdul = Frame(np.ones((2, 2)), mask=mask).to_hdulist()
        >>> hdul["MASK"].data.tolist(), hdul["FLAGS"].data.tolist()
        ([[0, 0], [1, 0]], [[0, 2], [8, 0]])
        """
        header = _dated(clean_header(self.header))
        if dtype is None:
            primary = fits.PrimaryHDU(self.data, header=header)
        elif dtype in ("uint8", "uint16"):
            top = np.iinfo(dtype).max
            counts = np.clip(np.rint(self.data), 0, top).astype(dtype)
            primary = fits.PrimaryHDU(counts, header=header)
        else:
            raise CcdcalError(f"dtype must be None, 'uint8' or 'uint16', not {dtype!r}")
        hdus: list[Any] = [primary]
        if self.mask is not None:
            excluded = ((self.mask & flags.EXCLUDE) != 0).astype(np.uint8)
            mhdr = fits.Header()
            mhdr["MASKDEF"] = (
                "|".join(flags.describe(flags.EXCLUDE)),
                f"1: one of these flags (of {FLAGS_EXT})",
            )
            hdus.append(fits.ImageHDU(excluded, header=mhdr, name=MASK_EXT))
            fhdr = fits.Header()
            for key, value, comment in flags.header_cards():
                fhdr[key] = (value, comment)
            # bytes where no flag needs more than 8 bits (NONLINEAR): half the disk
            small = int(self.mask.max(initial=0)) < 256
            plane = self.mask.astype(np.uint8) if small else self.mask
            hdus.append(fits.ImageHDU(plane, header=fhdr, name=FLAGS_EXT))
        if self.variance is not None:
            uhdr = fits.Header()
            uhdr["UTYPE"] = ("VarianceUncertainty", "astropy.nddata uncertainty class")
            bunit = header.get("BUNIT")
            if bunit:
                uhdr["BUNIT"] = (f"({bunit})2", "variance unit")
            hdus.append(fits.ImageHDU(self.variance, header=uhdr, name=UNCERT_EXT))
        for name, plane in self.extras.items():
            hdus.append(fits.ImageHDU(np.asarray(plane), name=name))
        return fits.HDUList(hdus)

    def write(
        self,
        path: PathLike,
        *,
        step: str | None = None,
        inputs: Iterable[PathLike] = (),
        params: Mapping[str, Any] | None = None,
        dtype: str | None = None,
        deterministic: bool = False,
        durable: bool = True,
    ) -> None:
        """Write the frame atomically as FITS with checksums and provenance.

        Parameters
        ----------
        path
            Destination; written under a temporary name and renamed.
        step, inputs, params
            Provenance: the step that made the frame, the files it read, its parameters.
            Written as HISTORY cards with the ccdcal version.
        dtype
            See :meth:`to_hdulist`.
        deterministic
            Leave out time stamps, so that the same frame gives the same bytes; a file
            already at ``path`` with those very bytes is then left untouched (its time too).
        durable
            Flush the file to the disk before it takes its name (see
            :func:`ccdcal.fitsio.write_hdul`).
        """
        out = self
        if step is not None:
            out = replace(self, header=self.header.copy())
            add_history(out.header, step, inputs=inputs, params=params, stamp=not deterministic)
        when = "ccdcal" if deterministic else None
        write_hdul(out.to_hdulist(dtype=dtype), path, when=when, durable=durable,
                   keep_identical=deterministic)  # fmt: skip

    # ------------------------------------------------------------------ CCDData
    def to_ccddata(self, *, unit: str | None = None) -> CCDData:
        """Convert to astropy ``CCDData`` (variance becomes ``VarianceUncertainty``).

        Examples
        --------
        >>> import numpy as np
        >>> ccd = Frame(np.ones((2, 2)), variance=np.ones((2, 2))).to_ccddata(unit="adu")
        >>> type(ccd.uncertainty).__name__
        'VarianceUncertainty'
        """
        from astropy.nddata import CCDData, VarianceUncertainty

        unit = unit or str(self.header.get("BUNIT", "adu")) or "adu"
        return CCDData(
            self.data,
            unit=unit,
            uncertainty=None if self.variance is None else VarianceUncertainty(self.variance),
            # astropy's mask means "do not use": only the flags that exclude a pixel
            mask=None if self.mask is None else (self.mask & flags.EXCLUDE) != 0,
            meta=clean_header(self.header),
        )

    @classmethod
    def from_ccddata(cls, ccd: CCDData) -> Frame:
        """Build a frame from astropy ``CCDData``; any uncertainty becomes a variance.

        Examples
        --------
        >>> import numpy as np
        >>> from astropy.nddata import CCDData, StdDevUncertainty
        >>> sd = StdDevUncertainty(np.full((2, 2), 3.0))
        >>> ccd = CCDData(np.ones((2, 2)), unit="adu", uncertainty=sd)
        >>> Frame.from_ccddata(ccd).variance[0, 0]
        np.float32(9.0)
        """
        from astropy.nddata import VarianceUncertainty

        variance = None
        if ccd.uncertainty is not None:
            variance = np.asarray(ccd.uncertainty.represent_as(VarianceUncertainty).array)
        mask = None
        if ccd.mask is not None:
            mask = np.where(np.asarray(ccd.mask), flags.BAD, 0).astype(np.uint16)
        header = fits.Header(dict(ccd.meta)) if not isinstance(ccd.meta, fits.Header) else ccd.meta
        header = clean_header(header)
        if ccd.unit is not None:
            header["BUNIT"] = ccd.unit.to_string()
        return cls(np.asarray(ccd.data), variance=variance, mask=mask, header=header)


#: the Modified Julian Date's origin, 1858-11-17T00:00
_MJD_ZERO = datetime(1858, 11, 17)


def _dated(header: fits.Header) -> fits.Header:
    """``header`` with MJD-OBS from DATE-OBS where it has none (astropy's WCS warns that it
    adds it, 'datfix', on every read otherwise). A DATE-OBS of a date alone is joined to its
    TIME-OBS (or UTC-OBS, UTCSTART, UT) first, as the FITS standard writes it since 1997:
    astropy's WCS takes MJD-OBS from DATE-OBS alone.

    Examples
    --------
    >>> h = _dated(fits.Header({"DATE-OBS": "2013-07-04", "TIME-OBS": "05:40:16"}))
    >>> h["DATE-OBS"], round(h["MJD-OBS"], 6)
    ('2013-07-04T05:40:16', 56477.236296)
    """
    date = header.get("DATE-OBS")
    if not isinstance(date, str) or "MJD-OBS" in header:
        return header
    text = date.strip()
    if "T" not in text:
        key = next((k for k in ("TIME-OBS", "UTC-OBS", "UTCSTART", "UT")
                    if isinstance(header.get(k), str)), None)  # fmt: skip
        if key is None:
            return header
        text = f"{text}T{header[key].strip()}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:  # another form (dd/mm/yy): left as it is
        return header
    if when.tzinfo is not None:
        return header
    if text != date:
        header["DATE-OBS"] = (text, f"date and {key}, joined")
    mjd = (when - _MJD_ZERO).total_seconds() / 86400.0
    header.set("MJD-OBS", mjd, "[d] modified Julian date of DATE-OBS", after="DATE-OBS")
    return header


def as_frame(item: Frame | PathLike | np.ndarray, what: str = "frame") -> Frame:
    """A frame from a Frame (returned as is), a path (read), or a 2-d array (wrapped);
    ``what`` names it in the error for anything else.

    Examples
    --------
    >>> import numpy as np
    >>> as_frame(np.zeros((2, 2))).shape
    (2, 2)
    >>> as_frame([1, 2], "bias")
    Traceback (most recent call last):
    ...
    ccdcal.errors.CcdcalTypeError: bias: expected a Frame, a 2-d array or a FITS path, not list
    """
    if isinstance(item, Frame):
        return item
    if isinstance(item, str | os.PathLike):
        return Frame.read(item)
    if isinstance(item, np.ndarray):
        if item.ndim != 2:
            raise CcdcalError(f"{what}: expected a 2-d image, got an array of shape {item.shape}")
        return Frame(item)
    raise CcdcalTypeError(
        f"{what}: expected a Frame, a 2-d array or a FITS path, not {type(item).__name__}"
    )


__all__ = ["COMMON_EXT", "COUNT_EXTS", "EXTRA_EXTS", "Frame", "FrameError", "as_frame"]
