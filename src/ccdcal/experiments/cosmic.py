"""Experiment ``cosmic-rays``: which combine methods remove cosmic rays, and at what cost.

For each cosmic-ray rate (a multiple of the simulator's default) one night is simulated and
calibrated; its first 3, 5, 10 ... lights are stacked with a plain mean, a median and each
rejection algorithm. A cosmic-ray pixel *survives* when the stack at a pixel that the truth
says was hit in any of the frames lies more than 5 σ from the truth, σ being the noise of
that stack at that pixel (the model's per-pixel noise, scaled to the stack's measured
background noise). The background noise on clean, star-free pixels is the price paid.
"""

from __future__ import annotations

import inspect
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
    frame_variance,
    markdown_table,
    noise_and_error,
    signed,
    thousands,
    work_folder,
)

log = logging.getLogger(__name__)

#: threshold in units of the stack's noise for a surviving cosmic-ray pixel
SURVIVE_SIGMA = 5.0


def methods(read_noise: float = 8.0) -> dict[str, tuple[str, Any]]:
    """The combinations compared: name -> (method, rejection).

    CCDClip is given gain 1 and the read noise in electrons, as calibrated frames are in
    electrons. "sigma clip (MAD)" measures the spread with the median absolute deviation,
    robust to the outliers themselves but noisy for few frames.

    Examples
    --------
    >>> list(methods())[:3]
    ['mean', 'median', 'sigma clip']
    """
    from ..stacking import (
        CCDClip,
        ESDClip,
        MinMaxClip,
        PercentileClip,
        SigmaClip,
        WinsorizedSigmaClip,
    )

    return {
        "mean": ("mean", None),
        "median": ("median", None),
        "sigma clip": ("mean", SigmaClip(low=3.0, high=3.0)),
        "sigma clip (MAD)": ("mean", SigmaClip(low=3.0, high=3.0, spread="mad_std")),
        "min/max clip": ("mean", MinMaxClip(nlow=0, nhigh=1)),
        "percentile clip": ("mean", PercentileClip()),
        "winsorized sigma clip": ("mean", WinsorizedSigmaClip()),
        "ccd clip": ("mean", CCDClip(gain=1.0, read_noise=read_noise)),
        "ESD": ("mean", ESDClip()),
    }


def default_cosmic_rate() -> float:
    """The simulator's default cosmic-ray rate (its ``cosmic_rate`` argument)."""
    from .. import simulate

    value = inspect.signature(simulate.night).parameters["cosmic_rate"].default
    return float(value)


