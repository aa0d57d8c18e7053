"""Classifying one frame from its header: kind, exposure, filter, object and detector values.

Every value says where it came from (``FrameInfo.reason``), so that ``ccdcal info --why``
can show how a file was understood.

Examples
--------
>>> info = classify({"IMAGETYP": "Flat Field", "EXPTIME": 3, "FILTNAME": "V"})
>>> info.kind, info.filter, info.exptime
('flat', 'V', 3.0)
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import KINDS, Config, normalize_type
from .errors import CcdcalError
from .sections import Section, header_section

PathLike = str | os.PathLike[str]

#: file name endings taken as FITS (compared without regard to case)
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz", ".fz")

#: every kind a FrameInfo can have
ALL_KINDS = (*KINDS, "unknown", "unreadable")

#: words that name a kind inside an unlisted type value ("Twilight Flats", "Master Bias");
#: light words must start a word, so that twiLIGHT is no light
_WORDS = (
    ("flat", "flat", re.compile("flat")),
    ("bias", "bias", re.compile("bias")),
    ("zero", "bias", re.compile("zero")),
    ("dark", "dark", re.compile("dark")),
    ("light", "light", re.compile(r"\blight")),
    ("object", "light", re.compile(r"\bobject")),
    ("science", "light", re.compile(r"\bscience")),
)


# ---------------------------------------------------------------------------- FrameInfo
@dataclass(frozen=True)
class FrameInfo:
    """What the header of one file says, as classified by ccdcal.

    Attributes
    ----------
    path
        The file.
    kind
        ``"bias"``, ``"dark"``, ``"flat"``, ``"light"``, ``"unknown"`` or ``"unreadable"``.
    exptime
        Exposure time in seconds, or None when the header has none.
    filter
        Filter name (whitespace normalized), or None; None for bias and dark frames.
    object
        Object name, or None.
    shape
        ``(ny, nx)`` of the image, or None when unreadable.
    dtype
        Storage type of the pixels as numpy names it after BZERO/BSCALE (``"uint16"`` for
        BITPIX 16 with BZERO 32768, ``"uint8"``, ``"float32"``, ...).
    gain, rdnoise, saturation
        e-/ADU, e- and ADU from the header, or None.
    date_obs
        Start of the observation as written (date and, where separate, time joined by T).
    biassec, trimsec, datasec
        The section keywords as written (parse with :meth:`section`).
    imagetyp
        The image-type value the kind came from, as written.
    hdu
        Index of the image HDU in the file.
    reason
        How the frame was classified, in a few words.
    error
        None, or the problem that makes the file unreadable.
    sources
        Where each value came from: ``{"gain": "CCDSENS = 1.43", "filter": "rule 2", ...}``
        for exptime, filter, object, gain, rdnoise and saturation (absent: no value).
    gain_unsure
        ``(keyword, value)`` of a gain keyword whose meaning varies between cameras
        (``[keywords] gain_unsure``, such as CCDGAIN), not used as the gain unless the
        flats' measured gain agrees; None otherwise.
    """

    path: Path
    kind: str
    exptime: float | None = None
    filter: str | None = None
    object: str | None = None
    shape: tuple[int, int] | None = None
    dtype: str | None = None
    gain: float | None = None
    rdnoise: float | None = None
    saturation: float | None = None
    date_obs: str | None = None
    biassec: str | None = None
    trimsec: str | None = None
    datasec: str | None = None
    imagetyp: str | None = None
    hdu: int = 0
    reason: str = ""
    error: str | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    gain_unsure: tuple[str, float] | None = None

    @property
    def name(self) -> str:
        """The file name."""
        return self.path.name

    @property
    def ok(self) -> bool:
        """True when the file could be read."""
        return self.error is None

    def section(self, key: str) -> Section | None:
        """A section keyword (``"biassec"``, ``"trimsec"``, ``"datasec"``) as numpy slices.

        Raises :class:`~ccdcal.errors.FrameError` naming the file and keyword when malformed
        or outside the image; returns None when absent.

        Examples
        --------
        >>> info = FrameInfo(Path("a.fits"), "bias", shape=(10, 20), trimsec="[1:16,1:10]")
        >>> info.section("trimsec")
        (slice(0, 10, None), slice(0, 16, None))
        """
        name = key.lower()
        if name not in ("biassec", "trimsec", "datasec"):
            raise CcdcalError(f"key must be biassec, trimsec or datasec, not {key!r}")
        return header_section(
            {name.upper(): getattr(self, name)}, name.upper(), self.path, self.shape
        )


# ---------------------------------------------------------------------------- header reading
class _Lookup:
    """Keyword values from the image header, then the primary header; blanks count as absent."""

    def __init__(self, headers: Sequence[Mapping[str, Any]]) -> None:
        self.headers = headers

    def get(self, key: str) -> Any:
        for header in self.headers:
            try:
                value = header.get(key)
            except (KeyError, ValueError):
                continue
            if value is None or type(value).__name__ == "Undefined":
                continue
            if isinstance(value, str) and not value.strip():
                continue
            return value
        return None

    def first(self, keys: Sequence[str]) -> tuple[str, Any] | tuple[None, None]:
        for key in keys:
            value = self.get(key)
            if value is not None:
                return key, value
        return None, None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        v = float(value)
    else:
        text = re.sub(r"\s*(s|sec|secs|seconds)\s*$", "", str(value).strip(), flags=re.I)
        try:
            v = float(text)
        except ValueError:
            return None
    return v if math.isfinite(v) else None


def _text(value: Any) -> str:
    return " ".join(str(value).split())


def _number(
    look: _Lookup, keys: Sequence[str], what: str, notes: list[str], *, zero_ok: bool
) -> tuple[float | None, str | None]:
    """The first usable number among ``keys``; notes values that are not usable."""
    for key in keys:
        value = look.get(key)
        if value is None:
            continue
        v = _as_float(value)
        if v is None:
            notes.append(f"{key}={value!r} is not a number")
        elif v < 0 or (v == 0 and not zero_ok):
            notes.append(f"{key}={value!r} is not a valid {what}")
        else:
            return v, key
    return None, None


#: filter-wheel values that mean no filter in that wheel (of two)
_NO_FILTER = frozenset({"open", "clear", "empty", "none", "air", "blank", "-", "c", "0"})
#: words of a flat's OBJECT that do not name its filter ("V twil flat", "Flat R dome")
_FLAT_WORDS = frozenset(
    ("flat", "flats", "field", "twil", "twilight", "sky", "dome", "domeflat", "skyflat",
     "evening", "morning", "dusk", "dawn", "lamp", "screen", "am", "pm", "frame", "test")
)  # fmt: skip


def _filter(look: _Lookup, keys: Sequence[str]) -> tuple[str | None, str | None]:
    """The filter and the keyword(s) it came from; two wheels (FILTER1, FILTER2) combine."""
    key, value = look.first(keys)
    if key is None:
        return None, None
    if key in ("FILTER1", "FILTER2"):
        wheels = [(k, _text(look.get(k))) for k in ("FILTER1", "FILTER2") if look.get(k)]
        used = [(k, v) for k, v in wheels if v.casefold() not in _NO_FILTER]
        if not used:
            return wheels[0][1], wheels[0][0]
        return "+".join(v for _, v in used), "+".join(k for k, _ in used)
    return _text(value), key


#: the largest value of each ADC a camera may have, and its (bits, left shift in 16 bits):
#: 12-, 14- and 16-bit, and shifted as CMOS cameras store 12-bit values (4095 << 4 = 65520)
ADC_CEILINGS: Mapping[int, tuple[int, int]] = {
    ((1 << bits) - 1) << shift: (bits, shift) for bits in (12, 14, 16) for shift in range(17 - bits)
}


def is_adc_ceiling(value: float) -> bool:
    """Whether ``value`` is the largest value of a 12-, 14- or 16-bit ADC, or of one stored
    shifted left in 16 bits (4095, 16383, 65535, 65520, ...).

    Examples
    --------
    >>> is_adc_ceiling(65535), is_adc_ceiling(65520), is_adc_ceiling(60211)
    (True, True, False)
    """
    return value in ADC_CEILINGS


def filter_from_object(text: str) -> str | None:
    """The filter a flat's OBJECT names, as the one word that is not about flats, or None.

    Examples
    --------
    >>> [filter_from_object(t) for t in ("V twil flat", "Dome Flat", "flat B 2")]
    ['V', None, 'B']
    """
    words = [w for w in re.split(r"[\s_,;:/()-]+", text) if w]
    if not any("flat" in w.casefold() for w in words):
        return None
    rest = [w for w in words if w.casefold() not in _FLAT_WORDS and not w.isdigit()]
    return rest[0] if len(rest) == 1 and len(rest[0]) <= 8 else None


def _kind(look: _Lookup, config: Config, notes: list[str]) -> tuple[str, str | None]:
    keys = config.keywords.imagetyp
    seen: list[tuple[str, Any]] = []
    for key in keys:
        value = look.get(key)
        if value is None:
            continue
        seen.append((key, value))
        kind = config.type_kind(str(value))
        if kind is not None:
            notes.append(f"{key}={_text(value)!r} -> {kind}")
            return kind, _text(value)
    if not seen:
        notes.append(f"no {'/'.join(keys)} keyword -> unknown")
        return "unknown", None
    for key, value in seen:
        norm = normalize_type(str(value))
        found = {kind: word for word, kind, pattern in _WORDS if pattern.search(norm)}
        if len(found) == 1:
            kind, word = next(iter(found.items()))
            notes.append(f"{key}={_text(value)!r} -> {kind} (contains {word!r})")
            return kind, _text(value)
    key, value = seen[0]
    notes.append(f"{key}={_text(value)!r}: unknown type (map it in [types])")
    return "unknown", _text(value)


def _ccdcal_product(header: Mapping[str, Any]) -> str | None:
    """What ccdcal step made this file (``"master bias"``, ``"calibrate"``), or None for a raw
    frame (the simulator's raw frames, ``ccdcal ... simulate``, are raw)."""
    try:
        if header.get("PIPEKEY") is not None:
            return "PIPEKEY"
        if header.get("CALSTEPS") is not None:
            return "calibrated"
        history = header.get("HISTORY") if hasattr(header, "get") else None
        for card in history or ():
            text = str(card)
            if text.startswith("ccdcal ") and " simulate" not in text[:40]:
                return " ".join(text.split()[2:4]) or "ccdcal"
    except (KeyError, ValueError, TypeError):
        return None
    return None


def _dtype(header: Mapping[str, Any]) -> str | None:
    try:
        bitpix = int(header.get("BITPIX", 0))
        bzero = float(header.get("BZERO", 0) or 0)
        bscale = float(header.get("BSCALE", 1) or 1)
    except (TypeError, ValueError):
        return None
    if bitpix == -32:
        return "float32"
    if bitpix == -64:
        return "float64"
    if bitpix not in (8, 16, 32, 64):
        return None
    signed = {8: "int8", 16: "int16", 32: "int32", 64: "int64"}[bitpix]
    unsigned = "u" + signed if bitpix != 8 else "uint8"
    native = "uint8" if bitpix == 8 else signed
    offset = float(1 << (bitpix - 1))
    if bscale == 1.0 and bzero == 0.0:
        return native
    if bscale == 1.0 and bitpix != 8 and bzero == offset:
        return unsigned
    if bscale == 1.0 and bitpix == 8 and bzero == -offset:
        return "int8"
    return "float32" if bitpix <= 16 else "float64"


def _shape(header: Mapping[str, Any]) -> tuple[int, int] | None:
    try:
        return int(header["NAXIS2"]), int(header["NAXIS1"])
    except (KeyError, TypeError, ValueError):
        return None


def classify(
    header: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    path: PathLike = "<header>",
    relpath: str | None = None,
    config: Config | None = None,
    hdu: int = 0,
) -> FrameInfo:
    """Classify one frame from its header(s); no file is read.

    Parameters
    ----------
    header
        The image HDU's header, or several headers searched in order (the image HDU's
        first, then the primary HDU's).
    path
        The file, recorded in the result.
    relpath
        Path used by the ``path`` globs of rules (default: the file name).
    config
        Keywords, types and rules; default :class:`~ccdcal.config.Config()`.
    hdu
        Index of the image HDU, recorded in the result.

    Examples
    --------
    >>> info = classify({"IMAGETYP": "Bias Frame", "FILTER": "R", "NAXIS1": 8, "NAXIS2": 4,
    ...                  "BITPIX": 8})
    >>> info.kind, info.filter, info.shape, info.dtype
    ('bias', None, (4, 8), 'uint8')
    >>> info.reason
    "IMAGETYP='Bias Frame' -> bias; FILTER='R' ignored for bias"
    """
    cfg = config or Config()
    kw = cfg.keywords
    headers = [header] if isinstance(header, Mapping) else list(header)
    look = _Lookup(headers)
    p = Path(path)
    rel = relpath if relpath is not None else p.name
    notes: list[str] = []

    kind, imagetyp = _kind(look, cfg, notes)
    made_by = _ccdcal_product(headers[0])
    if made_by is not None:  # an earlier run's output copied among the raw frames
        notes[:] = [f"a ccdcal product ({made_by}), not a raw frame: not used"]
        kind = "unknown"
    exptime, exp_key = _number(look, kw.exptime, "exposure time", notes, zero_ok=True)
    filt, filt_key = _filter(look, kw.filter)
    obj_key, obj_value = look.first(kw.object)
    obj = _text(obj_value) if obj_key is not None else None
    if filt is None and kind == "flat" and obj is not None:
        filt = filter_from_object(obj)
        if filt is not None:
            filt_key = obj_key
            notes.append(f"filter {filt!r} from {obj_key}={obj!r} (no filter keyword)")
    gain, gain_key = _number(look, kw.gain, "gain", notes, zero_ok=False)
    unsure = None
    if gain is None:
        unsure_value, unsure_key = _number(look, kw.gain_unsure, "gain", notes, zero_ok=False)
        if unsure_key is not None and unsure_value is not None:
            unsure = (unsure_key, unsure_value)
            notes.append(
                f"{unsure_key}={unsure_value:g} not taken as the gain: e-/ADU on some cameras "
                "only (used where the flats' measured gain agrees)"
            )
    rdnoise, rn_key = _number(look, kw.rdnoise, "read noise", notes, zero_ok=True)
    saturation, sat_key = _number(look, kw.saturation, "saturation level", notes, zero_ok=False)
    if sat_key == "DATAMAX" and saturation is not None and not is_adc_ceiling(saturation):
        # many writers put the frame's own largest value there, not the ADC's limit
        notes.append(f"DATAMAX={saturation:g} is not an ADC's ceiling: not the saturation")
        saturation, sat_key = None, None
    date_key, date_value = look.first(kw.date)
    date_obs = _text(date_value) if date_key is not None else None
    if date_obs is not None and "T" not in date_obs:
        time_key, time_value = look.first(kw.time)
        if time_key is not None:
            date_obs = f"{date_obs}T{_text(time_value)}"

    values: dict[str, Any] = {
        "kind": kind,
        "filter": filt,
        "object": obj,
        "exptime": exptime,
        "gain": gain,
        "rdnoise": rdnoise,
        "saturation": saturation,
    }
    origin: dict[str, str] = {}
    found = (("exptime", exp_key), ("filter", filt_key), ("object", obj_key),
             ("gain", gain_key), ("rdnoise", rn_key), ("saturation", sat_key))  # fmt: skip
    for name, key in found:
        if key is not None and values[name] is not None:
            shown = values[name] if isinstance(values[name], str) else f"{values[name]:g}"
            origin[name] = f"{key} = {shown}"
    if filt_key is not None and filt_key == obj_key:
        origin["filter"] = f"{obj_key} = {obj!r}"
    set_by_rule: set[str] = set()
    for number, rule in enumerate(cfg.rules, start=1):
        if rule.matches(rel, look.get):
            values.update(rule.changes)
            set_by_rule.update(rule.changes)
            origin.update({k: f"rule {number}" for k in rule.changes})
            changes = ", ".join(f"{k}={v!r}" for k, v in rule.changes.items())
            notes.append(f"rule {number} ({rule.describe()}) set {changes}")
    if "gain" in set_by_rule:
        unsure = None
    sources = [("exptime", exp_key, kw.exptime), ("filter", filt_key, kw.filter)]
    sources.append(("object", obj_key, kw.object))
    for name, key, keys in sources:
        if key is None or name in set_by_rule:
            continue
        if name == "filter" and values["kind"] in ("bias", "dark"):
            notes.append(f"{key}={filt!r} ignored for {values['kind']}")
            values["filter"] = None
            origin.pop("filter", None)
        elif key != keys[0] and not (name == "filter" and key == obj_key):
            notes.append(f"{name} from {key} (no {keys[0]})")
    if values["kind"] in ("light", "dark", "flat") and values["exptime"] is None:
        notes.append(f"no exposure time ({', '.join(kw.exptime)})")
    if values["kind"] == "light" and values["object"] is None:
        notes.append(f"no object ({', '.join(kw.object)})")

    sections: dict[str, Any] = {}
    for key in ("BIASSEC", "TRIMSEC", "DATASEC"):
        value = look.get(key)
        sections[key.lower()] = None if value is None else str(value).strip()
    return FrameInfo(
        path=p,
        shape=_shape(headers[0]),
        dtype=_dtype(headers[0]),
        date_obs=date_obs,
        imagetyp=imagetyp,
        hdu=hdu,
        reason="; ".join(notes),
        sources=origin,
        gain_unsure=unsure,
        **values,
        **sections,
    )


__all__ = ["ALL_KINDS", "FITS_SUFFIXES", "FrameInfo", "classify"]
