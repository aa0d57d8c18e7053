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

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..calibrate import exposure_time
from ..combine import CCDClip, Combination, Rows, Setup, SigmaClip
from ..config import CombineOptions
from ..errors import CcdcalError
from ..frame import Frame
from ..masters import (
    CombineSpec,
    finish_bias,
    finish_dark,
    finish_flat,
    flat_spec,
    master_bias,
    master_dark,
    master_flat,
    prepare_dark,
    prepare_flat,
    preprocess,
    with_exptime,
)
from .products import Product

History = dict[str, Any]

#: the HISTORY step of each kind of product
STEPS = {"bias": "master bias", "dark": "master dark", "flat": "master flat",
         "light": "calibrate", "stack": "stack"}  # fmt: skip


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
        frame = Frame.read(ref.path)
        if frame.header.get("PIPEKEY") != ref.key:
            raise CcdcalError(
                f"{ref.path}: this master changed while the run used it (another run in the "
                "same output folder?); run again"
            )
        if len(_MASTERS) >= 16:
            _MASTERS.clear()
        _MASTERS[ref] = frame
    return frame


def forget_masters() -> None:
    """Let go of the masters this process holds (after a run)."""
    _MASTERS.clear()


def _limited(spec: CombineSpec, memory_limit: int | None) -> CombineSpec:
    if memory_limit is None:
        return spec
    return replace(spec, options={**spec.options, "memory_limit": memory_limit})


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
) -> tuple[Frame, History]:
    """The master bias from raw bias frames (see :func:`ccdcal.masters.master_bias`)."""
    frame = master_bias(
        list(inputs),
        combine=_limited(combine, memory_limit),
        workdir=_workdir(workdir),
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
) -> tuple[Frame, History]:
    """A master dark from raw darks of one exposure (see :func:`ccdcal.masters.master_dark`)."""
    frame = master_dark(
        list(inputs),
        bias=master(bias),
        combine=_limited(combine, memory_limit),
        exptimes=exptimes,
        workdir=_workdir(workdir),
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
) -> tuple[Frame, History]:
    """A master flat from raw flats of one filter (see :func:`ccdcal.masters.master_flat`)."""
    frame = master_flat(
        list(inputs),
        bias=master(bias),
        dark=master(dark),
        combine=_limited(combine, memory_limit),
        exptimes=exptimes,
        min_response=min_response,
        workdir=_workdir(workdir),
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
) -> tuple[Frame, History]:
    """One raw light calibrated (:func:`ccdcal.calibrate`), its cosmic rays flagged when
    ``cosmic`` holds L.A.Cosmic's options; ``header`` cards set on the result."""
    from ..calibrate import calibrate as calibrate_frame

    (raw,) = inputs
    # a missing gain is reported once for the whole night, not once per frame
    frame = calibrate_frame(
        Frame.read(raw),
        bias=master(bias),
        dark=master(dark),
        flat=master(flat),
        warn_no_gain=False,
        **calibrate,
    )
    for name, card in header.items():
        frame.header[name] = card
    if cosmic is not None:
        from ..cosmic import flag_cosmic_rays

        frame = flag_cosmic_rays(frame, **cosmic)
    return frame, history


def stack_recipe(
    inputs: Sequence[Path], *, memory_limit: int | None, workdir: Path, combine: CombineOptions
) -> tuple[Frame, History]:
    """The stack of calibrated lights, its rejection and weights chosen from their headers
    (see :func:`stack_combination`)."""
    combination, history = stack_combination(inputs, combine, memory_limit)
    return finish_stack(combination(list(inputs))), history


def stack_combination(
    inputs: Sequence[Path], options: CombineOptions, memory_limit: int | None
) -> tuple[Combination, History]:
    """How calibrated lights are stacked: the configuration's combine, with ``reject =
    "auto"`` resolved and the frames' weights (1 / median variance) read from their headers.

    "auto" is IRAF's ccdclip, whose sigma comes from the noise model (read noise and
    Poisson), where the calibrated frames are in electrons with a known read noise; else a
    4-sigma clip with the MAD spread (over ten values the MAD scatters, and 3 sigma would
    reject several per cent of good values).
    """
    from astropy.io import fits

    headers = [fits.getheader(p) for p in inputs]  # read once for the rejection and weights
    spec = _light_spec(options, headers)
    use_weights = options.weights and options.method != "median"  # a median has no weights
    weights = _frame_weights(headers) if use_weights else None
    combination = _limited(spec, memory_limit).combination(weights=weights)
    return combination, {"method": spec.method, "reject": repr(spec.reject)}


