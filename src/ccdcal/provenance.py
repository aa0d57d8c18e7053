"""Provenance: HISTORY cards that say which step made a file, from what, and how.

Examples
--------
>>> from astropy.io import fits
>>> h = fits.Header()
>>> add_history(h, "combine", inputs=["a.fits", "b.fits"], params={"method": "median"})
>>> h["HISTORY"][0].startswith("ccdcal")
True
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterable, Mapping
from typing import Any

from astropy.io import fits

from ._version import __version__

_WIDTH = 70  # a HISTORY card holds 72 characters; keep a margin


def fits_text(text: str) -> str:
    r"""``text`` as a FITS header may hold it: printable ASCII, other characters escaped
    (``naïve.fits`` becomes ``na\xefve.fits``), so that a file name never stops a write.

    Examples
    --------
    >>> print(fits_text("light_naïve.fits"))
    light_na\xefve.fits
    """
    out = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in out)


def _wrap(text: str) -> list[str]:
    text = fits_text(text)
    return [text[i : i + _WIDTH] for i in range(0, len(text), _WIDTH)] or [""]


def add_history(
    header: fits.Header,
    step: str,
    *,
    inputs: Iterable[str | os.PathLike[str]] = (),
    params: Mapping[str, Any] | None = None,
    stamp: bool = True,
) -> None:
    """Record one processing step in ``header`` as HISTORY cards (in place).

    Parameters
    ----------
    header
        The header to extend.
    step
        Name of the step ("combine", "calibrate", "simulate", ...).
    inputs
        Files (or descriptions) the step read; each named on its own card.
    params
        The step's parameters; each written as ``name=value``.
    stamp
        Add the time of writing. The simulator turns it off so that a seed gives
        byte-identical files.

    Examples
    --------
    >>> from astropy.io import fits
    >>> h = fits.Header()
    >>> add_history(h, "calibrate", params={"gain": 1.5})
    >>> any("gain=1.5" in str(c) for c in h["HISTORY"])
    True
    """
    when = _dt.datetime.now(_dt.UTC).strftime(" %Y-%m-%dT%H:%M:%S") if stamp else ""
    header.add_history(fits_text(f"ccdcal {__version__} {step}{when}"))
    for path in inputs:
        for line in _wrap(f"  input: {os.path.basename(os.fspath(path))}"):
            header.add_history(line)
    for key, value in (params or {}).items():
        for line in _wrap(f"  {key}={value}"):
            header.add_history(line)
