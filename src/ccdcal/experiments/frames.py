"""Experiment ``frames``: how the background noise of a stack falls with the number of frames.

One night is simulated with the largest number of lights; masters are built once; the
calibrated lights are stacked N = 1, 2, 4, ... at a time with a sigma-clipped mean. On
star-free pixels that no cosmic ray hit, the noise is the standard deviation of
(stack − truth). That error has two parts: the random noise of the N frames, which falls as
1/√N, and the fixed pattern the masters leave in every frame (their own read and photon
noise), which no amount of stacking removes. The pattern is computed exactly by calibrating
the noise-free raw frame with the same masters, so both parts are measured, not assumed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import CcdcalError
from ._common import (
    ExperimentResult,
    SimNight,
    background_pixels,
    build_masters,
    calibrate_lights,
    fit_loglog,
    fixed_pattern,
    frame_variance,
    markdown_table,
    noise_and_error,
    signed,
    thousands,
    work_folder,
)

log = logging.getLogger(__name__)


@dataclass
class FramesResult(ExperimentResult):
    """Noise of stacks of N frames.

    Rows hold ``n``; ``noise`` (std of stack − truth) and ``noise_err``; ``random`` (the
    same with the masters' fixed pattern removed) and ``random_err``; ``random_mean`` and
    ``random_mean_err`` (the random part of a plain mean of the same frames, which the
    clipped mean is compared with); ``floor`` (std of the
    fixed pattern); ``expected`` (model: √(σ₁²/N + floor²)); ``gain`` (noise of one frame /
    noise of N). The fit attributes are set by :func:`frames`.

    Attributes
    ----------
    slope, slope_err
        Power-law index of the random noise of the (sigma-clipped) stacks against N over all
        N, with its standard error. Expected −0.5, less a little: once N is large enough
        for the clipping to act (N ≳ 9 for 3 σ), it discards a few good values and a 3 σ
        clipped mean is ~1.5 % noisier than a plain mean, which flattens the slope by ~0.004.
    slope_mean, slope_mean_err
        The same for plain means of the same frames (cosmic-ray pixels are not measured):
        1/√N exactly, within the error.
    frame_noise, frame_noise_err, floor_fit, floor_fit_err
        Fit of the total noise with σ² = σ₁²/N + floor²: the noise of one frame and the
        floor the masters set, from the stacks alone.
    floor
        Standard deviation of the masters' fixed pattern, computed exactly.
    n_floor
        The N at which the random noise of the stack equals the floor: beyond it the noise
        falls much more slowly than 1/√N.
    pixels
        Number of background pixels measured.
    """

    slope: float = float("nan")
    slope_err: float = float("nan")
    slope_chi2: float = float("nan")
    slope_mean: float = float("nan")
    slope_mean_err: float = float("nan")
    frame_noise: float = float("nan")
    frame_noise_err: float = float("nan")
    floor_fit: float = float("nan")
    floor_fit_err: float = float("nan")
    floor: float = float("nan")
    n_floor: float = float("nan")
    pixels: int = 0

    name: ClassVar[str] = "frames"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("n", "N", "d"),
        ("noise", "noise [e-]", ".4f"),
        ("noise_err", "±", ".4f"),
        ("random", "random [e-]", ".4f"),
        ("random_err", "±", ".4f"),
        ("random_mean", "plain mean", ".4f"),
        ("floor", "masters [e-]", ".4f"),
        ("expected", "model [e-]", ".4f"),
        ("gain", "1/noise vs N=1", ".3f"),
    )

    def summary(self) -> str:
        """The fits and where the floor sets in, in words."""
        if not self.rows:
            return "no rows"
        return (
            f"random noise ∝ N^({self.slope:.4f} ± {self.slope_err:.4f}) over N = "
            f"{self.rows[0]['n']}..{self.rows[-1]['n']} (chi2/dof "
            f"{self.slope_chi2:.2f}); plain mean: N^({self.slope_mean:.4f} ± "
            f"{self.slope_mean_err:.4f}); expected -0.5\n"
            f"total noise² = σ1²/N + floor²: σ1 = {self.frame_noise:.3f} ± "
            f"{self.frame_noise_err:.3f} e-, floor = {self.floor_fit:.3f} ± "
            f"{self.floor_fit_err:.3f} e- (masters' pattern: {self.floor:.3f} e-)\n"
            f"the masters' noise equals the stack's random noise at N ≈ {self.n_floor:.0f}: "
            f"beyond it more frames gain little ({self.pixels} background pixels)"
        )

    def table(self) -> str:
        """The rows, then the fit."""
        return super().table() + "\n" + self.summary()

    def markdown(self) -> str:
        """What ran, the noise of each stack, and the fits in words."""
        p = self.params
        head = ("N", "stack − truth [e-]", "random part [e-]", "random part, plain mean [e-]",
                "model [e-]", "noise of 1 / noise of N")  # fmt: skip
        rows = [
            (r["n"], f"{r['noise']:.3f} ± {r['noise_err']:.3f}",
             f"{r['random']:.3f} ± {r['random_err']:.3f}", f"{r['random_mean']:.3f}",
             f"{r['expected']:.3f}", f"{r['gain']:.3f}")
            for r in self.rows
        ]  # fmt: skip
        ns = p["n"]
        intro = (
            f"`ccdcal experiment frames` (seed {p['seed']}, {p['shape']} pixels, stacks of "
            f"the first N = {', '.join(map(str, ns))} lights, sigma-clipped mean; masters "
            f"from {p['nbias']} bias, {p['ndark']} dark and {p['nflat']} flat frames, "
            f"median-combined): the background noise of each stack against the truth, on "
            f"{thousands(self.pixels)} star-free pixels hit by no cosmic ray. The random part "
            "leaves out the pattern the masters leave in every frame, computed exactly from "
            "the noise-free frames calibrated with the same masters."
        )
        if len(self.rows) < 2:
            return intro + "\n\n" + markdown_table(head, rows) + "\n"
        findings = [
            f"- Plain-mean stacks fall as N^({signed(self.slope_mean, '.4f')} ± "
            f"{self.slope_mean_err:.4f}); sigma-clipped ones as N^({signed(self.slope, '.4f')}"
            f" ± {self.slope_err:.4f}): a 3σ clip that can act (from N ≈ 9) discards a few "
            "good values.",
            f"- The masters leave a floor of {self.floor_fit:.3f} ± {self.floor_fit_err:.3f} "
            f"e- (a fit of noise² = σ₁²/N + floor² to the stacks; {self.floor:.3f} e- "
            "computed directly from noise-free frames calibrated with the same masters), "
            f"which the stack's random noise reaches at N ≈ {self.n_floor:.0f}: beyond it "
            "more frames gain little.",
        ]
        return "\n\n".join([intro, markdown_table(head, rows), "\n".join(findings)]) + "\n"

    def plot(self, path: Any) -> Path:
        """Noise against N on log-log axes with the 1/√N line, the floor and the fits."""
        from ..report.figures import new_figure, plot_noise_vs_n, save_figure

        n = [r["n"] for r in self.rows]
        fig = new_figure((6.0, 4.6))
        ax = fig.add_subplot()
        floor = self.floor if math.isfinite(self.floor) else None
        plot_noise_vs_n(
            ax,
            n,
            [r["noise"] for r in self.rows],
            errors=[r["noise_err"] for r in self.rows],
            label="stack − truth",
            floor=floor,
        )
        ax.errorbar(
            n,
            [r["random"] for r in self.rows],
            yerr=[r["random_err"] for r in self.rows],
            fmt="s",
            ms=4,
            color="C2",
            label=f"random part: slope {self.slope:.3f} ± {self.slope_err:.3f}",
        )
        ax.plot(
            n,
            [r["random_mean"] for r in self.rows],
            "s",
            ms=8,
            mfc="none",
            color="C4",
            label=f"random part, plain mean: slope {self.slope_mean:.3f}",
        )
        if math.isfinite(self.n_floor):
            ax.axvline(
                self.n_floor,
                color="C3",
                ls="--",
                lw=0.8,
                label=f"random noise = floor at N ≈ {self.n_floor:.0f}",
            )
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title(
            f"background noise of sigma-clipped mean stacks (seed {self.params.get('seed')})",
            fontsize=10,
        )
        return save_figure(fig, path)


def _fit_floor(rows: Sequence[dict[str, Any]]) -> tuple[tuple[float, float], ...]:
    """Weighted fit of noise² = a/N + b; returns ((a, σa), (b, σb))."""
    n = np.array([r["n"] for r in rows], dtype=float)
    y = np.array([r["noise"] ** 2 for r in rows])
    sy = np.array([2 * r["noise"] * r["noise_err"] for r in rows])
    design = np.column_stack([1.0 / n, np.ones_like(n)])
    w = 1.0 / sy**2
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    a, b = cov @ (design.T @ (w * y))
    return (float(a), float(math.sqrt(cov[0, 0]))), (float(b), float(math.sqrt(cov[1, 1])))


def frames(
    *,
    seed: int = 0,
    shape: tuple[int, int] = (200, 200),
    n: Sequence[int] = (1, 2, 4, 8, 16, 32),
    nbias: int = 25,
    ndark: int = 15,
    nflat: int = 15,
    reject: Any = None,
    work_dir: Any = None,
    quick: bool = False,
    **night_options: Any,
) -> FramesResult:
    """Measure the background noise of stacks of N frames against the truth.

    Parameters
    ----------
    seed
        Simulation seed (the same seed gives the same numbers).
    shape
        (ny, nx) of the simulated detector.
    n
        Numbers of frames to stack; the night has ``max(n)`` lights. Each stack uses the
        first N lights.
    nbias, ndark, nflat
        Calibration frames for the masters (median-combined).
    reject
        Rejection for the stacks; default ``SigmaClip(low=3, high=3)``.
    work_dir
        Keep the simulated night under ``work_dir/frames``; default a temporary folder.
    quick
        A small fast version for tests: 96×96 pixels, N up to 8, fewer calibration frames.
    **night_options
        Passed on to :func:`ccdcal.simulate.night`.

    Returns
    -------
    FramesResult
    """
    from ..stacking import SigmaClip, combine

    if quick:
        shape = (min(shape[0], 96), min(shape[1], 96))
        n = tuple(k for k in n if k <= 8) or (1, 2, 4, 8)
        nbias, ndark, nflat = min(nbias, 11), min(ndark, 7), min(nflat, 7)
    ns = sorted({int(k) for k in n})
    if not ns or ns[0] < 1:
        raise CcdcalError(f"n must be positive numbers of frames, not {list(n)}")
    reject = SigmaClip(low=3.0, high=3.0) if reject is None else reject
    params = {
        "seed": seed,
        "shape": f"{shape[1]}x{shape[0]}",
        "n": ns,
        "nbias": nbias,
        "ndark": ndark,
        "nflat": nflat,
        "reject": repr(reject),
    }
    with work_folder(work_dir, "frames") as folder:
        night = SimNight.make(
            folder / "night",
            seed=seed,
            shape=shape,
            nbias=nbias,
            ndark=ndark,
            nflat=nflat,
            nlight=max(ns),
            **night_options,
        )
        masters = build_masters(night)
        lights = sorted(night.lights)[: max(ns)]
        calibrated = calibrate_lights(lights, masters)
        t = float(calibrated[0].header["EXPTIME"])
        filt = str(calibrated[0].header.get("FILTER", "")).strip() or None
        truth_e = night.truth.scene * t
        pattern = fixed_pattern(night, lights[0], masters)
        var1 = frame_variance(night, t, filt=filt)
        bg = background_pixels(night, exclude=night.cosmic(lights))

    result = FramesResult(params=params)
    for c in calibrated:
        bg &= c.good
    result.pixels = int(bg.sum())
    floor, _ = noise_and_error(pattern[bg])
    var1_bg = float(np.mean(var1[bg]))
    first_noise = None
    for k in ns:
        stack = combine(calibrated[:k], method="mean", reject=reject)
        resid = stack.data.astype(np.float64) - truth_e
        ok = bg & np.isfinite(resid)
        noise, noise_err = noise_and_error(resid[ok])
        random, random_err = noise_and_error((resid - pattern)[ok])
        plain = combine(calibrated[:k], method="mean").data.astype(np.float64) - truth_e
        random_mean, random_mean_err = noise_and_error((plain - pattern)[ok])
        first_noise = noise if first_noise is None else first_noise
        result.rows.append(
            {
                "n": k,
                "noise": noise,
                "noise_err": noise_err,
                "random": random,
                "random_err": random_err,
                "random_mean": random_mean,
                "random_mean_err": random_mean_err,
                "floor": floor,
                "expected": math.sqrt(var1_bg / k + floor**2),
                "gain": first_noise / noise,
                "pixels": int(ok.sum()),
            }
        )
        log.debug("frames: N=%d noise %.4f (random %.4f) e-", k, noise, random)

    rows = result.rows
    result.floor = floor
    if len(rows) >= 2:
        result.slope, result.slope_err, _, result.slope_chi2 = fit_loglog(
            ns, [r["random"] for r in rows], [r["random_err"] for r in rows]
        )
        result.slope_mean, result.slope_mean_err, _, _ = fit_loglog(
            ns, [r["random_mean"] for r in rows], [r["random_mean_err"] for r in rows]
        )
        (a, sa), (b, sb) = _fit_floor(rows)
        result.frame_noise = math.sqrt(max(a, 0.0))
        result.frame_noise_err = sa / (2 * result.frame_noise) if a > 0 else float("nan")
        result.floor_fit = math.sqrt(max(b, 0.0))
        result.floor_fit_err = sb / (2 * result.floor_fit) if b > 0 else float("nan")
    random1 = rows[0]["random"] * math.sqrt(rows[0]["n"]) if rows else float("nan")
    result.n_floor = (random1 / floor) ** 2 if floor > 0 else float("inf")
    result.notes.append(
        f"{result.pixels} star-free pixels without cosmic rays or hot pixels; masters from "
        f"{masters.n_bias} bias, {masters.n_dark} dark, {masters.n_flat} flat frames (median)"
    )
    return result


__all__ = ["FramesResult", "frames"]
