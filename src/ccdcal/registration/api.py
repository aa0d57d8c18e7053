"""``register``: each frame's transform onto a reference frame, its quality, and whether to
stack it.

:func:`register` measures every frame once (its stars, seeing, shape, sky), picks the
reference (by default the sharpest frame among those with most stars), matches every frame
to it (by its stars, or through the frames' celestial WCS), and selects the frames worth
stacking. The result, a :class:`Registration`, is a table (``registration.ecsv`` in a
reduction) and says for each frame why it is or is not used.

Examples
--------
>>> import tempfile, ccdcal
>>> tmp = tempfile.mkdtemp()
>>> night = ccdcal.simulate.night(tmp, seed=2, shape=(120, 120), nbias=1, ndark=0, nflat=1,
...                               nlight=3, drift=2.0, nstars=40)
>>> reg = register(night.of_kind("light"), reference=0)
>>> steps = [f.transform.shift_at(60, 60) for f in reg.frames]
>>> [round(float(np.hypot(*s)), 1) for s in steps]  # the telescope drifts 2 px per frame
[0.0, 2.0, 4.0]
>>> reg.used, reg.frames[2].method
([0, 1, 2], 'stars')
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CcdcalError
from ..frame import Frame
from .match import MatchError, match, wcs_transform
from .stars import Quality, Stars, find_stars
from .transform import KINDS, Transform

PathLike = str | os.PathLike[str]

METHODS = ("auto", "stars", "wcs")
GRIDS = ("reference", "union", "intersection")

#: frames that all move less than this (pixels, anywhere on the frame) are not resampled
STILL = 0.05
#: a frame that moves more than this (pixels) has moved, however uncertain its fit
MOVED = 0.5


@dataclass(frozen=True)
class Selection:
    """Which frames a stack takes, relative to the night's medians (None: no limit).

    Attributes
    ----------
    max_fwhm
        Leave out a frame whose FWHM exceeds this times the median FWHM.
    min_stars
        Leave out a frame with fewer stars than this times the median star count.
    min_throughput
        Leave out a frame whose stars are fainter than this times the median (clouds).
    """

    max_fwhm: float | None = 1.5
    min_stars: float | None = 0.5
    min_throughput: float | None = 0.5


@dataclass(frozen=True)
class FrameRegistration:
    """One frame of a registration.

    Attributes
    ----------
    name
        The frame's file name (or its index).
    quality
        Its stars' count, median FWHM and ellipticity; its sky level and noise.
    transform
        Frame pixels to reference pixels (None when it could not be matched).
    method
        How the transform was found: ``"reference"``, ``"stars"`` or ``"wcs"``.
    matched, rms
        Star pairs of the fit, and their rms distance after it (pixels).
    throughput
        Its stars' flux relative to the reference's.
    used
        Whether it goes into the stack; ``why`` says why not.
    error
        Standard error of the transform over the frame (pixels).
    """

    name: str
    quality: Quality
    transform: Transform | None = None
    method: str = ""
    matched: int = 0
    rms: float = math.nan
    throughput: float = math.nan
    used: bool = True
    why: str = ""
    error: float = 0.0


@dataclass
class Registration:
    """Every frame's transform onto the reference, its quality and whether it is used.

    Attributes
    ----------
    frames
        One :class:`FrameRegistration` per input, in input order.
    reference
        Index of the reference frame.
    shape, origin
        The output grid: (ny, nx), and the reference coordinates (x0, y0) of its pixel 0.
    resample
        Whether any frame moves (by :data:`STILL` pixels or more): else no frame needs
        resampling.
    notices
        What the user should know (frames left out and why).
    frame_shape
        (ny, nx) of the frames.
    """

    frames: list[FrameRegistration]
    reference: int
    shape: tuple[int, int]
    origin: tuple[int, int] = (0, 0)
    resample: bool = True
    notices: list[str] = field(default_factory=list)
    frame_shape: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.frame_shape is None:
            self.frame_shape = self.shape

    @property
    def used(self) -> list[int]:
        """Indices of the frames that go into the stack."""
        return [i for i, f in enumerate(self.frames) if f.used]

    def table(self) -> Any:
        """The registration as an astropy Table: one row per frame."""
        from astropy.table import Table

        rows = []
        for i, f in enumerate(self.frames):
            t = f.transform
            m = t.matrix if t is not None else np.full((3, 3), np.nan)
            dx, dy = (math.nan, math.nan)
            if t is not None:
                ny, nx = self.frame_shape or self.shape
                dx, dy = t.shift_at((nx - 1) / 2, (ny - 1) / 2)
            rows.append({
                "frame": f.name, "reference": i == self.reference, "method": f.method or "-",
                "dx": dx, "dy": dy,
                "rotation": t.rotation if t is not None else math.nan,
                "scale": t.scale if t is not None else math.nan,
                "matched": f.matched, "rms": f.rms, "error": f.error,
                "throughput": f.throughput,
                "nstars": f.quality.nstars, "fwhm": f.quality.fwhm,
                "fwhm_err": f.quality.fwhm_err,
                "ellipticity": f.quality.ellipticity, "background": f.quality.background,
                "noise": f.quality.noise, "used": f.used, "why": f.why or "-",
                "a11": m[0, 0], "a12": m[0, 1], "a21": m[1, 0], "a22": m[1, 1],
                "tx": m[0, 2], "ty": m[1, 2],
            })  # fmt: skip
        table = Table(rows=rows)
        for name, unit in (("dx", "pix"), ("dy", "pix"), ("rotation", "deg"), ("rms", "pix"),
                           ("error", "pix"), ("fwhm", "pix")):  # fmt: skip
            table[name].unit = unit
        table.meta["reference"] = self.frames[self.reference].name
        table.meta["shape"] = list(self.shape)
        table.meta["origin"] = list(self.origin)
        table.meta["frame_shape"] = list(self.frame_shape or self.shape)
        table.meta["resample"] = bool(self.resample)
        table.meta["comment"] = [
            "frame (x, y) to reference: x_r = a11 x + a12 y + tx, y_r = a21 x + a22 y + ty",
            "dx, dy: where the frame's centre lands on the reference, less where it was; "
            "0-based pixels",
        ]
        table.meta["notices"] = list(self.notices)
        return table

    def write(self, path: PathLike, **meta: Any) -> Path:
        """Write :meth:`table` as ECSV (atomically); ``meta`` goes into its header."""
        table = self.table()
        table.meta.update(meta)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        table.write(tmp, format="ascii.ecsv", overwrite=True)
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: PathLike) -> Registration:
        """A registration written by :meth:`write`."""
        from astropy.table import Table

        table = Table.read(path, format="ascii.ecsv")
        frames = []
        for row in table:
            m = np.array([[row["a11"], row["a12"], row["tx"]], [row["a21"], row["a22"], row["ty"]],
                          [0.0, 0.0, 1.0]])  # fmt: skip
            quality = Quality(int(row["nstars"]), float(row["fwhm"]), float(row["ellipticity"]),
                              float(row["background"]), float(row["noise"]),
                              float(row.get("fwhm_err", math.nan)))  # fmt: skip
            why = str(row["why"])
            frames.append(FrameRegistration(
                name=str(row["frame"]), quality=quality,
                transform=Transform(m, "affine") if np.isfinite(m).all() else None,
                method="" if row["method"] == "-" else str(row["method"]),
                matched=int(row["matched"]), rms=float(row["rms"]),
                throughput=float(row["throughput"]), used=bool(row["used"]),
                why="" if why == "-" else why,
                error=float(row["error"]) if "error" in row.colnames else 0.0,
            ))  # fmt: skip
        reference = int(np.nonzero(np.asarray(table["reference"], bool))[0][0])
        meta = table.meta
        return cls(
            frames, reference, tuple(meta["shape"]), tuple(meta["origin"]),
            bool(meta.get("resample", True)), list(meta.get("notices", [])),
            tuple(meta.get("frame_shape", meta["shape"])),
        )  # fmt: skip


def _frame(item: Frame | PathLike) -> Frame:
    return item if isinstance(item, Frame) else Frame.read(item)


def _header(item: Frame | PathLike) -> tuple[Any, tuple[int, int]]:
    """A frame's header and shape, without its pixels."""
    if isinstance(item, Frame):
        return item.header, item.shape
    from ..fitsio import ImageReader

    with ImageReader(item, memmap=False) as reader:
        return reader.header, reader.shape


