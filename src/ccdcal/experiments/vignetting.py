"""Experiment ``vignetting``: what flat fields of different quality do to photometry.

For each vignetting strength one night is simulated (the same seed: the same stars and
detector apart from the vignetting) and its lights are calibrated with master flats of
four qualities, then stacked and measured with aperture photometry against the true
fluxes:

``good``
    The night's own master flat from all its flats.
``few``
    The night's own master flat from only 3 flats (noisier pixel-to-pixel).
``other night``
    A master flat from another night: a detector simulated with another seed (another
    pixel-response pattern) and half the vignetting (another illumination).
``none``
    No flat correction.

The magnitude error of each star (−2.5 log10 measured/true) is plotted against its distance
from the centre; without a good flat it grows outwards with the vignetting.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import CcdcalError
from ._common import (
    ExperimentResult,
    Masters,
    SimNight,
    build_masters,
    markdown_table,
    signed,
    work_folder,
)

log = logging.getLogger(__name__)

FLAT_QUALITIES = ("good", "few", "other night", "none")

#: magnitudes per unit relative flux error
MAG_PER_REL = 2.5 / math.log(10.0)


@dataclass
class VignettingResult(ExperimentResult):
    """Photometric errors by vignetting strength and flat quality.

    Rows hold ``vignetting``, ``flat``, ``stars`` (measured), ``median_dmag`` (mag),
    ``rms_dmag``, ``noise_mag`` (rms of the stars' expected errors from the noise),
    ``chi2`` (mean of (Δmag/σ)²: about 1 when the errors are only noise),
    ``edge_minus_centre`` (from a fit Δmag = a + b (r/R)², R the half-width of the field:
    b, the magnitude error at the edge relative to the centre) and ``max_abs_dmag``.

    Attributes
    ----------
    comparisons
        The :class:`~ccdcal.photometry.PhotometryComparison` of each (vignetting, flat).
    """

    comparisons: dict[tuple[float, str], Any] = field(default_factory=dict)

    name: ClassVar[str] = "vignetting"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("vignetting", "vignetting", "g"),
        ("flat", "flat", "s"),
        ("stars", "stars", "d"),
        ("median_dmag", "median Δmag", "+.4f"),
        ("rms_dmag", "rms Δmag", ".4f"),
        ("noise_mag", "noise [mag]", ".4f"),
        ("chi2", "χ²/star", ".2f"),
        ("edge_minus_centre", "edge−centre", "+.4f"),
        ("max_abs_dmag", "max |Δmag|", ".3f"),
    )

    def row(self, vignetting: float, flat: str) -> dict[str, Any]:
        """The row of one vignetting strength and flat quality."""
        for r in self.rows:
            if r["flat"] == flat and math.isclose(r["vignetting"], vignetting):
                return r
        raise KeyError((vignetting, flat))

    def stars_csv(self, path: Any) -> Path:
        """Write one line per star and case: vignetting, flat, id, x, y, r, ratio, dmag."""
        import csv
        import io

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["vignetting", "flat", "id", "x", "y", "r_center", "ratio", "dmag", "dmag_err"])
        for (v, flat), comp in self.comparisons.items():
            t = comp.table
            for i in range(len(t)):
                w.writerow(
                    [
                        v,
                        flat,
                        int(t["id"][i]),
                        repr(float(t["x"][i])),
                        repr(float(t["y"][i])),
                        repr(float(t["r_center"][i])),
                        repr(float(t["ratio"][i])),
                        repr(float(t["dmag"][i])),
                        repr(float(MAG_PER_REL * t["ratio_err"][i] / t["ratio"][i])),
                    ]
                )
        out.write_text(buf.getvalue(), encoding="utf-8")
        return out

    def markdown(self) -> str:
        """What ran; the rms magnitude error and the edge's error by vignetting and flat."""
        p = self.params
        strengths = sorted({r["vignetting"] for r in self.rows})
        flats = list(dict.fromkeys(r["flat"] for r in self.rows))
        if not strengths:
            return "no rows\n"
        stars = sorted({r["stars"] for r in self.rows})
        counted = f"{stars[0]}" if len(stars) == 1 else f"{stars[0]} to {stars[-1]}"
        intro = (
            f"`ccdcal experiment vignetting` (seed {p['seed']}, {p['shape']} pixels, "
            f"{counted} stars measured; aperture photometry, r = "
            f"{p['radius']:g} pix, of the sigma-clipped stack of {p['nlight']} lights, "
            "cosmic rays masked from the truth, against the true fluxes). Flats: good "
            f"({p['nflat']} frames), few ({p['few']} frames), other night (the flat of "
            "another night, with half the vignetting), none."
        )

        def table(key: str, fmt: str) -> str:
            head = ["flat", *(f"vignetting {v:g}" for v in strengths)]
            rows = [[f, *(signed(self.row(v, f)[key], fmt) for v in strengths)] for f in flats]
            return markdown_table(head, rows, left=(0,))

        noise = [r["noise_mag"] for r in self.rows]
        parts = [
            intro,
            f"rms error of the stars' magnitudes (the noise alone: {min(noise):.4f} to "
            f"{max(noise):.4f} mag):",
            table("rms_dmag", ".4f"),
            "edge − centre (a fit of Δmag against (r/R)², R the half-width; > 0: the edge "
            "measured too faint):",
            table("edge_minus_centre", "+.4f"),
        ]
        return "\n\n".join(parts) + "\n"

    def write(self, out_dir: Any) -> list[Path]:
        """CSV of the rows, the figure, the Markdown results and a CSV of every star."""
        paths = super().write(out_dir)
        paths.append(self.stars_csv(Path(out_dir) / "vignetting_stars.csv"))
        return paths

    def plot(self, path: Any) -> Path:
        """One panel per flat quality: Δmag against distance from the centre."""
        from ..report.figures import new_figure, save_figure

        flats = list(dict.fromkeys(f for _, f in self.comparisons))
        strengths = sorted({v for v, _ in self.comparisons})
        ncol = min(len(flats), 2) or 1
        nrow = max(math.ceil(len(flats) / ncol), 1)
        fig = new_figure((5.0 * ncol + 0.5, 3.6 * nrow))
        axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False, sharex=True)).ravel()
        lo, hi = 0.0, 0.0
        for comp in self.comparisons.values():
            d = np.asarray(comp.table["dmag"], dtype=float)
            d = d[np.isfinite(d)]
            if d.size:
                lo, hi = min(lo, float(d.min())), max(hi, float(d.max()))
        pad = 0.05 * (hi - lo) + 0.005
        for ax, flat in zip(axes, flats, strict=False):
            for i, v in enumerate(strengths):
                comp = self.comparisons.get((v, flat))
                if comp is None:
                    continue
                t = comp.table
                err = MAG_PER_REL * np.asarray(t["ratio_err"]) / np.asarray(t["ratio"])
                ax.errorbar(
                    t["r_center"],
                    t["dmag"],
                    yerr=err,
                    fmt="o",
                    ms=3,
                    color=f"C{i}",
                    ecolor=f"C{i}",
                    elinewidth=0.6,
                    alpha=0.85,
                    label=f"vignetting {v:g}",
                )
            ax.axhline(0.0, color="k", lw=0.8)
            ax.set_ylim(hi + pad, lo - pad)  # brighter up, as magnitudes go
            ax.set_title(f"flat: {flat}", fontsize=10)
            ax.set_ylabel("Δmag (measured − true)")
            ax.grid(True, alpha=0.3)
        for ax in axes[len(flats) :]:
            ax.set_visible(False)
        for ax in axes[-ncol:]:
            ax.set_xlabel("distance from the image centre [pix]")
        axes[0].legend(fontsize=7, loc="best")
        return save_figure(fig, path)


