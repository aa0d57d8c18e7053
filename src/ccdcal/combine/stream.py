"""Inputs of a combine, read in row bands: FITS files (opened once), arrays and Frames.

A file is opened once with :class:`ccdcal.fitsio.ImageReader` (read, not memory-mapped, so
that the pages of a stack larger than memory never pile up in the process) and read band by
band; arrays and frames are sliced. :func:`plan_rows` picks the band height that keeps the
working set within the memory limit.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from ..errors import CcdcalError, FrameError
from ..fitsio import ImageReader, RawLayout
from ..frame import Frame

#: a band of about this many bytes of stack is fast (fits the caches, few reads per file)
TARGET_BAND_BYTES = 24 * 2**20

#: bytes per output pixel: data and variance float32, mask uint16, three int16 counts
OUTPUT_BYTES_PER_PIXEL = 4 + 4 + 2 + 3 * 2

#: memory an open FITS file holds (parsed headers, buffers): about 30 KiB measured
OPEN_FILE_BYTES = 48 * 2**10

#: a page fault maps more than its page: the pages around it (Linux's fault-around) and,
#: for a file just written or read, the whole large folio of the page cache it lies in (up
#: to 2 MiB, measured here). Pages are given back from this far before the bytes read to
#: this far after them, or those mapped pages would stay, a few MiB of every file
FAULT_AROUND = 4 * 2**20


class Source:
    """One input of a combine: shape, header, and rows on demand."""

    name: str
    label: str
    shape: tuple[int, int]
    header: fits.Header
    has_mask: bool
    has_variance: bool

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


class FileSource(Source):
    """A FITS file, open for the whole combine.

    The pixels of an uncompressed float32 or 16-bit integer image are memory-mapped and
    decoded band by band from the mapping into the band buffer, in parallel
    (:mod:`ccdcal.combine.decode`: both cores take page-cache pages at once, faster than
    one ``read``); the mapping's pages are given back every ``release_bytes``
    (``MADV_DONTNEED``), so that the whole file never counts in the process's memory. Other
    images are read through :meth:`ImageReader.rows`, which applies BZERO/BSCALE/BLANK
    likewise.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        self.label = self.path.name
        self._map: mmap.mmap | None = None
        self._pending = -1  # start of the mapped bytes read and not yet given back
        #: bytes of mapped pages to read before giving them back (set by the caller)
        self.release_bytes = 4 * 2**20
        #: also give back the pages mapped ahead of the bytes read (see FAULT_AROUND); the
        #: caller turns it off where the files' pages mapped ahead fit its memory limit
        self.drop_ahead = True
        reader: ImageReader | None = ImageReader(path, memmap=False)
        assert reader is not None
        self.shape = reader.shape
        self.header = reader.header
        self.has_mask = reader.has_mask
        self.has_variance = reader.has_variance
        self._planes_at: dict[str, RawLayout] = {}
        self._pending_at: dict[str, int] = {}
        try:
            layout = reader.raw_layout()
            self._layout = layout if layout is not None and _direct(layout) else None
            if self._layout is not None:
                self._map = _map_pixels(self.path, self._layout, reader.shape)
                # the mapping holds the only file handle an image needs (a combine of a
                # thousand files must stay within the open-file limit), and its MASK and
                # UNCERT planes are read from it too, their pages given back as the
                # image's are (through astropy's mapping they would stay, a plane of every
                # frame, until the file closes)
                for plane in ("mask", "variance") if self.has_mask or self.has_variance else ():
                    at = reader.raw_layout(plane)
                    if at is not None and _direct_plane(plane, at):
                        _check_size(self.path, self._map, at, reader.shape)
                        self._planes_at[plane] = at
                need_astropy = (self.has_mask and "mask" not in self._planes_at) or (
                    self.has_variance and "variance" not in self._planes_at
                )
                reader.close()
                reader = ImageReader(path, memmap=True) if need_astropy else None
        except BaseException:
            if reader is not None:
                reader.close()
            if self._map is not None:
                self._map.close()
            raise
        self._reader = reader
        self._open = True

    @property
    def mapped_planes(self) -> int:
        """Planes read from the file's mapping (each holds up to ``release_bytes`` of it)."""
        return 1 + len(self._planes_at) if self._map is not None else 1

    def read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        assert self._open, "read after close"
        r = self._reader
        if self._map is not None:  # a sample (for scaling): its pages go back at once
            data = np.empty((y1 - y0, self.shape[1]), np.float32)
            self._drop_pages(*self._decode(y0, y1, data))
            return data, *self._planes(y0, y1, at_once=True)
        assert r is not None
        return (
            r.rows(y0, y1),
            r.mask_rows(y0, y1) if self.has_mask else None,
            r.variance_rows(y0, y1) if self.has_variance else None,
        )

    def read_into(
        self, y0: int, y1: int, out: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
        if self._layout is None or self._map is None:
            return super().read_into(y0, y1, out)
        assert self._open, "read after close"
        start, end = self._decode(y0, y1, out)
        mask, var = self._planes(y0, y1)
        self._release(start, end, final=y1 >= self.shape[0])
        return mask, var, None

    def _decode(self, y0: int, y1: int, out: np.ndarray) -> tuple[int, int]:
        """Rows ``y0:y1`` decoded from the mapping into ``out``; their byte range in it."""
        from . import decode

        layout = self._layout
        assert layout is not None and self._map is not None
        nx = self.shape[1]
        size = layout.dtype.itemsize
        start = layout.offset + y0 * nx * size
        raw = np.frombuffer(
            self._map, np.uint32 if size == 4 else np.uint16, (y1 - y0) * nx, start
        ).reshape(y1 - y0, nx)
        if size == 4:
            decode.swap32_into(raw, out[: y1 - y0].view(np.uint32))
        else:
            blank = layout.blank
            decode.decode16(
                raw, out[: y1 - y0], np.float32(layout.bscale), np.float32(layout.bzero),
                0 if blank is None else blank, blank is not None,
            )  # fmt: skip
        return start, start + (y1 - y0) * nx * size

    def _planes(
        self, y0: int, y1: int, *, at_once: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        r = self._reader
        out: list[np.ndarray | None] = []
        for plane, wanted in (("mask", self.has_mask), ("variance", self.has_variance)):
            if not wanted:
                out.append(None)
            elif plane in self._planes_at:
                out.append(self._plane_rows(plane, y0, y1, at_once=at_once))
            else:
                assert r is not None
                out.append(r.mask_rows(y0, y1) if plane == "mask" else r.variance_rows(y0, y1))
        return out[0], out[1]

    def _plane_rows(self, plane: str, y0: int, y1: int, *, at_once: bool = False) -> np.ndarray:
        """Rows of the MASK (uint16) or UNCERT (float32 variance) plane from the mapping;
        their pages go back in batches as the bands go (``at_once`` for a sample)."""
        at = self._planes_at[plane]
        assert self._map is not None
        nx = self.shape[1]
        size = at.dtype.itemsize
        start = at.offset + y0 * nx * size
        raw = np.frombuffer(self._map, at.dtype, (y1 - y0) * nx, start).reshape(y1 - y0, nx)
        if plane == "mask":
            # stored int16 with BZERO 32768: adding 2**15 modulo 2**16 flips the top bit
            rows = (raw.view(">u2") ^ np.uint16(0x8000)) if size == 2 else raw
            rows = rows.astype(np.uint16)
        else:
            rows = raw.astype(np.float32)
        end = start + (y1 - y0) * nx * size
        if at_once:
            self._drop_pages(start, end)
            return rows
        pending = self._pending_at.setdefault(plane, start)
        if end - pending >= self.release_bytes or y1 >= self.shape[0]:
            stop = at.offset + self.shape[0] * nx * size
            ahead = FAULT_AROUND if self.drop_ahead else 0
            self._drop_pages(max(at.offset, pending - FAULT_AROUND), min(stop, end + ahead))
            self._pending_at[plane] = end
        return rows

    def _release(self, start: int, end: int, *, final: bool) -> None:
        """Give back the mapped pages read so far (the page cache keeps them), in batches of
        about ``release_bytes``: each call costs a TLB flush on every core."""
        if self._pending < 0:
            self._pending = start
        if not final and end - self._pending < self.release_bytes:
            return
        layout = self._layout
        assert layout is not None
        stop = layout.offset + self.shape[0] * self.shape[1] * layout.dtype.itemsize
        ahead = FAULT_AROUND if self.drop_ahead else 0
        self._drop_pages(max(layout.offset, self._pending - FAULT_AROUND), min(stop, end + ahead))
        self._pending = end

    def _drop_pages(self, start: int, end: int) -> None:
        """Give back the mapped pages of bytes ``start:end`` (whole pages from start's)."""
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        first = start // mmap.PAGESIZE * mmap.PAGESIZE
        size = min(end, len(self._map)) - first
        if size > 0:
            self._map.madvise(mmap.MADV_DONTNEED, first, size)

    def close(self) -> None:
        self._open = False
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def _direct(layout: RawLayout) -> bool:
    """Whether :mod:`~ccdcal.combine.decode` decodes this storage (the common cameras' and
    ccdcal's own): float32 unscaled, or 16-bit integers."""
    if layout.dtype.str == ">f4":
        return layout.bscale == 1.0 and layout.bzero == 0.0
    return layout.dtype.str == ">i2"


def _direct_plane(plane: str, layout: RawLayout) -> bool:
    """Whether a MASK plane (uint16 stored as int16 + BZERO 32768, or bytes) or an UNCERT
    plane (unscaled float32) is read straight from the mapping."""
    if plane == "mask":
        if layout.dtype.str == ">i2":
            return layout.bzero == 32768.0 and layout.bscale == 1.0
        return layout.dtype.str == "|u1" and layout.bzero == 0.0 and layout.bscale == 1.0
    return layout.dtype.str == ">f4" and layout.bscale == 1.0 and layout.bzero == 0.0


def _check_size(path: Path, mapping: mmap.mmap, layout: RawLayout, shape: tuple[int, int]) -> None:
    need = layout.offset + shape[0] * shape[1] * layout.dtype.itemsize
    if len(mapping) < need:
        raise FrameError(path, f"truncated image data ({len(mapping)} bytes, a plane needs {need})")


def _map_pixels(path: Path, layout: RawLayout, shape: tuple[int, int]) -> mmap.mmap:
    """The file mapped read-only, checked to hold the whole image."""
    need = layout.offset + shape[0] * shape[1] * layout.dtype.itemsize
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < need:
            raise FrameError(path, f"truncated image data ({size} bytes, the image needs {need})")
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


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
            raise ValueError(f"input {index}: an image is 2-D, got an array of shape {array.shape}")
        if array.dtype.kind not in "uif":
            raise TypeError(f"input {index}: expected a real numeric array, not {array.dtype}")
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
    if isinstance(item, Frame):
        return FrameSource(item, index)
    if isinstance(item, str | os.PathLike):
        return FileSource(item)
    if isinstance(item, np.ndarray):
        return ArraySource(item, index)
    raise TypeError(
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
        raise TypeError("inputs must be a sequence of files, arrays or Frames, not a single one")
    items = list(inputs)
    if not items:
        raise ValueError("combine needs at least one input; got an empty sequence")
    sources: list[Source] = []
    try:
        for index, item in enumerate(items):
            source = _make_source(item, index)
            sources.append(source)
            first = sources[0]
            if source.shape != first.shape:
                raise ValueError(
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
            raise ValueError(f"memory_limit: cannot read {value!r} as a size (e.g. '2GB', '512M')")
        number = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        number = float(value)
    if not number > 0:
        raise ValueError(f"memory_limit must be positive, not {value!r}")
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
) -> int:
    """Rows per band so that outputs plus band buffers stay within ``memory_limit`` bytes.

    Counted: the output planes, the rejection cube when kept, the open files' headers, the
    band buffers of all ``n`` frames (data, mask, variance), and two frames' bands being
    read (raw + float32).

    Examples
    --------
    >>> plan_rows(20, (2048, 2048), memory_limit=2**30, has_mask=False,
    ...           has_variance=False, keep_rejected=False)
    118
    """
    ny, nx = shape
    fixed, per_row = _costs(n, shape, has_mask, has_variance, keep_rejected, in_place, open_files)
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
) -> tuple[int, int]:
    """(bytes whatever the band height, bytes per band row)."""
    ny, nx = shape
    fixed = ny * nx * OUTPUT_BYTES_PER_PIXEL + (n * ny * nx if keep_rejected else 0)
    fixed += open_files * OPEN_FILE_BYTES
    if in_place:
        return fixed, 0
    per_row = n * nx * (4 + (2 if has_mask else 0) + (4 if has_variance else 0))
    per_row += 2 * nx * (8 + 4 + (2 if has_mask else 0) + (8 if has_variance else 0))
    return fixed, per_row


def used_bytes(
    n: int,
    shape: tuple[int, int],
    rows: int,
    has_mask: bool,
    has_variance: bool,
    keep_rejected: bool,
    open_files: int,
) -> int:
    """Memory of a combine with bands of ``rows`` rows (as :func:`plan_rows` counts it)."""
    fixed, per_row = _costs(n, shape, has_mask, has_variance, keep_rejected, False, open_files)
    return fixed + rows * per_row


Band = tuple[int, int, np.ndarray, np.ndarray, np.ndarray]


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
) -> Iterator[Band]:
    """Row bands of every source, as (y0, rows, data, mask, variance) buffers (n, rows, nx).

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
    last: tuple[Any, ...] = ()
    for y0 in range(start, stop, rows):
        y1 = min(stop, y0 + rows)
        r = y1 - y0
        for i, source in enumerate(sources):
            mask, var, data = source.read_into(y0, y1, buf[i])
            # the previous frame's arrays are freed only now, after this read allocated its
            # own: freeing first lets malloc return the memory to the system and fault it
            # back in at every read (2-3x slower reading)
            last = (data, mask, var)
            if any_mask:
                if mask is None:
                    mbuf[i, :r] = 0
                else:
                    mbuf[i, :r] = mask
                    if all_mask:
                        out_mask[y0 - start : y1 - start] &= mask
            if use_var:
                vbuf[i, :r] = var
            if y1 == stop:
                source.close()
        yield y0, r, buf, mbuf, vbuf
    del last


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
    "used_bytes",
]