def finish_stack(stack: Frame) -> Frame:
    """A combine of calibrated lights labelled as a stack."""
    stack.header["IMAGETYP"] = ("STACK", "ccdcal stack of calibrated lights")
    return stack


def _frame_weights(headers: Sequence[Any]) -> list[float] | None:
    """Inverse median variance of each calibrated frame (MEDVAR), or None if one lacks it."""
    values = [h.get("MEDVAR") for h in headers]
    if any(v is None or not float(v) > 0 for v in values):
        return None
    return [1.0 / float(v) for v in values]


def _light_spec(opts: CombineOptions, headers: Sequence[Any]) -> CombineSpec:
    if opts.reject != "auto":
        return CombineSpec.from_options(opts)
    noise = [h.get("RDNOISE") for h in headers]
    electrons = all(str(h.get("BUNIT", "")).lower() == "electron" for h in headers)
    variances = [float(h.get("MEDVAR", 0) or 0) for h in headers]
    # ccdclip evaluates its noise model at the common (offset) level: right only when the
    # frames' skies, hence their noise, are alike (not so in twilight)
    alike = min(variances) > 0 and max(variances) / min(variances) < 1.5
    p = opts.params
    if electrons and alike and all(v is not None for v in noise):
        reject: Any = CCDClip(gain=1.0, read_noise=float(np.median(noise)), low=p["low"],
                              high=p["high"], maxiters=p["maxiters"])  # fmt: skip
    else:
        reject = SigmaClip(low=4.0, high=4.0, maxiters=p["maxiters"], spread="mad_std")
    return replace(CombineSpec.from_options(replace(opts, reject="none")), reject=reject)


def warm() -> None:
    """Load the compiled kernels of calibration and combine (a worker process runs this while
    the calling process plans)."""
    from ..calibrate import calibrate

    ones = np.ones((4, 4), np.float32)
    frame = Frame(ones, variance=ones, mask=np.zeros((4, 4), np.uint16), header={"EXPTIME": 1.0})
    calibrate(frame, bias=frame, dark=frame, flat=frame, gain=1.0, read_noise=1.0)
    Combination(reject=SigmaClip())([frame, frame, frame])


# ---------------------------------------------------------------------------- one task
def build(product: Product, memory_limit: int | None = None, after: Any = None) -> Path:
    """Make ``product`` with its recipe and write its file (atomically, with its key).

    ``after`` is ignored: it carries the results of the tasks that must finish first.
    """
    frame, history = product.recipe(
        list(product.inputs),
        memory_limit=memory_limit,
        workdir=product.path.parent,  # scratch beside the outputs, not in (memory-backed) /tmp
        **product.options,
    )
    return write(frame, product, history)


def write(frame: Frame, product: Product, history: History) -> Path:
    """Write ``frame`` as ``product``'s file, with its key (``PIPEKEY``) and provenance."""
    frame.header["PIPEKEY"] = (product.key, "ccdcal: digest of inputs and options")
    frame.write(product.path, step=STEPS[product.kind], inputs=product.inputs, params=history)
    return product.path


# ---------------------------------------------------------------------------- in parts
@dataclass(frozen=True)
class Prepared:
    """A combine product's inputs ready to combine (files), and how to combine them."""

    inputs: list[Path]
    combination: Combination
    setup: Setup
    history: History
    exptime: float | None = None


def scratch(product: Product) -> Path:
    """The folder where a master made in parts keeps its prepared inputs."""
    return product.path.parent / f".ccdcal-prepared-{product.label}"


