"""How each kind of product is made: module-level functions of plain, picklable arguments, so
that any process of any machine can run them.

Every recipe has the signature ``recipe(inputs, *, memory_limit, **options) -> (frame,
history)``: the files it reads, the memory it may use, the options the plan gave it; it
returns the frame and the parameters that go into its HISTORY card. Masters arrive as
paths; a process reads each master once (:func:`master`). :func:`build` runs a product's
recipe and writes its file.

A product made by a combine (the masters, the stacks) can also be made in parts: each raw
input prepared and written to a scratch folder, one :func:`setup` (shapes, scaling levels),
many :func:`rows` tasks over all inputs, one :func:`assemble` that finishes the product and
writes it. The parts give the same file as :func:`build`, bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CombineOptions
from ..cosmic import flag_against_model, median_model
from ..errors import CcdcalError
from ..frame import Frame
from ..masters import (
    CombineSpec,
    Noise,
    master_bias,
    master_dark,
    master_flat,
    prepared_inputs,
)
from ..process_state import release_memory
from ..provenance import fits_text
from ..registration.resample import REG_KEYS, blot, resample
from ..registration.stars import FWHM_PER_SIGMA
from ..stacking import Combination
from .products import Product
from .stack_choice import seeing_noise, stack_combination

History = dict[str, Any]

#: the HISTORY step of each kind of product
STEPS = {"camera": "measure the camera", "bias": "master bias", "dark": "master dark",
         "flat": "master flat", "light": "calibrate", "stars": "find stars",
         "registration": "register", "stack": "stack"}  # fmt: skip


# ---------------------------------------------------------------------------- masters in memory
@dataclass(frozen=True)
class MasterRef:
    """A master a recipe needs: its file and the key (``PIPEKEY``) the file must carry."""

    path: Path
    key: str


#: master frames read by this process, by path and key: the key names the content, so a
#: long-lived cluster worker never serves a master that a later run rebuilt differently
_MASTERS: dict[MasterRef, Frame] = {}


def master(ref: MasterRef | None) -> Frame | None:
    """The master frame ``ref`` names (None for None), read once by each process.

    Raises
    ------
    CcdcalError
        The file does not carry the key the plan expects (rewritten by another run).
    """
    if ref is None:
        return None
    frame = _MASTERS.get(ref)  # one lookup: another thread may clear the cache meanwhile
    if frame is None:
        frame = _held(Frame.read(ref.path))
        if frame.header.get("PIPEKEY") != ref.key:
            raise CcdcalError(
                f"{ref.path}: this master changed while the run used it (another run in the "
                "same output folder?); run again"
            )
        if len(_MASTERS) >= 16:
            _MASTERS.clear()
        _MASTERS[ref] = frame
    return frame


def _held(frame: Frame) -> Frame:
    """A master as calibration needs it, held the whole run: its counts only where it is a
    dark holding the bias (one dark's noise), never its rejection counts (24 MB less a
    master of 2048x2048); read-only, as it is shared by every light (a read-only flat's
    divisor is computed once, not once a light)."""
    counts = frame.extras.get("NCOMBINE")
    holds_bias = frame.header.get("BIASSUB") is False
    extras = {"NCOMBINE": counts} if counts is not None and holds_bias else {}
    for plane in (frame.data, frame.variance, frame.mask, *extras.values()):
        if plane is not None:
            plane.setflags(write=False)
    return replace(frame, extras=extras)


def forget_masters() -> None:
    """Let go of the masters this process holds (after a run)."""
    _MASTERS.clear()


def _workdir(folder: Path) -> Path:
    """Where masters put prepared frames that do not fit in memory: beside the outputs (the
    system's temporary folder is often memory itself)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# ---------------------------------------------------------------------------- recipes
def bias_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    combine: CombineSpec,
    preprocess: dict[str, Any],
    noise: Noise | None = None,
) -> tuple[Frame, History]:
    """The master bias from raw bias frames (see :func:`ccdcal.masters.master_bias`)."""
    frame = master_bias(
        list(inputs),
        combine=combine.limited(memory_limit),
        workdir=_workdir(workdir),
        noise=noise,
        **preprocess,
    )
    return frame, {"method": combine.method}


