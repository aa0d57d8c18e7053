"""The simulator's statistics match its model; a detector keeps its properties; seeds
reproduce bytes."""

from __future__ import annotations

import filecmp
import itertools
import json

import numpy as np
import pytest
from astropy.io import fits

from ccdcal.cli import main
from ccdcal.frame import Frame
from ccdcal.simulate import ADC_MAX, Detector, Scene, cosmic_rays, night


def rngs(n, start=0):
    return [np.random.default_rng(start + i) for i in range(n)]


@pytest.fixture(scope="module")
def det():
    return Detector.create(seed=7, shape=(120, 100), gain=2.0, read_noise=6.0, bias_level=400)


def test_bias_noise_is_read_noise_over_gain(det):
    frames = np.stack([det.bias(r).data for r in rngs(12)])
    noise = (frames - frames.mean(axis=0)).std() * np.sqrt(12 / 11)
    expected = np.hypot(det.read_noise / det.gain, 1 / np.sqrt(12))  # plus quantization
    assert abs(noise / expected - 1) < 0.02
    # and the fixed structure is the detector's bias pattern
    np.testing.assert_allclose(
        frames.mean(axis=0), det.bias_pattern, atol=4 * expected / np.sqrt(12)
    )


def test_dark_signal_is_rate_times_exposure(det):
    t = 120.0
    darks = np.stack([det.dark(t, r).data for r in rngs(10)])
    signal = (darks.mean(axis=0) - det.bias_pattern) * det.gain  # electrons
    normal = ~det.hot_pixels
    assert abs(signal[normal].mean() / (0.2 * t) - 1) < 0.02
    np.testing.assert_allclose(signal[det.hot_pixels], det.dark_current[det.hot_pixels] * t,
                               rtol=0.15)  # fmt: skip


def test_hot_pixels_same_in_every_dark(det):
    for r in rngs(3):
        d = (det.dark(60.0, r).data - det.bias_pattern) * det.gain
        found = d > 40  # normal pixels: 12 e- +/- ~7 (4 sigma below); hot ones +50 and more
        assert (found == det.hot_pixels).mean() > 0.999
    assert det.hot_pixels.sum() == round(0.001 * 120 * 100)


def test_flat_pattern_same_in_every_flat(det):
    a, b = (det.flat(30000, "V", r).data - det.bias_pattern for r in rngs(2))
    truth = det.flat_response("V")
    ra, rb = a / np.median(a) - truth, b / np.median(b) - truth  # shot noise left
    assert abs(np.corrcoef(ra.ravel(), rb.ravel())[0, 1]) < 0.05
    ca = np.corrcoef((a / np.median(a)).ravel(), truth.ravel())[0, 1]
    assert ca > 0.99
    # the pixel response is the detector's, whatever the filter; the colour term is small
    assert np.corrcoef(det.flat_response("V").ravel(), det.flat_response("R").ravel())[0, 1] > 0.99


def test_light_variance_is_poisson_plus_read_noise(det):
    scene = Scene.random(det.shape, np.random.default_rng(0), nstars=12, sky=2000)
    (a, _), (b, _) = (det.light(scene.rate, 60.0, "V", r, cosmic_rate=0) for r in rngs(2))
    signal_adu = (a.data + b.data) / 2 - det.bias_pattern
    var = (a.data - b.data) ** 2 / 2
    model = np.clip(signal_adu, 0, None) / det.gain + (det.read_noise / det.gain) ** 2 + 1 / 12
    edges = np.quantile(signal_adu, [0.0, 0.5, 0.9, 0.99, 1.0])
    for lo, hi in itertools.pairwise(edges):
        sel = (signal_adu >= lo) & (signal_adu < hi) & (a.data < ADC_MAX) & (b.data < ADC_MAX)
        ratio = var[sel].mean() / model[sel].mean()
        assert abs(ratio - 1) < 4 * np.sqrt(2 / sel.sum()) + 0.03, (lo, hi, ratio)


def test_adc_clips_and_full_well_saturates():
    det = Detector.create(seed=1, shape=(40, 40), gain=4.0, full_well=50_000, bias_level=300)
    rate = np.full(det.shape, 10.0)
    rate[20, 20] = 1e6  # a star far beyond full well
    frame, _ = det.light(rate, 10.0, "V", np.random.default_rng(0), cosmic_rate=0)
    # full well reached: 50000 e- / 4 + bias, far below the ADC's 65535
    assert abs(frame.data[20, 20] - (50_000 / 4 + det.bias_pattern[20, 20])) < 5
    assert frame.header["SATURATE"] == pytest.approx(300 + 50_000 / 4)
    det1 = Detector.create(seed=1, shape=(40, 40), gain=1.0)
    frame1, _ = det1.light(rate, 10.0, "V", np.random.default_rng(0), cosmic_rate=0)
    assert frame1.data[20, 20] == ADC_MAX and frame1.data.max() == ADC_MAX
    assert frame1.data.min() >= 0 and np.all(frame1.data == np.rint(frame1.data))