def prepare(product: Product, index: int, after: Any = None) -> tuple[Path, float | None]:
    """Raw input ``index`` of a master, prepared as the master's recipe prepares it (overscan,
    trim, bias, dark) and written to the product's scratch folder; its path and exposure
    time."""
    options = product.options
    exptimes = options.get("exptimes")
    frame = with_exptime(
        Frame.read(product.inputs[index]), None if exptimes is None else exptimes[index]
    )
    pre = options["preprocess"]
    if product.kind == "bias":
        out = preprocess(frame, **pre)
    elif product.kind == "dark":
        out = prepare_dark(frame, bias=master(options["bias"]), **pre)
    else:
        out = prepare_flat(frame, bias=master(options["bias"]), dark=master(options["dark"]), **pre)
    folder = scratch(product)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{index:05d}.fits"
    tmp = path.with_name(f".{path.name}.tmp")
    out.to_hdulist().writeto(tmp, overwrite=True)  # a scratch copy: no checksums, no fsync
    tmp.replace(path)
    return path, exposure_time(out)


def setup(
    product: Product,
    inputs: list[tuple[Path, float | None]] | None = None,
    memory_limit: int | None = None,
    after: Any = None,
) -> Prepared:
    """What every band of a combine product shares: its inputs (the prepared files of a
    master and their exposure times, default the product's own inputs), its combine and
    their setup. ``after`` is ignored (see :func:`build`)."""
    files = list(product.inputs) if inputs is None else [path for path, _ in inputs]
    exptime = None
    if inputs is not None and product.kind == "dark":
        times = {t for _, t in inputs}
        if len(times) > 1:  # as master_dark refuses them
            raise CcdcalError(
                f"darks of different exposure times combined together: {sorted(map(str, times))}"
            )
        exptime = times.pop()
    options = product.options
    if product.kind == "stack":
        combination, history = stack_combination(files, options["combine"], memory_limit)
    else:
        spec = options["combine"]
        spec = flat_spec(spec) if product.kind == "flat" else spec
        combination = _limited(spec, memory_limit).combination()
        history = _master_history(product)
    return Prepared(files, combination, combination.setup(files), history, exptime)


def _master_history(product: Product) -> History:
    o = product.options
    if product.kind == "bias":
        return {"method": o["combine"].method}
    if product.kind == "dark":
        return {"exptime": o["exptime"]}
    return {"filter": o["filter"]}


def rows(prepared: Prepared, index: int, count: int) -> Rows | None:
    """Band ``index`` of ``count`` equal bands of output rows (None when the image has
    fewer rows than bands)."""
    ny = prepared.setup.shape[0]
    y0, y1 = index * ny // count, (index + 1) * ny // count
    if y0 == y1:
        return None
    return prepared.combination.rows(prepared.inputs, prepared.setup, y0, y1)


def assemble(product: Product, prepared: Prepared, parts: list[Rows | None]) -> Path:
    """Put the bands together, finish the product as its recipe does, write it, and remove
    the scratch folder."""
    combined = prepared.combination.assemble(prepared.setup, [p for p in parts if p])
    count = len(prepared.inputs)
    o = product.options
    if product.kind == "bias":
        frame = finish_bias(combined, count)
    elif product.kind == "dark":
        frame = finish_dark(combined, count, exptime=prepared.exptime)
    elif product.kind == "flat":
        frame = finish_flat(combined, count, min_response=o["min_response"])
    else:
        frame = finish_stack(combined)
    path = write(frame, product, prepared.history)
    shutil.rmtree(scratch(product), ignore_errors=True)
    return path


#: kinds of product that a combine makes, which can be made in parts
COMBINED = ("bias", "dark", "flat", "stack")

__all__ = [
    "COMBINED",
    "Prepared",
    "assemble",
    "bias_recipe",
    "build",
    "dark_recipe",
    "finish_stack",
    "flat_recipe",
    "light_recipe",
    "master",
    "prepare",
    "rows",
    "scratch",
    "setup",
    "stack_combination",
    "stack_recipe",
    "write",
]


def _register_sizes() -> None:
    """Tell Dask how large the results that travel between tasks are (its memory accounting
    would take a band of a stack for a few bytes)."""
    from dask.sizeof import sizeof

    @sizeof.register(Rows)
    def _rows(rows: Rows) -> int:
        planes = (rows.data, rows.variance, rows.mask, rows.ncombine, rows.nrejlo, rows.nrejhi)
        extra = 0 if rows.rejected is None else rows.rejected.nbytes
        return sum(p.nbytes for p in planes) + extra

    @sizeof.register(Prepared)
    def _prepared(prepared: Prepared) -> int:
        return 4096 + 64 * len(prepared.inputs)


_register_sizes()
