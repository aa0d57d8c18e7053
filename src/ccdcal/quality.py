"""How close a reduction comes to the truth of a simulated night, and the ``demo``.

The expected noise of each check comes from the detector model (read noise, gain, Poisson
statistics of sky, stars and dark current, the number of frames in each master), not from
the variance the pipeline propagated, so that a wrong variance cannot hide a wrong result.

Examples
--------
>>> c = TruthCheck("master bias rms", 1.0, 1.02, "adu", 0.15)
>>> c.ok
True
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import flags
from .frame import Frame
from .wording import plural

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TruthCheck:
    """One comparison with the truth: a measured number against what the model expects.

    ``ok`` when the measured value lies within ``tolerance`` (relative) of the expectation,
    or, for ``kind="below"``, does not exceed it by more than the tolerance.
    """

    name: str
    measured: float
    expected: float
    unit: str
    tolerance: float = 0.10
    kind: str = "equal"  # "equal": |m/e - 1| <= tol ; "below": m <= e (1 + tol)
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether the measurement agrees with the model."""
        if not (math.isfinite(self.measured) and math.isfinite(self.expected)):
            return False
        if self.kind == "below":
            return self.measured <= self.expected * (1 + self.tolerance)
        if self.kind == "zero":  # expected is the allowed absolute deviation
            return abs(self.measured) <= self.expected
        return abs(self.measured / self.expected - 1) <= self.tolerance


