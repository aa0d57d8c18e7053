"""``reduce``: a folder of raw frames to masters, calibrated frames, stacks and a report.

The plan follows DESIGN.md: scan -> group -> master bias -> master darks (per exposure) ->
master flats (per filter) -> calibrated lights -> stacks per object and filter -> report.

Every output is written atomically and carries a key (``PIPEKEY``) made from its inputs
and options. A rerun keeps each output whose checksums verify and whose key matches, so a
run that was killed finishes where it stopped, and a changed option redoes what it touches.

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

import hashlib
import logging
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .calibrate import Overscan, calibrate
from .collection import Collection, FrameInfo, scan
from .config import Config, load_config
from .errors import CcdcalError
from .fitsio import verify_checksums
from .frame import Frame
from .masters import CombineSpec, master_bias, master_dark, master_flat
from .parallel import check as check_backend
from .parallel import run_tasks

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------- results
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
    reused
        Outputs kept from an earlier run (checksums and inputs unchanged).
    collection
        The scanned raw folder.
    """

    out_dir: Path
    masters: dict[str, Path] = field(default_factory=dict)
    calibrated: list[Path] = field(default_factory=list)
    stacks: dict[tuple[str, str], Path] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)
    report: Path | None = None
    collection: Collection | None = None
    config: Config | None = None

    def summary(self) -> str:
        """A short text table of the outputs with their main statistics."""
        rows = [("output", "shape", "median", "robust std", "note")]
        for name, path in self.masters.items():
            rows.append(_stats_row(f"masters/{path.name}", path, name))
        for (obj, filt), path in self.stacks.items():
            rows.append(_stats_row(f"stacks/{path.name}", path, f"{obj} {filt}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append(
            f"{len(self.calibrated)} calibrated lights, {len(self.stacks)} stacks, "
            f"{len(self.reused)} outputs reused, {len(self.failures)} failures"
        )
        return "\n".join(lines)


def _stats_row(label: str, path: Path, note: str) -> tuple[str, str, str, str, str]:
    from astropy.stats import mad_std

    frame = Frame.read(path)
    good = frame.data[np.isfinite(frame.data)]
    return (
        label,
        f"{frame.shape[1]}x{frame.shape[0]}",
        f"{np.median(good):.4g}" if good.size else "nan",
        f"{mad_std(good):.4g}" if good.size else "nan",
        note,
    )


# ---------------------------------------------------------------------------- helpers
def _key(*parts: Any) -> str:
    """A short stable digest of a step's inputs (names, sizes, times) and options."""
    h = hashlib.sha256(__version__.encode())  # a new version may calibrate differently
    for part in parts:
        if isinstance(part, Path):
            st = part.stat()
            part = f"{part.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        h.update(repr(part).encode())
    return h.hexdigest()[:16]


def _reusable(path: Path, key: str) -> bool:
    if not path.exists() or not verify_checksums(path):
        return False
    from astropy.io import fits

    return fits.getheader(path).get("PIPEKEY") == key


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text.strip()).strip("_") or "none"


def _exptime_label(t: float) -> str:
    return f"{t:g}".replace(".", "p")


@contextmanager
def _progress(enabled: bool, total: int, desc: str) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr) as bar:
        yield bar


def _workdir(out: Path) -> Path:
    """Where masters put prepared frames that do not fit in memory: beside the outputs (the
    system's temporary folder is often memory itself)."""
    folder = out / "masters"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write(frame: Frame, path: Path, key: str, step: str, inputs: Sequence[Path], params: dict):
    frame.header["PIPEKEY"] = (key, "ccdcal: digest of inputs and options")
    frame.write(path, step=step, inputs=inputs, params=params)


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Plan:
    bias: list[FrameInfo]
    darks: dict[float, list[FrameInfo]]
    flats: dict[str, list[FrameInfo]]
    lights: dict[tuple[str, str], list[FrameInfo]]