def _other_night_flat(
    folder: Path, seed: int, shape: tuple[int, int], vignetting: float, nflat: int, **opts: Any
) -> Any:
    other = SimNight.make(
        folder,
        seed=seed + 1000,
        shape=shape,
        nbias=5,
        ndark=3,
        nflat=nflat,
        nlight=1,
        vignetting=vignetting,
        **opts,
    )
    return build_masters(other).flat


def vignetting(
    *,
    seed: int = 0,
    shape: tuple[int, int] = (200, 200),
    strengths: Sequence[float] = (0.0, 0.15, 0.3, 0.5),
    flats: Sequence[str] = FLAT_QUALITIES,
    nlight: int = 8,
    nbias: int = 15,
    ndark: int = 9,
    nflat: int = 15,
    few: int = 3,
    radius: float = 6.0,
    work_dir: Any = None,
    quick: bool = False,
    **night_options: Any,
) -> VignettingResult:
    """Photometric error against distance from the centre for flats of several qualities.

    Parameters
    ----------
    seed
        Simulation seed (the same stars for every strength).
    shape
        (ny, nx) of the simulated detector.
    strengths
        Vignetting strengths (the fractional light loss at the edge of the field).
    flats
        Flat qualities among ``"good"``, ``"few"``, ``"other night"``, ``"none"``.
    nlight
        Lights stacked (sigma-clipped mean) before the photometry.
    nbias, ndark, nflat
        Calibration frames; ``few`` flats for the ``"few"`` quality.
    radius
        Aperture radius in pixels (see :func:`ccdcal.photometry.compare_with_truth`).
    work_dir
        Keep the simulated nights under ``work_dir/vignetting``; default temporary.
    quick
        Small and fast for tests: 128×128 pixels, strengths 0 and 0.5, 4 lights.
    **night_options
        Passed on to :func:`ccdcal.simulate.night`.

    Returns
    -------
    VignettingResult
    """
    from ..calibration import calibrate
    from ..frame import Frame
    from ..photometry import compare_with_truth
    from ..stacking import SigmaClip, combine

    if quick:
        shape = (min(shape[0], 128), min(shape[1], 128))
        strengths = (0.0, 0.5)
        nlight, nbias, ndark, nflat = min(nlight, 4), min(nbias, 7), min(ndark, 5), min(nflat, 7)
    unknown = [f for f in flats if f not in FLAT_QUALITIES]
    if unknown:
        raise CcdcalError(f"unknown flat qualities {unknown}; choose from {list(FLAT_QUALITIES)}")
    result = VignettingResult(
        params={
            "seed": seed,
            "shape": f"{shape[1]}x{shape[0]}",
            "strengths": list(strengths),
            "flats": list(flats),
            "nlight": nlight,
            "nflat": nflat,
            "few": few,
            "radius": radius,
        }
    )
    with work_folder(work_dir, "vignetting") as folder:
        for v in strengths:
            night = SimNight.make(
                folder / f"v{v:g}",
                seed=seed,
                shape=shape,
                nbias=nbias,
                ndark=ndark,
                nflat=nflat,
                nlight=nlight,
                vignetting=v,
                **night_options,
            )
            own = build_masters(night)
            lights = sorted(night.lights)
            raws = [Frame.read(p) for p in lights]
            t = float(raws[0].header["EXPTIME"])
            for quality in flats:
                if quality == "good":
                    flat = own.flat
                elif quality == "few":
                    flat = build_masters(night, n_flat=few).flat
                elif quality == "other night":
                    flat = _other_night_flat(
                        folder / f"other_v{v:g}", seed, shape, v / 2, nflat, **night_options
                    )
                else:
                    flat = None
                masters = Masters(own.bias, own.dark, flat)
                calibrated = [
                    _mask_cosmic(
                        calibrate(r, bias=masters.bias, dark=masters.dark, flat=masters.flat),
                        night.cosmic([p]),
                    )
                    for r, p in zip(raws, lights, strict=True)
                ]
                stack = combine(calibrated, method="mean", reject=SigmaClip())
                comp = compare_with_truth(stack, night.stars, t, radius=radius)
                result.comparisons[(float(v), quality)] = comp
                result.rows.append(_row(float(v), quality, comp, 0.5 * min(shape)))
                log.debug("vignetting %g, flat %s: %s", v, quality, comp.summary())
    result.notes.append(
        f"aperture photometry (r = {radius:g} pix) of a {nlight}-frame sigma-clipped stack "
        "(cosmic rays masked from the truth) against the true fluxes; Δmag > 0: measured "
        "too faint"
    )
    return result