def dark_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    combine: CombineSpec,
    preprocess: dict[str, Any],
    bias: MasterRef | None,
    exptime: float,
    exptimes: list[float | None],
    noise: Noise | None = None,
) -> tuple[Frame, History]:
    """A master dark from raw darks of one exposure (see :func:`ccdcal.masters.master_dark`)."""
    frame = master_dark(
        list(inputs),
        bias=master(bias),
        combine=combine.limited(memory_limit),
        exptimes=exptimes,
        workdir=_workdir(workdir),
        noise=noise,
        **preprocess,
    )
    return frame, {"exptime": exptime}


def flat_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    combine: CombineSpec,
    preprocess: dict[str, Any],
    bias: MasterRef | None,
    dark: MasterRef | None,
    exptimes: list[float | None],
    min_response: float,
    filter: str,
    noise: Noise | None = None,
) -> tuple[Frame, History]:
    """A master flat from raw flats of one filter (see :func:`ccdcal.masters.master_flat`)."""
    frame = master_flat(
        list(inputs),
        bias=master(bias),
        dark=master(dark),
        combine=combine.limited(memory_limit),
        exptimes=exptimes,
        min_response=min_response,
        workdir=_workdir(workdir),
        noise=noise,
        **preprocess,
    )
    return frame, {"filter": filter}


def light_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    bias: MasterRef | None,
    dark: MasterRef | None,
    flat: MasterRef | None,
    calibrate: dict[str, Any],
    header: dict[str, tuple[str, str]],
    cosmic: dict[str, Any] | None,
    history: History,
    camera: MasterRef | None = None,
    unsure: tuple[str, float] | None = None,
) -> tuple[Frame, History]:
    """One raw light calibrated (:func:`ccdcal.calibrate`), its cosmic rays flagged when
    ``cosmic`` holds L.A.Cosmic's options; ``header`` cards set on the result. A gain or
    read noise ``"measured"``, or an ``unsure`` gain keyword, is settled by the ``camera``
    table (see :mod:`ccdcal.pipeline.camera`)."""
    from ..calibration import calibrate as calibrate_frame
    from .camera import resolve

    (raw,) = inputs
    calibrate, cards = resolve(calibrate, unsure, None if camera is None else camera.path)
    header = {**header, **{k: (v, "where the value came from") for k, v in cards.items()}}
    # a missing gain is reported once for the whole night, not once per frame
    frame = calibrate_frame(
        Frame.read(raw),
        bias=master(bias),
        dark=master(dark),
        flat=master(flat),
        warn_no_gain=False,
        from_header=False,  # the plan read and checked the header once: None is unknown
        **calibrate,
    )
    for name, card in header.items():
        frame.header[name] = card
    if cosmic is not None:
        from ..cosmic import flag_cosmic_rays

        frame = flag_cosmic_rays(frame, **cosmic)
    return frame, history


def stars_recipe(
    inputs: Sequence[Path], *, memory_limit: int | None, workdir: Path, threshold: float
) -> tuple[Any, History]:
    """A calibrated light's stars and quality (see :func:`ccdcal.registration.find_stars`),
    as a table."""
    from ..registration.stars import find_stars, stars_table

    (light,) = inputs
    frame = Frame.read(light, variance=False, extras=False)  # the stars need no variance
    stars, quality = find_stars(frame, threshold=threshold)
    return stars_table(stars, quality), {"threshold": threshold}


