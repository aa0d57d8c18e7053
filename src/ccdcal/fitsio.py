"""FITS at the edge: opening files safely, finding the image, reading row bands, atomic writes.

Everything here turns astropy's many ways of failing into one :class:`~ccdcal.errors.FrameError`
that names the file and the problem.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from astropy.io import fits
>>> d = tempfile.mkdtemp()
>>> path = os.path.join(d, "x.fits")
>>> write_hdul(fits.HDUList([fits.PrimaryHDU(np.zeros((4, 5), np.uint16))]), path)
>>> with ImageReader(path) as r:
...     r.shape, r.rows(0, 2).dtype
((4, 5), dtype('float32'))
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError
from astropy.utils.exceptions import AstropyUserWarning

from . import fitswrite
from .errors import FrameError
from .process_state import catching_warnings

PathLike = str | os.PathLike[str]

#: header keywords that describe the storage of one HDU, not the observation
STRUCTURAL = frozenset(
    {
        "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "BZERO",
        "BSCALE", "BLANK", "CHECKSUM", "DATASUM", "PCOUNT", "GCOUNT", "XTENSION",
        "EXTNAME", "EXTVER", "ZIMAGE", "ZBITPIX", "ZNAXIS", "ZNAXIS1", "ZNAXIS2",
        "ZCMPTYPE", "ZTENSION", "ZPCOUNT", "ZGCOUNT", "ZQUANTIZ", "ZDITHER0",
    }
)  # fmt: skip

#: extension names ccdcal writes beside the image (CCDData's own names for the first two):
#: MASK holds 1 where a pixel is not to be used (a flag of :data:`ccdcal.flags.EXCLUDE`),
#: as astropy reads it; FLAGS the bit flags (``CCDData.read(path, hdu_flags="FLAGS")``)
MASK_EXT = "MASK"
FLAGS_EXT = "FLAGS"
UNCERT_EXT = "UNCERT"
#: the part of the variance that the master frames bring (the same in every frame
#: calibrated with them: a stack counts it once, it does not average down)
COMMON_EXT = "VARCOMMON"


def clean_header(header: fits.Header) -> fits.Header:
    """A copy of ``header`` without the keywords that describe storage (BITPIX, BZERO, ...).

    Carrying BZERO or BSCALE from an integer raw frame into a float result would make astropy
    rescale the result on writing; checksums belong to the old bytes.

    Examples
    --------
    >>> h = fits.Header({"BZERO": 32768, "EXPTIME": 60.0})
    >>> list(clean_header(h))
    ['EXPTIME']
    """
    out = header.copy(strip=False)
    for key in list(out.keys()):
        if key in STRUCTURAL or key.startswith(("NAXIS", "ZNAXIS", "ZTILE", "ZNAME", "ZVAL")):
            with contextlib.suppress(KeyError):
                del out[key]
    # a card a camera wrote outside the standard (an unquoted string) is not carried into
    # an output, which must verify
    for index in reversed(range(len(out))):
        card = out.cards[index]
        try:
            card.verify("exception")
        except (VerifyError, ValueError):  # what astropy raises for a card it cannot write
            del out[index]
    return out


@contextlib.contextmanager
def open_fits(
    path: PathLike, *, memmap: bool = False, scale: bool = True
) -> Iterator[fits.HDUList]:
    """Open a FITS file, turning every failure into a one-line :class:`FrameError`.

    Examples
    --------
    >>> try:
    ...     with open_fits("/nonexistent.fits"):
    ...         pass
    ... except FrameError as err:
    ...     print(err)
    /nonexistent.fits: no such file
    """
    p = Path(path)
    if not p.exists():
        raise FrameError(path, "no such file")
    if p.is_dir():
        raise FrameError(path, "is a directory, not a FITS file")
    try:
        with catching_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdul = fits.open(
                p, memmap=memmap, lazy_load_hdus=False, do_not_scale_image_data=not scale
            )
    except (OSError, ValueError, EOFError, TypeError, IndexError) as err:
        raise FrameError(path, _describe_open_error(err, p)) from err
    try:
        for w in caught:
            if "truncated" in str(w.message).lower():
                raise FrameError(path, "truncated FITS file")
        yield hdul
    finally:
        hdul.close()


def _describe_open_error(err: Exception, path: Path) -> str:
    text = str(err).lower()
    if path.stat().st_size == 0:
        return "empty file, not a FITS file"
    if "truncated" in text or isinstance(err, EOFError):
        return "truncated FITS file"
    if path.suffix.lower() in {".gz", ".fz", ".bz2"} and "empty or corrupt" in text:
        return "truncated or corrupt compressed file"
    if "simple" in text or "empty or corrupt" in text or "not a fits" in text:
        return "not a FITS file"
    if "gzip" in text or "compressed" in text:
        return "corrupt compressed file"
    return f"not a readable FITS file ({err})"


def find_image_hdu(hdul: fits.HDUList, path: PathLike) -> int:
    """Index of the first HDU that holds a 2-D image (primary or extension).

    A 3-D HDU whose first axis has length 1 counts as 2-D (some cameras write that).
    """
    for index, hdu in enumerate(hdul):
        if not isinstance(hdu, fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU):
            continue
        shape = _hdu_shape(hdu)
        if shape is not None:
            _check_scaling(hdu.header, path)
            return index
    raise FrameError(path, "no image in this FITS file")


#: the pixel types of FITS (BITPIX)
BITPIXES = (8, 16, 32, 64, -32, -64)


def _check_scaling(header: Any, path: PathLike) -> None:
    """BITPIX a FITS pixel type, BZERO and BSCALE finite numbers: otherwise one line now,
    not an exception from deep inside astropy when the pixels are read."""
    key = "ZBITPIX" if "ZBITPIX" in header else "BITPIX"
    bitpix = header.get(key)
    if isinstance(bitpix, bool) or not isinstance(bitpix, int) or bitpix not in BITPIXES:
        raise FrameError(path, f"{key} = {bitpix!r} is not a FITS pixel type ({BITPIXES})")
    for card in ("BZERO", "BSCALE"):
        value = header.get(card)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise FrameError(path, f"{card} = {value!r} is not a number")
    if header.get("BSCALE") == 0:
        raise FrameError(path, "BSCALE = 0: every pixel would be the same")
    blank = header.get("BLANK")
    if blank is not None and (isinstance(blank, bool) or not isinstance(blank, int)):
        raise FrameError(path, f"BLANK = {blank!r} is not an integer")


def _hdu_shape(hdu: Any) -> tuple[int, int] | None:
    header = hdu.header
    naxis = int(header.get("ZNAXIS", header.get("NAXIS", 0)) if hdu.is_image else 0)
    if isinstance(hdu, fits.CompImageHDU):
        naxes = [int(hdu.header.get(f"NAXIS{i}", 0)) for i in range(1, 4)]
        naxis = int(hdu.header.get("NAXIS", 0))
    else:
        naxes = [int(header.get(f"NAXIS{i}", 0)) for i in range(1, 4)]
    if naxis == 2 and naxes[0] > 0 and naxes[1] > 0:
        return naxes[1], naxes[0]
    if naxis == 3 and naxes[2] == 1 and naxes[0] > 0 and naxes[1] > 0:
        return naxes[1], naxes[0]
    return None


def to_float32(data: np.ndarray) -> np.ndarray:
    """Image data as float32, exactly for every integer type a 16-bit ADC writes."""
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    return data.astype(np.float32, copy=False)


@dataclass(frozen=True)
class RawLayout:
    """Where an image's pixels lie in an uncompressed FITS file, and how they are stored.

    Attributes
    ----------
    offset : int
        Byte offset of the first pixel in the file.
    dtype : numpy.dtype
        The stored type, big-endian (from BITPIX).
    bscale, bzero : float
        The scaling keywords (1 and 0 when absent).
    blank : int or None
        The BLANK value of an integer image.
    """

    offset: int
    dtype: np.dtype
    bscale: float
    bzero: float
    blank: int | None


_BITPIX_DTYPES = {8: "u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class ImageReader:
    """Reads one FITS image, whole or in row bands, keeping the file open once.

    Used by :func:`ccdcal.combine` to stream stacks larger than memory: each file is opened
    once and read band by band through astropy's ``section`` (which applies BZERO/BSCALE).

    Parameters
    ----------
    path
        A FITS file, optionally gzip-compressed.
    memmap
        Map the file rather than reading it (ignored for compressed files).

    Attributes
    ----------
    shape : tuple of int
        (ny, nx) of the image.
    header : astropy.io.fits.Header
        The image HDU's header (storage keywords included).
    """

    def __init__(self, path: PathLike, *, memmap: bool = True) -> None:
        self.path = Path(path)
        compressed = self.path.suffix.lower() in {".gz", ".fz", ".bz2", ".z"}
        self._memmap = memmap and not compressed
        self._stack = contextlib.ExitStack()
        try:
            # Scaling is ours (see _scaled): astropy will not memory-map BZERO images.
            self._hdul = self._stack.enter_context(
                open_fits(self.path, memmap=memmap and not compressed, scale=False)
            )
            self._index = find_image_hdu(self._hdul, self.path)
            hdu = self._hdul[self._index]
            self.header: fits.Header = hdu.header
            shape = _hdu_shape(hdu)
            assert shape is not None
            self.shape: tuple[int, int] = shape
            self._three_d = int(hdu.header.get("NAXIS", 2)) == 3
            names = {h.name.upper(): i for i, h in enumerate(self._hdul) if i != self._index}
            # the bit flags: FLAGS, else MASK (earlier versions of ccdcal wrote them there;
            # another program's 0/1 mask reads as BAD)
            self._mask_index = names.get(FLAGS_EXT, names.get(MASK_EXT))
            self._uncert_index = names.get(UNCERT_EXT)
            self._common_index = names.get(COMMON_EXT)
        except BaseException:
            self._stack.close()
            raise

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._stack.close()

    @property
    def has_mask(self) -> bool:
        """True when the file carries a FLAGS or MASK extension."""
        return self._mask_index is not None

    @property
    def has_variance(self) -> bool:
        """True when the file carries an UNCERT extension."""
        return self._uncert_index is not None

    @property
    def has_common(self) -> bool:
        """True when the file carries a VARCOMMON extension (and a variance it is part of)."""
        return self._common_index is not None and self._uncert_index is not None

    def _read(self, index: int, y0: int, y1: int) -> np.ndarray:
        hdu = self._hdul[index]
        try:
            with catching_warnings():
                warnings.simplefilter("ignore", AstropyUserWarning)
                if index == self._index and self._three_d:
                    return np.asarray(hdu.section[0, y0:y1, :])
                if y0 == 0 and y1 >= self.shape[0]:
                    data = np.asarray(hdu.data)
                    if not self._memmap:
                        del hdu.data  # astropy would keep the array as long as the file
                    return data
                return np.asarray(hdu.section[y0:y1, :])
        except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError) as err:
            raise FrameError(self.path, f"truncated or corrupt image data ({err})") from err
        except Exception as err:  # astropy's CfitsioException: a broken tile of a .fz
            if type(err).__name__ != "CfitsioException":
                raise
            raise FrameError(self.path, f"corrupt compressed image data ({err})") from err

    def _stored(self, index: int, y0: int, y1: int | None) -> np.ndarray:
        y1 = self.shape[0] if y1 is None else y1
        data = self._read(index, y0, y1)
        if data.shape[-2:] != (y1 - y0, self.shape[1]):
            raise FrameError(self.path, "truncated image data")
        return data[0] if data.ndim == 3 else data

    def _scaled(self, index: int, y0: int, y1: int | None) -> np.ndarray:
        stored = self._stored(index, y0, y1)
        header = self._hdul[index].header
        bscale = float(header.get("BSCALE", 1.0))
        bzero = float(header.get("BZERO", 0.0))
        out = stored.astype(np.float32)
        blank = (
            stored == int(header["BLANK"])
            if stored.dtype.kind in "iu" and "BLANK" in header
            else None
        )
        if bscale != 1.0:
            out *= np.float32(bscale)
        if bzero != 0.0:
            out += np.float32(bzero)
        if blank is not None and blank.any():
            out[blank] = np.nan
        return out

    def _integer(self, index: int, y0: int, y1: int | None) -> np.ndarray:
        stored = self._stored(index, y0, y1)
        header = self._hdul[index].header
        bzero = int(header.get("BZERO", 0))
        offset = 1 << (8 * stored.dtype.itemsize - 1)
        if stored.dtype.kind == "i" and bzero == offset and header.get("BSCALE", 1) == 1:
            native = stored.astype(stored.dtype.newbyteorder("="), copy=False)
            unsigned = np.dtype(f"u{stored.dtype.itemsize}")
            # adding 2**(bits-1) modulo 2**bits is flipping the top bit
            return native.view(unsigned) ^ unsigned.type(offset)
        return stored

    def raw_layout(self, plane: str = "image") -> RawLayout | None:
        """Where the pixels of the image (or of its ``"mask"`` or ``"variance"`` plane) lie
        in the file, for reading them directly; None when they cannot be (a compressed file
        or image, no such plane, an uncertainty stored other than as a variance).

        Examples
        --------
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "u.fits")
        >>> write_hdul(fits.HDUList([fits.PrimaryHDU(np.zeros((4, 5), np.uint16))]), path)
        >>> with ImageReader(path) as r:
        ...     layout = r.raw_layout()
        >>> layout.offset, layout.dtype.str, layout.bzero
        (2880, '>i2', 32768.0)
        """
        index = {"image": self._index, "mask": self._mask_index,
                 "variance": self._uncert_index, "common": self._common_index}[plane]  # fmt: skip
        if index is None:
            return None
        hdu = self._hdul[index]
        header = hdu.header
        if plane == "variance" and "Variance" not in str(header.get("UTYPE", "Variance")):
            return None
        if plane == "variance" and str(header.get("UTYPE", "")).startswith("Inverse"):
            return None
        dtype = _BITPIX_DTYPES.get(int(header.get("BITPIX", 0)))
        if dtype is None or isinstance(hdu, fits.CompImageHDU) or "ZIMAGE" in header:
            return None
        if plane != "image" and (header.get("NAXIS1"), header.get("NAXIS2")) != (
            self.shape[1],
            self.shape[0],
        ):  # astropy's reader says what is wrong with a plane of another shape
            return None
        with open(self.path, "rb") as fh:
            if fh.read(6) != b"SIMPLE":  # gzip, bzip2, zip: a stream, not a layout
                return None
        blank = header.get("BLANK")
        return RawLayout(
            offset=int(self._hdul.fileinfo(index)["datLoc"]),
            dtype=np.dtype(dtype),
            bscale=float(header.get("BSCALE", 1.0)),
            bzero=float(header.get("BZERO", 0.0)),
            blank=int(blank) if blank is not None and dtype[-2] in "iu" else None,
        )

    def rows(self, y0: int = 0, y1: int | None = None) -> np.ndarray:
        """Rows ``y0:y1`` of the image as float32, BZERO/BSCALE applied, BLANK as NaN."""
        return self._scaled(self._index, y0, y1)

    def raw_rows(self, y0: int = 0, y1: int | None = None) -> np.ndarray:
        """Rows ``y0:y1`` as the camera wrote them: uint16 for BITPIX 16 with BZERO 32768."""
        return self._integer(self._index, y0, y1)

    def mask_rows(self, y0: int = 0, y1: int | None = None) -> np.ndarray | None:
        """Rows of the bit flags (FLAGS, else MASK) as uint16, or None when there are none."""
        if self._mask_index is None:
            return None
        return self._integer(self._mask_index, y0, y1).astype(np.uint16)

    def common_rows(self, y0: int = 0, y1: int | None = None) -> np.ndarray | None:
        """Rows of the VARCOMMON extension (the masters' part of the variance), or None."""
        if not self.has_common:
            return None
        assert self._common_index is not None
        return self._scaled(self._common_index, y0, y1)

    def variance_rows(self, y0: int = 0, y1: int | None = None) -> np.ndarray | None:
        """Rows of the UNCERT extension as a variance (float32), or None when there is none."""
        if self._uncert_index is None:
            return None
        data = self._scaled(self._uncert_index, y0, y1)
        kind = str(self._hdul[self._uncert_index].header.get("UTYPE", "VarianceUncertainty"))
        if "StdDev" in kind:
            return data * data
        if "InverseVariance" in kind:
            with np.errstate(divide="ignore"):
                return np.where(data > 0, 1.0 / data, np.inf).astype(np.float32)
        return data

    def extension(self, name: str) -> np.ndarray | None:
        """A named image extension whole (integers as stored, unsigned restored), or None."""
        for i, hdu in enumerate(self._hdul):
            if i != self._index and hdu.name.upper() == name.upper() and hdu.is_image:
                if hdu.header.get("NAXIS", 0) < 2:
                    return None
                stored = self._integer(i, 0, None)
                return stored if stored.dtype.kind in "iu" else self._scaled(i, 0, None)
        return None

    def extension_names(self) -> list[str]:
        """Names of the image extensions beside the main image."""
        return [
            h.name.upper()
            for i, h in enumerate(self._hdul)
            if i != self._index and h.is_image and h.header.get("NAXIS", 0) >= 2
        ]


_UMASK: list[int] = []
_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read once: reading it means setting it, which races with
    threads writing files at the same moment."""
    with _UMASK_LOCK:
        if not _UMASK:
            value = os.umask(0o077)
            os.umask(value)
            _UMASK.append(value)
        return _UMASK[0]


def write_hdul(
    hdul: fits.HDUList,
    path: PathLike,
    *,
    when: str | None = None,
    durable: bool = True,
    keep_identical: bool = False,
) -> None:
    """Write an HDU list atomically, with CHECKSUM/DATASUM in every HDU.

    The file appears under its name complete or not at all: it is written to a temporary file
    in the same folder, flushed to disk (``durable``), then renamed over the target. A
    caller that checks every file's checksums before it trusts it again, and flushes once
    when it is done (as :func:`ccdcal.reduce` does), passes ``durable=False``: a power cut
    can then leave a file torn, which its checksum shows, and it is made again.

    Parameters
    ----------
    hdul
        What to write.
    path
        Destination; parent folders are created.
    when
        Comment of the checksum cards; by default astropy's time stamp. The simulator passes a
        fixed text so that a seed gives byte-identical files.
    keep_identical
        Leave a file already at ``path`` that holds exactly these bytes as it is, time
        included: a rerun of a deterministic writer (the simulator) then changes nothing, so
        whatever keys on the file's time (a reduction's plan) sees it unchanged.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    try:
        fitswrite.write(hdul, tmp, when=when)  # checksums summed where the bytes pass
        if keep_identical and _same_bytes(Path(tmp), target):
            os.unlink(tmp)
            return
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); an output should be as readable as any
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _same_bytes(a: Path, b: Path) -> bool:
    """True when ``b`` is a regular file with exactly the bytes of ``a``."""
    try:
        if not b.is_file() or b.is_symlink() or a.stat().st_size != b.stat().st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                block = fa.read(1 << 20)
                if block != fb.read(1 << 20):
                    return False
                if not block:
                    return True
    except OSError:
        return False