def _name(item: Frame | PathLike, index: int) -> str:
    if isinstance(item, Frame):
        return item.path.name if item.path is not None else f"frame {index}"
    return Path(item).name


def choose_reference(qualities: Sequence[Quality]) -> int:
    """The sharpest frame among those with most stars (at least 70 % of the most).

    Examples
    --------
    >>> q = [Quality(50, 3.1, 0.1, 100, 5), Quality(20, 2.0, 0.1, 100, 5),
    ...      Quality(48, 2.8, 0.1, 100, 5)]
    >>> choose_reference(q)
    2
    """
    counts = np.array([q.nstars for q in qualities])
    if counts.max() == 0:
        return 0
    fwhm = np.array([q.fwhm if math.isfinite(q.fwhm) else math.inf for q in qualities])
    rich = counts >= 0.7 * counts.max()
    return int(np.argmin(np.where(rich, fwhm, math.inf)))


def register(
    frames: Sequence[Frame | PathLike],
    *,
    reference: str | int = "best",
    method: str = "auto",
    transform: str = "similarity",
    grid: str = "reference",
    select: Selection | None = Selection(),
    stars: Sequence[tuple[Stars, Quality]] | None = None,
    threshold: float = 5.0,
) -> Registration:
    """Each frame's transform onto a reference frame, its quality, and whether to stack it.

    Parameters
    ----------
    frames
        Calibrated frames (paths or :class:`~ccdcal.frame.Frame` objects) of one field.
    reference
        ``"best"`` (the sharpest frame with most stars), or the index or file name of the
        frame to align the others to.
    method
        ``"stars"``: match stars (astroalign's asterisms, refined on all stars);
        ``"wcs"``: through the frames' celestial WCS; ``"auto"``: stars, and the WCS for a
        frame whose stars cannot be matched when both it and the reference carry one.
    transform
        What is fitted to matched stars: ``"shift"``, ``"similarity"`` or ``"affine"``.
    grid
        The output grid: the ``"reference"`` frame's, the ``"union"`` of all used frames,
        or their ``"intersection"``.
    select
        Which frames to leave out (see :class:`Selection`); None keeps every matched frame.
    stars
        Each frame's stars and quality when already measured (else measured here).
    threshold
        Star detection threshold, in sky sigma.

    Returns
    -------
    Registration
        Per frame: transform, star pairs and rms, quality, throughput, used or why not.

    Raises
    ------
    CcdcalError
        No frames, an unknown option, or a reference that is not among the frames.
    """
    if not frames:
        raise CcdcalError("register: no frames given")
    if method not in METHODS:
        raise CcdcalError(f"register: method must be one of {', '.join(METHODS)}, not {method!r}")
    if transform not in KINDS:
        raise CcdcalError(
            f"register: transform must be one of {', '.join(KINDS)}, not {transform!r}"
        )
    if grid not in GRIDS:
        raise CcdcalError(f"register: grid must be one of {', '.join(GRIDS)}, not {grid!r}")
    names = [_name(f, i) for i, f in enumerate(frames)]
    if stars is not None and len(stars) != len(frames):
        raise CcdcalError(f"register: {len(stars)} star lists for {len(frames)} frames")
    headers: list[Any] = []
    measured: list[tuple[Stars, Quality]] = []
    shapes = []
    for i, item in enumerate(frames):
        if stars is None:
            frame = _frame(item)
            header, frame_shape = frame.header, frame.shape
            measured.append(find_stars(frame, threshold=threshold))
        else:
            header, frame_shape = _header(item)
            measured.append(stars[i])
        headers.append(header)
        shapes.append(tuple(frame_shape))
    # the shape most frames have (the first frame's among equals); the others are left out
    shape = max(dict.fromkeys(shapes), key=shapes.count)
    qualities = [q for _, q in measured]
    ref = _reference_index(reference, names, qualities, [s == shape for s in shapes])
    ref_stars = measured[ref][0]
    out: list[FrameRegistration] = []
    notices: list[str] = []
    previous: Transform | None = None  # the last frame's: where to look first
    for i, (own, quality) in enumerate(measured):
        if shapes[i] != shape:
            why = f"shape {shapes[i]} differs from the others' {shape}"
            out.append(FrameRegistration(names[i], quality, used=False, why=why))
            notices.append(f"{names[i]}: {why}; left out of the stack")
            continue
        if i == ref:
            out.append(FrameRegistration(names[i], quality, Transform.identity(), "reference",
                                         len(own), 0.0, 1.0))  # fmt: skip
            continue
        result = None
        problem = ""
        if method in ("auto", "stars"):
            try:
                m = match(own, ref_stars, kind=transform, name=names[i], guess=previous)
                result = FrameRegistration(names[i], quality, m.transform, "stars", m.matched,
                                           m.rms, m.throughput, error=m.error)  # fmt: skip
                previous = m.transform
            except MatchError as err:
                problem = str(err)
        if result is None and method in ("auto", "wcs"):
            try:
                m = wcs_transform(headers[i], headers[ref], shape, name=names[i])
                result = FrameRegistration(names[i], quality, m.transform, "wcs", 0, m.rms)
            except MatchError as err:
                problem = problem or str(err)
        if result is None:
            why = f"not matched: {problem.split(': ', 1)[-1]}"
            result = FrameRegistration(names[i], quality, used=False, why=why)
            notices.append(f"{problem}; left out of the stack")
        out.append(result)
    if select is not None:
        out = _select(out, select, notices)
    # a frame moves when its displacement is both above STILL and beyond what the fit's
    # own error could make of a frame that did not move (or above MOVED whatever the error)
    moving = any(
        f.transform is not None
        and f.transform.displacement(shape) >= min(max(STILL, 3 * f.error), MOVED)
        for f in out
        if f.used
    )
    origin, grid_shape = _grid(grid, [f.transform for f in out if f.used], shape)
    moves = moving or origin != (0, 0) or grid_shape != shape
    return Registration(out, ref, grid_shape, origin, moves, notices, shape)


