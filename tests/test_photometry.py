"""Aperture photometry: recovery of known fluxes, masks, errors, exclusions, truth comparison."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Table

from ccdcal import flags
from ccdcal.frame import Frame
from ccdcal.photometry import (
    PhotometryComparison,
    compare_with_truth,
    enclosed_fraction,
    measure_stars,
)

FWHM = 3.0
SIGMA = FWHM / (2 * math.sqrt(2 * math.log(2)))


def star_field(xs, ys, fluxes, *, shape=(120, 120), sky=50.0, noise=None, seed=0):
    """Sky + Gaussian stars (pixel-integrated enough at sigma 1.27), optional Poisson noise."""
    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    img = np.full(shape, sky, float)
    peaks = np.asarray(fluxes) / (2 * np.pi * SIGMA**2)
    for a, b, p in zip(xs, ys, peaks, strict=True):
        img += p * np.exp(-((x - a) ** 2 + (y - b) ** 2) / (2 * SIGMA**2))
    variance = img.copy()
    if noise is not None:
        img = np.random.default_rng(seed).poisson(img).astype(float)
    table = Table({"x": xs, "y": ys, "flux_rate": fluxes, "peak_rate": peaks})
    return img, variance, table


def test_flat_background_gives_zero_flux():
    f = Frame(np.full((40, 40), 7.0), variance=np.full((40, 40), 7.0))
    t = measure_stars(f, [(20.0, 20.0), (15.5, 22.25)], radius=4, annulus=(7, 10))
    np.testing.assert_allclose(t["bkg"], 7.0)
    np.testing.assert_allclose(t["flux"], 0.0, atol=1e-6)
    np.testing.assert_allclose(t["area"], np.pi * 16, rtol=1e-6)
    # error: variance sum over the aperture (bkg_std is 0 here)
    np.testing.assert_allclose(t["flux_err"], np.sqrt(7.0 * np.pi * 16), rtol=1e-6)


def test_noise_free_star_recovered_with_enclosed_fraction():
    img, var, stars = star_field([60.3], [59.7], [5000.0])
    # pixelisation: 1 % low at r = 1 FWHM, < 0.1 % from 1.5 FWHM
    for radius, tolerance in ((3.0, 0.012), (4.5, 1e-3), (6.0, 1e-4)):
        t = measure_stars(Frame(img, variance=var), stars, radius=radius, annulus=(10, 15))
        expected = 5000.0 * enclosed_fraction(radius, FWHM)
        assert t["flux"][0] == pytest.approx(expected, rel=tolerance)


def test_masked_and_nan_pixels_are_excluded_and_counted():
    img, var, stars = star_field([60.0], [60.0], [8000.0])
    mask = np.zeros(img.shape, np.uint16)
    mask[60, 63] = flags.SATURATED  # excluded flag
    mask[61, 58] = flags.HOT  # informational: kept
    img[58, 62] = np.nan
    img[70, 60] = 1e6  # a cosmic ray in the annulus: clipped from the background
    t = measure_stars(Frame(img, variance=var, mask=mask), stars, radius=5, annulus=(8, 13))
    assert int(t["n_masked"][0]) == 2
    assert np.isfinite(t["flux"][0])
    assert t["area"][0] < np.pi * 25
    assert t["bkg"][0] == pytest.approx(50.0, abs=0.5)


def test_flux_error_matches_scatter():
    """The quoted error agrees with the scatter of repeated measurements (Poisson noise)."""
    xs, ys = [30.0, 90.0, 30.0, 90.0], [30.0, 30.0, 90.0, 90.0]
    fluxes = [3000.0] * 4
    measured, quoted = [], []
    for seed in range(12):
        img, var, stars = star_field(xs, ys, fluxes, noise=True, seed=seed)
        t = measure_stars(Frame(img, variance=var), stars, radius=6, annulus=(10, 15))
        measured += list(t["flux"])
        quoted += list(t["flux_err"])
    scatter = np.std(measured, ddof=1)
    assert np.median(quoted) == pytest.approx(scatter, rel=0.3)
    assert np.mean(measured) == pytest.approx(3000 * enclosed_fraction(6, FWHM), rel=0.01)


def test_compare_with_truth_exclusions_and_ratio(tmp_path):
    xs = [60.0, 66.0, 5.0, 30.0, 90.0, 30.0, 90.0]  # two crowded, one at the edge
    ys = [60.0, 62.0, 50.0, 30.0, 30.0, 90.0, 90.0]
    fluxes = [4000.0] * 7
    img, var, stars = star_field(xs, ys, fluxes)
    comp = compare_with_truth(Frame(img, variance=var), stars, 1.0, radius=5.0)
    assert comp.excluded["edge"] == 1
    assert comp.excluded["crowded"] == 2
    assert len(comp.table) == 4
    # radius 5 holds 99.9 % of the light: the enclosed-fraction correction brings it to 1
    assert comp.median_ratio == pytest.approx(1.0, abs=1e-3)
    assert "FWHM 3" in comp.note
    assert np.all(comp.table["r_center"] > 0)
    png = comp.plot(tmp_path / "ratio.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "4 of 7 stars" in comp.summary()


def test_compare_with_truth_without_psf_says_so():
    img, var, stars = star_field([60.0], [60.0], [4000.0])
    del stars["peak_rate"]
    comp = compare_with_truth(Frame(img, variance=var), stars, 1.0, radius=8.0)
    assert "assumed" in comp.note
    assert comp.median_ratio == pytest.approx(1.0, abs=1e-3)


def test_compare_with_truth_bad_table():
    with pytest.raises(ValueError, match="flux_rate"):
        compare_with_truth(Frame(np.zeros((20, 20))), Table({"x": [1.0], "y": [2.0]}), 1.0)


def test_measure_stars_bad_radii():
    with pytest.raises(ValueError, match="radius"):
        measure_stars(Frame(np.zeros((20, 20))), [(10, 10)], radius=5, annulus=(4, 8))


def test_empty_comparison_is_nan():
    comp = PhotometryComparison(Table({"ratio": [], "dmag": []}), 5.0, (9.0, 14.0), 1.0, 0)
    assert math.isnan(comp.median_ratio)


def _simulator():
    simulate = pytest.importorskip("ccdcal.simulate")
    if not hasattr(simulate, "night"):
        pytest.skip("ccdcal.simulate.night not available yet")
    return simulate


def test_recovers_simulated_fluxes_on_flat_fielded_stack(tmp_path):
    """Median measured/true flux within 1 % on a simulated night's calibrated stack."""
    simulate = _simulator()
    import ccdcal
    from ccdcal.calibration import calibrate
    from ccdcal.masters import master_bias, master_dark, master_flat

    night = tmp_path / "night"
    simulate.night(night, seed=4, shape=(160, 160), nbias=9, ndark=5, nflat=9, nlight=6)
    raw = sorted((night / "raw").glob("*.fits"))
    kind = {p: p.name.split("_")[0] for p in raw}
    bias = master_bias([p for p in raw if kind[p] == "bias"])
    dark = master_dark([p for p in raw if kind[p] == "dark"], bias=bias)
    flat = master_flat([p for p in raw if kind[p] == "flat"], bias=bias, dark=dark)
    lights = [Frame.read(p) for p in raw if kind[p] == "light"]
    cal = [calibrate(f, bias=bias, dark=dark, flat=flat) for f in lights]
    stack = ccdcal.combine(cal, method="mean", reject=ccdcal.SigmaClip())
    comp = compare_with_truth(
        stack, night / "truth" / "stars.ecsv", float(lights[0].header["EXPTIME"])
    )
    assert len(comp.table) >= 5, comp.summary()
    assert comp.median_ratio == pytest.approx(1.0, abs=0.01), comp.summary()


def test_no_star_measurable(tmp_path):
    img, var, stars = star_field([3.0, 117.0], [60.0, 60.0], [4000.0, 4000.0])
    comp = compare_with_truth(Frame(img, variance=var), stars, 1.0)
    assert len(comp.table) == 0 and comp.excluded["edge"] == 2
    assert math.isnan(comp.median_ratio)
    assert "0 of 2 stars" in comp.summary()
    assert comp.plot(tmp_path / "empty.png").exists()