def registration_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    stars: list[Path],
    method: str,
    reference: str,
    transform: str,
    grid: str,
    select: tuple[float | None, float | None, float | None],
) -> tuple[Any, History]:
    """The registration of a stack's lights (see :func:`ccdcal.registration.register`), as
    a table whose meta holds its notices.

    A reference named in the configuration but not among these lights gives way to the
    best one; when no light but the reference can be matched, the stack is made without
    alignment, and the notice says why.
    """
    from astropy.table import Table

    from ..registration import Registration, Selection, register
    from ..registration.stars import stars_from_table

    measured = [stars_from_table(Table.read(p, format="ascii.ecsv")) for p in stars]
    notices = []
    names = [p.name for p in inputs]
    if reference != "best" and reference not in names and reference not in [p.stem for p in inputs]:
        notices.append(f"reference {reference!r} is not among these lights; the best one is used")
        reference = "best"
    reg = register(
        list(inputs), reference=reference, method=method, transform=transform, grid=grid,
        select=Selection(*select), stars=measured,
    )  # fmt: skip
    notices += reg.notices
    matched = [f for f in reg.frames if f.method in ("stars", "wcs")]
    if not matched:
        ref = reg.frames[reg.reference]
        why = "; ".join(sorted({f.why for f in reg.frames if f.why}))
        notices = [f"no light could be aligned to {ref.name} ({why}): stacked without alignment"]
        frames = [replace(f, used=True, why="", method=f.method or "none") for f in reg.frames]
        reg = Registration(frames, reg.reference, reg.frame_shape, (0, 0), False, notices,
                           reg.frame_shape)  # fmt: skip
    table = reg.table()
    table.meta["notices"] = notices
    return table, {"reference": reg.frames[reg.reference].name, "method": method}


@dataclass(frozen=True)
class StackInputs:
    """What a stack combines: the calibrated lights it uses, their exposure times, and each
    one's transform onto the stack's grid (None: taken as it is)."""

    paths: list[Path]
    exptimes: list[float | None]
    transforms: list[Any]
    shape: tuple[int, int] | None = None
    origin: tuple[int, int] = (0, 0)
    fwhm: list[float] = field(default_factory=list)
    fwhm_err: list[float] = field(default_factory=list)
    throughput: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    reference: Path | None = None
    left_out: list[str] = field(default_factory=list)
    kept: list[int] | None = None  # after screening: which of the registration's lights

    def keep(self, indices: Sequence[int], why: Mapping[int, str]) -> StackInputs:
        """Only the lights at ``indices``; the others are recorded in ``left_out`` with
        ``why`` (by index)."""

        def pick(values: list[Any]) -> list[Any]:
            return [values[i] for i in indices] if len(values) == len(self.paths) else values

        gone = [f"{self.paths[i].name}: {text}" for i, text in why.items()]
        before = self.kept if self.kept is not None else list(range(len(self.paths)))
        return replace(
            self, paths=pick(self.paths), exptimes=pick(self.exptimes),
            transforms=pick(self.transforms), fwhm=pick(self.fwhm),
            fwhm_err=pick(self.fwhm_err), throughput=pick(self.throughput),
            background=pick(self.background), left_out=[*self.left_out, *gone],
            kept=[before[i] for i in indices],
        )  # fmt: skip

    def grid_wcs(self) -> Any:
        """The header whose WCS the stack's grid has: the reference light's."""
        from astropy.io import fits

        return None if self.reference is None else fits.getheader(self.reference)

    def relative_throughput(self, path: Path) -> float:
        """The star flux of light ``path`` relative to the mean of the stack's lights (1
        where unknown): the median model of the lights is at the mean."""
        t = np.asarray(self.throughput, np.float64)
        good = np.isfinite(t) & (t > 0)
        if not good.any():
            return 1.0
        mine = t[self.paths.index(Path(path))]
        t = np.where(good, t, np.median(t[good]))
        return float(mine / t.mean()) if np.isfinite(mine) and mine > 0 else 1.0


