"""Inputs of a combine, read in row bands: FITS files (opened once), arrays and Frames.

A file is opened once and read band by band (read, not memory-mapped, so that the pages of
a stack larger than memory never pile up in the process); arrays and frames are sliced.
:func:`plan_rows` picks the band height that keeps the working set within the memory limit.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .. import threads
from ..errors import CcdcalError, CcdcalTypeError, FrameError
from ..fitsio import COMMON_EXT, ImageReader, RawLayout
from ..frame import Frame

#: a band of about this many bytes of stack is fast (fits the caches, few reads per file)
TARGET_BAND_BYTES = 24 * 2**20

#: bytes per output pixel: data and variance float32, mask uint16, three int16 counts
OUTPUT_BYTES_PER_PIXEL = 4 + 4 + 2 + 3 * 2

#: memory an open FITS file holds (parsed headers, buffers): about 30 KiB measured
OPEN_FILE_BYTES = 48 * 2**10


class Source:
    """One input of a combine: shape, header, and rows on demand."""

    name: str
    label: str
    shape: tuple[int, int]
    header: fits.Header
    has_mask: bool
    has_variance: bool
    #: whether the input carries the masters' part of its variance (VARCOMMON)
    has_common: bool = False

    def common(self, y0: int, y1: int) -> np.ndarray | None:
        """Rows ``y0:y1`` of the masters' part of the variance, or None."""
        return None

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Rows ``y0:y1`` of (data, mask or None, variance or None)."""
        raise NotImplementedError

    def read_into(
        self, y0: int, y1: int, out: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        """Data rows ``y0:y1`` into ``out[:y1-y0]`` (float32); returns (mask, variance, keep).

        ``keep`` holds what must stay referenced until the next read (see :func:`iter_bands`).
        """
        data, mask, var = self.read(y0, y1)
        out[: y1 - y0] = data
        return mask, var, data

    def close(self) -> None:
        """Release the file, if any."""

    @property
    def threadsafe(self) -> bool:
        """Whether bands of this input may be read on any thread, beside other inputs."""
        return False

    @property
    def exptime(self) -> float | None:
        """Exposure time from the header (EXPTIME or EXPOSURE), or None."""
        for key in ("EXPTIME", "EXPOSURE"):
            value = self.header.get(key)
            if value is not None:
                try:
                    return float(value)
                except (TypeError, ValueError):
                    return None
        return None


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    """Read into ``view`` from byte ``offset`` of ``fd``: one system call where the system
    has ``preadv`` (Linux, macOS, BSD), else a seek and a read."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [view], offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.readv(fd, [view]) if hasattr(os, "readv") else _read_into(fd, view)


def _read_into(fd: int, view: memoryview) -> int:
    chunk = os.read(fd, len(view))
    view[: len(chunk)] = chunk
    return len(chunk)


