"""Aperture photometry of calibrated frames, and its comparison with a simulated truth.

:func:`measure_stars` sums the light in circular apertures (photutils) after subtracting a
sigma-clipped median background from an annulus; masked and non-finite pixels are left out
and the flux error comes from the frame's variance. :func:`compare_with_truth` measures the
stars of a simulated night and compares each with its true flux, which shows what a bad or
missing flat field does to photometry across the field.

Examples
--------
>>> import numpy as np
>>> from ccdcal.frame import Frame
>>> y, x = np.mgrid[0:40, 0:40]
>>> star = 1000 / (2 * np.pi * 1.5**2) * np.exp(-((x - 20) ** 2 + (y - 20) ** 2) / (2 * 1.5**2))
>>> table = measure_stars(Frame(star + 10), [(20, 20)], radius=8, annulus=(10, 14))
>>> round(float(table["flux"][0]))
1000
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import flags
from .errors import CcdcalError
from .frame import Frame
from .process_state import catching_warnings
from .wording import plural

if TYPE_CHECKING:
    from astropy.table import Table

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

#: FWHM of a Gaussian in units of its sigma
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def _positions(positions: Any) -> np.ndarray:
    """(N, 2) float array of x, y from pairs or a table with ``x`` and ``y`` columns."""
    if hasattr(positions, "colnames") or isinstance(positions, dict):
        xy = np.column_stack([np.asarray(positions["x"]), np.asarray(positions["y"])])
    else:
        xy = np.asarray(positions, dtype=float)
        if xy.ndim == 1 and xy.size == 2:
            xy = xy[None, :]
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise CcdcalError(f"positions must be (x, y) pairs, got an array of shape {xy.shape}")
    return xy.astype(float)


def measure_stars(
    frame: Frame,
    positions: Any,
    *,
    radius: float = 6.0,
    annulus: tuple[float, float] = (10.0, 15.0),
    sigma: float = 3.0,
) -> Table:
    """Aperture photometry with a local background from an annulus.

    Parameters
    ----------
    frame
        Calibrated frame (normally in electrons). Pixels flagged with any of
        :data:`ccdcal.flags.EXCLUDE` and non-finite pixels are left out of sums and
        background.
    positions
        Star centres, 0-based pixel coordinates: a sequence of ``(x, y)`` or a table with
        ``x`` and ``y`` columns.
    radius
        Aperture radius in pixels.
    annulus
        Inner and outer radius of the background annulus in pixels.
    sigma
        Clipping threshold of the background's sigma-clipped median.

    Returns
    -------
    astropy.table.Table
        One row per position: ``id``, ``x``, ``y``, ``aperture_sum``, ``area`` (pixels of
        the aperture that were used), ``n_masked`` (pixels of the aperture left out),
        ``bkg`` (median background per pixel), ``bkg_std``, ``flux`` (background
        subtracted), ``flux_err`` (from the variance plane, plus the background's
        uncertainty; without a variance plane, from the annulus scatter only) and ``snr``.

    Examples
    --------
    >>> import numpy as np
    >>> f = Frame(np.full((30, 30), 5.0), variance=np.full((30, 30), 5.0))
    >>> t = measure_stars(f, [(15, 15)], radius=3, annulus=(6, 9))
    >>> float(t["bkg"][0]), abs(float(t["flux"][0])) < 1e-3
    (5.0, True)
    """
    from astropy.stats import SigmaClip
    from astropy.table import Table

    with catching_warnings():
        # photutils imports tqdm.auto, which warns in a notebook without ipywidgets about
        # progress bars that this module never shows
        warnings.filterwarnings("ignore", message="IProgress not found")
        from photutils.aperture import (
            ApertureStats,
            CircularAnnulus,
            CircularAperture,
            aperture_photometry,
        )

    r_in, r_out = (float(a) for a in annulus)
    if not 0 < radius <= r_in < r_out:
        raise CcdcalError(
            f"need 0 < radius <= annulus inner < outer radius; got radius={radius}, "
            f"annulus=({r_in}, {r_out})"
        )
    xy = _positions(positions)
    bad = ~np.isfinite(frame.data)
    if frame.mask is not None:
        bad |= (frame.mask & flags.EXCLUDE) != 0
    data = np.where(bad, np.float32(0.0), frame.data).astype(np.float64)
    table = Table()
    table["id"] = np.arange(len(xy), dtype=int)
    table["x"] = xy[:, 0]
    table["y"] = xy[:, 1]
    if len(xy) == 0:
        for name in ("aperture_sum", "area", "n_masked", "bkg", "bkg_std", "flux", "flux_err"):
            table[name] = np.zeros(0)
        table["snr"] = np.zeros(0)
        return table

    aperture = CircularAperture(xy, r=float(radius))
    ring = CircularAnnulus(xy, r_in=r_in, r_out=r_out)
    error = None
    if frame.variance is not None:
        var = np.where(bad | ~np.isfinite(frame.variance), 0.0, frame.variance)
        error = np.sqrt(np.clip(var, 0.0, None))
    phot = aperture_photometry(data, aperture, error=error, mask=bad)
    area = np.atleast_1d(aperture.area_overlap(data, mask=bad)).astype(float)
    n_masked = np.atleast_1d(
        aperture_photometry(bad.astype(float), aperture, method="center")["aperture_sum"]
    )
    stats = ApertureStats(data, ring, mask=bad, sigma_clip=SigmaClip(sigma=sigma, maxiters=10))
    bkg = np.atleast_1d(np.asarray(stats.median, dtype=float))
    bkg_std = np.atleast_1d(np.asarray(stats.std, dtype=float))
    n_ring = np.atleast_1d(np.asarray(stats.sum_aper_area.value, dtype=float))
    total = np.asarray(phot["aperture_sum"], dtype=float)
    flux = total - bkg * area
    # the median of n values scatters by ~1.2533 sigma / sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        bkg_var = (area * 1.2533 * bkg_std) ** 2 / n_ring
    if error is not None:
        ap_var = np.asarray(phot["aperture_sum_err"], dtype=float) ** 2
    else:
        ap_var = area * bkg_std**2
    flux_err = np.sqrt(ap_var + bkg_var)
    table["aperture_sum"] = total
    table["area"] = area
    table["n_masked"] = np.rint(n_masked).astype(int)
    table["bkg"] = bkg
    table["bkg_std"] = bkg_std
    table["flux"] = flux
    table["flux_err"] = flux_err
    with np.errstate(divide="ignore", invalid="ignore"):
        table["snr"] = flux / flux_err
    table.meta["radius"] = float(radius)
    table.meta["annulus"] = [r_in, r_out]
    return table


def enclosed_fraction(radius: float, fwhm: float | np.ndarray) -> float | np.ndarray:
    """The fraction of a circular Gaussian's light within ``radius``: 1 − exp(−r²/2σ²).

    Examples
    --------
    >>> round(float(enclosed_fraction(3.0, 3.0)), 4)
    0.9375
    """
    sigma = np.asarray(fwhm, dtype=float) / FWHM_PER_SIGMA
    out = 1.0 - np.exp(-(radius**2) / (2.0 * sigma**2))
    return float(out) if np.ndim(out) == 0 else out


def _star_fwhm(stars: Table, fwhm: float | None) -> tuple[np.ndarray | None, str]:
    """Per-star FWHM: given, a ``fwhm`` column, or from ``flux_rate / peak_rate``."""
    n = len(stars)
    if fwhm is not None:
        return np.full(n, float(fwhm)), f"Gaussian PSF of FWHM {float(fwhm):.3g} pix (given)"
    if "fwhm" in stars.colnames:
        values = np.asarray(stars["fwhm"], dtype=float)
        return values, "Gaussian PSF, FWHM from the star table"
    if "flux_rate" in stars.colnames and "peak_rate" in stars.colnames:
        flux = np.asarray(stars["flux_rate"], dtype=float)
        peak = np.asarray(stars["peak_rate"], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.sqrt(flux / (2.0 * np.pi * peak))
        values = sigma * FWHM_PER_SIGMA
        if np.all(np.isfinite(values) & (values > 0)):
            return values, f"Gaussian PSF, FWHM {np.median(values):.3g} pix from flux/peak"
    return None, "no PSF known: the aperture is assumed to hold all the light"


@dataclass
class PhotometryComparison:
    """Aperture photometry of simulated stars against their true fluxes.

    Attributes
    ----------
    table
        One row per measured star: ``id``, ``x``, ``y``, ``r_center`` (pixels from the image
        centre), ``true_flux`` (flux_rate × exptime), ``expected_flux`` (true flux × the
        aperture's enclosed fraction), ``flux``, ``flux_err``, ``snr``, ``ratio``
        (flux / expected flux), ``ratio_err``, ``dmag`` (−2.5 log10 ratio: positive when
        measured too faint).
    radius, annulus
        Aperture and background annulus radii (pixels).
    exptime
        Exposure time the true fluxes were scaled by (s).
    n_stars
        Stars in the truth table.
    excluded
        Number of stars left out, by reason: ``"edge"`` (annulus off the image),
        ``"crowded"`` (another star within ``min_separation``), ``"masked"`` (excluded
        pixels in the aperture), ``"no flux"`` (non-finite measurement).
    note
        How the expected flux was computed.
    """

    table: Table
    radius: float
    annulus: tuple[float, float]
    exptime: float
    n_stars: int
    excluded: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def median_ratio(self) -> float:
        """Median of measured / expected flux."""
        ratio = np.asarray(self.table["ratio"], dtype=float)
        ratio = ratio[np.isfinite(ratio)]
        return float(np.median(ratio)) if ratio.size else float("nan")

    @property
    def ratio_spread(self) -> float:
        """Robust standard deviation (1.4826 × MAD) of the flux ratios."""
        from astropy.stats import mad_std

        ratio = np.asarray(self.table["ratio"], dtype=float)
        ratio = ratio[np.isfinite(ratio)]
        return float(mad_std(ratio)) if ratio.size else float("nan")

    @property
    def median_ratio_err(self) -> float:
        """Standard error of :attr:`median_ratio` (1.2533 × spread / √n)."""
        n = int(np.isfinite(np.asarray(self.table["ratio"], dtype=float)).sum())
        return 1.2533 * self.ratio_spread / math.sqrt(n) if n else float("nan")

    @property
    def rms_dmag(self) -> float:
        """Root mean square of the magnitude errors (mag)."""
        d = np.asarray(self.table["dmag"], dtype=float)
        d = d[np.isfinite(d)]
        return float(np.sqrt(np.mean(d * d))) if d.size else float("nan")

    def summary(self) -> str:
        """A few lines: stars used and left out, median ratio and spread.

        Examples
        --------
        >>> from astropy.table import Table
        >>> t = Table({"ratio": [0.99, 1.0, 1.01], "dmag": [0.01, 0.0, -0.01]})
        >>> print(PhotometryComparison(t, 6.0, (10.0, 15.0), 60.0, 4, {"edge": 1}).summary())
        3 of 4 stars measured (left out: 1 edge)
        median flux ratio 1.0000 ± 0.0107, robust spread 0.0148; rms error 0.0082 mag
        """
        left = ", ".join(f"{v} {k}" for k, v in self.excluded.items() if v)
        lines = [
            f"{len(self.table)} of {plural(self.n_stars, 'star')} measured"
            + (f" (left out: {left})" if left else "")
        ]
        lines.append(
            f"median flux ratio {self.median_ratio:.4f} ± {self.median_ratio_err:.4f}, "
            f"robust spread {self.ratio_spread:.4f}; rms error {self.rms_dmag:.4f} mag"
        )
        return "\n".join(lines)

    def plot(self, path: PathLike, *, title: str | None = None) -> Path:
        """Write a PNG: flux ratio and magnitude error against distance from the centre."""
        from .report.figures import new_figure, save_figure

        t = self.table
        r = np.asarray(t["r_center"], dtype=float) if len(t) else np.zeros(0)
        fig = new_figure((6.4, 5.6))
        top, bottom = fig.subplots(2, 1, sharex=True)
        if len(t):
            snr = np.asarray(t["snr"], dtype=float)
            colours = np.log10(np.clip(snr, 1.0, None))
            sc = top.scatter(r, t["ratio"], c=colours, s=14, cmap="viridis")
            top.errorbar(
                r, t["ratio"], yerr=t["ratio_err"], fmt="none", ecolor="0.7", lw=0.8, zorder=0
            )
            bottom.scatter(r, t["dmag"], c=colours, s=14, cmap="viridis")
            cbar = fig.colorbar(sc, ax=[top, bottom], shrink=0.8)
            cbar.set_label("log10 S/N")
        top.axhline(1.0, color="k", lw=0.8)
        top.axhline(self.median_ratio, color="C3", lw=0.8, ls="--", label="median")
        top.set_ylabel("measured / true flux")
        top.legend(fontsize=8, loc="lower left")
        bottom.axhline(0.0, color="k", lw=0.8)
        bottom.set_ylabel("Δmag (measured − true)")
        bottom.invert_yaxis()
        bottom.set_xlabel("distance from the image centre [pix]")
        top.set_title(
            title or f"aperture photometry vs truth (r = {self.radius:g} pix)", fontsize=10
        )
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
        return save_figure(fig, path)


def compare_with_truth(
    frame: Frame,
    stars_table: Table | PathLike,
    exptime: float,
    *,
    radius: float = 6.0,
    annulus: tuple[float, float] | None = None,
    fwhm: float | None = None,
    min_separation: float | None = None,
) -> PhotometryComparison:
    """Measure the simulated stars in a calibrated frame and compare with their true fluxes.

    Parameters
    ----------
    frame
        Calibrated frame or stack in electrons (a mean stack of frames of ``exptime``
        seconds each holds ``flux_rate × exptime`` per star).
    stars_table
        The simulator's ``truth/stars.ecsv`` (or its path): ``x``, ``y`` (0-based, trimmed
        image), ``flux_rate`` (e-/s) and, to correct for the light outside the aperture,
        ``peak_rate`` (or a ``fwhm`` column).
    exptime
        Exposure time in seconds of one frame.
    radius
        Aperture radius in pixels. Keep it at least 1.5 FWHM: below that the pixelization of
        a sharp PSF makes the exact-overlap sum differ from the Gaussian's enclosed fraction
        (1 % low at 1 FWHM, < 0.1 % from 1.5 FWHM).
    annulus
        Background annulus; default ``(radius + 4, radius + 9)``.
    fwhm
        PSF FWHM in pixels; default from the table (``fwhm`` or flux/peak of a Gaussian).
        The expected flux is the true flux times the fraction of a Gaussian of that FWHM
        within ``radius``; without a PSF the aperture is assumed big enough (and
        :attr:`PhotometryComparison.note` says so).
    min_separation
        Stars closer than this to another star of the table are left out; default
        ``2 * radius`` (overlapping apertures).

    Returns
    -------
    PhotometryComparison
    """
    from astropy.table import Table

    stars = Table.read(stars_table) if isinstance(stars_table, str | os.PathLike) else stars_table
    for col in ("x", "y", "flux_rate"):
        if col not in stars.colnames:
            raise CcdcalError(f"the star table needs a {col!r} column; it has {stars.colnames}")
    ring = annulus if annulus is not None else (radius + 4.0, radius + 9.0)
    sep = 2.0 * radius if min_separation is None else float(min_separation)
    xy = _positions(stars)
    ny, nx = frame.shape
    r_out = float(ring[1])
    edge = (
        (xy[:, 0] - r_out < -0.5)
        | (xy[:, 0] + r_out > nx - 0.5)
        | (xy[:, 1] - r_out < -0.5)
        | (xy[:, 1] + r_out > ny - 0.5)
    )
    if len(xy) > 1:
        d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        np.fill_diagonal(d, np.inf)
        crowded = d.min(axis=1) < sep
    else:
        crowded = np.zeros(len(xy), bool)
    crowded &= ~edge
    use = ~edge & ~crowded
    fw, note = _star_fwhm(stars, fwhm)
    measured = measure_stars(frame, xy[use], radius=radius, annulus=ring)
    sub = stars[use]
    true_flux = np.asarray(sub["flux_rate"], dtype=float) * float(exptime)
    frac = np.ones(len(sub)) if fw is None else np.asarray(enclosed_fraction(radius, fw[use]))
    expected = true_flux * frac
    masked = np.asarray(measured["n_masked"]) > 0
    finite = np.isfinite(np.asarray(measured["flux"], dtype=float))
    keep = ~masked & finite
    out = Table()
    ids = np.asarray(sub["id"]) if "id" in sub.colnames else np.flatnonzero(use)
    out["id"] = ids[keep]
    out["x"] = xy[use, 0][keep]
    out["y"] = xy[use, 1][keep]
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    out["r_center"] = np.hypot(out["x"] - cx, out["y"] - cy)
    out["true_flux"] = true_flux[keep]
    out["expected_flux"] = expected[keep]
    flux = np.asarray(measured["flux"], dtype=float)[keep]
    err = np.asarray(measured["flux_err"], dtype=float)[keep]
    out["flux"] = flux
    out["flux_err"] = err
    out["snr"] = np.asarray(measured["snr"], dtype=float)[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = flux / expected[keep]
        out["ratio"] = ratio
        out["ratio_err"] = err / expected[keep]
        out["dmag"] = np.where(ratio > 0, -2.5 * np.log10(np.where(ratio > 0, ratio, 1.0)), np.nan)
    excluded = {
        "edge": int(edge.sum()),
        "crowded": int(crowded.sum()),
        "masked": int((masked & finite).sum()),
        "no flux": int((~finite).sum()),
    }
    if fw is not None and frac.size:
        note += f"; expected flux × enclosed fraction {np.median(frac):.4f} (median)"
    comparison = PhotometryComparison(
        out,
        float(radius),
        (float(ring[0]), float(ring[1])),
        float(exptime),
        len(stars),
        excluded,
        note,
    )
    log.debug("photometry vs truth: %s", comparison.summary().replace("\n", "; "))
    return comparison


def flux_ratio_by_radius(
    comparison: PhotometryComparison, edges: Sequence[float]
) -> list[tuple[float, float, float, int]]:
    """Median Δmag and its robust spread in rings of distance from the centre.

    Returns ``(r_mid, median dmag, robust std dmag, n)`` per ring with at least one star.

    Examples
    --------
    >>> from astropy.table import Table
    >>> t = Table({"r_center": [1.0, 2.0, 11.0], "dmag": [0.0, 0.02, 0.1]})
    >>> c = PhotometryComparison(t, 6.0, (10.0, 15.0), 1.0, 3)
    >>> [(r, round(m, 3), n) for r, m, _, n in flux_ratio_by_radius(c, [0, 10, 20])]
    [(5.0, 0.01, 2), (15.0, 0.1, 1)]
    """
    from astropy.stats import mad_std

    r = np.asarray(comparison.table["r_center"], dtype=float)
    d = np.asarray(comparison.table["dmag"], dtype=float)
    rows = []
    for lo, hi in itertools.pairwise(edges):
        sel = (r >= lo) & (r < hi) & np.isfinite(d)
        if sel.any():
            spread = float(mad_std(d[sel])) if sel.sum() > 1 else float("nan")
            rows.append(((lo + hi) / 2.0, float(np.median(d[sel])), spread, int(sel.sum())))
    return rows


__all__ = [
    "PhotometryComparison",
    "compare_with_truth",
    "enclosed_fraction",
    "flux_ratio_by_radius",
    "measure_stars",
]