def stack_inputs(
    inputs: Sequence[Path], registration: Path | None, exposures: list[float | None] | None
) -> StackInputs:
    """The lights a stack uses (all, or those its registration keeps) and how."""
    times = list(exposures) if exposures is not None else [None] * len(inputs)
    if registration is None:
        return StackInputs(list(inputs), times, [None] * len(inputs))
    from ..registration import Registration

    reg = Registration.read(registration)
    used = [i for i, f in enumerate(reg.frames) if f.used]
    own_grid = reg.origin == (0, 0) and reg.shape == reg.frame_shape
    transforms = [
        reg.frames[i].transform if reg.resample and not (own_grid and i == reg.reference) else None
        for i in used
    ]  # the reference on its own grid stays as it is; on another grid it moves too
    return StackInputs(
        [inputs[i] for i in used], [times[i] for i in used], transforms, reg.shape, reg.origin,
        [reg.frames[i].quality.fwhm for i in used],
        [reg.frames[i].quality.fwhm_err for i in used],
        [reg.frames[i].throughput for i in used],
        [reg.frames[i].quality.background for i in used], inputs[reg.reference],
    )  # fmt: skip


def stack_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    combine: CombineOptions,
    registration: Path | None = None,
    interpolation: str = "lanczos3",
    exposures: list[float | None] | None = None,
) -> tuple[Frame, History]:
    """The stack of calibrated lights: those its registration keeps, resampled onto the
    reference's grid when they moved; the rejection and weights chosen from their headers
    (see :func:`~ccdcal.pipeline.stack_choice.stack_combination`); lights of other exposure
    times (``exposures``) scaled to their mean."""
    chosen, combination, history = _stack(
        inputs, memory_limit, combine, registration, interpolation, exposures
    )
    flag = _flags_against_median(chosen)
    if not any(t is not None for t in chosen.transforms) and not flag:
        return finish_stack(combination(chosen.paths), chosen.exptimes, chosen.left_out), history
    # copies (in memory or in a scratch folder): the calibrated lights are never written to;
    # the copies kept in memory and the combine share the memory limit, half each
    from ..stacking.stream import default_memory_limit, parse_bytes

    limit = parse_bytes(combination.memory_limit) or default_memory_limit()
    combination = replace(combination, memory_limit=limit // 2)
    spec = CombineSpec(options={"memory_limit": limit // 2})
    model = None
    if flag:  # a first pass: the median of the aligned frames, a model free of cosmic rays
        first = partial(_aligned, chosen, interpolation)
        with prepared_inputs(chosen.paths, first, None, spec=spec, workdir=workdir) as ready:
            model = median_model(list(ready.inputs), throughput=chosen.throughput,
                                 memory_limit=limit // 2)  # fmt: skip
    step = partial(_checked_and_aligned, chosen, interpolation, model)
    with prepared_inputs(chosen.paths, step, None, spec=spec, workdir=workdir) as ready:
        stack = combination(ready.inputs)
    return finish_stack(stack, chosen.exptimes, chosen.left_out), history


def _flags_against_median(chosen: StackInputs) -> bool:
    """Whether the stack's cosmic rays are flagged against the median of its frames first:
    when their seeing differs, so that the rejection, lenient on bright pixels then (see
    :func:`~ccdcal.pipeline.stack_choice.seeing_noise`), loses none of them."""
    return len(chosen.paths) >= 3 and seeing_noise(chosen.fwhm, chosen.fwhm_err) > 0


def _move(chosen: StackInputs, frame: Frame) -> Any:
    return chosen.transforms[chosen.paths.index(Path(frame.path))]


def _aligned(chosen: StackInputs, interpolation: str, frame: Frame) -> Frame:
    """A light on the stack's grid (itself when it does not move)."""
    move = _move(chosen, frame)
    if move is None:
        return frame
    assert chosen.shape is not None
    return resample(frame, move, chosen.shape, origin=chosen.origin, kernel=interpolation,
                    wcs=chosen.grid_wcs())  # fmt: skip


def _checked_and_aligned(
    chosen: StackInputs, interpolation: str, model: Frame | None, frame: Frame
) -> Frame:
    """A light with its cosmic rays flagged against ``model`` (the median of the aligned
    lights, brought onto the light's own pixels), then put on the stack's grid, which
    carries each flag to every pixel it touches."""
    if model is not None:
        move = _move(chosen, frame)
        own = model if move is None else blot(model, move, frame.shape, origin=chosen.origin,
                                               kernel=interpolation)  # fmt: skip
        s2 = (np.asarray(chosen.fwhm, np.float64) / FWHM_PER_SIGMA) ** 2
        mine = s2[chosen.paths.index(Path(frame.path))]
        frame = flag_against_model(frame, own, seeing=(mine, float(np.median(s2))),
                                   throughput=chosen.relative_throughput(frame.path))  # fmt: skip
    return _aligned(chosen, interpolation, frame)


def _stack(
    inputs: Sequence[Path],
    memory_limit: int | None,
    combine: CombineOptions,
    registration: Path | None,
    interpolation: str,
    exposures: list[float | None] | None,
) -> tuple[StackInputs, Combination, History]:
    """A stack's lights, its combine and its HISTORY parameters."""
    from astropy.io import fits

    from .screening import odd_lights

    chosen = stack_inputs(inputs, registration, exposures)
    headers = [fits.getheader(p) for p in chosen.paths]  # read once: rejection and weights
    odd = odd_lights(headers)
    if odd:  # a light far off what it and its group say would move the whole stack
        kept = [i for i in range(len(headers)) if i not in odd]
        chosen = chosen.keep(kept, odd)
        headers = [headers[i] for i in kept]
    scaled = chosen.exptimes if exposures is not None else None
    combination, history = stack_combination(
        headers, combine, memory_limit, exposures=scaled, fwhm=chosen.fwhm,
        fwhm_err=chosen.fwhm_err, background=chosen.background, throughput=chosen.throughput,
        groups=master_noise_groups(chosen),
    )  # fmt: skip
    if registration is not None:
        history["aligned"] = any(t is not None for t in chosen.transforms)
        history["interpolation"] = interpolation
        history["frames"] = f"{len(chosen.paths)} of {len(inputs)}"
    return chosen, combination, history


def _stack_options(product: Product) -> tuple[Any, ...]:
    o = product.options
    return (o["combine"], o.get("registration"), o.get("interpolation", "lanczos3"),
            o.get("exposures"))  # fmt: skip


def master_noise_groups(chosen: StackInputs) -> list[int]:
    """Which lights of a stack share their masters' noise at each pixel: those that see the
    sky through the same detector pixels (their offsets onto the stack's grid, at its
    centre, round to the same whole pixels; one group when nothing moves). Within a group
    that noise is one and the same, between groups independent (a dither spreads it).

    Examples
    --------
    >>> from ccdcal.registration import Transform
    >>> moves = [None, Transform.from_parameters(dx=0.2), Transform.from_parameters(dx=7.9)]
    >>> master_noise_groups(StackInputs([Path("a"), Path("b"), Path("c")], [None] * 3, moves,
    ...                                 (100, 100)))
    [0, 0, 1]
    """
    ny, nx = chosen.shape or (1, 1)
    centre = ((nx - 1) / 2 + chosen.origin[0], (ny - 1) / 2 + chosen.origin[1])
    offsets = []
    for move in chosen.transforms:
        if move is None:
            offsets.append((0, 0))
            continue
        back = move.inverse()  # where the grid's centre falls on the light's detector
        ((u, v),) = back.apply([centre])
        offsets.append((round(u - centre[0]), round(v - centre[1])))
    numbers: dict[tuple[int, int], int] = {}
    return [numbers.setdefault(o, len(numbers)) for o in offsets]


def finish_stack(
    stack: Frame, exptimes: Sequence[float | None] | None = None, left_out: Sequence[str] = ()
) -> Frame:
    """A combine of calibrated lights labelled as a stack; when its lights had different
    exposure times, EXPTIME is the mean one they were scaled to; the lights left out, each
    with why, in LEFTOUTn cards."""
    stack.header["IMAGETYP"] = ("STACK", "ccdcal stack of calibrated lights")
    for i, text in enumerate(left_out, start=1):
        stack.header[f"LEFTOUT{i}"] = fits_text(text)  # long: FITS CONTINUE cards
    for key in REG_KEYS:  # one light's transform onto the grid, not the stack's
        stack.header.remove(key, ignore_missing=True)
    times = [t for t in (exptimes or []) if t is not None]
    if len(set(times)) > 1:
        stack.header["EXPTIME"] = (float(np.mean(times)), "[s] lights scaled to this exposure")
    return stack


def warm() -> None:
    """Import what the products need and load the calibration's kernel (a worker process
    runs this while the calling process plans). The combine's kernels are one per rejection
    algorithm and load at their first use: warming one the night does not use compiled it
    in each worker where it was not cached (measured on issue 16's night with its own five
    kernels cached: ``--workers 2`` took 36 s so, 26 s without)."""
    from ..calibration import calibrate
    from ..stacking import kernels  # noqa: F401

    ones = np.ones((4, 4), np.float32)
    frame = Frame(ones, variance=ones, mask=np.zeros((4, 4), np.uint16), header={"EXPTIME": 1.0})
    calibrate(frame, bias=frame, dark=frame, flat=frame, gain=1.0, read_noise=1.0)


def warm_stars() -> None:
    """Import what finding stars needs (the process beside a run's threads runs this while
    the masters are made)."""
    import sep  # noqa: F401

    from ..registration import stars  # noqa: F401


# ---------------------------------------------------------------------------- one task
def build(product: Product, memory_limit: int | None = None, after: Any = None) -> Path:
    """Make ``product`` with its recipe and write its file (atomically, with its key).

    ``after`` is ignored: it carries the results of the tasks that must finish first.
    """
    product.path.parent.mkdir(parents=True, exist_ok=True)  # scratch may go there first
    frame, history = product.recipe(
        list(product.inputs),
        memory_limit=memory_limit,
        workdir=product.path.parent,  # scratch beside the outputs, not in (memory-backed) /tmp
        **product.options,
    )
    path = write(frame, product, history)
    if product.kind in COMBINED:  # a combine's buffers, freed, are not the lights' to keep
        del frame
        release_memory()
    return path


def write(result: Any, product: Product, history: History) -> Path:
    """Write a recipe's result as ``product``'s file, with its key (``PIPEKEY``) and
    provenance: a Frame as FITS, a table as ECSV (both written to a temporary name and
    renamed)."""
    if not isinstance(result, Frame):  # a table
        from .._version import __version__

        result.meta["PIPEKEY"] = product.key
        result.meta["history"] = {
            "step": STEPS[product.kind], "ccdcal": __version__,
            "inputs": [p.name for p in product.inputs], "params": _plain(history),
        }  # fmt: skip
        product.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = product.path.with_name(f".{product.path.name}.tmp")
        result.write(tmp, format="ascii.ecsv", overwrite=True)
        tmp.replace(product.path)
        return product.path
    result.header["PIPEKEY"] = (product.key, "ccdcal: digest of inputs and options")
    # not flushed file by file: a rerun verifies every output's checksums before it keeps
    # it, and the run flushes once at its end (ccdcal.pipeline.outfolder.claim)
    result.write(product.path, step=STEPS[product.kind], inputs=product.inputs, params=history,
                 durable=False)  # fmt: skip
    return product.path


def _plain(values: History) -> dict[str, Any]:
    return {k: v if isinstance(v, bool | int | float | str) or v is None else str(v)
            for k, v in values.items()}  # fmt: skip


#: kinds of product that a combine makes, which can be made in parts
COMBINED = ("bias", "dark", "flat", "stack")

__all__ = [
    "COMBINED",
    "bias_recipe",
    "build",
    "dark_recipe",
    "finish_stack",
    "flat_recipe",
    "light_recipe",
    "master",
    "stack_recipe",
    "write",
]
