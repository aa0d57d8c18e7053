"""Find the FITS frames in a folder, classify them from their headers, and group them.

:func:`scan` reads only headers (never pixel data), so it is quick on a whole night. Each
file becomes one :class:`FrameInfo`: its kind (bias, dark, flat, light, unknown, or
unreadable), exposure time, filter, object, image size and storage type, detector values
from the header, and ``reason``, a short account of how it was classified. A file that
cannot be read is kept, with kind ``"unreadable"`` and its problem in ``error``: a scan never
fails because of one bad file.

Classification (keywords and values as set in :mod:`ccdcal.config`):

- kind: the first image-type keyword (IMAGETYP, OBSTYPE, FRAMETYP, FRAME) whose value is a
  known type (``[types]`` and the built-ins); otherwise a value that contains exactly one
  of *bias*/*zero*, *dark*, *flat*, *light*/*object*/*science*; otherwise ``"unknown"``.
- exposure time, filter, object, gain, read noise, saturation, date: the first keyword of
  each list that holds a usable value; strings such as ``'30'`` become numbers.
- bias and dark frames carry no filter (a filter wheel position in their header is noted
  in ``reason`` and ignored), unless a rule sets one.
- ``[[rules]]`` of the configuration then correct any of these per file.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from astropy.io import fits
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> hdr = fits.Header({"IMAGETYP": "SKYFLAT", "FILTNAME": "VR", "EXPTIME": 4.5})
>>> fits.PrimaryHDU(np.zeros((4, 6), np.uint16), header=hdr).writeto(d / "f.fits")
>>> c = scan(d)
>>> f = c.frames[0]
>>> f.kind, f.filter, f.exptime, f.shape, f.dtype
('flat', 'VR', 4.5, (4, 6), 'uint16')
>>> f.reason
"IMAGETYP='SKYFLAT' -> flat; filter from FILTNAME (no FILTER)"
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .config import KINDS, Config, normalize_type
from .errors import CcdcalError, FrameError
from .fitsio import ImageReader, find_image_hdu, open_fits
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
            raise ValueError(f"key must be biassec, trimsec or datasec, not {key!r}")
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
    exptime, exp_key = _number(look, kw.exptime, "exposure time", notes, zero_ok=True)
    filt_key, filt_value = look.first(kw.filter)
    filt = _text(filt_value) if filt_key is not None else None
    obj_key, obj_value = look.first(kw.object)
    obj = _text(obj_value) if obj_key is not None else None
    gain, _ = _number(look, kw.gain, "gain", notes, zero_ok=False)
    rdnoise, _ = _number(look, kw.rdnoise, "read noise", notes, zero_ok=True)
    saturation, _ = _number(look, kw.saturation, "saturation level", notes, zero_ok=False)
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
    set_by_rule: set[str] = set()
    for number, rule in enumerate(cfg.rules, start=1):
        if rule.matches(rel, look.get):
            values.update(rule.changes)
            set_by_rule.update(rule.changes)
            changes = ", ".join(f"{k}={v!r}" for k, v in rule.changes.items())
            notes.append(f"rule {number} ({rule.describe()}) set {changes}")
    sources = [("exptime", exp_key, kw.exptime), ("filter", filt_key, kw.filter)]
    sources.append(("object", obj_key, kw.object))
    for name, key, keys in sources:
        if key is None or name in set_by_rule:
            continue
        if name == "filter" and values["kind"] in ("bias", "dark"):
            notes.append(f"{key}={filt!r} ignored for {values['kind']}")
            values["filter"] = None
        elif key != keys[0]:
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
        **values,
        **sections,
    )


# ---------------------------------------------------------------------------- scanning
def is_fits_name(name: str) -> bool:
    """True for a name ending in a FITS suffix (:data:`FITS_SUFFIXES`), any case.

    Examples
    --------
    >>> is_fits_name("a.FIT.gz"), is_fits_name("a.fits.fz"), is_fits_name("a.txt")
    (True, True, False)
    """
    return name.lower().endswith(FITS_SUFFIXES)


def find_fits(folder: PathLike, *, recursive: bool = True) -> list[Path]:
    """The FITS files in ``folder`` (and below), sorted by relative path.

    Hidden files and folders (names starting with ``.``) are skipped.
    """
    root = Path(folder)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if not recursive:
            dirnames[:] = []
        for name in filenames:
            if not name.startswith(".") and is_fits_name(name):
                p = Path(dirpath) / name
                if p.is_file():
                    found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read_through(path: Path) -> None:
    """Read every pixel of the image once; FrameError when the data are corrupt."""
    try:
        from astropy.io.fits.hdu.compressed._compression import CfitsioException
    except ImportError:  # pragma: no cover - astropy moved it
        CfitsioException = OSError
    try:
        with ImageReader(path, memmap=False) as reader:
            reader.raw_rows()
    except CfitsioException as err:
        raise FrameError(path, f"corrupt compressed image data ({err})") from err


def read_info(
    path: PathLike, *, config: Config | None = None, root: PathLike | None = None,
    verify: bool = False,
) -> FrameInfo:  # fmt: skip
    """Read one file's headers (not its pixels) and classify it; never raises for a bad file.

    Parameters
    ----------
    path
        The FITS file.
    config
        See :func:`classify`.
    root
        Folder the rules' ``path`` globs are relative to; default the file's folder.
    verify
        Also read the pixels through, to find corrupt data that headers do not reveal, such
        as a damaged tile of a ``.fz`` file (slower: decompresses every image). A truncated
        uncompressed or ``.gz`` file is found without it.

    Returns
    -------
    FrameInfo
        With kind ``"unreadable"`` and ``error`` set when the file cannot be read.
    """
    p = Path(path)
    base = Path(root) if root is not None else p.parent
    try:
        rel = p.relative_to(base).as_posix()
    except ValueError:
        rel = p.name
    try:
        with warnings.catch_warnings():
            # raw headers are often not quite standard; their warnings are no use here
            warnings.simplefilter("ignore")
            with open_fits(p) as hdul:
                index = find_image_hdu(hdul, p)
                headers = [hdul[index].header]
                if index != 0:
                    headers.append(hdul[0].header)
                info = classify(headers, path=p, relpath=rel, config=config, hdu=index)
            if verify:
                _read_through(p)
    except FrameError as err:
        return FrameInfo(path=p, kind="unreadable", reason="unreadable", error=err.problem)
    except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError) as err:
        problem = f"unreadable header ({type(err).__name__}: {err})"
        return FrameInfo(path=p, kind="unreadable", reason="unreadable", error=problem)
    return info


def scan(
    folder: PathLike,
    *,
    config: Config | None = None,
    recursive: bool = True,
    verify: bool = False,
) -> Collection:
    """Find and classify every FITS file in a folder, reading headers only.

    Parameters
    ----------
    folder
        The folder; searched recursively unless ``recursive`` is False. Files ending in
        .fits, .fit, .fts (optionally .gz) or .fz, any case; hidden files are skipped.
    config
        Keywords, types and rules (:class:`~ccdcal.config.Config`).
    recursive
        Look into sub-folders.
    verify
        Read every file's pixels through too (see :func:`read_info`).

    Returns
    -------
    Collection
        One :class:`FrameInfo` per file, sorted by relative path; unreadable files included.

    Raises
    ------
    CcdcalError
        When ``folder`` does not exist or is not a folder.
    """
    root = Path(folder)
    if not root.exists():
        raise CcdcalError(f"{root}: no such folder")
    if not root.is_dir():
        raise CcdcalError(f"{root}: not a folder")
    cfg = config or Config()
    frames = tuple(
        read_info(p, config=cfg, root=root, verify=verify)
        for p in find_fits(root, recursive=recursive)
    )
    return Collection(root=root, frames=frames)


# ---------------------------------------------------------------------------- collection
def _same_time(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6)


def _seconds(t: float | None) -> str:
    return "-" if t is None else f"{t:g}"


@dataclass(frozen=True)
class Groups:
    """Frames grouped as a reduction uses them (only readable frames).

    Attributes
    ----------
    bias
        All bias frames.
    darks
        Dark frames by exposure time (frames without one are left out).
    flats
        Flat frames by filter (None: no filter).
    lights
        Light frames by (object, filter).
    """

    bias: tuple[FrameInfo, ...] = ()
    darks: Mapping[float, tuple[FrameInfo, ...]] = field(default_factory=dict)
    flats: Mapping[str | None, tuple[FrameInfo, ...]] = field(default_factory=dict)
    lights: Mapping[tuple[str | None, str | None], tuple[FrameInfo, ...]] = field(
        default_factory=dict
    )


def _by(frames: Sequence[FrameInfo], key: Callable[[FrameInfo], Any]) -> Mapping[Any, tuple]:
    out: dict[Any, list[FrameInfo]] = {}
    for f in frames:
        out.setdefault(key(f), []).append(f)

    def order(k: Any) -> Any:
        parts = k if isinstance(k, tuple) else (k,)
        return tuple((p is None, "" if p is None else p) for p in parts)

    return MappingProxyType({k: tuple(out[k]) for k in sorted(out, key=order)})


@dataclass(frozen=True)
class Collection:
    """The frames found in a folder.

    Attributes
    ----------
    root
        The scanned folder.
    frames
        One :class:`FrameInfo` per file, sorted by path relative to ``root``.
    """

    root: Path
    frames: tuple[FrameInfo, ...] = ()

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[FrameInfo]:
        return iter(self.frames)

    def relative(self, info: FrameInfo) -> str:
        """The frame's path relative to :attr:`root` (POSIX separators)."""
        try:
            return info.path.relative_to(self.root).as_posix()
        except ValueError:
            return str(info.path)

    @property
    def unreadable(self) -> tuple[FrameInfo, ...]:
        """The files that could not be read."""
        return tuple(f for f in self.frames if f.error is not None)

    def of_kind(
        self, kind: str, *, filter: str | None = None, exptime: float | None = None
    ) -> tuple[FrameInfo, ...]:
        """Frames of one kind, optionally of one filter and exposure time (within 1e-6 s).

        Examples
        --------
        >>> c = Collection(Path("."), (FrameInfo(Path("a"), "dark", exptime=30.0),
        ...                            FrameInfo(Path("b"), "dark", exptime=60.0)))
        >>> [f.name for f in c.of_kind("dark", exptime=30)]
        ['a']
        """
        if kind not in ALL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ALL_KINDS)}, not {kind!r}")
        return tuple(
            f
            for f in self.frames
            if f.kind == kind
            and (filter is None or f.filter == _text(filter))
            and (exptime is None or _same_time(f.exptime, float(exptime)))
        )

    def counts(self) -> dict[str, int]:
        """Number of files of each kind, every kind listed."""
        return {k: sum(f.kind == k for f in self.frames) for k in ALL_KINDS}

    def groups(self) -> Groups:
        """Bias set, darks by exposure, flats by filter, lights by (object, filter)."""
        darks = [f for f in self.of_kind("dark") if f.exptime is not None]
        return Groups(
            bias=self.of_kind("bias"),
            darks=_by(darks, lambda f: f.exptime),
            flats=_by(self.of_kind("flat"), lambda f: f.filter),
            lights=_by(self.of_kind("light"), lambda f: (f.object, f.filter)),
        )

    def with_frames(self, frames: Sequence[FrameInfo]) -> Collection:
        """A collection of the same folder with other frames."""
        return replace(self, frames=tuple(frames))

    # ------------------------------------------------------------------ text
    def table(self, *, why: bool = False) -> str:
        """A text table: file, type, exptime, filter, object, size (nx x ny), dtype; with
        ``why`` also the reason of the classification (or the problem of an unreadable file).
        """
        head = ["file", "type", "exptime", "filter", "object", "size", "dtype"]
        if why:
            head.append("why")
        rows = [head]
        for f in self.frames:
            size = "-" if f.shape is None else f"{f.shape[1]}x{f.shape[0]}"
            row = [
                self.relative(f),
                f.kind,
                _seconds(f.exptime),
                f.filter or "-",
                f.object or "-",
                size,
                f.dtype or "-",
            ]
            if why:
                row.append(f.error if f.error is not None else f.reason)
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        right = {2}
        lines = []
        for r in rows:
            cells = [
                c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(r)
            ]
            lines.append("  ".join(cells).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def summary(self) -> str:
        """Counts by type with their exposure times, filters and objects; then unreadable files.

        Examples
        --------
        >>> c = Collection(Path("night"), (FrameInfo(Path("night/a.fits"), "dark", exptime=30),
        ...                                FrameInfo(Path("night/b.fits"), "unreadable",
        ...                                          error="not a FITS file")))
        >>> print(c.summary())
        2 files in night
          dark        1  30 s: 1
          unreadable  1
        unreadable files:
          b.fits: not a FITS file
        """
        counts = self.counts()
        g = self.groups()

        def times(frames: Sequence[FrameInfo]) -> str:
            ts = sorted({f.exptime for f in frames if f.exptime is not None})
            if not ts:
                return ""
            text = f"{ts[0]:g} s" if len(ts) == 1 else f"{ts[0]:g}-{ts[-1]:g} s"
            return f" ({text})"

        detail = {
            "bias": times(g.bias).strip(" ()"),
            "dark": ", ".join(f"{t:g} s: {len(v)}" for t, v in g.darks.items()),
            "flat": ", ".join(
                f"{k or '(no filter)'}: {len(v)}{times(v)}" for k, v in g.flats.items()
            ),
            "light": ", ".join(
                f"{o or '(no object)'} {fl or '(no filter)'}: {len(v)}{times(v)}"
                for (o, fl), v in g.lights.items()
            ),
        }
        lines = [f"{len(self.frames)} files in {self.root}"]
        width = max(len(k) for k in ALL_KINDS)
        digits = len(str(max(counts.values(), default=0)))
        for kind in ALL_KINDS:
            if counts[kind]:
                text = f"  {kind:<{width}}  {counts[kind]:>{digits}}  {detail.get(kind, '')}"
                lines.append(text.rstrip())
        if self.unreadable:
            lines.append("unreadable files:")
            lines += [f"  {self.relative(f)}: {f.error}" for f in self.unreadable]
        return "\n".join(lines)


__all__ = [
    "ALL_KINDS",
    "FITS_SUFFIXES",
    "Collection",
    "FrameInfo",
    "Groups",
    "classify",
    "find_fits",
    "is_fits_name",
    "read_info",
    "scan",
]