@dataclass
class CosmicRaysResult(ExperimentResult):
    """Cosmic-ray pixels left and background noise, by rate, number of frames and method.

    Rows hold ``rate_factor`` (× the simulator's default), ``rate``, ``nframes``,
    ``method``, ``injected`` (pixels hit in any of the frames), ``survived``,
    ``survived_frac``, ``noise`` (background, e-), ``noise_err`` and ``noise_ratio``
    (noise / that of the plain mean of the same frames).
    """

    name: ClassVar[str] = "cosmic-rays"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("rate_factor", "rate ×", "g"),
        ("nframes", "frames", "d"),
        ("method", "method", "s"),
        ("injected", "CR pixels", "d"),
        ("survived", "left", "d"),
        ("survived_frac", "left %", ".2f"),
        ("noise", "noise [e-]", ".3f"),
        ("noise_ratio", "vs mean", ".3f"),
    )

    def survived(self, method: str, *, rate_factor: float, nframes: int) -> int:
        """Cosmic-ray pixels left by ``method`` for one rate and number of frames."""
        for r in self.rows:
            if (
                r["method"] == method
                and r["nframes"] == nframes
                and math.isclose(r["rate_factor"], rate_factor)
            ):
                return int(r["survived"])
        raise KeyError((method, rate_factor, nframes))

    def markdown(self) -> str:
        """What ran; the cosmic-ray pixels each method leaves and its noise cost, for the
        most frames at every rate and for every number of frames at the lowest rate."""
        p = self.params
        rates = sorted({r["rate_factor"] for r in self.rows})
        ns = sorted({r["nframes"] for r in self.rows})
        names = list(dict.fromkeys(r["method"] for r in self.rows))
        rows = {(r["rate_factor"], r["nframes"], r["method"]): r for r in self.rows}
        if not rates or not ns:
            return "no rows\n"
        most, lowest = ns[-1], rates[0]
        intro = (
            f"`ccdcal experiment cosmic-rays` (seed {p['seed']}, {p['shape']} pixels; "
            f"cosmic-ray rates × {', '.join(f'{x:g}' for x in rates)} of the simulator's "
            f"default; stacks of the first {', '.join(map(str, ns))} lights). A cosmic-ray "
            f"pixel is left where the stack lies more than {SURVIVE_SIGMA:g} σ of its noise "
            "from the truth; the noise, on star-free pixels that no cosmic ray hit, is "
            "compared with a plain mean's of the same frames."
        )

        def injected(rate: float, n: int) -> str:
            return thousands(rows[(rate, n, names[0])]["injected"])

        def cost(values: list[float]) -> str:
            if all(v == 1.0 for v in values):
                return "reference"
            lo, hi = (100 * (min(values) - 1), 100 * (max(values) - 1))
            if f"{lo:.1f}" == f"{hi:.1f}":
                return f"{signed(lo, '+.1f')} %"
            return f"{signed(lo, '+.1f')} to {signed(hi, '+.1f')} %"

        head = ["method"] + [f"left at ×{x:g} (of {injected(x, most)})" for x in rates]
        head.append("noise vs mean")
        by_rate = []
        for name in names:
            cells = [rows[(x, most, name)] for x in rates]
            by_rate.append([name, *(thousands(c["survived"]) for c in cells),
                            cost([c["noise_ratio"] for c in cells])])  # fmt: skip
        head_n = ["method"] + [f"{n} frames (of {injected(lowest, n)})" for n in ns]
        by_n = [
            [name, *(thousands(rows[(lowest, n, name)]["survived"]) for n in ns)] for name in names
        ]
        return "\n\n".join([
            intro,
            f"Stacks of {most} frames:",
            markdown_table(head, by_rate, left=(0,)),
            f"Cosmic-ray pixels left at rate ×{lowest:g}, by the number of frames stacked:",
            markdown_table(head_n, by_n, left=(0,)),
        ]) + "\n"  # fmt: skip

    def plot(self, path: Any) -> Path:
        """Per rate: cosmic-ray pixels left and background-noise cost against frames."""
        from matplotlib.ticker import FuncFormatter

        from ..report.figures import new_figure, save_figure

        rates = sorted({r["rate_factor"] for r in self.rows})
        names = list(dict.fromkeys(r["method"] for r in self.rows))
        fig = new_figure((3.3 * max(len(rates), 1) + 1.8, 6.0))
        axes = fig.subplots(2, max(len(rates), 1), squeeze=False, sharex=True)
        markers = "os^vD<>px*"
        ticks = sorted({r["nframes"] for r in self.rows})
        for j, rate in enumerate(rates):
            top, bottom = axes[0, j], axes[1, j]
            for i, name in enumerate(names):
                rows = [r for r in self.rows if r["rate_factor"] == rate and r["method"] == name]
                # methods side by side around each N, so that equal values stay visible
                shift = 1.0 + 0.025 * (i - (len(names) - 1) / 2)
                x = [r["nframes"] * shift for r in rows]
                style = {"marker": markers[i % len(markers)], "color": f"C{i}", "label": name}
                top.plot(x, [r["survived"] for r in rows], ms=5, **style)
                bottom.plot(x, [r["noise_ratio"] for r in rows], ms=5, **style)
            top.set_yscale("symlog", linthresh=1.0)
            top.set_ylim(bottom=-0.3)
            top.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            top.set_title(f"cosmic-ray rate × {rate:g}", fontsize=10)
            bottom.set_xlabel("frames stacked")
            for ax in (top, bottom):
                ax.grid(True, alpha=0.3)
                ax.set_xscale("log")
                ax.set_xticks(ticks, [str(t) for t in ticks])
                ax.minorticks_off()
        axes[0, 0].set_ylabel("cosmic-ray pixels left (> 5σ)")
        axes[1, 0].set_ylabel("background noise / plain mean")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=8)
        return save_figure(fig, path)