def _plan(collection: Collection, result: ReduceResult) -> _Plan:
    usable = [f for f in collection.frames if f.error is None]
    lights = [f for f in usable if f.kind == "light"]
    if not lights:
        raise CcdcalError(f"{collection.root}: no light frames found (see `ccdcal info`)")
    shape = lights[0].shape
    for f in usable:
        if f.kind in ("bias", "dark", "flat", "light") and f.shape != shape:
            raise CcdcalError(
                f"{f.path}: {f.kind} frame of shape {f.shape[1]}x{f.shape[0]} differs from the "
                f"lights' {shape[1]}x{shape[0]} ({lights[0].path.name}); move it out of the folder"
            )
    darks: dict[float, list[FrameInfo]] = {}
    for f in usable:
        if f.kind == "dark":
            if f.exptime is None:
                raise CcdcalError(f"{f.path}: dark frame without an exposure time")
            darks.setdefault(float(f.exptime), []).append(f)
    groups: dict[tuple[str, str], list[FrameInfo]] = {}
    for f in lights:
        groups.setdefault((f.object or "unknown", f.filter or "none"), []).append(f)
    wanted = {filt for _, filt in groups}
    flats: dict[str, list[FrameInfo]] = {}
    for f in usable:
        if f.kind == "flat":
            flats.setdefault(f.filter or "none", []).append(f)
    for filt in sorted(set(flats) - wanted):
        result.notices.append(
            f"{len(flats[filt])} flats in filter {filt!r}: no light in that filter; not used"
        )
        del flats[filt]
    for f in collection.frames:
        if f.error is not None:
            result.failures.append((f.path, f.error))
        elif f.kind not in ("bias", "dark", "flat", "light"):
            result.notices.append(f"{f.path.name}: type unknown ({f.reason}); not used")
    return _Plan([f for f in usable if f.kind == "bias"], darks, flats, groups)


def choose_dark(
    exptime: float | None, available: Sequence[float], *, match: str = "nearest"
) -> float | None:
    """The exposure time of the master dark to use for a frame of ``exptime`` seconds.

    ``"exact"`` takes only the same exposure (None when there is none);
    ``"nearest"`` takes the same exposure when there is one, else the closest (scaled by the
    ratio of exposure times); ``"scale"`` always takes the longest (the least noisy per
    second) and scales it.

    Examples
    --------
    >>> choose_dark(30, [5, 15, 60])
    15
    >>> choose_dark(30, [5, 15, 60], match="scale")
    60
    """
    if not available:
        return None
    if match == "scale":
        return max(available)
    if exptime is None:
        return max(available)
    if exptime in available:
        return exptime
    if match == "exact":
        return None
    return min(available, key=lambda t: (abs(t - exptime), -t))


