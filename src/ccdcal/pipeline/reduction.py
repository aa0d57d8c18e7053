"""``reduce``: a folder of raw frames to masters, calibrated frames, stacks and a report.

A reduction is three steps: :func:`~ccdcal.pipeline.plan` the products, :func:`execute`
what is not up to date, write the report. Every output is written atomically and carries
its key (``PIPEKEY``), so a run that was killed finishes where it stopped, and a changed
option or raw file redoes what it touches.

Examples
--------
>>> import tempfile, ccdcal
>>> tmp = tempfile.mkdtemp()
>>> night = ccdcal.simulate.night(tmp + "/night", seed=3, shape=(48, 48), nbias=3, ndark=3,
...                               nflat=3, nlight=3)
>>> result = reduce(tmp + "/night/raw", tmp + "/out", report=False)
>>> sorted(result.masters)
['bias', 'dark_60s', 'flat_V']
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..collection import Collection
from ..compiled import compile_ahead, stop_ahead
from ..config import Config
from ..errors import CcdcalError
from ..parallel import DaskCluster, executor
from ..wording import plural
from . import recipes
from .execution import Outcome, check_band_rows, execute
from .outfolder import claim
from .planning import plan
from .products import PARTS, Plan

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


@dataclass
class ReduceResult:
    """What a reduction produced and what it had to say.

    Attributes
    ----------
    out_dir
        The output folder.
    masters
        Master frames by name: ``bias``, ``dark_<t>s``, ``flat_<filter>``.
    calibrated
        Calibrated lights, in the order of the raw files.
    stacks
        Stacks by ``(object, filter)``.
    notices
        What the user should know (missing calibrations and what was done instead).
    failures
        Files that could not be used, with the reason; a CLI exits non-zero when any.
    built
        Outputs this run made.
    reused
        Outputs kept from an earlier run (checksums and inputs unchanged).
    collection
        The scanned raw folder.
    plan
        The plan that was executed (its products, inputs and keys).
    registrations
        Each registered stack's registration table (``registration/<stack>.ecsv``), by the
        stack's name.
    camera
        The camera measured from the night's biases and flats (``masters/camera.ecsv``),
        or None where they do not come in pairs.
    """

    out_dir: Path
    masters: dict[str, Path] = field(default_factory=dict)
    calibrated: list[Path] = field(default_factory=list)
    stacks: dict[tuple[str, str], Path] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    built: list[Path] = field(default_factory=list)
    report: Path | None = None
    collection: Collection | None = None
    config: Config | None = None
    plan: Plan | None = None
    registrations: dict[str, Path] = field(default_factory=dict)
    camera: Path | None = None

    @classmethod
    def from_run(cls, the_plan: Plan, outcome: Outcome, out_dir: Path) -> ReduceResult:
        """The outputs of ``the_plan`` that ``outcome`` built or kept."""
        done = {p.name for p in (*outcome.built, *outcome.reused)}
        inferred: list[Path] = []
        result = cls(
            out_dir=out_dir,
            notices=list(the_plan.notices),
            failures=list(the_plan.failures),
            reused=[p.path for p in outcome.reused],
            built=[p.path for p in outcome.built],
            collection=the_plan.collection,
            config=the_plan.config,
            plan=the_plan,
        )
        for p in the_plan.products.values():
            if p.name not in done:
                continue
            if p.kind == "camera":
                result.camera = p.path
                result.notices += _table_notices(p.path)
            elif p.part == "masters":
                result.masters[p.label] = p.path
            elif p.kind == "light":
                result.calibrated.append(p.path)
                inferred.append(p.path)
            elif p.kind == "registration":
                result.registrations[p.about["stack"]] = p.path
                result.notices += _table_notices(p.path)
            elif p.kind == "stack":
                result.stacks[(p.about["object"], p.about["filter"])] = p.path
                result.notices += _rejection_notices(p.path)
        result.notices += _saturation_notices(inferred, the_plan.config)
        result.notices += _orphan_notices(the_plan)
        return result

    def summary(self) -> str:
        """A short text table of the outputs with their main statistics."""
        from concurrent.futures import ThreadPoolExecutor

        from .. import threads

        wanted = [(f"masters/{path.name}", path, name, False)
                  for name, path in self.masters.items()]  # fmt: skip
        wanted += [(f"stacks/{path.name}", path, f"{obj} {filt}", True)
                   for (obj, filt), path in self.stacks.items()]  # fmt: skip
        # on threads: NumPy's medians let go of Python's lock, and a 2048x2048 output's
        # median and robust std take a tenth of a second
        with ThreadPoolExecutor(max(1, min(threads.count(), len(wanted)))) as pool:
            rows = [("output", "shape", "median", "robust std", "note")]
            rows += pool.map(lambda row: _stats_row(*row), wanted)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"{plural(len(self.built), 'output')} built, {len(self.reused)} up to date (kept); "
            f"{plural(len(self.calibrated), 'calibrated light')}, "
            f"{plural(len(self.stacks), 'stack')}, {plural(len(self.failures), 'failure')}"
        )
        lines += self.detector_lines()
        return "\n".join(lines)

    def detector_lines(self) -> list[str]:
        """Where the lights' detector numbers came from, and what the night's frames
        measured, a line each."""
        lines = []
        sources = self.plan.sources if self.plan is not None else {}
        for name, text in sources.items():
            lines.append(f"{name}: {text}")
        if self.camera is not None and self.camera.exists():
            from .camera import read_camera

            meta = read_camera(self.camera)
            for name, unit in (("gain", "e-/ADU"), ("rdnoise", "e-")):
                if meta.get(name) is not None:
                    lines.append(
                        f"measured {'read noise' if name == 'rdnoise' else name}: "
                        f"{meta[name]:.4g} ± {meta[name + '_error']:.2g} {unit} "
                        f"({meta[name + '_source']})"
                    )
        return lines


#: a stack rejecting more than this fraction of its values says so: a 3σ rejection of
#: values with the noise their variance says rejects 0.27 %; much more means that the noise
#: model, the alignment or the scaling is off, and the rejection is eating signal
REJECTED_NOTICE = 0.01


def _rejection_notices(path: Path) -> list[str]:
    """A notice where a stack rejected more than :data:`REJECTED_NOTICE` of its values."""
    from astropy.io import fits

    header = fits.getheader(path)
    left = [f"{path.stem}: {header[k]}; left out" for k in header if k.startswith("LEFTOUT")]
    frac = float(header.get("REJFRAC", 0.0))
    if frac <= REJECTED_NOTICE:
        return left
    lo, hi = float(header.get("REJFRLO", 0.0)), float(header.get("REJFRHI", 0.0))
    return [
        *left,
        f"{path.stem}: {100 * frac:.2f} % of the values rejected ({100 * lo:.2f} % low, "
        f"{100 * hi:.2f} % high), more than {100 * REJECTED_NOTICE:.0f} %: check the noise "
        "model (gain, read noise), the alignment and the scaling",
    ]


def _orphan_notices(the_plan: Plan) -> list[str]:
    """A notice for the calibrated lights of an earlier run whose raw file is gone: they are
    in no stack of this run, and are not deleted (they are the user's to keep or remove)."""
    from .planning import output_name

    folder = the_plan.out_dir / "calibrated"
    if not folder.is_dir():
        return []
    # a light of the raw folder that this run leaves out is not gone: only files whose raw
    # frame is no longer there at all are
    present = {folder / output_name(the_plan.collection.relative(f))
               for f in the_plan.collection.frames}  # fmt: skip
    present |= {p.path for p in the_plan.products.values()}
    gone = sorted(p for p in folder.rglob("*.fits") if p.is_file() and p not in present)
    if not gone:
        return []
    names = ", ".join(str(p.relative_to(the_plan.out_dir)) for p in gone[:3])
    more = ", ..." if len(gone) > 3 else ""
    return [
        f"{plural(len(gone), 'calibrated light')} of an earlier run "
        f"({names}{more}) whose raw file is no longer in {the_plan.raw_dir}: in no stack of "
        "this run; delete them, or put the raw files back"
    ]


def _saturation_notices(lights: Sequence[Path], config: Config) -> list[str]:
    """One notice per saturation level inferred from the ADC's ceiling (SATINFER) in lights
    whose headers named none."""
    from astropy.io import fits

    levels: dict[tuple[float, str], int] = {}
    for path in lights:
        header = fits.getheader(path)
        if "SATINFER" in header:
            value, comment = header["SATINFER"], header.comments["SATINFER"]
            key = (float(value), comment.split(": ", 1)[-1].removesuffix(" ceiling"))
            levels[key] = levels.get(key, 0) + 1
    return [
        f"no saturation level in the headers ({'/'.join(config.keywords.saturation)}): "
        f"{level:g} ADU, the {adc} ceiling that the data reach, taken in "
        f"{plural(n, 'light')} (set [detector] saturation to choose another)"
        for (level, adc), n in levels.items()
    ]


def _table_notices(path: Path) -> list[str]:
    """The notices a registration wrote into its table, each naming its stack."""
    from astropy.table import Table

    notices = Table.read(path, format="ascii.ecsv").meta.get("notices", [])
    return [f"{path.stem}: {n}" for n in notices]


def _stats_row(
    label: str, path: Path, note: str, rejected: bool = False
) -> tuple[str, str, str, str, str]:
    st = path.stat()
    return _stats_of(label, path, note, rejected, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=256)
def _stats_of(
    label: str, path: Path, note: str, rejected: bool, mtime: int, size: int
) -> tuple[str, str, str, str, str]:
    """:func:`_stats_row` of the file as it is (its time and size): the summary is printed
    and shown in the report, and a median of a 2048x2048 stack takes a tenth of a second."""
    from ..fitsio import ImageReader
    from ..robust import median_and_std

    with ImageReader(path, memmap=False) as reader:  # the image alone: not mask nor variance
        data, header = reader.rows(), reader.header
    if rejected and "REJFRAC" in header:
        note = f"{note}; {100 * float(header['REJFRAC']):.2f} % rejected"
    level, spread = median_and_std(data[np.isfinite(data)], overwrite=True)
    return label, f"{data.shape[1]}x{data.shape[0]}", f"{level:.4g}", f"{spread:.4g}", note


#: the most threads independent products share in one process: past a few, the work that
#: holds Python's lock (finding stars, drawing figures) is the limit; processes
#: (``workers``) take more cores
MAX_TASK_THREADS = 4


def task_threads() -> int:
    """How many threads a reduction's products share in this process: the cores it may use
    (:func:`ccdcal.threads.count`), at most :data:`MAX_TASK_THREADS`."""
    from .. import threads

    return min(MAX_TASK_THREADS, threads.count())


def reduce(
    raw_dir: PathLike,
    out_dir: PathLike,
    *,
    config: Config | PathLike | None = None,
    progress: bool | None = None,
    report: bool = True,
    workers: int = 1,
    scheduler: Any = None,
    memory_limit: int | str | None = None,
    only: str | None = None,
    band_rows: int | None = None,
    durable: bool = False,
) -> ReduceResult:
    """Reduce a night: masters, calibrated lights, stacks, and a report.

    Plans the products (:func:`ccdcal.plan`), builds those that are not up to date
    (:func:`ccdcal.pipeline.execute`) and writes the report.

    Parameters
    ----------
    raw_dir
        Folder of raw FITS files (searched recursively).
    out_dir
        Output folder: ``masters/``, ``calibrated/``, ``stacks/``, ``report/``.
    config
        A :class:`~ccdcal.config.Config`, or the path of a TOML file; default settings
        otherwise.
    progress
        Show progress bars; default when standard error is a terminal.
    report
        Write the figures and the HTML report (after a whole run, not with ``only``).
    workers, scheduler
        Where the products are built (see :mod:`ccdcal.parallel`): here (``workers=1``;
        independent products on :func:`task_threads` threads, the stars on a process
        beside), on ``workers`` local processes, or on the Dask cluster whose scheduler
        address (or ``distributed.Client``) is given. The results are the same.
    memory_limit
        Memory for each master and stack (bytes or text such as ``"4GB"``; default a quarter
        of the available memory): larger sets are streamed from disk.
    only
        ``"masters"``, ``"calibrated"`` or ``"stacks"``: build just that part and what it
        needs.
    band_rows
        Combine masters and stacks in row bands of about this many rows, each a task
        (default: on a cluster, only combines larger than a few GB).
    durable
        Flush the outputs to the disk before returning (``sync``). Without it they reach
        the disk when the system writes them back: a power cut before then can leave some
        torn, which the next run tells by their checksums and makes again.

    Returns
    -------
    ReduceResult
        Paths of everything written, notices and failures.
    """
    # refused before any work; in this process, independent products share a few threads
    run = executor(workers, scheduler, warmup=recipes.warm, threads=task_threads(),
                   side_warmup=recipes.warm_stars)  # fmt: skip
    check_band_rows(band_rows)
    if only is not None and only not in PARTS:
        raise CcdcalError(f"only must be one of {', '.join(PARTS)}, not {only!r}")
    limit = _memory_limit(memory_limit)
    the_plan = plan(raw_dir, out_dir, config=config)
    if limit is not None:
        _check_memory(the_plan, limit)  # before minutes of work, not after them
    out = the_plan.out_dir
    show = sys.stderr.isatty() if progress is None else progress
    # one run at a time; what a killed one left half-written is cleared
    with claim(out, durable=durable):
        for notice in the_plan.notices:  # before the work: a failure must not hide them
            log.warning("%s", notice)
        if not isinstance(run, DaskCluster):  # a cluster's workers compile their own
            compile_ahead(kernels_of(the_plan))
        early = None
        if report and only is None:
            from ..report import EarlyFigures

            early = EarlyFigures(the_plan, run)
        try:
            try:
                outcome = execute(
                    the_plan, only=only, workers=run, memory_limit=limit, band_rows=band_rows,
                    progress=show, made=None if early is None else early.made,
                )  # fmt: skip
            finally:
                stop_ahead()
            result = ReduceResult.from_run(the_plan, outcome, out)
            for notice in result.notices[len(the_plan.notices) :]:
                log.warning("%s", notice)
            if early is not None:
                from ..report import write_report

                result.report = write_report(result, early=early)
        finally:
            if early is not None:
                early.close()
    return result


def kernels_of(the_plan: Plan) -> list[str]:
    """The compiled kernels a plan's products call (:mod:`ccdcal.compiled`), in the order
    they first call them: the decoders of raw files, the combine of each master's
    rejection, the calibration, the stacks' combine (``"auto"``: each light's variance,
    :class:`~ccdcal.combine.VarianceClip`, as on a night whose noise is known).

    Examples
    --------
    >>> kernels_of(Plan(Path("raw"), Path("out"), None, None))
    []
    """
    from ..masters import CombineSpec
    from ..stacking.rejection import NONE, VARCLIP

    names: list[str] = []
    for product in the_plan.products.values():
        spec = product.options.get("combine")
        if isinstance(spec, CombineSpec):  # a master
            names += ["decode", f"combine:{NONE if spec.reject is None else spec.reject.code}"]
        elif product.kind == "light":
            names.append("calibrate")
        elif product.kind == "stack":
            reject = getattr(spec, "reject", "auto")
            code = VARCLIP if reject == "auto" else None
            if code is None:
                made = spec.rejection() if hasattr(spec, "rejection") else None
                code = NONE if made is None else made.code
            names += ["decode", f"combine:{code}"]
    return list(dict.fromkeys(names))


def default_kernels() -> list[str]:
    """The compiled kernels a reduction with the default configuration may call (see
    :func:`kernels_of`): the stacks' of each rejection their ``"auto"`` may choose
    (:class:`~ccdcal.combine.VarianceClip` where the lights' noise is known, else
    :class:`~ccdcal.combine.CCDClip` or a sigma clip; see
    :func:`ccdcal.pipeline.stack_choice.stack_combination`) and the resampling of lights that
    moved included: what ``ccdcal compile`` compiles, and ``make`` when it installs ccdcal.

    Examples
    --------
    >>> default_kernels()[:5], default_kernels()[-1]
    (['decode', 'combine:6', 'combine:0', 'calibrate', 'combine:7'], 'resample')
    """
    from ..stacking.rejection import CCDCLIP, NONE, SIGCLIP, VARCLIP

    config = Config()
    names = ["decode"]
    for kind in ("bias", "dark", "flat"):
        made = config.combine_options(kind).rejection()
        names.append(f"combine:{NONE if made is None else made.code}")
    names += ["calibrate", *(f"combine:{c}" for c in (VARCLIP, CCDCLIP, SIGCLIP)), "resample"]
    return list(dict.fromkeys(names))


def _check_memory(the_plan: Plan, limit: int) -> None:
    """Refuse a memory limit too small for the largest combine of the plan, in one line
    naming it, before any work (the combine engine's own count of what it needs)."""
    from ..stacking.stream import plan_rows

    combined = the_plan.of_kind(*recipes.COMBINED)
    if not combined or the_plan.shape is None:
        return
    lights = [f for f in the_plan.collection.frames if f.kind == "light" and f.error is None]
    shape = the_plan.shape
    trimsec = the_plan.config.detector.trimsec
    try:
        section = lights[0].section("trimsec") if trimsec is None else None
    except CcdcalError:
        section = None
    if section is not None:
        rows, cols = section
        shape = (len(range(*rows.indices(shape[0]))), len(range(*cols.indices(shape[1]))))
    biggest = max(combined, key=lambda p: len(p.inputs))
    try:
        plan_rows(len(biggest.inputs), shape, memory_limit=limit, has_mask=True,
                  has_variance=False, keep_rejected=False)  # fmt: skip
    except CcdcalError as err:
        raise CcdcalError(f"{biggest.name}: {err}; give --memory-limit more") from None


def _memory_limit(value: int | str | None) -> int | None:
    if value is None:
        return None
    from ..stacking.stream import parse_bytes

    try:
        return parse_bytes(value)
    except ValueError as err:
        raise CcdcalError(str(err)) from None


__all__ = ["ReduceResult", "reduce"]