def _reference_index(
    reference: str | int, names: list[str], qualities: list[Quality], usable: list[bool]
) -> int:
    if reference == "best":
        indices = [i for i, ok in enumerate(usable) if ok]
        return indices[choose_reference([qualities[i] for i in indices])]
    index = None
    if isinstance(reference, int) and not isinstance(reference, bool):
        if not 0 <= reference < len(names):
            raise CcdcalError(
                f"register: reference {reference} is not among the {len(names)} frames"
            )
        index = reference
    stems = [Path(n).stem for n in names]
    for candidates in (names, stems):
        if index is None and reference in candidates:
            index = candidates.index(reference)
    if index is None:
        raise CcdcalError(f"register: reference {reference!r} is not among the frames")
    if not usable[index]:
        raise CcdcalError(f"register: reference {names[index]} has another shape than most frames")
    return index


def _select(
    frames: list[FrameRegistration], select: Selection, notices: list[str]
) -> list[FrameRegistration]:
    matched = [f for f in frames if f.used]
    if not matched:
        return frames

    def median(values: list[float]) -> float:
        good = [v for v in values if math.isfinite(v)]
        return float(np.median(good)) if good else math.nan

    fwhm = median([f.quality.fwhm for f in matched])
    count = median([float(f.quality.nstars) for f in matched])
    through = median([f.throughput for f in matched])
    out = []
    for f in frames:
        why = ""
        if f.used:
            q = f.quality
            if select.max_fwhm is not None and q.fwhm > select.max_fwhm * fwhm:
                why = f"FWHM {q.fwhm:.2f} px > {select.max_fwhm:g} x the median {fwhm:.2f}"
            elif select.min_stars is not None and q.nstars < select.min_stars * count:
                why = f"{q.nstars} stars < {select.min_stars:g} x the median {count:.0f}"
            elif (
                select.min_throughput is not None
                and math.isfinite(f.throughput)
                and f.throughput < select.min_throughput * through
            ):
                why = (
                    f"stars at {f.throughput:.2f} of the reference's flux < "
                    f"{select.min_throughput:g} x the median {through:.2f} (clouds?)"
                )
        if why:
            notices.append(f"{f.name}: {why}; left out of the stack")
            f = replace(f, used=False, why=why)
        out.append(f)
    return out


