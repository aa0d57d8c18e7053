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
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .classify import ALL_KINDS, FITS_SUFFIXES, FrameInfo, _text, classify
from .config import Config
from .errors import CcdcalError, FrameError
from .fitsio import ImageReader, find_image_hdu, open_fits
from .process_state import catching_warnings
from .wording import plural

PathLike = str | os.PathLike[str]


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
                # a broken or looping link is listed too: it is reported as unreadable;
                # a link to something that is not a file (a FIFO would block) is not
                broken = p.is_symlink() and not p.exists()
                if broken or p.is_file():
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


#: cards that are read whatever the configuration: the image's layout and its sections
_LAYOUT = ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BZERO",
           "BSCALE", "BLANK", "BIASSEC", "TRIMSEC", "DATASEC", "BUNIT")  # fmt: skip


def _parse_cards(header: Any, path: Path, config: Config | None) -> None:
    """Parse now the cards ccdcal reads (the layout's and the configured keywords'), so
    that one that cannot be read is a FrameError naming it, not an exception from deep
    inside a later step. Other cards are a camera's own business and are left as they are
    (an unquoted vendor string is common in older files)."""
    from astropy.io.fits.verify import VerifyError

    kw = (config or Config()).keywords
    wanted = {*_LAYOUT, *(k for name in fields(kw) for k in getattr(kw, name.name))}
    for card in header.cards:
        if card.keyword not in wanted:
            continue
        try:
            card.value  # noqa: B018 - parsing is what is checked
        except (VerifyError, ValueError) as err:
            what = ("holds characters that are not printable ASCII"
                    if "printable" in str(err) else "cannot be parsed")  # fmt: skip
            raise FrameError(path, f"header card {card.keyword!r} {what}; repair the "
                                   "file (astropy: hdul.verify('fix'))") from err  # fmt: skip
        value = card.value
        if isinstance(value, str) and not value.isprintable():
            raise FrameError(path, f"header card {card.keyword} holds non-printable bytes "
                                   f"({value!r}); repair the file")  # fmt: skip


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
    if p.is_symlink() and not p.exists():
        try:
            target = os.readlink(p)
            p.resolve(strict=True)
            problem = f"broken symbolic link (to {target})"
        except RuntimeError:
            problem = "symbolic link loop"
        except OSError as err:
            problem = ("symbolic link loop" if getattr(err, "errno", None) == 40
                       else f"broken symbolic link (to {target})")  # fmt: skip
        return FrameInfo(path=p, kind="unreadable", reason="unreadable", error=problem)
    base = Path(root) if root is not None else p.parent
    try:
        rel = p.relative_to(base).as_posix()
    except ValueError:
        rel = p.name
    try:
        with catching_warnings():
            # raw headers are often not quite standard; their warnings are no use here
            warnings.simplefilter("ignore")
            with open_fits(p) as hdul:
                index = find_image_hdu(hdul, p)
                headers = [hdul[index].header]
                if index != 0:
                    headers.append(hdul[0].header)
                for header in headers:
                    _parse_cards(header, p, config)
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


def _why(info: FrameInfo) -> str:
    """How a frame was classified, then where each detector number came from."""
    names = (("exptime", "exposure"), ("filter", "filter"), ("gain", "gain"),
             ("rdnoise", "read noise"), ("saturation", "saturation"))  # fmt: skip
    came = [f"{label} {info.sources[name]}" for name, label in names if name in info.sources]
    if "gain" not in info.sources and info.kind != "unknown":
        came.append("gain none" if info.gain_unsure is None else
                    f"gain none ({info.gain_unsure[0]} unsure)")  # fmt: skip
    if "saturation" not in info.sources and info.kind != "unknown":
        came.append("saturation none (the ADC's ceiling where reached)")
    return info.reason + (f"; values: {', '.join(came)}" if came else "")


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
            raise CcdcalError(f"kind must be one of {', '.join(ALL_KINDS)}, not {kind!r}")
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
                row.append(f.error if f.error is not None else _why(f))
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
        lines = [f"{plural(len(self.frames), 'file')} in {self.root}"]
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