class FileSource(Source):
    """A FITS file, open for the whole combine.

    The pixels of an uncompressed float32 or 16-bit integer image, and its MASK and UNCERT
    planes, are read band by band with ``pread`` into a buffer and decoded from it in
    parallel (:mod:`ccdcal.stacking.decode`: byte swap, BSCALE, BZERO, BLANK). The file's
    pages stay in the system's page cache, never in the process: a memory-mapped file's
    pages count in the process's memory until given back, and the kernel maps more than is
    read (whole large folios of a file just written: measured here, a combine of 200 such
    files of 1024x1024 held 1.5 GB of mapped pages under a 500 MB limit). Other images are
    read through :meth:`ImageReader.rows`, which applies BZERO/BSCALE/BLANK likewise.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        self.label = self.path.name
        self._fd: int | None = None
        self._planes_at: dict[str, RawLayout] = {}
        reader: ImageReader | None = ImageReader(path, memmap=False)
        assert reader is not None
        self.shape = reader.shape
        self.header = reader.header
        self.has_mask = reader.has_mask
        self.has_variance = reader.has_variance
        self.has_common = reader.has_common
        try:
            layout = reader.raw_layout()
            self._layout = layout if layout is not None and _direct(layout) else None
            if self._layout is not None:
                # one descriptor: a combine of a thousand files stays within the open-file
                # limit; its MASK and UNCERT planes are read through it too
                self._fd = os.open(self.path, os.O_RDONLY)
                _check_size(self.path, self._fd, self._layout, reader.shape)
                wanted = {"mask": self.has_mask, "variance": self.has_variance,
                          "common": self.has_common}  # fmt: skip
                for plane in [name for name, there in wanted.items() if there]:
                    at = reader.raw_layout(plane)
                    if at is not None and _direct_plane(plane, at):
                        _check_size(self.path, self._fd, at, reader.shape)
                        self._planes_at[plane] = at
                need_astropy = any(
                    there and name not in self._planes_at for name, there in wanted.items()
                )
                reader.close()
                reader = ImageReader(path, memmap=True) if need_astropy else None
        except BaseException:
            if reader is not None:
                reader.close()
            if self._fd is not None:
                os.close(self._fd)
            raise
        self._reader = reader
        self._open = True

    @property
    def threadsafe(self) -> bool:
        """Every plane read by ``pread`` and decoded here (not through astropy)."""
        return self._fd is not None and self._reader is None

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        assert self._open, "read after close"
        if self._fd is not None:
            data = np.empty((y1 - y0, self.shape[1]), np.float32)
            self._decode(y0, y1, data)
            return data, *self._planes(y0, y1)
        r = self._reader
        assert r is not None
        return (
            r.rows(y0, y1),
            r.mask_rows(y0, y1) if self.has_mask else None,
            r.variance_rows(y0, y1) if self.has_variance else None,
        )

    def read_into(
        self, y0: int, y1: int, out: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if self._fd is None:
            return super().read_into(y0, y1, out)
        assert self._open, "read after close"
        self._decode(y0, y1, out)
        mask, var = self._planes(y0, y1)
        return mask, var, None

    def _pread(self, layout: RawLayout, y0: int, y1: int, dtype: Any) -> np.ndarray:
        """Rows ``y0:y1`` of a plane as stored, in a new array of ``dtype`` (its bytes)."""
        assert self._fd is not None
        nx = self.shape[1]
        size = layout.dtype.itemsize
        buf = np.empty((y1 - y0, nx), dtype)
        view = memoryview(buf).cast("B")
        offset = layout.offset + y0 * nx * size
        done = 0
        while done < len(view):
            n = _pread_into(self._fd, view[done:], offset + done)
            if n <= 0:
                at = offset + done
                raise FrameError(self.path, f"truncated image data (nothing at byte {at})")
            done += n
        return buf

    def _decode(self, y0: int, y1: int, out: np.ndarray) -> None:
        """Rows ``y0:y1`` read and decoded into ``out``."""
        from . import decode

        layout = self._layout
        assert layout is not None
        size = layout.dtype.itemsize
        raw = self._pread(layout, y0, y1, np.uint32 if size == 4 else np.uint16)
        if size == 4:
            decode.swap32_into(raw, out[: y1 - y0].view(np.uint32))
        else:
            blank = layout.blank
            decode.decode16(
                raw, out[: y1 - y0], np.float32(layout.bscale), np.float32(layout.bzero),
                0 if blank is None else blank, blank is not None,
            )  # fmt: skip

    def _planes(self, y0: int, y1: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        r = self._reader
        out: list[np.ndarray | None] = []
        for plane, wanted in (("mask", self.has_mask), ("variance", self.has_variance)):
            if not wanted:
                out.append(None)
            elif plane in self._planes_at:
                out.append(self._plane_rows(plane, y0, y1))
            else:
                assert r is not None
                out.append(r.mask_rows(y0, y1) if plane == "mask" else r.variance_rows(y0, y1))
        return out[0], out[1]

    def common(self, y0: int, y1: int) -> np.ndarray | None:
        if not self.has_common:
            return None
        assert self._open, "read after close"
        if "common" in self._planes_at:
            return self._plane_rows("common", y0, y1)
        assert self._reader is not None
        return self._reader.common_rows(y0, y1)

    def _plane_rows(self, plane: str, y0: int, y1: int) -> np.ndarray:
        """Rows of the MASK (uint16), UNCERT (float32 variance) or VARCOMMON plane."""
        at = self._planes_at[plane]
        raw = self._pread(at, y0, y1, at.dtype)
        if plane == "mask":
            # stored int16 with BZERO 32768: adding 2**15 modulo 2**16 flips the top bit
            if at.dtype.itemsize == 2:
                return (raw.view(">u2") ^ np.uint16(0x8000)).astype(np.uint16)
            return raw.astype(np.uint16)
        return raw.astype(np.float32)

    def close(self) -> None:
        self._open = False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _direct(layout: RawLayout) -> bool:
    """Whether :mod:`~ccdcal.stacking.decode` decodes this storage (the common cameras' and
    ccdcal's own): float32 unscaled, or 16-bit integers."""
    if layout.dtype.str == ">f4":
        return layout.bscale == 1.0 and layout.bzero == 0.0
    return layout.dtype.str == ">i2"


def _direct_plane(plane: str, layout: RawLayout) -> bool:
    """Whether a MASK plane (uint16 stored as int16 + BZERO 32768, or bytes) or an UNCERT
    plane (unscaled float32) is read directly."""
    if plane == "mask":
        if layout.dtype.str == ">i2":
            return layout.bzero == 32768.0 and layout.bscale == 1.0
        return layout.dtype.str == "|u1" and layout.bzero == 0.0 and layout.bscale == 1.0
    return layout.dtype.str == ">f4" and layout.bscale == 1.0 and layout.bzero == 0.0


def _check_size(path: Path, fd: int, layout: RawLayout, shape: tuple[int, int]) -> None:
    """Refuse, naming the file, one that ends before its plane does."""
    need = layout.offset + shape[0] * shape[1] * layout.dtype.itemsize
    size = os.fstat(fd).st_size
    if size < need:
        raise FrameError(path, f"truncated image data ({size} bytes, the image needs {need})")


class FrameSource(Source):
    """A :class:`~ccdcal.frame.Frame` in memory."""

    def __init__(self, frame: Frame, index: int) -> None:
        self.frame = frame
        self.name = str(frame.path) if frame.path else f"<frame {index}>"
        self.label = frame.path.name if frame.path else f"<frame {index}>"
        self.shape = frame.shape
        self.header = frame.header
        self.has_mask = frame.mask is not None
        self.has_variance = frame.variance is not None
        self.has_common = self.has_variance and COMMON_EXT in frame.extras

    def common(self, y0: int, y1: int) -> np.ndarray | None:
        return self.frame.extras[COMMON_EXT][y0:y1] if self.has_common else None

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        f = self.frame
        return (
            f.data[y0:y1],
            None if f.mask is None else f.mask[y0:y1],
            None if f.variance is None else f.variance[y0:y1],
        )


class ArraySource(Source):
    """A 2-D array in memory (any real dtype; converted to float32 band by band)."""

    def __init__(self, array: np.ndarray, index: int) -> None:
        if array.ndim != 2:
            raise CcdcalError(
                f"input {index}: an image is 2-D, got an array of shape {array.shape}"
            )
        if array.dtype.kind not in "uif":
            raise CcdcalTypeError(
                f"input {index}: expected a real numeric array, not {array.dtype}"
            )
        self.array = array
        self.name = f"<array {index}>"
        self.label = self.name
        self.shape = array.shape  # type: ignore[assignment]
        self.header = fits.Header()
        self.has_mask = False
        self.has_variance = False

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        return self.array[y0:y1], None, None


def _make_source(item: Any, index: int) -> Source:
    if hasattr(item, "combine_source"):  # an input that makes its own (a raw file prepared)
        return item.combine_source(index)
    if isinstance(item, Frame):
        return FrameSource(item, index)
    if isinstance(item, str | os.PathLike):
        return FileSource(item)
    if isinstance(item, np.ndarray):
        return ArraySource(item, index)
    raise CcdcalTypeError(
        f"input {index}: expected a file path, a 2-D array or a Frame, not {type(item).__name__}"
    )


def open_sources(inputs: Sequence[Any]) -> list[Source]:
    """Open every input, checking that all have the first one's shape.

    Raises
    ------
    ValueError
        No input, or an input whose shape differs (naming it and both shapes).
    """
    if isinstance(inputs, str | os.PathLike | Frame):
        raise CcdcalTypeError(
            "inputs must be a sequence of files, arrays or Frames, not a single one"
        )
    items = list(inputs)
    if not items:
        raise CcdcalError("combine needs at least one input; got an empty sequence")
    sources: list[Source] = []
    try:
        for index, item in enumerate(items):
            source = _make_source(item, index)
            sources.append(source)
            first = sources[0]
            if source.shape != first.shape:
                raise CcdcalError(
                    f"{source.name}: shape {source.shape} differs from {first.name}'s "
                    f"{first.shape}; all inputs of a combine must have one shape"
                )
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources


def direct_stack(inputs: Any) -> np.ndarray | None:
    """The input itself when it is a float32 C-contiguous (n, ny, nx) array (read in place)."""
    if (
        isinstance(inputs, np.ndarray)
        and inputs.ndim == 3
        and inputs.dtype == np.float32
        and inputs.flags.c_contiguous
        and inputs.shape[0] > 0
    ):
        return inputs
    return None


_UNITS = {"": 1, "B": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(value: int | float | str | None) -> int | None:
    """A memory size: bytes as a number, or text such as ``"2GB"``, ``"512M"``, ``"1.5 GiB"``.

    Examples
    --------
    >>> parse_bytes("2GB"), parse_bytes(1024), parse_bytes("512 MiB")
    (2147483648, 1024, 536870912)
    """
    if value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(I?B)?\s*", value.upper())
        if not m:
            raise CcdcalError(f"memory_limit: cannot read {value!r} as a size (e.g. '2GB', '512M')")
        number = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        number = float(value)
    if not number > 0:
        raise CcdcalError(f"memory_limit must be positive, not {value!r}")
    return int(number)


def default_memory_limit() -> int:
    """A quarter of the memory available now."""
    import psutil

    return int(psutil.virtual_memory().available // 4)


def plan_rows(
    n: int,
    shape: tuple[int, int],
    *,
    memory_limit: int,
    has_mask: bool,
    has_variance: bool,
    keep_rejected: bool,
    in_place: bool = False,
    open_files: int = 0,
    has_common: bool = False,
) -> int:
    """Rows per band so that outputs plus band buffers stay within ``memory_limit`` bytes.

    Counted: the output planes, the rejection cube when kept, the open files' headers, the
    band buffers of all ``n`` frames (data, mask, variance), and the bands of the frames
    being read at once (raw + float32; two, or one per thread).

    Examples
    --------
    >>> plan_rows(20, (2048, 2048), memory_limit=2**30, has_mask=False,
    ...           has_variance=False, keep_rejected=False)
    118
    """
    ny, nx = shape
    fixed, per_row = _costs(
        n, shape, has_mask, has_variance, keep_rejected, in_place, open_files, has_common
    )
    budget = memory_limit - fixed
    if budget < per_row or budget <= 0:
        raise CcdcalError(
            f"memory_limit={memory_limit} bytes is too small to combine {n} frames of "
            f"{ny}x{nx}: at least {fixed + per_row} bytes are needed (the output planes"
            f"{', rejection cube' if keep_rejected else ''} and open files alone take {fixed})"
        )
    if per_row == 0:
        return ny
    rows = budget // per_row
    rows = min(rows, max(1, TARGET_BAND_BYTES // per_row), ny)
    return int(max(rows, 1))


def _costs(
    n: int,
    shape: tuple[int, int],
    has_mask: bool,
    has_variance: bool,
    keep_rejected: bool,
    in_place: bool,
    open_files: int,
    has_common: bool = False,
) -> tuple[int, int]:
    """(bytes whatever the band height, bytes per band row)."""
    ny, nx = shape
    fixed = ny * nx * (OUTPUT_BYTES_PER_PIXEL + (4 if has_common else 0))
    fixed += (n * ny * nx if keep_rejected else 0) + open_files * OPEN_FILE_BYTES
    if in_place:
        return fixed, 0
    planes = 4 + (2 if has_mask else 0) + (4 if has_variance else 0) + (4 if has_common else 0)
    per_row = n * nx * planes
    reading = max(2, threads.count())  # frames being read at once, raw and decoded
    per_row += reading * nx * (8 + 4 + (2 if has_mask else 0) + (8 if has_variance else 0))
    per_row += reading * nx * (8 if has_common else 0)
    return fixed, per_row


Band = tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def iter_bands(
    sources: Sequence[Source],
    rows: int,
    *,
    any_mask: bool,
    all_mask: bool,
    use_var: bool,
    out_mask: np.ndarray,
    start: int = 0,
    stop: int | None = None,
    use_common: bool = False,
) -> Iterator[Band]:
    """Row bands of every source, as (y0, rows, data, mask, variance, common) buffers
    (n, rows, nx); ``common`` (the masters' part of the variance) zero where a source has
    none, and read only with ``use_common``.

    Rows ``start:stop`` (default all) are read. One set of buffers is filled band after band
    (valid until the next band is asked for). Masks become zeros for sources without one;
    ``out_mask`` (the rows ``start:stop`` of the output) is ANDed with every source's mask
    (when all have one); each file is closed after its last band.
    """
    n = len(sources)
    ny, nx = sources[0].shape
    stop = ny if stop is None else stop
    buf = np.empty((n, rows, nx), np.float32)
    mbuf = np.zeros((n, rows, nx) if any_mask else (n, 1, 1), np.uint16)
    vbuf = np.empty((n, rows, nx) if use_var else (n, 1, 1), np.float32)
    cbuf = np.zeros((n, rows, nx) if use_common else (n, 1, 1), np.float32)
    # files read by pread and decoded by a kernel that releases the GIL are read by
    # several threads at once; the others (through astropy, whose warning filters are
    # process-wide) in this thread
    direct = [i for i, s in enumerate(sources) if s.threadsafe]
    others = [i for i, s in enumerate(sources) if not s.threadsafe]
    lock = threading.Lock()

    def load(i: int, y0: int, y1: int) -> Any:
        r = y1 - y0
        source = sources[i]
        mask, var, data = source.read_into(y0, y1, buf[i])
        if any_mask:
            if mask is None:
                mbuf[i, :r] = 0
            else:
                mbuf[i, :r] = mask
                if all_mask:
                    with lock:
                        out_mask[y0 - start : y1 - start] &= mask
        if use_var:
            vbuf[i, :r] = var
        if use_common:
            common = source.common(y0, y1)
            cbuf[i, :r] = 0.0 if common is None else common
        if y1 == stop:
            source.close()
        return data, mask, var

    def run(indices: list[int], y0: int, y1: int) -> None:
        last = None
        for i in indices:
            # the previous frame's arrays are freed only after this read allocated its own:
            # freeing first lets malloc return the memory to the system and fault it back
            # in at every read (2-3x slower reading)
            last = load(i, y0, y1)
        del last

    for y0 in range(start, stop, rows):
        y1 = min(stop, y0 + rows)
        threads.split(lambda a, b, y0=y0, y1=y1: run(direct[a:b], y0, y1), len(direct))
        run(others, y0, y1)
        yield y0, y1 - y0, buf, mbuf, vbuf, cbuf


__all__ = [
    "ArraySource",
    "FileSource",
    "FrameSource",
    "Source",
    "default_memory_limit",
    "direct_stack",
    "iter_bands",
    "open_sources",
    "parse_bytes",
    "plan_rows",
]