def _grid(
    kind: str, transforms: list[Transform | None], shape: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(origin, shape) of the output grid in reference pixels."""
    ny, nx = shape
    if kind == "reference" or not transforms:
        return (0, 0), shape
    corners = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5]])
    boxes = []
    for t in transforms:
        assert t is not None
        c = t.apply(corners)
        if kind == "union":
            boxes.append((c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()))
        else:  # the box inside the quadrilateral: inner corners on each side
            xs, ys = np.sort(c[:, 0]), np.sort(c[:, 1])
            boxes.append((xs[1], ys[1], xs[2], ys[2]))
    b = np.array(boxes)
    if kind == "union":
        x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
        left, bottom = math.floor(x0 + 0.5), math.floor(y0 + 0.5)
        right, top = math.ceil(x1 + 0.5), math.ceil(y1 + 0.5)
    else:
        x0, y0, x1, y1 = b[:, 0].max(), b[:, 1].max(), b[:, 2].min(), b[:, 3].min()
        left, bottom = math.ceil(x0 + 0.5), math.ceil(y0 + 0.5)
        right, top = math.floor(x1 + 0.5), math.floor(y1 + 0.5)
        if right <= left or top <= bottom:
            raise CcdcalError("register: the frames have no area in common (grid='intersection')")
    return (left, bottom), (top - bottom, right - left)


def write_aligned(
    frames: Sequence[Frame | PathLike],
    registration: Registration,
    folder: PathLike,
    *,
    kernel: str = "lanczos3",
) -> list[Path]:
    """Write each frame the registration uses onto its grid (``folder/<name>.fits``).

    Frames are read and resampled one at a time (the reference on its own grid, and every
    frame when nothing moves, is copied as it is); each file is written atomically with
    its provenance and the transform in its header (REGA11 ... REGTY).

    Returns
    -------
    list of Path
        The files written, in the frames' order (left-out frames are not written).
    """
    from .resample import resample

    out = Path(folder)
    targets = _aligned_names(frames, registration, out)
    out.mkdir(parents=True, exist_ok=True)
    own_grid = registration.origin == (0, 0) and registration.shape == registration.frame_shape
    grid = _header(frames[registration.reference])[0]
    written = []
    for i, (item, f) in enumerate(zip(frames, registration.frames, strict=True)):
        target = targets[i]
        if not f.used:
            _remove_stale(target)
            continue
        frame = _frame(item)
        moves = registration.resample and not (own_grid and i == registration.reference)
        if moves:
            assert f.transform is not None
            frame = resample(frame, f.transform, registration.shape,
                             origin=registration.origin, kernel=kernel, wcs=grid)  # fmt: skip
        source = [Path(item)] if not isinstance(item, Frame) else []
        reference = registration.frames[registration.reference].name
        params = {"method": f.method, "kernel": kernel if moves else "none", "reference": reference}
        frame.write(target, step="register", inputs=source, params=params)
        written.append(target)
    return written


#: file-name endings that are not part of a frame's name
_SUFFIXES = (".gz", ".bz2", ".fz", ".fits", ".fit", ".fts")


def _bare_name(name: str) -> str:
    """``light_001`` from ``light_001.fits.gz``."""
    stripped = True
    while stripped:
        stripped = False
        for suffix in _SUFFIXES:
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name, stripped = name[: -len(suffix)], True
    return name


def _aligned_names(
    frames: Sequence[Frame | PathLike], registration: Registration, out: Path
) -> list[Path]:
    """Where :func:`write_aligned` writes each frame; refused when two frames would go to
    one file or a frame would overwrite an input."""
    from ..errors import CcdcalError

    targets = [out / f"{_bare_name(Path(f.name).name)}.fits" for f in registration.frames]
    seen: dict[Path, str] = {}
    for target, f in zip(targets, registration.frames, strict=True):
        if target in seen:
            raise CcdcalError(f"{f.name} and {seen[target]} would both be written to {target}: "
                              "give frames distinct names")  # fmt: skip
        seen[target] = f.name
    inputs = {Path(item).resolve() for item in frames if not isinstance(item, Frame)}
    for target, f in zip(targets, registration.frames, strict=True):
        if target.resolve() in inputs:
            raise CcdcalError(f"{target}: writing {f.name} aligned would overwrite an input; "
                              "choose another output folder")  # fmt: skip
    return targets


def _remove_stale(target: Path) -> None:
    """Remove an aligned frame an earlier run wrote where this run leaves the frame out."""
    if not target.is_file():
        return
    from astropy.io import fits

    try:
        history = [str(line) for line in fits.getheader(target).get("HISTORY", [])]
    except OSError:
        return
    if any(line.split()[:1] == ["ccdcal"] and line.split()[2:3] == ["register"]
           for line in history):  # fmt: skip
        target.unlink()  # written by write_aligned (its provenance), never a user's file


__all__ = [
    "GRIDS",
    "METHODS",
    "STILL",
    "FrameRegistration",
    "Registration",
    "Selection",
    "choose_reference",
    "register",
    "write_aligned",
]