def test_overscan_has_bias_and_read_noise_only():
    det = Detector.create(seed=2, shape=(200, 60), overscan=16, read_noise=8.0)
    rate = np.full(det.shape, 50.0)
    frame, _ = det.light(rate, 60.0, "V", np.random.default_rng(0), cosmic_rate=0)
    assert frame.shape == (200, 76) and frame.header["BIASSEC"] == "[61:76,1:200]"
    assert frame.header["TRIMSEC"] == "[1:60,1:200]"
    strip = frame.data[:, 60:]
    rows = det.bias_level + det.bias_rows
    resid = strip - rows[:, None]
    assert abs(resid.mean()) < 0.2 and abs(resid.std() / np.hypot(8.0, 1 / np.sqrt(12)) - 1) < 0.05
    assert frame.data[:, :60].mean() > det.bias_level + 2000  # the light is in the image only


def test_cosmic_rays_rate_and_tracks():
    rng = np.random.default_rng(3)
    hits = [cosmic_rays((200, 200), 20 / (200 * 200), rng) for _ in range(50)]
    pixels = np.mean([(h > 0).sum() for h in hits])
    # 20 hits a frame: half single pixels, half tracks of 2..8 pixels (mean 5)
    assert 45 < pixels < 75
    assert all(h.sum() >= 0 for h in hits)
    det = Detector.create(seed=4, shape=(60, 60))
    frame, mask = det.light(np.zeros(det.shape), 60.0, "V", np.random.default_rng(9),
                            cosmic_rate=1e-4)  # fmt: skip
    assert mask.any()
    assert (frame.data[mask] - det.bias_pattern[mask]).min() > 30  # above the noise


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = {"shape": (40, 48), "nbias": 2, "ndark": 2, "nflat": 2, "nlight": 2, "overscan": 4}
    a = night(tmp_path / "a", seed=5, **kw)
    b = night(tmp_path / "b", seed=5, **kw)
    c = night(tmp_path / "c", seed=6, **kw)
    names = sorted(p.relative_to(a.folder) for p in a.folder.rglob("*") if p.is_file())
    assert len(names) > 15
    for name in names:
        assert filecmp.cmp(a.folder / name, b.folder / name, shallow=False), name
    assert not filecmp.cmp(a.raw[0], c.raw[0], shallow=False)
    # more lights do not change the biases already taken
    d = night(tmp_path / "d", seed=5, **{**kw, "nlight": 4})
    assert filecmp.cmp(a.raw[0], d.raw[0], shallow=False)


def test_night_headers_and_truth(tmp_path):
    n = night(tmp_path, seed=1, shape=(32, 40), nbias=1, ndark=1, nflat=1, nlight=1,
              filters=("B", "V"), overscan=6)  # fmt: skip
    kinds = {}
    for path in n.raw:
        h = fits.getheader(path)
        assert h["BITPIX"] == 16 and h["BZERO"] == 32768
        for key in ("IMAGETYP", "EXPTIME", "OBJECT", "DATE-OBS", "GAIN", "RDNOISE", "BUNIT",
                    "BIASSEC", "TRIMSEC", "CHECKSUM"):  # fmt: skip
            assert key in h, (path.name, key)
        kinds.setdefault(h["IMAGETYP"], []).append(h.get("FILTER"))
    assert sorted(kinds) == ["BIAS", "DARK", "FLAT", "LIGHT"]
    assert sorted(kinds["LIGHT"]) == ["B", "V"] and kinds["BIAS"] == [None]
    truth = tmp_path / "truth"
    names = ("scene.fits", "flat_B.fits", "flat_V.fits", "dark_current.fits", "bias.fits",
             "hot_pixels.fits", "stars.ecsv", "detector.json", "cosmic_light_V_001.fits")  # fmt: skip
    for name in names:
        assert (truth / name).exists(), name
    assert Frame.read(truth / "scene.fits").shape == (32, 40)  # science area, no overscan
    assert fits.getval(truth / "scene.fits", "BUNIT") == "electron/s"
    params = json.loads((truth / "detector.json").read_text())
    assert params["gain"] == 1.0 and params["nlight"] == 1


def test_scene_defaults_follow_tutorial():
    scene = Scene.random((200, 200), np.random.default_rng(0))
    t = 60.0
    assert len(scene.stars) == 30
    assert (
        scene.stars["peak_rate"].min() * t >= 2000 and scene.stars["peak_rate"].max() * t <= 20000
    )
    assert scene.rate.min() * t == pytest.approx(100.0)
    assert scene.stars["x"].min() >= 10 and scene.stars["x"].max() <= 190


def test_cli_simulate(tmp_path, capsys):
    code = main(["simulate", str(tmp_path), "--seed", "1", "--size", "40x30", "--nbias", "2",
                 "--ndark", "2", "--nflat", "2", "--nlight", "3", "--overscan", "5"])  # fmt: skip
    assert code == 0
    assert "2 bias" in capsys.readouterr().out
    assert len(list((tmp_path / "raw").glob("*.fits"))) == 9
    assert Frame.read(tmp_path / "raw" / "light_V_001.fits").shape == (30, 45)