# ---------------------------------------------------------------------------- reduce
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
) -> ReduceResult:
    """Reduce a night: masters, calibrated lights, stacks, and a report.

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
        Write the figures and the HTML report.
    workers, scheduler
        Where the lights are calibrated (see :mod:`ccdcal.parallel`): one after another here
        (``workers=1``), on ``workers`` local processes, or on the Dask cluster whose
        scheduler address (or ``distributed.Client``) is given. The results are the same.
    memory_limit
        Memory for each master and stack (bytes or text such as ``"4GB"``; default a quarter
        of the available memory): larger sets are streamed from disk.

    Returns
    -------
    ReduceResult
        Paths of everything written, notices and failures.
    """
    raw = Path(raw_dir)
    out = Path(out_dir)
    if not raw.is_dir():
        raise CcdcalError(f"{raw}: no such folder")
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise CcdcalError(f"{out}: the output folder must not be inside the raw folder {raw}")
    cfg = load_config(config) if isinstance(config, str | os.PathLike) else (config or Config())
    check_backend(workers, scheduler)  # before hours of masters, not after
    for stale in (out / "masters").glob(".ccdcal-prepared-*"):  # a killed run's scratch
        shutil.rmtree(stale, ignore_errors=True)
    if memory_limit is not None:
        from .combine.stream import parse_bytes

        try:
            memory_limit = parse_bytes(memory_limit)
        except ValueError as err:
            raise CcdcalError(str(err)) from None
    show = sys.stderr.isatty() if progress is None else progress
    result = ReduceResult(out_dir=out, config=cfg)
    collection = scan(raw, config=cfg)
    result.collection = collection
    plan = _plan(collection, result)
    det = cfg.detector
    overscan = Overscan(
        det.overscan, order=det.overscan_order, sigma=det.overscan_sigma, axis=det.readout_axis
    )
    common: dict[str, Any] = {
        "biassec": det.biassec,
        "trimsec": det.trimsec,
        "overscan": overscan,
    }
    opts_key = (repr(cfg),)

    # master bias --------------------------------------------------------------
    bias: Frame | None = None
    if plan.bias:
        paths = [f.path for f in plan.bias]
        bias_path = out / "masters" / "bias.fits"
        key = _key("bias", *paths, *opts_key)
        if _reusable(bias_path, key):
            result.reused.append(bias_path)
        else:
            with _progress(show, len(paths), "master bias") as bar:
                bias = master_bias(
                    paths,
                    combine=_limited(_spec(cfg, "bias"), memory_limit),
                    progress=bar.update,
                    workdir=_workdir(out),
                    **common,
                )
            _write(
                bias, bias_path, key, "master bias", paths, {"method": _spec(cfg, "bias").method}
            )
        bias = Frame.read(bias_path)
        result.masters["bias"] = bias_path
        log.info("master bias: %d frames -> %s", len(paths), bias_path)
    else:
        result.notices.append(
            "no bias frames: bias removed only by the overscan and by darks of equal exposure"
        )

    # master darks -------------------------------------------------------------
    darks: dict[float, Frame] = {}
    for t, infos in sorted(plan.darks.items()):
        paths = [f.path for f in infos]
        name = f"dark_{_exptime_label(t)}s"
        path = out / "masters" / f"{name}.fits"
        key = _key("dark", *paths, result.masters.get("bias"), *opts_key)
        if _reusable(path, key):
            result.reused.append(path)
        else:
            with _progress(show, len(paths), f"master dark {t:g}s") as bar:
                md = master_dark(
                    paths,
                    bias=bias,
                    combine=_limited(_spec(cfg, "dark"), memory_limit),
                    exptimes=[f.exptime for f in infos],
                    progress=bar.update,
                    workdir=_workdir(out),
                    **common,
                )
            _write(md, path, key, "master dark", paths, {"exptime": t})
        darks[t] = Frame.read(path)
        result.masters[name] = path
        log.info("master dark %gs: %d frames -> %s", t, len(paths), path)
    if not plan.darks:
        result.notices.append("no dark frames: dark current not subtracted")

    def dark_for(info: FrameInfo) -> Frame | None:
        # without a master bias a dark still holds the bias: it may only be subtracted
        # unscaled, from a frame of the same exposure
        match = cfg.dark.match if bias is not None else "exact"
        chosen = choose_dark(info.exptime, list(darks), match=match)
        if chosen is None and darks:
            skipped.add(info.exptime)
        return None if chosen is None else darks[chosen]

    skipped: set[float | None] = set()

    # master flats -------------------------------------------------------------
    flats: dict[str, Frame] = {}
    for filt, infos in sorted(plan.flats.items()):
        paths = [f.path for f in infos]
        path = out / "masters" / f"flat_{_safe(filt)}.fits"
        dark = dark_for(infos[0])
        key = _key(
            "flat",
            *paths,
            result.masters.get("bias"),
            None if dark is None else dark.path,
            *opts_key,
        )
        if _reusable(path, key):
            result.reused.append(path)
        else:
            with _progress(show, len(paths), f"master flat {filt}") as bar:
                mf = master_flat(
                    paths,
                    bias=bias,
                    dark=dark,
                    combine=_limited(_spec(cfg, "flat"), memory_limit),
                    exptimes=[f.exptime for f in infos],
                    min_response=cfg.flat.min_response,
                    progress=bar.update,
                    workdir=_workdir(out),
                    **common,
                )
            _write(mf, path, key, "master flat", paths, {"filter": filt})
        flats[filt] = Frame.read(path)
        result.masters[f"flat_{_safe(filt)}"] = path
        log.info("master flat %s: %d frames -> %s", filt, len(paths), path)

    # calibrated lights --------------------------------------------------------
    calibrated_dir = out / "calibrated"
    no_gain = [i for infos in plan.lights.values() for i in infos if _gain(i, cfg) is None]
    if no_gain:
        result.notices.append(
            f"no gain for {len(no_gain)} lights (no GAIN-like keyword, no [detector] gain in "
            "the config): they and their stacks stay in ADU"
        )
    total = sum(len(v) for v in plan.lights.values())
    by_group: dict[tuple[str, str], list[Path]] = {}
    jobs: list[_LightJob] = []
    for (obj, filt), infos in plan.lights.items():
        flat = flats.get(filt)
        if flat is None:
            result.notices.append(
                f"no flat for filter {filt!r}: {len(infos)} lights of {obj} stay unflattened"
            )
        for info in infos:
            target = calibrated_dir / _output_name(collection.relative(info))
            dark = dark_for(info)
            key = _key(
                "light", info.path, *[m for m in result.masters.values()], *opts_key,
                repr(cfg.cosmic),
            )  # fmt: skip
            if _reusable(target, key):
                result.reused.append(target)
            else:
                jobs.append(_light_job(info, filt, target, key, bias, dark, flat, cfg, common))
            result.calibrated.append(target)
            by_group.setdefault((obj, filt), []).append(target)
    with _progress(show, total, "calibrate") as bar:
        bar.update(total - len(jobs))
        # the masters this process holds serve its own tasks; a worker reads them once
        held = [f for f in (bias, *darks.values(), *flats.values()) if f is not None]
        _MASTERS.update({_master_key(f.path.resolve()): f for f in held if f.path is not None})
        try:
            run_tasks(
                _run_light_job, jobs, workers=workers, scheduler=scheduler, progress=bar.update
            )
        finally:
            _MASTERS.clear()

    # stacks -------------------------------------------------------------------
    for (obj, filt), paths in by_group.items():
        target = out / "stacks" / f"{_safe(obj)}_{_safe(filt)}.fits"
        key = _key("stack", *paths, *opts_key)
        if _reusable(target, key):
            result.reused.append(target)
        else:
            from astropy.io import fits

            headers = [fits.getheader(p) for p in paths]  # read once for spec and weights
            spec = _limited(_light_spec(cfg, headers), memory_limit)
            opts = cfg.combine_options("light")
            use_weights = opts.weights and opts.method != "median"  # a median has no weights
            weights = _frame_weights(headers) if use_weights else None
            stack = spec.run(paths, weights=weights)
            stack.header["IMAGETYP"] = ("STACK", "ccdcal stack of calibrated lights")
            _write(
                stack,
                target,
                key,
                "stack",
                paths,
                {"method": spec.method, "reject": repr(spec.reject)},
            )
        result.stacks[(obj, filt)] = target
        log.info("stack %s %s: %d frames -> %s", obj, filt, len(paths), target)

    if skipped:
        times = ", ".join("unknown" if t is None else f"{t:g} s" for t in sorted(skipped, key=str))
        result.notices.append(
            f"no dark of the same exposure for lights or flats of {times}"
            + (" (without bias frames a dark cannot be scaled)" if bias is None else "")
            + ": dark not subtracted from them"
        )
    for notice in result.notices:
        log.warning("%s", notice)
    if report:
        from .report import write_report

        result.report = write_report(result)
    return result