def cosmic_rays(
    *,
    seed: int = 0,
    shape: tuple[int, int] = (200, 200),
    rates: Sequence[float] = (1.0, 5.0, 20.0),
    nframes: Sequence[int] = (3, 5, 10),
    nbias: int = 15,
    ndark: int = 9,
    nflat: int = 9,
    only: Sequence[str] | None = None,
    work_dir: Any = None,
    quick: bool = False,
    **night_options: Any,
) -> CosmicRaysResult:
    """Count the cosmic-ray pixels each combine method leaves, and its noise cost.

    Parameters
    ----------
    seed
        Simulation seed (each rate uses the same seed: the same detector and sky).
    shape
        (ny, nx) of the simulated detector.
    rates
        Cosmic-ray rates as multiples of the simulator's default.
    nframes
        Numbers of frames stacked (the first N lights of each night).
    nbias, ndark, nflat
        Calibration frames for the masters.
    only
        Names of :func:`methods` to run; default all.
    work_dir
        Keep the simulated nights under ``work_dir/cosmic-rays``; default temporary.
    quick
        Small and fast for tests: 96×96 pixels, rates ×1 and ×20, 3 and 10 frames.
    **night_options
        Passed on to :func:`ccdcal.simulate.night`.

    Returns
    -------
    CosmicRaysResult
    """
    from ..stacking import combine

    if quick:
        shape = (min(shape[0], 96), min(shape[1], 96))
        rates = (1.0, 20.0)
        nframes = (3, 10)
        nbias, ndark, nflat = min(nbias, 7), min(ndark, 5), min(nflat, 5)
    base_rate = default_cosmic_rate()
    ns = sorted({int(k) for k in nframes})
    if not ns or ns[0] < 2:
        raise CcdcalError(f"nframes must be at least 2, not {list(nframes)}")
    result = CosmicRaysResult(
        params={
            "seed": seed,
            "shape": f"{shape[1]}x{shape[0]}",
            "rates": list(rates),
            "nframes": ns,
            "default_rate": base_rate,
        }
    )
    with work_folder(work_dir, "cosmic-rays") as folder:
        for factor in rates:
            night = SimNight.make(
                folder / f"rate_{factor:g}",
                seed=seed,
                shape=shape,
                nbias=nbias,
                ndark=ndark,
                nflat=nflat,
                nlight=max(ns),
                cosmic_rate=base_rate * factor,
                **night_options,
            )
            _one_rate(night, factor, base_rate * factor, ns, only, result, combine)
    result.notes.append(
        f"a cosmic-ray pixel is left when |stack − truth| > {SURVIVE_SIGMA:g} σ of that "
        "stack's noise; noise on star-free pixels hit by no cosmic ray"
    )
    return result


def _one_rate(
    night: SimNight,
    factor: float,
    rate: float,
    ns: Sequence[int],
    only: Sequence[str] | None,
    result: CosmicRaysResult,
    combine: Any,
) -> None:
    masters = build_masters(night)
    lights = sorted(night.lights)[: max(ns)]
    calibrated = calibrate_lights(lights, masters)
    t = float(calibrated[0].header["EXPTIME"])
    truth_e = night.truth.scene * t
    var1 = frame_variance(night, t)
    rn = night.truth.param("read_noise", "rdnoise")
    chosen = methods(rn)
    if only is not None:
        unknown = set(only) - set(chosen)
        if unknown:
            raise CcdcalError(f"unknown methods {sorted(unknown)}; choose from {list(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in only or k == "mean"}
    for k in ns:
        frames_k = calibrated[:k]
        hit = night.cosmic(lights[:k])
        clean = background_pixels(night, exclude=hit)
        model_sigma = np.sqrt(var1 / k)
        model_bg = float(np.sqrt(np.mean(var1[clean] / k)))
        mean_noise = None
        for name, (method, reject) in chosen.items():
            stack = combine(frames_k, method=method, reject=reject)
            resid = stack.data.astype(np.float64) - truth_e
            finite = np.isfinite(resid)
            noise, noise_err = noise_and_error(resid[clean & finite])
            if name == "mean":
                mean_noise = noise
            # per-pixel noise of this stack: the model's shape, the measured level
            sigma = model_sigma * (noise / model_bg)
            left = hit & finite & (np.abs(resid) > SURVIVE_SIGMA * sigma)
            injected = int(hit.sum())
            result.rows.append(
                {
                    "rate_factor": float(factor),
                    "rate": rate,
                    "nframes": k,
                    "method": name,
                    "injected": injected,
                    "survived": int(left.sum()),
                    "survived_frac": 100.0 * left.sum() / injected if injected else 0.0,
                    "noise": noise,
                    "noise_err": noise_err,
                    "noise_ratio": noise / mean_noise if mean_noise else float("nan"),
                }
            )
        log.debug("cosmic rays ×%g, %d frames: done", factor, k)


__all__ = ["CosmicRaysResult", "cosmic_rays", "methods"]
