"""FITS image sections (BIASSEC, TRIMSEC, DATASEC) to and from numpy slices.

A FITS/IRAF section names a rectangle as ``[x1:x2,y1:y2]``: **1-based**, both ends
**inclusive**, **x (NAXIS1, columns) first**. A numpy array of the same image is indexed
``data[y, x]`` from 0 with the end excluded, so ``[18:1382,1:1370]`` is
``data[0:1370, 17:1382]``.

Accepted forms, spaces allowed anywhere: ``[x1:x2,y1:y2]``, ``*`` for a whole axis
(``[*,1:100]``), a single line (``[5,*]``), and reversed ranges (``[100:1,1:10]``,
``[-*,*]``), which are normalized to ascending order because a section here only selects
pixels. Steps (``[1:100:2,*]``) are refused.

Examples
--------
>>> parse_section("[18:1382,1:1370]")
(slice(0, 1370, None), slice(17, 1382, None))
>>> parse_section("[1538:1541, 1:1024]", shape=(1024, 1542))
(slice(0, 1024, None), slice(1537, 1541, None))
>>> format_section(slice(0, 1370), slice(17, 1382))
'[18:1382,1:1370]'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from .errors import CcdcalError, CcdcalTypeError, FrameError

#: a numpy section: (rows, columns)
Section = tuple[slice, slice]

#: the section keywords ccdcal reads from headers
SECTION_KEYWORDS = ("BIASSEC", "TRIMSEC", "DATASEC")

_FORM = "expected '[x1:x2,y1:y2]' (FITS: 1-based, inclusive, x first; '*' for a whole axis)"
_OUTER = re.compile(r"^\s*\[(?P<x>[^,\[\]]*),(?P<y>[^,\[\]]*)\]\s*$")
_RANGE = re.compile(r"^\s*(?P<a>[+-]?\d+)\s*(?::\s*(?P<b>[+-]?\d+)\s*)?$")
_UNITS = {"x": "columns", "y": "rows"}
_WHOLE = re.compile(r"^\s*-?\*\s*$")


class SectionError(CcdcalError):
    """A section text that is malformed or does not fit the image.

    Attributes
    ----------
    text
        The section as given.
    headline
        ``"malformed section"`` or ``"section out of range"``.
    detail
        What is wrong.
    """

    def __init__(self, text: str, headline: str, detail: str) -> None:
        self.text = text
        self.headline = headline
        self.detail = detail
        super().__init__(f"{headline} {text!r}: {detail}")

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        # rebuilt from its parts when it crosses from a worker process (pickle)
        return type(self), (self.text, self.headline, self.detail)


def _axis(part: str, text: str, name: str, length: int | None) -> slice:
    """One axis: ``*`` or ``a:b`` or ``a`` (1-based, inclusive) to a 0-based slice."""
    if _WHOLE.match(part):
        return slice(None) if length is None else slice(0, length)
    m = _RANGE.match(part)
    if m is None:
        if part.count(":") > 1:
            raise SectionError(text, "malformed section", f"steps are not supported ({_FORM})")
        raise SectionError(text, "malformed section", _FORM)
    a = int(m["a"])
    b = int(m["b"]) if m["b"] is not None else a
    lo, hi = min(a, b), max(a, b)
    if lo < 1:
        raise SectionError(
            text, "malformed section", f"{name} starts at {lo}; FITS pixels are numbered from 1"
        )
    if length is not None and hi > length:
        raise SectionError(
            text,
            "section out of range",
            f"{name} runs to {hi} but the image has {length} {_UNITS[name]}",
        )
    return slice(lo - 1, hi)


def parse_section(text: str, *, shape: tuple[int, int] | None = None) -> Section:
    """Parse a FITS section such as ``[1:1536, 1:1024]`` into numpy ``(y, x)`` slices.

    Parameters
    ----------
    text
        The section: 1-based, inclusive, x first; ``*`` for a whole axis; reversed ranges
        are normalized to ascending order.
    shape
        ``(ny, nx)`` of the image; when given, the section must lie inside it and ``*``
        becomes the full range. Without it ``*`` becomes ``slice(None)``.

    Returns
    -------
    tuple of slice
        ``(rows, columns)`` to index ``data[rows, columns]``.

    Raises
    ------
    SectionError
        (a ``ValueError``) naming the text when it is malformed or outside ``shape``.

    Examples
    --------
    >>> parse_section("[*, 1:100]")
    (slice(0, 100, None), slice(None, None, None))
    >>> parse_section("[100:1,10:1]")
    (slice(0, 10, None), slice(0, 100, None))
    >>> parse_section("[1:10]")
    Traceback (most recent call last):
    ...
    ccdcal.sections.SectionError: malformed section '[1:10]': expected '[x1:x2,y1:y2]' (FITS: 1-based, inclusive, x first; '*' for a whole axis)
    """  # noqa: E501
    if not isinstance(text, str):
        raise CcdcalTypeError(
            f"a section is a string such as '[1:100,1:50]', not {type(text).__name__}"
        )
    m = _OUTER.match(text)
    if m is None:
        raise SectionError(text, "malformed section", _FORM)
    ny, nx = (None, None) if shape is None else (int(shape[0]), int(shape[1]))
    xs = _axis(m["x"], text, "x", nx)
    ys = _axis(m["y"], text, "y", ny)
    return ys, xs


def _fits_range(s: slice, name: str, length: int | None) -> str:
    if s.step not in (None, 1):
        raise CcdcalError(f"a FITS section has no step; {name} slice has step {s.step}")
    start = 0 if s.start is None else s.start
    if start < 0 or (s.stop is not None and s.stop < 0):
        raise CcdcalError(f"negative {name} slice {s} cannot be written as a FITS section")
    if s.stop is None:
        if length is None:
            if start == 0:
                return "*"
            raise CcdcalError(f"{name} slice {s} is open-ended; pass shape to write it")
        stop = length
    else:
        stop = s.stop if length is None else min(s.stop, length)
    if stop <= start:
        raise CcdcalError(f"{name} slice {s} is empty")
    return f"{start + 1}:{stop}"


def format_section(yslice: slice, xslice: slice, *, shape: tuple[int, int] | None = None) -> str:
    """Write numpy ``(y, x)`` slices as a FITS section ``[x1:x2,y1:y2]``; inverse of
    :func:`parse_section`.

    Parameters
    ----------
    yslice, xslice
        Rows and columns, 0-based with the end excluded; step 1.
    shape
        ``(ny, nx)``, to resolve open ends; without it an axis open at both ends is ``*``.

    Examples
    --------
    >>> format_section(slice(0, 1024), slice(1537, 1541))
    '[1538:1541,1:1024]'
    >>> format_section(slice(None), slice(0, 10))
    '[1:10,*]'
    >>> format_section(slice(5, None), slice(None), shape=(20, 30))
    '[1:30,6:20]'
    """
    ny, nx = (None, None) if shape is None else (int(shape[0]), int(shape[1]))
    return f"[{_fits_range(xslice, 'x', nx)},{_fits_range(yslice, 'y', ny)}]"


def header_section(
    header: Mapping[str, Any],
    key: str,
    path: str | os.PathLike[str],
    shape: tuple[int, int] | None = None,
) -> Section | None:
    """The section stored under ``key`` (BIASSEC, TRIMSEC, DATASEC) in a header, parsed.

    Parameters
    ----------
    header
        A FITS header (or any mapping of keywords).
    key
        The keyword.
    path
        The file the header belongs to, for the error message.
    shape
        ``(ny, nx)`` of the image, to check the section against.

    Returns
    -------
    tuple of slice or None
        ``None`` when the keyword is absent or blank.

    Raises
    ------
    FrameError
        Naming the file and the keyword when the value is malformed or out of range.

    Examples
    --------
    >>> header_section({"TRIMSEC": "[1:1536, 1:1024]"}, "TRIMSEC", "a.fits")
    (slice(0, 1024, None), slice(0, 1536, None))
    >>> header_section({}, "BIASSEC", "a.fits") is None
    True
    >>> header_section({"BIASSEC": "[1538:1541]"}, "BIASSEC", "a.fits")
    Traceback (most recent call last):
    ...
    ccdcal.errors.FrameError: a.fits: BIASSEC = '[1538:1541]': malformed section: expected '[x1:x2,y1:y2]' (FITS: 1-based, inclusive, x first; '*' for a whole axis)
    """  # noqa: E501
    value = header.get(key)
    if value is None or type(value).__name__ == "Undefined":
        return None
    if not isinstance(value, str):
        raise FrameError(path, f"{key} = {value!r}: malformed section: {_FORM}")
    if not value.strip():
        return None
    try:
        return parse_section(value, shape=shape)
    except SectionError as err:
        raise FrameError(path, f"{key} = {value.strip()!r}: {err.headline}: {err.detail}") from err


def is_none(value: object) -> bool:
    """Whether an option says "none" (any case), as a section or a step may.

    Examples
    --------
    >>> is_none(" None "), is_none(None)
    (True, False)
    """
    return isinstance(value, str) and value.strip().casefold() == "none"


def section_of(frame: Any, value: str | Section | None, key: str) -> Section | None:
    """The numpy (y, x) section of ``frame`` (a :class:`~ccdcal.frame.Frame`, or anything
    with its ``header``, ``shape`` and ``name``) from an explicit value or its header's
    ``key``; ``"none"`` means no section, whatever the header says.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> f = SimpleNamespace(header={"TRIMSEC": "[2:4,1:3]"}, shape=(4, 6), name="f.fits")
    >>> section_of(f, None, "TRIMSEC"), section_of(f, "none", "TRIMSEC")
    ((slice(0, 3, None), slice(1, 4, None)), None)
    """
    if is_none(value):
        return None
    if value is None:
        text = frame.header.get(key)
        if not text or not str(text).strip():
            return None
        value = str(text)
    if isinstance(value, str):
        try:
            return parse_section(value, shape=frame.shape)
        except ValueError as err:
            raise CcdcalError(f"{frame.name}: {key} = {value!r}: {err}") from err
    return value


__all__ = [
    "SECTION_KEYWORDS",
    "Section",
    "SectionError",
    "format_section",
    "header_section",
    "is_none",
    "parse_section",
    "section_of",
]