def _output_name(relative: str) -> str:
    """The calibrated file's path below ``calibrated/``: the raw one's, as ``.fits``.

    Sub-folders are kept, so that two nights' ``light_001.fits`` do not overwrite each other.
    """
    folder, _, name = relative.replace(os.sep, "/").rpartition("/")
    for suffix in (".gz", ".fz", ".bz2"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem, dot, _ = name.rpartition(".")
    out = f"{stem}.fits" if dot else f"{name}.fits"
    return f"{folder}/{out}" if folder else out


@dataclass(frozen=True)
class _LightJob:
    """One light to calibrate and write, every option resolved: plain data, so that a worker
    process or a cluster node can run it (masters travel as paths)."""

    raw: Path
    target: Path
    key: str
    bias: Path | None
    dark: Path | None
    flat: Path | None
    options: dict[str, Any]  # calibrate()'s keywords
    header: dict[str, tuple[str, str]]  # cards to set on the result
    cosmic: dict[str, Any] | None  # flag_cosmic_rays()'s keywords when L.A.Cosmic is on
    params: dict[str, Any]  # the HISTORY parameters


def _light_job(
    info: FrameInfo,
    filt: str,
    target: Path,
    key: str,
    bias: Frame | None,
    dark: Frame | None,
    flat: Frame | None,
    cfg: Config,
    common: dict[str, Any],
) -> _LightJob:
    det = cfg.detector
    header = {}
    if info.filter:
        header["FILTER"] = (info.filter, "filter (as classified by ccdcal)")
    if info.object:
        header["OBJECT"] = (info.object, "object (as classified by ccdcal)")
    # absolute paths: a cluster's workers do not share this process's working folder
    return _LightJob(
        raw=info.path.resolve(),
        target=target.resolve(),
        key=key,
        bias=_master_path(bias),
        dark=_master_path(dark),
        flat=_master_path(flat),
        options=dict(
            gain=_gain(info, cfg),
            read_noise=det.rdnoise if det.rdnoise is not None else info.rdnoise,
            saturation=det.saturation if det.saturation is not None else info.saturation,
            exptime=info.exptime,
            flat_min=cfg.flat.min_response,
            **common,
        ),
        header=header,
        cosmic=dict(cfg.cosmic.params) if cfg.cosmic.method == "lacosmic" else None,
        params={
            "bias": bias is not None,
            "dark": None if dark is None or dark.path is None else dark.path.name,
            "flat": None if flat is None else filt,
        },
    )


def _master_path(frame: Frame | None) -> Path | None:
    if frame is None:
        return None
    assert frame.path is not None, "a master reaches the lights from its file"
    return frame.path.resolve()


#: master frames read by this process, by (path, modification time, size): a long-lived
#: cluster worker must not serve an old master that a later run rewrote in place
_MASTERS: dict[tuple[Path, int, int], Frame] = {}


def _master_key(path: Path) -> tuple[Path, int, int]:
    st = path.stat()
    return (path, st.st_mtime_ns, st.st_size)


def _master(path: Path | None) -> Frame | None:
    if path is None:
        return None
    key = _master_key(path)
    frame = _MASTERS.get(key)  # one lookup: another thread may clear the cache meanwhile
    if frame is None:
        if len(_MASTERS) >= 16:
            _MASTERS.clear()
        frame = _MASTERS[key] = Frame.read(path)
    return frame


def _run_light_job(job: _LightJob) -> Path:
    """Calibrate one light and write it (in this process or a worker's)."""
    raw = Frame.read(job.raw)
    # a missing gain is reported once for the whole night, not once per frame
    frame = calibrate(
        raw,
        bias=_master(job.bias),
        dark=_master(job.dark),
        flat=_master(job.flat),
        warn_no_gain=False,
        **job.options,
    )
    for name, card in job.header.items():
        frame.header[name] = card
    if job.cosmic is not None:
        from .cosmic import flag_cosmic_rays

        frame = flag_cosmic_rays(frame, **job.cosmic)
    _write(frame, job.target, job.key, "calibrate", [job.raw], job.params)
    return job.target


def _frame_weights(headers: Sequence[Any]) -> list[float] | None:
    """Inverse median variance of each calibrated frame (MEDVAR), or None if one lacks it."""
    values = [h.get("MEDVAR") for h in headers]
    if any(v is None or not float(v) > 0 for v in values):
        return None
    return [1.0 / float(v) for v in values]


def _light_spec(cfg: Config, headers: Sequence[Any]) -> CombineSpec:
    """The stack's combine specification; resolves ``reject = "auto"`` from the frames.

    "auto" is IRAF's ccdclip, whose sigma comes from the noise model (read noise and
    Poisson), where the calibrated frames are in electrons with a known read noise; else a
    4-sigma clip with the MAD spread (over ten values the MAD scatters, and 3 sigma would
    reject several per cent of good values).
    """
    opts = cfg.combine_options("light")
    if opts.reject != "auto":
        return _spec(cfg, "light")
    from .combine import CCDClip, SigmaClip

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


def _gain(info: FrameInfo, cfg: Config) -> float | None:
    return cfg.detector.gain if cfg.detector.gain is not None else info.gain


def _limited(spec: CombineSpec, memory_limit: int | str | None) -> CombineSpec:
    if memory_limit is None:
        return spec
    return replace(spec, options={**spec.options, "memory_limit": memory_limit})


def _spec(cfg: Config, kind: str) -> CombineSpec:
    """The combine specification for one kind of frame from the configuration."""
    return CombineSpec.from_options(cfg.combine_options(kind))


__all__ = ["ReduceResult", "choose_dark", "reduce"]
