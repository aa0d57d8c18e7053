"""The simulator's statistics match its model; a detector keeps its properties; seeds
reproduce bytes.

Tolerances are five standard errors of the statistic tested (computed in each test from
the number of pixels and frames), so each test fails when the physics it checks is wrong
(a wrong gain, a pattern redrawn per frame, no Poisson noise...) and passes otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import filecmp
import itertools
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy.ndimage import binary_dilation, gaussian_filter

from ccdcal.checksums import verify_checksums
from ccdcal.frame import Frame
from ccdcal.simulate import (
    ADC_MAX,
    DEFAULT_COSMIC_RATE,
    Detector,
    Scene,
    cosmic_rays,
    night,
)

QUANT = 1.0 / 12.0  # variance of rounding to integers, ADU^2


def rngs(n, start=0):
    return [np.random.default_rng(1000 + start + i) for i in range(n)]


@pytest.fixture(scope="module")
def det():
    return Detector.create(seed=7, shape=(120, 100), gain=2.0, read_noise=6.0, bias_level=400)


# ---------------------------------------------------------------------------- detector
def test_detector_is_fixed_and_immutable(det):
    again = Detector.create(seed=7, shape=(120, 100), gain=2.0, read_noise=6.0, bias_level=400)
    other = Detector.create(seed=8, shape=(120, 100), gain=2.0, read_noise=6.0, bias_level=400)
    assert np.array_equal(det.dark_current, again.dark_current)
    assert np.array_equal(det.flat_response("V"), again.flat_response("V"))
    assert not np.array_equal(det.hot_pixels, other.hot_pixels)
    assert det.hot_pixels.sum() == round(0.001 * 120 * 100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        det.gain = 3.0  # type: ignore[misc]
    for array in (det.bias_pattern, det.dark_current, det.hot_pixels, det.flat_response("V")):
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 0


def test_detector_rejects_bad_parameters():
    for bad in ({"gain": 0.0}, {"read_noise": -1.0}, {"vignetting": 1.5}, {"overscan": -2},
                {"hot_fraction": 2.0}, {"shape": (2, 50)}):  # fmt: skip
        with pytest.raises(ValueError):
            Detector.create(**bad)
    with pytest.raises(ValueError, match="scene shape"):
        Detector.create(shape=(20, 20)).light(np.zeros((10, 10)), 1.0, "V", rngs(1)[0])


def test_bias_pattern_is_the_tutorials():
    det = Detector.create(shape=(40, 50), bias_level=500, overscan=6)
    y, x = np.mgrid[0:40, 0:50]
    expected = 500 + 20 * np.sin(2 * np.pi * x / 50) + 10 * np.cos(2 * np.pi * y / 40)
    np.testing.assert_allclose(det.bias_pattern[:, :50], expected, atol=1e-9)
    rows = 500 + 10 * np.cos(2 * np.pi * np.arange(40) / 40)
    np.testing.assert_allclose(det.bias_pattern[:, 50:], np.repeat(rows[:, None], 6, 1))


def test_bias_noise_is_read_noise_over_gain(det):
    frames = np.stack([det.bias(r).data for r in rngs(12)]).astype(np.float64)
    resid = frames - det.bias_pattern
    var = (det.read_noise / det.gain) ** 2 + QUANT
    # the scatter about the known pattern: relative error of a variance is sqrt(2/N)
    assert abs(resid.var() / var - 1) < 5 * math.sqrt(2 / resid.size)
    assert abs(resid.mean()) < 5 * math.sqrt(var / resid.size)
    # every pixel's mean over the frames sits on the fixed pattern: chi^2 per pixel ~ 1
    z2 = resid.mean(axis=0) ** 2 / (var / len(frames))
    assert abs(z2.mean() - 1) < 5 * math.sqrt(2 / z2.size)


def test_dark_signal_is_rate_times_exposure(det):
    t, n = 120.0, 16
    darks = np.stack([det.dark(t, r).data for r in rngs(n, 50)]).astype(np.float64)
    mean_adu = darks.mean(axis=0) - det.bias_pattern  # darks contain the bias
    expected = det.dark_current * t / det.gain
    var = det.dark_current * t / det.gain**2 + (det.read_noise / det.gain) ** 2 + QUANT
    z2 = (mean_adu - expected) ** 2 / (var / n)
    assert abs(z2.mean() - 1) < 5 * math.sqrt(2 / z2.size)
    normal = ~det.hot_pixels
    assert abs(mean_adu[normal].mean() - 0.2 * t / det.gain) < 5 * math.sqrt(
        var[normal].mean() / n / normal.sum()
    )
    # the frame-to-frame scatter is shot noise of the dark current plus read noise
    ratio = darks.var(axis=0, ddof=1)[normal].mean() / var[normal].mean()
    assert abs(ratio - 1) < 5 * math.sqrt(2 / ((n - 1) * normal.sum()))


def test_hot_pixels_same_in_every_dark():
    det = Detector.create(seed=3, shape=(100, 120), hot_fraction=0.005)
    t = 60.0
    strong = det.hot_pixels & ((det.dark_current - 0.2) * t >= 150)
    assert det.hot_pixels.sum() == 60 and strong.sum() > 30
    for r in rngs(5, 100):
        e = det.dark(t, r).data - det.bias_pattern  # gain 1: electrons
        # ordinary pixels: 12 e- +/- 8.7, so 60 e- is 5.5 sigma; strong hot ones: >= 162 e-
        # +/- 15, 6.8 sigma above it
        found = e > 60
        assert found[strong].all()
        assert not found[~det.hot_pixels].any()
    # another detector has its hot pixels elsewhere
    assert (Detector.create(seed=4, shape=(100, 120), hot_fraction=0.005).hot_pixels
            & det.hot_pixels).sum() < 5  # fmt: skip


# ---------------------------------------------------------------------------- flats
def _small_scale(image):
    """The pixel-to-pixel part of a flat: the image less its smooth (vignetting) part."""
    return image - gaussian_filter(image, 4.0, mode="nearest")


def test_flat_pattern_same_in_every_flat():
    det = Detector.create(seed=11, shape=(100, 100))
    level, t = 30_000.0, 5.0
    flats = [
        (det.flat(level, "V", r).data - det.bias_pattern - det.dark_current * t) / level
        for r in rngs(2, 200)
    ]
    truth = det.flat_response("V")
    assert np.median(truth) == pytest.approx(1.0, abs=1e-12)
    # mean level: the source's electrons through the response
    assert abs(np.mean(flats[0] / truth) - 1) < 5 * math.sqrt(1 / level / truth.size)
    # the pixel residuals of two flats share the detector's pattern; only shot and read
    # noise differ: correlation = pattern variance / (pattern + noise variance)
    ra, rb = (_small_scale(f).ravel() for f in flats)
    pattern_var = _small_scale(truth).var()
    noise_var = np.mean((level * truth + 0.2 * t + det.read_noise**2 + QUANT) / level**2)
    expected = pattern_var / (pattern_var + noise_var)
    rho = np.corrcoef(ra, rb)[0, 1]
    assert abs(rho - expected) < 5 * (1 - expected**2) / math.sqrt(ra.size), (rho, expected)
    # a different detector's flat shares nothing at the pixel scale
    other = Detector.create(seed=12, shape=(100, 100)).flat(level, "V", rngs(1, 300)[0])
    rc = _small_scale(other.data - det.bias_pattern).ravel()
    assert abs(np.corrcoef(ra, rc)[0, 1]) < 5 / math.sqrt(ra.size)


def test_flat_filters_share_most_of_the_pixel_response():
    det = Detector.create(seed=5, shape=(120, 120))
    v, r = (_small_scale(det.flat_response(f)).ravel() for f in ("V", "R"))
    expected = 1 - det.filter_response**2  # the common part of the pattern
    assert abs(np.corrcoef(v, r)[0, 1] - expected) < 5 / math.sqrt(v.size) + 0.01
    # vignetting: the edge falls off by v r^2 against the centre, v within its spread
    for f in ("V", "R"):
        vf = det.filter_vignetting(f)
        assert abs(vf / det.vignetting - 1) <= det.vignetting_spread
        flat = det.flat_response(f)
        y, x = np.mgrid[0:120, 0:120]
        rr = np.hypot(x - 60, y - 60) / 60
        centre, ring = flat[rr < 0.2].mean(), flat[(rr > 0.9) & (rr < 1.0)].mean()
        model = (1 - vf * (rr[(rr > 0.9) & (rr < 1.0)] ** 2).mean()) / (
            1 - vf * (rr[rr < 0.2] ** 2).mean()
        )
        assert ring / centre == pytest.approx(model, abs=0.005)


# ---------------------------------------------------------------------------- lights
def test_light_variance_is_poisson_plus_read_noise():
    det = Detector.create(seed=9, shape=(128, 128), gain=2.0, read_noise=6.0)
    scene = Scene.random(det.shape, np.random.default_rng(1), nstars=40, sky=2000.0,
                         peak=(2_000.0, 40_000.0))  # fmt: skip
    t = 60.0
    (a, ca), (b, cb) = (det.light(scene, t, "V", r) for r in rngs(2, 400))
    electrons = det.flat_response("V") * scene.rate * t + det.dark_current * t
    good = ~binary_dilation(ca | cb)  # cosmic rays are not part of this noise model
    diff = a.data.astype(np.float64) - b.data
    model = electrons / det.gain**2 + (det.read_noise / det.gain) ** 2 + QUANT
    mean = (a.data.astype(np.float64) + b.data) / 2 - det.bias_pattern
    edges = np.quantile(electrons[good], [0.0, 0.3, 0.6, 0.9, 0.97, 0.995, 1.0])
    edges[-1] += 1
    for lo, hi in itertools.pairwise(edges):
        sel = good & (electrons >= lo) & (electrons < hi)
        n = sel.sum()
        m = model[sel]
        # var(diff)/2 = Poisson (signal/gain, in ADU) + (read noise/gain)^2 per pixel
        sd = math.sqrt(2 * np.mean(m**2) / n) / m.mean()
        ratio = np.mean(diff[sel] ** 2 / 2) / m.mean()
        assert abs(ratio - 1) < 5 * sd, (lo, hi, ratio, sd)
        # and the mean is flat x scene x t + dark, over the gain
        offset = np.mean(mean[sel] - electrons[sel] / det.gain)
        assert abs(offset) < 5 * math.sqrt(m.mean() / 2 / n) + 0.02, (lo, hi, offset)


def test_adc_clips_at_65535():
    det = Detector.create(seed=1, shape=(48, 48))  # gain 1: 1e5 e- is above the ADC range
    scene = Scene.from_stars(det.shape, [24.0], [24.0], [2e5], sky_rate=1.0)
    frame, _ = det.light(scene, 60.0, "V", rngs(1)[0], cosmic_rate=0.0)
    data = frame.data
    assert data.max() == ADC_MAX and data[23:26, 23:26].min() == ADC_MAX
    assert np.all(data == np.rint(data)) and data.min() >= 0
    # clipped only where the star is: far from it the sky is ~60 e- above the bias
    assert (data == ADC_MAX).sum() < 200 and np.median(data) < 700
    assert frame.header["SATURATE"] == ADC_MAX


def test_full_well_caps_electrons():
    det = Detector.create(seed=1, shape=(48, 48), gain=4.0, full_well=50_000.0)
    scene = Scene.from_stars(det.shape, [24.0], [24.0], [2e5], sky_rate=1.0)
    frame, _ = det.light(scene, 60.0, "V", rngs(1, 10)[0], cosmic_rate=0.0)
    electrons = det.flat_response("V") * scene.rate * 60.0
    full = electrons > 1.3 * det.full_well  # certainly saturated
    sigma = math.hypot(det.read_noise / det.gain, math.sqrt(QUANT))
    level = det.bias_pattern + det.full_well / det.gain
    assert full.sum() > 10
    resid = frame.data[full] - level[full]
    assert np.abs(resid).max() < 5 * sigma and abs(resid.mean()) < 5 * sigma / math.sqrt(full.sum())
    assert frame.data.max() < ADC_MAX and frame.data.max() <= (level + 6 * sigma).max()
    # SATURATE is at or below every saturated pixel's value
    assert frame.data[full].min() >= frame.header["SATURATE"]


def test_adc_clips_at_zero():
    det = Detector.create(seed=1, shape=(40, 40), bias_level=5.0)
    data = det.bias(rngs(1)[0]).data
    assert data.min() == 0 and (data == 0).mean() > 0.1 and np.all(data == np.rint(data))


def test_overscan_has_bias_and_read_noise_only():
    det = Detector.create(seed=2, shape=(200, 60), overscan=16, gain=2.0, read_noise=8.0)
    scene = Scene.from_stars(det.shape, [], [], [], sky_rate=100.0)
    light, _ = det.light(scene, 60.0, "V", rngs(1, 20)[0], cosmic_rate=1e-3)
    bias = det.bias(rngs(1, 21)[0])
    assert light.shape == (200, 76) and light.header["BIASSEC"] == "[61:76,1:200]"
    assert light.header["TRIMSEC"] == "[1:60,1:200]" == light.header["DATASEC"]
    sigma2 = (det.read_noise / det.gain) ** 2 + QUANT
    for frame in (light, bias):
        resid = frame.data[:, 60:] - det.bias_pattern[:, 60:]
        assert abs(resid.mean()) < 5 * math.sqrt(sigma2 / resid.size)  # no light, no dark
        assert abs(resid.var() / sigma2 - 1) < 5 * math.sqrt(2 / resid.size)  # no cosmics
    # the row component of the bias pattern shows in the overscan
    rows = light.data[:, 60:].mean(axis=1)
    assert np.corrcoef(rows, det.bias_pattern[:, 60])[0, 1] > 0.9
    assert light.data[:, :60].mean() > det.bias_level + 2000  # the light is in the image


def test_bias_drift_is_shared_by_overscan_and_image():
    det = Detector.create(seed=2, shape=(64, 64), overscan=16, bias_drift=5.0)
    shifts = []
    for r in rngs(20, 30):
        d = det.bias(r).data - det.bias_pattern
        image, strip = d[:, :64].mean(), d[:, 64:].mean()
        assert abs(image - strip) < 5 * 8 * math.sqrt(1 / 64**2 + 1 / (64 * 16))
        shifts.append(image)
    # 20 frames: the rms shift is 5 ADU within the sampling error of 20 draws
    assert 2.5 < np.std(shifts, ddof=1) < 8.0


# ---------------------------------------------------------------------------- cosmic rays
def test_cosmic_ray_rate_energy_and_tracks():
    rng = np.random.default_rng(3)
    draws = [cosmic_rays((200, 200), 60.0, DEFAULT_COSMIC_RATE, rng) for _ in range(200)]
    counts = np.array([h.count for h in draws])
    assert abs(counts.mean() - 20) < 5 * math.sqrt(20 / len(draws))  # Poisson mean 20
    energy = np.concatenate([h.energy for h in draws])
    assert energy.min() >= 20_000 and energy.max() <= 80_000
    length = np.concatenate([h.length for h in draws])
    single = (length == 0).mean()
    assert abs(single - 0.4) < 5 * math.sqrt(0.24 / length.size)
    assert length.max() <= 8 and (length[length > 0] >= 1.5).all()
    # charge is conserved except for tracks that run off the frame
    total = sum(h.deposit.sum() for h in draws)
    assert 0.97 < total / energy.sum() <= 1 + 1e-9
    # tracks light up several pixels: more hit pixels than hits
    pixels = sum((h.deposit > 0).sum() for h in draws)
    assert pixels > 2 * counts.sum()


def test_light_cosmic_mask_marks_the_deposits():
    det = Detector.create(seed=4, shape=(80, 80))
    scene = Scene.from_stars(det.shape, [], [], [], sky_rate=1.0)
    frame, mask = det.light(scene, 60.0, "V", rngs(1, 60)[0], cosmic_rate=2e-4)
    assert 20 < mask.sum() < 2000
    excess = frame.data - det.bias_pattern - 60.0 * det.flat_response("V") - det.dark_current * 60
    assert np.median(excess[mask]) > 500  # thousands of e- per pixel
    # outside the mask the frame is ordinary: nothing above 6 sigma of its noise
    assert excess[~mask & ~det.hot_pixels].max() < 6 * math.hypot(8.0, math.sqrt(75.0))
    _, none = det.light(scene, 60.0, "V", rngs(1, 61)[0], cosmic_rate=0.0)
    assert not none.any()


# ---------------------------------------------------------------------------- scene
def test_scene_defaults_follow_the_tutorial():
    scene = Scene.random((200, 200), np.random.default_rng(0))
    stars = scene.stars
    t = 60.0
    assert len(stars) == 30 and stars.colnames == ["id", "x", "y", "peak_rate", "flux_rate"]
    assert stars["peak_rate"].min() * t >= 2000 and stars["peak_rate"].max() * t <= 20000
    assert scene.sky_rate * t == pytest.approx(100.0)
    assert stars["x"].min() >= 10 and stars["x"].max() <= 190
    assert stars["y"].min() >= 10 and stars["y"].max() <= 190
    sigma = 3.0 / (2 * math.sqrt(2 * math.log(2)))
    np.testing.assert_allclose(stars["flux_rate"], 2 * math.pi * sigma**2 * stars["peak_rate"])
    # the image holds every star's flux (pixel-integrated profile) on top of the sky
    stars_only = scene.rate.sum() - scene.sky_rate * scene.rate.size
    assert stars_only == pytest.approx(stars["flux_rate"].sum(), rel=1e-6)
    # the brightest pixel of a star is near, and not above, its peak
    x, y, peak = stars[0]["x"], stars[0]["y"], stars[0]["peak_rate"]
    near = scene.rate[round(y) - 1 : round(y) + 2, round(x) - 1 : round(x) + 2].max()
    assert 0.7 * peak < near - scene.sky_rate <= peak * 1.0001
    with pytest.raises(ValueError, match="read-only"):
        scene.rate[0, 0] = 1.0


def test_scene_centroid_and_gradient():
    kw = {"sky_rate": 10.0, "sky_gradient": 0.2}
    scene = Scene.from_stars((41, 41), [20.3], [19.6], [1000.0], fwhm=2.5, **kw)
    plane = Scene.from_stars((41, 41), [], [], [], **kw).rate
    star = scene.rate - plane
    y, x = np.mgrid[0:41, 0:41]
    assert (star * x).sum() / star.sum() == pytest.approx(20.3, abs=1e-6)
    assert (star * y).sum() / star.sum() == pytest.approx(19.6, abs=1e-6)
    # the sky changes by the gradient from one corner to the other, about its mean
    assert plane[0, 0] == pytest.approx(9.0) and plane[40, 40] == pytest.approx(11.0)
    assert plane.mean() == pytest.approx(10.0)
    more = scene.with_stars([5.0], [5.0], [10.0])
    assert len(more.stars) == 2 and list(more.stars["id"]) == [1, 2]
    assert more.rate.sum() > scene.rate.sum()


# ---------------------------------------------------------------------------- nights
SMALL = {"shape": (32, 40), "nbias": 2, "ndark": 2, "nflat": 2, "nlight": 2,
         "filters": ("V", "R"), "overscan": 4, "cosmic_rate": 1e-4}  # fmt: skip


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = night(tmp_path / "a", seed=5, **SMALL)
    b = night(tmp_path / "b", seed=5, **SMALL)
    c = night(tmp_path / "c", seed=6, **SMALL)
    names = _files(a.folder)
    assert names == _files(b.folder) and len(names) == 14 + 11
    for name in names:
        assert filecmp.cmp(a.folder / name, b.folder / name, shallow=False), name
    for pa, pc in zip(a.raw, c.raw, strict=True):
        assert not filecmp.cmp(pa, pc, shallow=False), pa.name
    # more lights and another filter leave every frame already taken as it was (the
    # lights' data; their DATE-OBS moves with the frames taken before them)
    d = night(tmp_path / "d", seed=5, **{**SMALL, "nlight": 3, "filters": ("V", "R", "B")})
    for p in a.raw:
        if a.kinds[p] == "light":
            assert np.array_equal(fits.getdata(p), fits.getdata(d.raw_dir / p.name)), p.name
        else:
            assert filecmp.cmp(p, d.raw_dir / p.name, shallow=False), p.name
    assert filecmp.cmp(a.truth["scene"], d.truth["scene"], shallow=False)


def test_night_headers(tmp_path):
    n = night(tmp_path, seed=1, **SMALL)
    seen: dict[str, list] = {}
    dates = []
    for path in n.raw:
        assert verify_checksums(path), path.name
        with fits.open(path) as hdul:
            h = hdul[0].header
            assert h["BITPIX"] == 16 and h["BZERO"] == 32768 and hdul[0].data.shape == (32, 44)
        for key in ("IMAGETYP", "EXPTIME", "OBJECT", "DATE-OBS", "GAIN", "RDNOISE", "BUNIT",
                    "SATURATE", "BIASSEC", "TRIMSEC", "DATASEC"):  # fmt: skip
            assert key in h, (path.name, key)
        assert h["BUNIT"] == "adu" and h["GAIN"] == 1.0 and h["RDNOISE"] == 8.0
        assert h["BIASSEC"] == "[41:44,1:32]" and h["TRIMSEC"] == "[1:40,1:32]"
        assert h["IMAGETYP"].lower() == n.kinds[path]
        assert ("FILTER" in h) == (h["IMAGETYP"] in ("FLAT", "LIGHT"))
        seen.setdefault(h["IMAGETYP"], []).append((h.get("FILTER"), h["EXPTIME"], h["OBJECT"]))
        dates.append(dt.datetime.fromisoformat(h["DATE-OBS"]))
    assert all(b > a for a, b in itertools.pairwise(dates))
    assert seen["BIAS"] == [(None, 0.0, "BIAS")] * 2
    assert seen["DARK"] == [(None, 60.0, "DARK")] * 2
    assert {f for f, _, _ in seen["FLAT"]} == {"V", "R"}
    assert seen["LIGHT"][0] == ("V", 60.0, "SIMFIELD")
    assert [p.name for p in n.of_kind("dark")] == ["dark_060s_001.fits", "dark_060s_002.fits"]


def test_night_truth_files(tmp_path):
    n = night(tmp_path, seed=2, **SMALL)
    truth = tmp_path / "truth"
    det = n.detector
    expected = {"scene.fits", "bias.fits", "dark_current.fits", "hot_pixels.fits",
                "flat_V.fits", "flat_R.fits", "stars.ecsv", "pointing.ecsv",
                "detector.json"}  # fmt: skip
    expected |= {f"cosmic_{p.stem}.fits" for p in n.of_kind("light")}
    assert {p.name for p in truth.iterdir()} == expected
    assert fits.getval(truth / "scene.fits", "BUNIT") == "electron/s"
    assert fits.getval(truth / "dark_current.fits", "BUNIT") == "electron/s"
    assert fits.getval(truth / "bias.fits", "BUNIT") == "adu"
    for name in ("hot_pixels.fits", "cosmic_light_V_001.fits"):
        assert fits.getval(truth / name, "BITPIX") == 8
    # on the science area, equal to the detector's truth (float32 on disk)
    np.testing.assert_allclose(Frame.read(truth / "bias.fits").data, det.bias_pattern[:, :40],
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(Frame.read(truth / "flat_R.fits").data, det.flat_response("R"),
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_allclose(Frame.read(truth / "scene.fits").data, n.scene.rate, rtol=1e-6)
    assert np.array_equal(fits.getdata(truth / "hot_pixels.fits") > 0, det.hot_pixels)
    stars = Table.read(truth / "stars.ecsv")
    assert stars.colnames == ["id", "x", "y", "peak_rate", "flux_rate"] and len(stars) == 30
    assert str(stars["flux_rate"].unit) == "electron / s"
    info = json.loads((truth / "detector.json").read_text())
    assert info["detector"]["gain"] == 1.0 and info["detector"]["read_noise"] == 8.0
    assert info["detector"]["biassec"] == "[41:44,1:32]"
    assert info["night"]["nlight"] == 2 and info["night"]["dark_exptime"] == 60.0
    assert info["night"]["flat_level"] == 30000.0 and info["seed"] == 2


def test_cosmic_truth_matches_the_lights(tmp_path):
    n = night(tmp_path, seed=3, **{**SMALL, "cosmic_rate": 5e-4})
    det = n.detector
    for light in n.of_kind("light"):
        mask = fits.getdata(n.truth[f"cosmic_{light.stem}"]) > 0
        filt = fits.getval(light, "FILTER")
        electrons = (det.flat_response(filt) * n.scene.rate + det.dark_current) * 60.0
        excess = Frame.read(light).data[:, :40] - det.bias_pattern[:, :40] - electrons
        z = excess / np.sqrt(electrons + det.read_noise**2 + QUANT)
        assert mask.any()
        assert np.median(z[mask]) > 20  # deposits of thousands of electrons
        assert np.abs(z[~binary_dilation(mask)]).max() < 5.5  # elsewhere: plain noise


def test_rerun_removes_only_its_own_stale_files(tmp_path):
    night(tmp_path, seed=1, **{**SMALL, "nlight": 3})
    (tmp_path / "raw" / "notes.txt").write_text("mine")
    n = night(tmp_path, seed=1, **SMALL)
    names = {p.name for p in (tmp_path / "raw").iterdir()}
    assert "light_V_003.fits" not in names and "notes.txt" in names
    assert not (tmp_path / "truth" / "cosmic_light_V_003.fits").exists()
    assert len(n.raw) == 12


def test_rerun_of_the_same_night_leaves_its_files_untouched(tmp_path):
    """Simulating the same night again changes no file, not even its time, so that a
    reduction keyed on the raw files' times reuses its work; what changes is rewritten."""
    night(tmp_path, seed=1, **SMALL)
    files = _files(tmp_path)
    past = 1_000_000_000_000_000_000  # 2001: a rewrite cannot keep this time by chance
    for name in files:
        os.utime(tmp_path / name, ns=(past, past))
    night(tmp_path, seed=1, **SMALL)
    assert _files(tmp_path) == files
    assert all((tmp_path / name).stat().st_mtime_ns == past for name in files)
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary file left
    # another read noise: every frame and the detector's description change; the truth
    # images that do not depend on it are kept
    night(tmp_path, seed=1, **{**SMALL, "read_noise": 9.0})
    changed = {name for name in files if (tmp_path / name).stat().st_mtime_ns != past}
    assert {p.relative_to(tmp_path) for p in (tmp_path / "raw").iterdir()} <= changed
    assert Path("truth/detector.json") in changed
    assert Path("truth/scene.fits") not in changed
    assert fits.getval(tmp_path / "raw" / "bias_001.fits", "RDNOISE") == 9.0


def test_default_night_is_quick(tmp_path):
    import time

    start = time.perf_counter()
    n = night(tmp_path, seed=0)
    elapsed = time.perf_counter() - start
    assert n.counts() == {"bias": 25, "dark": 15, "flat": 15, "light": 10}
    assert elapsed < 10.0  # about 0.5 s on a laptop; generous for loaded CI machines


def test_night_rejects_bad_options(tmp_path):
    with pytest.raises(ValueError, match="filter"):
        night(tmp_path, filters=("V", "V"))
    with pytest.raises(ValueError, match="light_exptime"):
        night(tmp_path, light_exptime=0)
    with pytest.raises(ValueError, match="nbias"):
        night(tmp_path, nbias=-1)