@dataclass
class TruthComparison:
    """All the checks of a reduction against the truth, and residual maps to look at."""

    checks: list[TruthCheck] = field(default_factory=list)
    residuals: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every check agrees with the model."""
        return all(c.ok for c in self.checks)

    def __getitem__(self, name: str) -> TruthCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def markdown(self) -> str:
        """The checks as a Markdown table: check, measured, expected (model), note.

        Examples
        --------
        >>> print(TruthComparison([TruthCheck("bias rms", 1.613, 1.6, "adu", 0.15)]).markdown())
        | comparison with truth | measured | expected (model) | note |
        | --- | ---: | ---: | --- |
        | bias rms | 1.613 adu | 1.6 |  |
        """
        lines = ["| comparison with truth | measured | expected (model) | note |",
                 "| --- | ---: | ---: | --- |"]  # fmt: skip
        for c in self.checks:
            sign = {"below": "≤ ", "zero": "\\|x\\| ≤ "}.get(c.kind, "")
            measured, expected, unit = c.measured, c.expected, f" {c.unit}" if c.unit else ""
            if c.unit == "fraction":
                measured, expected, unit = 100 * measured, 100 * expected, " %"
            value = f"{measured:.4g}{unit}".replace("-", "−") + ("" if c.ok else " (off)")
            lines.append(f"| {c.name.replace(' - ', ' − ')} | {value} | "
                         f"{sign}{expected:.4g}{' %' if unit == ' %' else ''} | "
                         f"{c.note.replace('|', '/')} |")  # fmt: skip
        return "\n".join(lines)

    def table(self) -> str:
        """A text table: check, measured, expected, agreement."""
        rows = [("comparison with truth", "measured", "expected", "unit", "", "note")]
        for c in self.checks:
            sign = {"below": "<=", "zero": "|x|<="}.get(c.kind, "")
            rows.append(
                (
                    c.name,
                    f"{c.measured:.4g}",
                    f"{sign}{c.expected:.4g}",
                    c.unit,
                    "ok" if c.ok else "OFF",
                    c.note,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- truth
@dataclass(frozen=True)
class Truth:
    """The truth behind a simulated night, read from its ``truth/`` folder."""

    folder: Path
    scene: np.ndarray  # electron / s
    dark_current: np.ndarray  # electron / s
    bias: np.ndarray  # adu
    flats: dict[str, np.ndarray]
    cosmic: dict[str, np.ndarray]  # light file stem -> bool mask
    params: dict[str, Any]

    @classmethod
    def read(cls, night_dir: str | Path) -> Truth:
        """Read ``night_dir/truth``.

        Examples
        --------
        >>> import tempfile, ccdcal
        >>> d = tempfile.mkdtemp()
        >>> _ = ccdcal.simulate.night(d, seed=1, shape=(32, 32), nbias=2, ndark=2, nflat=2,
        ...                           nlight=2)
        >>> Truth.read(d).scene.shape
        (32, 32)
        """
        folder = Path(night_dir) / "truth"

        def img(name: str) -> np.ndarray:
            return Frame.read(folder / name).data

        flats = {
            p.stem[len("flat_") :]: Frame.read(p).data for p in sorted(folder.glob("flat_*.fits"))
        }
        cosmic = {
            p.stem[len("cosmic_") :]: Frame.read(p).data > 0
            for p in sorted(folder.glob("cosmic_*.fits"))
        }
        params = json.loads((folder / "detector.json").read_text())
        return cls(
            folder,
            img("scene.fits"),
            img("dark_current.fits"),
            img("bias.fits"),
            flats,
            cosmic,
            params,
        )

    def param(self, *names: str, default: float | None = None) -> float:
        """A detector or night parameter by any of its names (searched in nested dicts)."""
        stack: list[dict[str, Any]] = [self.params]
        while stack:
            d = stack.pop(0)
            for n in names:
                if n in d and not isinstance(d[n], dict):
                    return float(d[n])
            stack.extend(v for v in d.values() if isinstance(v, dict))
        if default is None:
            raise KeyError(f"{self.folder}/detector.json has none of {names}")
        return default


# ---------------------------------------------------------------------------- checks
def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a * a))) if a.size else float("nan")


def compare_with_truth(night_dir: str | Path, result: Any) -> TruthComparison:
    """Compare the masters, a calibrated light and the stack of a reduction with the truth.

    Parameters
    ----------
    night_dir
        The simulated night's folder (holding ``raw/`` and ``truth/``).
    result
        The :class:`~ccdcal.pipeline.ReduceResult` of reducing ``night_dir/raw``.

    Returns
    -------
    TruthComparison
        Checks with model expectations, and residual maps.
    """
    truth = Truth.read(night_dir)
    gain = truth.param("gain")
    rn_e = truth.param("read_noise", "rdnoise")
    rn_adu = rn_e / gain
    n_bias = truth.param("nbias")
    n_dark = truth.param("ndark")
    n_flat = truth.param("nflat")
    t_darks = truth.param("dark_exptime")  # one exposure time, or a list of them
    t_dark = float(t_darks[0] if isinstance(t_darks, list) else t_darks)
    flat_level = truth.param("flat_level")
    out = TruthComparison()

    def efficiency(kind: str) -> float:
        # variance of the combined value / variance of a plain mean: pi/2 for a median of
        # many frames; a mean with outlier rejection loses next to nothing
        cfg = getattr(result, "config", None)
        method = cfg.combine_options(kind).method if cfg is not None else "median"
        return math.pi / 2 if method == "median" else 1.0

    # master bias: only its structure is comparable once the overscan took the level away
    bias_path = result.masters.get("bias")
    var_bias_adu = 0.0
    if bias_path is not None:
        mb = Frame.read(bias_path).data
        diff = mb - truth.bias
        offset = float(np.median(diff))
        var_bias_adu = rn_adu**2 * efficiency("bias") / n_bias
        out.checks.append(
            TruthCheck(
                "master bias - true bias: rms",
                _rms(diff - offset),
                math.sqrt(var_bias_adu),
                "adu",
                0.15,
                note=f"level offset {offset:+.2f} adu",
            )
        )
        out.residuals["master bias - true bias [adu]"] = diff - offset

    # master dark: bias-subtracted, in adu over t_dark
    dark_paths = [p for name, p in result.masters.items() if name.startswith("dark_")]
    var_dark_e = var_dark_own = 0.0
    if dark_paths:
        md = Frame.read(dark_paths[0])
        td = float(md.header.get("EXPTIME", t_dark))
        dark_e = md.data * gain
        true_e = truth.dark_current * td
        # each dark: Poisson(dark) + read noise + the master bias it had subtracted
        var_one = true_e + rn_e**2
        # the dark's own noise; the master bias it had subtracted is accounted for where it
        # matters (below), since the same master bias is subtracted from the lights
        var_dark_own = float(np.mean(var_one * efficiency("dark") / n_dark))
        var_dark_e = var_dark_own + var_bias_adu * gain**2
        resid = dark_e - true_e
        out.checks.append(
            TruthCheck(
                "master dark - true dark: rms",
                _rms(resid),
                math.sqrt(var_dark_e),
                "electron",
                0.15,
                note=f"{td:g} s darks",
            )
        )
        out.residuals[f"master dark - true dark [e-, {td:g} s]"] = resid

    # master flat per filter
    rel_flat: dict[str, float] = {}
    for filt, true_flat in truth.flats.items():
        path = result.masters.get(f"flat_{filt}")
        if path is None:
            continue
        mf = Frame.read(path).data
        ratio = mf / true_flat
        ratio /= np.median(ratio)
        level_e = flat_level * true_flat
        rel = np.sqrt((level_e + rn_e**2) * efficiency("flat") / n_flat) / level_e
        rel_flat[filt] = float(np.sqrt(np.mean(rel**2)))
        out.checks.append(
            TruthCheck(
                f"master flat {filt} / true flat: rms",
                _rms(ratio - 1),
                rel_flat[filt],
                "",
                0.15,
                kind="below",
                note=f"expected noise of {plural(int(n_flat), 'combined flat')}",
            )
        )
        out.residuals[f"master flat {filt} / true flat - 1"] = ratio - 1

    # one calibrated light and the stack
    if not result.calibrated:
        return out
    first = Frame.read(result.calibrated[0])
    t = float(first.header["EXPTIME"])
    filt = str(first.header.get("FILTER", next(iter(truth.flats), "")))
    flat = truth.flats.get(filt, np.ones_like(truth.scene))
    signal_e = truth.scene * t
    dark_e = truth.dark_current * t
    k = float(first.header.get("DARKSCAL", t / t_dark))  # the dark the light was given
    # model variance of one calibrated light, electrons^2: its own Poisson and read noise,
    # then the masters' noise, all divided by the flat it was corrected with
    var_frame = (flat * signal_e + dark_e + rn_e**2) / flat**2
    # light - B - k (D - B): the master bias B enters as (1 - k), the dark's own noise as k
    var_master = ((1 - k) ** 2 * var_bias_adu * gain**2 + k**2 * var_dark_own) / flat**2 + (
        signal_e**2 * rel_flat.get(filt, 0.0) ** 2
    )
    cr_any = np.zeros(truth.scene.shape, bool)
    for m in truth.cosmic.values():
        cr_any |= m
    stem = Path(result.calibrated[0]).stem
    cr_first = truth.cosmic.get(stem, cr_any)
    good = first.good & ~cr_first
    flagged = 1 - float(first.good.mean())
    out.checks.append(
        TruthCheck("calibrated light: pixels flagged", flagged, 0.01, "fraction", 0.0,
                   kind="below", note="saturated, bad, no data")
    )  # fmt: skip
    resid = first.data - signal_e
    expected = math.sqrt(float(np.mean((var_frame + var_master)[good])))
    mean = float(np.mean(resid[good]))
    out.checks.append(
        TruthCheck(
            "calibrated light - truth: mean",
            mean,
            4 * expected / math.sqrt(good.sum()) + 0.002 * float(np.mean(signal_e)),
            "electron",
            kind="zero",
            note=f"{Path(result.calibrated[0]).name}, cosmic rays excluded",
        )
    )
    out.checks.append(
        TruthCheck(
            "calibrated light - truth: std",
            float(np.std(resid[good])),
            expected,
            "electron",
            0.10,
            note="model: shot + read + dark + masters",
        )
    )
    out.residuals["calibrated light - truth [e-]"] = np.where(good, resid, np.nan)

    for (obj, filt_s), path in result.stacks.items():
        stack = Frame.read(path)
        n = int(truth.param("nlight"))  # the truth's count, not what the stack says it used
        ok = np.isfinite(stack.data) & ((stack.mask_or_zeros() & flags.NO_DATA) == 0)
        resid = stack.data - signal_e
        var_stack = var_frame / n + var_master
        sigma = np.sqrt(var_stack)
        clean = ok & ~cr_any
        exp_std = math.sqrt(float(np.mean(var_stack[clean])))
        out.checks.append(
            TruthCheck(
                f"stack {obj} {filt_s} - truth: std",
                float(np.std(resid[clean])),
                exp_std,
                "electron",
                0.10,
                note=f"{plural(n, 'frame')}; sigma-clipping costs a few %",
            )
        )
        if stack.variance is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                z = resid / np.sqrt(stack.variance)
            fine = clean & np.isfinite(z)
            out.checks.append(
                TruthCheck(
                    f"stack {obj} {filt_s} - truth: std / its UNCERT",
                    float(np.std(z[fine])),
                    1.0,
                    "",
                    0.05,
                    note="the stack's own error bars: masters' noise counted once",
                )
            )
        injected = int(cr_any.sum())
        left = int((ok & cr_any & (np.abs(resid) > 5 * sigma)).sum())
        out.checks.append(
            TruthCheck(
                f"stack {obj} {filt_s}: cosmic-ray pixels left",
                left,
                max(1.0, 0.001 * injected),
                "pixels",
                0.0,
                kind="below",
                note=f"of {injected} injected (> 5 sigma from truth)",
            )
        )
        out.residuals[f"stack {obj} {filt_s} - truth [e-]"] = np.where(ok, resid, np.nan)
    return out


# ---------------------------------------------------------------------------- demo
@dataclass
class DemoOutcome:
    """What ``ccdcal demo`` made: the night, the reduction and the comparisons."""

    night_dir: Path
    result: Any
    truth: TruthComparison
    photometry: Any = None

    def markdown(self) -> str:
        """The night, the comparison with the truth, the photometry and each stack's
        rejection, as Markdown (``OUT_DIR/truth.md``; README includes it)."""
        truth = Truth.read(self.night_dir)
        night = truth.params.get("night", {})
        ny, nx = truth.scene.shape
        intro = (
            f"`ccdcal demo` (seed {night.get('seed', truth.params.get('seed'))}: {nx}x{ny} "
            f"pixels, {night.get('nbias')} bias, {night.get('ndark')} darks, "
            f"{night.get('nflat')} flats and {night.get('nlight')} lights of "
            f"{night.get('light_exptime', 0):g} s; gain {truth.param('gain'):g} e-/ADU, read "
            f"noise {truth.param('read_noise', 'rdnoise'):g} e-), compared with the "
            "simulator's truth; the expected values come from the detector model, not from "
            "the pipeline's own variance:"
        )
        table = self.truth.markdown()
        if self.photometry is not None:
            p = self.photometry
            table += (
                f"\n| aperture photometry of the stack / true flux ({len(p.table)} stars) | "
                f"{p.median_ratio:.4f} ± {p.median_ratio_err:.4f} | 1 | median; robust spread "
                f"{p.ratio_spread:.4f} |"
            )
        parts = [intro, table]
        for (obj, filt), path in self.result.stacks.items():
            from astropy.io import fits

            header = fits.getheader(path)
            if "REJFRAC" not in header:
                continue
            n = header.get("NCOMBINE", "its")
            std = next((c for c in self.truth.checks
                        if c.name == f"stack {obj} {filt} - truth: std"), None)  # fmt: skip
            cost = ""
            if std is not None:
                excess = f"{100 * (std.measured / std.expected - 1):.1f}".replace("-", "−")
                cost = f"; its noise is {excess} % above the model's plain mean of its lights"
            parts.append(
                f"The stack {obj} {filt} of {n} lights rejects "
                f"{100 * float(header['REJFRAC']):.2f} % of its values "
                f"({100 * float(header.get('REJFRLO', 0.0)):.2f} % low, "
                f"{100 * float(header.get('REJFRHI', 0.0)):.2f} % high, cosmic rays "
                f"included){cost}."
            )
        return "\n\n".join(parts) + "\n"


def demo(out_dir: str | Path, *, seed: int = 0, **night_options: Any) -> DemoOutcome:
    """Simulate the default night, reduce it, and compare with the truth.

    Parameters
    ----------
    out_dir
        Receives ``night/`` (raw frames and truth), ``reduced/`` (masters, calibrated
        frames, stacks, report) and ``truth.md`` (:meth:`DemoOutcome.markdown`). Run again
        into the same folder, it simulates the same night without touching a file, and the
        reduction and the report keep what they made.
    seed
        Simulation seed.
    **night_options
        Passed to :func:`ccdcal.simulate.night` (shape, numbers of frames, ...).

    Returns
    -------
    DemoOutcome
    """
    from . import simulate
    from .pipeline import reduce

    out = Path(out_dir)
    night_dir = out / "night"
    simulate.night(night_dir, seed=seed, **night_options)
    result = reduce(night_dir / "raw", out / "reduced", report=False)
    truth = compare_with_truth(night_dir, result)
    photometry = None
    if result.stacks:
        from astropy.table import Table

        from .photometry import compare_with_truth as photometry_vs_truth

        stars = Table.read(night_dir / "truth" / "stars.ecsv")
        stack = Frame.read(next(iter(result.stacks.values())))
        photometry = photometry_vs_truth(stack, stars, float(stack.header["EXPTIME"]))
    from .report import write_report

    result.report = write_report(result, truth=truth, photometry=photometry)
    for c in truth.checks:
        if not c.ok:
            log.warning(
                "truth check off: %s = %.4g (expected %.4g)", c.name, c.measured, c.expected
            )
    outcome = DemoOutcome(night_dir, result, truth, photometry)
    text = outcome.markdown()
    path = out / "truth.md"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        tmp = out / ".truth.md.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return outcome


__all__ = ["DemoOutcome", "Truth", "TruthCheck", "TruthComparison", "compare_with_truth", "demo"]