def _mask_cosmic(frame: Any, hits: np.ndarray) -> Any:
    """Flag the truth's cosmic-ray pixels, so that the photometry sees only the flat's effect
    (a sigma-clipped mean of fewer than ~9 frames cannot reject them; see ``cosmic-rays``)."""
    from .. import flags

    mask = frame.mask_or_zeros().copy()
    mask[hits] |= flags.COSMIC_RAY
    return frame.copy(mask=mask)


def _row(v: float, quality: str, comp: Any, half_width: float) -> dict[str, Any]:
    t = comp.table
    d = np.asarray(t["dmag"], dtype=float)
    ratio = np.asarray(t["ratio"], dtype=float)
    err = MAG_PER_REL * np.asarray(t["ratio_err"], dtype=float) / ratio
    ok = np.isfinite(d) & np.isfinite(err) & (err > 0)
    d, err, r = d[ok], err[ok], np.asarray(t["r_center"], dtype=float)[ok]
    gradient = float("nan")
    if d.size >= 3:
        design = np.column_stack([np.ones_like(r), (r / half_width) ** 2])
        coef, *_ = np.linalg.lstsq(design / err[:, None], d / err, rcond=None)
        gradient = float(coef[1])
    return {
        "vignetting": v,
        "flat": quality,
        "stars": int(ok.sum()),
        "median_dmag": float(np.median(d)) if d.size else float("nan"),
        "rms_dmag": float(np.sqrt(np.mean(d**2))) if d.size else float("nan"),
        "noise_mag": float(np.sqrt(np.mean(err**2))) if d.size else float("nan"),
        "chi2": float(np.mean((d / err) ** 2)) if d.size else float("nan"),
        "edge_minus_centre": gradient,
        "max_abs_dmag": float(np.max(np.abs(d))) if d.size else float("nan"),
    }


__all__ = ["FLAT_QUALITIES", "VignettingResult", "vignetting"]
