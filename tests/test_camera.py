"""Measuring the camera (ccdcal.camera, `ccdcal characterize`) against the simulator's truth,
and the photon-transfer arithmetic against plain statistics."""

from __future__ import annotations

import shlex

import numpy as np
import pytest
from astropy.io import fits

import ccdcal
from ccdcal.camera import (
    Characterization,
    Value,
    bad_pixels,
    characterize,
    clipped_std,
    linearity,
    photon_transfer,
    read_noise_adu,
)
from ccdcal.cli import main
from ccdcal.config import load_config, loads_config
from ccdcal.simulate import Detector


def _night(tmp_path, **params):
    defaults = dict(shape=(256, 256), nbias=10, ndark=4, nflat=10, nlight=1, nstars=0,
                    overscan=16, calibration_cosmics=True)  # fmt: skip
    return ccdcal.simulate.night(tmp_path / "night", **{**defaults, **params})


@pytest.mark.parametrize(("gain", "read_noise"), [(1.0, 8.0), (2.5, 5.0), (0.6, 12.0), (4.0, 3.0)])
def test_gain_and_read_noise_recovered_from_a_simulated_night(tmp_path, gain, read_noise):
    night = _night(tmp_path, gain=gain, read_noise=read_noise, seed=int(gain * 10))
    found = characterize(night.raw_dir)
    assert found.gain is not None and found.read_noise is not None
    assert found.gain.value == pytest.approx(gain, rel=0.02)
    assert found.read_noise.value == pytest.approx(read_noise, rel=0.03)
    assert found.read_noise.unit == "e-" and found.gain.unit == "e-/ADU"
    # the stated errors are honest: within four of them of the truth, and small
    assert abs(found.gain.value - gain) < 4 * found.gain.error + 0.002 * gain
    assert found.gain.error < 0.01 * gain
    # the simulator's dark current of ordinary pixels (e-/s) and its hot pixels
    truth = night.detector
    assert found.dark_current.value == pytest.approx(truth.dark_rate, rel=0.1)
    hot = truth.hot_pixels
    assert found.hot_mask[hot].mean() > 0.9
    assert found.hot_mask[~hot].sum() <= 0.1 * hot.sum()
    assert not found.disagreements()  # the simulator's headers are right


def test_header_values_that_differ_are_reported(tmp_path):
    night = _night(tmp_path, gain=2.0, read_noise=10.0, ndark=0)
    for path in night.raw_dir.iterdir():
        with fits.open(path, mode="update") as hdul:
            hdul[0].header["RDNOISE"] = 5.0  # half the truth, as CAFOS's header had it
    found = characterize(night.raw_dir)
    (line,) = found.disagreements()
    assert "RDNOISE = 5" in line and "10" in line and "-50 %" in line
    assert "RDNOISE = 5" in found.table()


def test_the_adc_rounding_is_not_counted_as_read_noise(tmp_path):
    """At 0.5 ADU of read noise the ADC's rounding (1/12 ADU²) is a quarter of the variance:
    the read noise in electrons is the amplifier's, the ADU value what pixels scatter by."""
    night = _night(tmp_path, gain=10.0, read_noise=5.0, ndark=0, nbias=16, shape=(384, 384))
    found = characterize(night.raw_dir)
    assert found.read_noise.value == pytest.approx(5.0, rel=0.03)
    assert found.read_noise_adu.value == pytest.approx(np.sqrt(0.25 + 1 / 12), rel=0.03)


def _write(frames, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        frame.write(folder / f"{frame.header['IMAGETYP'].lower()}_{i:03d}.fits", dtype="uint16")
    return folder


def test_linearity_of_a_detector_that_rolls_off(tmp_path):
    """Flats of a steady lamp at six exposure times, on a detector whose response falls by
    5 % at the full well: the 1 % point is where the simulator puts it, and the gain comes
    from the pairs below it."""
    det = Detector.create(seed=1, shape=(128, 128), gain=2.0, read_noise=5.0, nonlinearity=0.05)
    rng = np.random.default_rng(0)
    frames = [det.bias(rng) for _ in range(4)]
    frames += [
        det.flat(4000.0 * t, "V", rng, exptime=t) for t in (1, 2, 4, 8, 12, 16) for _ in (0, 1)
    ]
    found = characterize(_write(frames, tmp_path / "raw"))
    lin = found.linearity
    assert lin.measured
    # n (1 - 0.05 n / 1e5) departs by 1 % at 20,000 e-: 19,800 e- read, 9,900 ADU
    assert lin.limit == pytest.approx(9900, rel=0.05)
    assert found.gain.value == pytest.approx(2.0, rel=0.02)
    # the gain comes from the pairs below the limit only (3 of the 6 here)
    below = [p for p in found.transfer if p.level < lin.limit]
    assert 0 < len(below) < len(found.transfer)
    assert found.gain.source.startswith(f"{len(below)} flat pair")


def test_linear_detector_and_twilight_flats():
    assert linearity([1000, 2000, 4000, 8000], [1, 2, 4, 8]).limit is None
    assert linearity([1000, 2000, 4000, 8000], [1, 2, 4, 8]).measured
    twilight = linearity([30000, 25000, 21000, 19000], [2.7, 3.3, 4.5, 4.5])
    assert not twilight.measured and "twilight" in twilight.note


def test_photon_transfer_is_unbiased_across_levels_and_unequal_pairs():
    rng = np.random.default_rng(5)
    response = 1.0 + 0.03 * rng.standard_normal((256, 256))
    gains = []
    for level, ratio in ((5_000, 1.0), (20_000, 0.93), (50_000, 1.07)):
        a = rng.poisson(level * response) / 1.7 + rng.normal(0, 3.0, response.shape)
        b = rng.poisson(level * ratio * response) / 1.7 + rng.normal(0, 3.0, response.shape)
        point = photon_transfer(a, b, read_noise=3.0)
        gains.append(point.gain)
        assert abs(point.gain - 1.7) < 4 * point.error
        assert point.variance == pytest.approx(level / 1.7**2, rel=0.03)
    assert np.std(gains) < 0.02


def test_read_noise_and_clipping_against_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(10.0, 4.0, 400_000)
    mean, std, _ = clipped_std(x)
    assert mean == pytest.approx(10.0, abs=0.02) and std == pytest.approx(np.std(x), rel=0.002)
    pattern = rng.uniform(0, 100, (300, 300))
    a, b = (pattern + rng.normal(0, 2.0, pattern.shape) for _ in range(2))
    b[10:12, 10:200] += 5000  # a cosmic-ray track in one
    rn, err = read_noise_adu(a, b)
    assert rn == pytest.approx(2.0, abs=3 * err)


def test_bad_pixels_match_ccdproc_ccdmask():
    """The pixels ccdmask flags in a flat ratio with injected bad pixels are ours too."""
    ccdproc = pytest.importorskip("ccdproc")
    from astropy.nddata import CCDData

    rng = np.random.default_rng(11)
    ratio = 1.0 + 0.01 * rng.standard_normal((200, 200))
    bad = rng.choice(200 * 200, 40, replace=False)
    ratio.flat[bad[:20]] *= 0.5  # dead-ish at one level
    ratio.flat[bad[20:]] *= 1.5  # hot or non-linear
    ours = bad_pixels(ratio)
    theirs = ccdproc.ccdmask(CCDData(ratio, unit="adu"), findbadcolumns=False)
    truth = np.zeros(ratio.shape, bool)
    truth.flat[bad] = True
    assert ours[truth].all() and theirs[truth].all()
    assert (ours != theirs).sum() <= 4


def test_table_and_toml_round_trip(tmp_path):
    found = Characterization(
        gain=Value(1.431, 0.004, "e-/ADU", "5 flat pairs (V)"),
        read_noise=Value(14.2, 0.1, "e-", "5 bias pairs, measured gain"),
        header={"gain": ("CCDGAIN", 20.0), "rdnoise": ("RDNOISE", 7.4)},
    )
    text = found.table()
    assert "CCDGAIN = 20" in text and "+1297.6 %" in text and "-47.9 %" in text
    path = tmp_path / "detector.toml"
    path.write_text(found.to_toml())
    cfg = load_config(path)
    assert cfg.detector.gain == pytest.approx(1.431) and cfg.detector.rdnoise == pytest.approx(14.2)


def test_characterize_command_writes_a_config_that_reduce_takes(tmp_path, capsys):
    night = _night(tmp_path, gain=1.5, read_noise=7.0, ndark=2, shape=(128, 128))
    out = tmp_path / "detector.toml"
    mask = tmp_path / "bad.fits"
    assert main(["characterize", str(night.raw_dir), "-o", str(out), "--mask", str(mask)]) == 0
    printed = capsys.readouterr().out
    assert "gain" in printed and "GAIN = 1.5" in printed and f"wrote {out}" in printed
    cfg = load_config(out)
    assert cfg.detector.gain == pytest.approx(1.5, rel=0.03)
    assert cfg.detector.rdnoise == pytest.approx(7.0, rel=0.05)
    assert fits.getdata(mask).sum() >= night.detector.hot_pixels.sum() * 0.9
    assert main(["characterize", str(night.raw_dir), "--pairs", "0"]) == 1


def test_characterize_without_pairs_says_so(tmp_path, capsys):
    night = _night(tmp_path, nbias=1, nflat=1, ndark=0, shape=(64, 64))
    found = characterize(night.raw_dir)
    assert found.gain is None and found.read_noise is None
    assert any("one bias" in n for n in found.notes)
    assert main(["characterize", str(night.raw_dir), "-o", str(tmp_path / "d.toml")]) == 1
    assert "could be measured" in capsys.readouterr().err
    assert not (tmp_path / "d.toml").exists()


# ---------------------------------------------------------------------------- real nights
@pytest.mark.realdata
@pytest.mark.slow
def test_lowell_gain_from_its_twilight_flats(lowell_night):
    """The Lowell header says AGAIN_01 = 4.95 e-/ADU and ARDNS_01 = 9.3 e-. Its three pairs
    of twilight flats (18,000-22,000 ADU above the bias) give one photon-transfer gain,
    3.66 e-/ADU, their variance proportional to the level within 0.5 % from pair to pair:
    no sign of a non-cancelling pattern, which would grow as the level squared. The biases
    scatter by 1.17 ADU (the data's README: "about 1.3 ADU"), which is 5.8 e- at the
    header's gain, 4.3 e- at the measured one, not 9.3 e- at either. Neighbouring pixels of
    the flats' difference correlate by 5-6 % (charge sharing in a thick CCD, binned 3x3);
    counting those covariances would lower the gain further. So the header's gain and read
    noise are not those of these frames, and ccdcal says so."""
    found = characterize(lowell_night, darks=False)
    assert found.gain.value == pytest.approx(3.66, rel=0.02)
    assert found.read_noise_adu.value == pytest.approx(1.17, rel=0.03)
    ratios = [p.variance / p.level for p in found.transfer]
    assert len(ratios) == 3 and np.ptp(ratios) / np.mean(ratios) < 0.005
    assert found.header["gain"] == ("AGAIN_01", 4.95)
    lines = found.disagreements()
    assert any("AGAIN_01 = 4.95" in line for line in lines)
    assert any("ARDNS_01 = 9.3" in line for line in lines)
    assert not found.linearity.measured  # twilight: the sky fades between the flats


@pytest.mark.realdata
@pytest.mark.slow
def test_feder_noise_is_below_its_8_bit_step(feder_night):
    """The Feder frames were cut to 8 bits (values 11 to about 80): the biases are all alike
    and the flats' photon noise is under one step, so nothing can be measured, and
    characterize says why instead of printing a number."""
    found = characterize(feder_night, darks=False, bad_pixels=False)
    assert found.gain is None and found.read_noise is None
    assert any("quantized" in n for n in found.notes)


def test_readme_example_is_what_the_commands_print(tmp_path, monkeypatch, capsys):
    """README's characterize example is the output of the two commands it names."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- characterize-example -->\n```text\n", 1)[1].split("\n```", 1)[0]
    monkeypatch.chdir(tmp_path)
    args = shlex.split("cam --seed 1 --gain 2 --read-noise 6 --size 256x256 --nlight 1")
    assert main(["simulate", *args]) == 0
    capsys.readouterr()
    assert main(["characterize", "cam/raw"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == block


def test_clipping_is_unbiased_at_any_sigma():
    x = np.random.default_rng(8).normal(0.0, 1.0, 1_000_000)
    for sigma in (2.5, 3.0, 5.0):
        assert clipped_std(x, sigma=sigma)[1] == pytest.approx(np.std(x), rel=0.002), sigma


def test_left_shifted_cmos_read_noise(tmp_path):
    """12-bit values stored shifted left by 4: steps of 16 ADU, whose rounding (16²/12 ADU²)
    is taken out of the read noise in electrons."""
    night = _night(tmp_path, gain=0.125, read_noise=3.0, adc_bits=12, adc_shift=4, ndark=0,
                   nbias=16, bias_level=3200.0, flat_level=2000.0)  # fmt: skip
    found = characterize(night.raw_dir)
    assert found.gain.value == pytest.approx(0.125, rel=0.02)
    assert found.read_noise.value == pytest.approx(3.0, rel=0.05)


def test_no_gain_without_a_bias_level(tmp_path):
    """Without biases, overscan or a configured bias level the flats' level holds the bias
    (500 ADU here): no gain is better than one 2-40 % too high."""
    night = _night(tmp_path, gain=2.0, nbias=0, ndark=0, overscan=0, flat_level=5000.0)
    found = characterize(night.raw_dir)
    assert found.gain is None and any("level above the bias is unknown" in n for n in found.notes)
    found = characterize(night.raw_dir, config=loads_config("[detector]\nbias_level = 500\n"))
    assert found.gain.value == pytest.approx(2.0, rel=0.02)


def test_an_unsure_gain_is_shown_but_never_converts(tmp_path):
    night = _night(tmp_path, gain=2.0, read_noise=6.0, nflat=1, ndark=0)
    for path in night.raw_dir.iterdir():
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["GAIN"]
            hdul[0].header["CCDGAIN"] = 3
    found = characterize(night.raw_dir)
    assert found.read_noise.unit == "ADU" and found.gain_unsure == ("CCDGAIN", 3.0)
    assert "CCDGAIN = 3 (unsure)" in found.table()
    assert "rdnoise" not in found.to_toml()


def test_bad_input_is_one_line(tmp_path, capsys):
    night = _night(tmp_path, shape=(64, 64), ndark=0)
    assert main(["characterize", str(night.raw_dir), "--region", "[1:10]"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ccdcal: error: --region '[1:10]'") and err.count("\n") == 1
    odd = Detector.create(seed=3, shape=(32, 64)).bias(np.random.default_rng(0))
    odd.write(night.raw_dir / "bias_odd.fits", dtype="uint16")
    assert main(["characterize", str(night.raw_dir)]) == 1
    assert "bias_odd.fits: bias of shape 64x32 differs" in capsys.readouterr().err


def test_twilight_flats_are_no_linearity_measurement(tmp_path):
    """Sky flats of a fading twilight (the simulator's flats at levels that do not follow
    their exposure times, as the Lowell night's): linearity is not measured, and the gain
    from pairs of one level is still right."""
    det = Detector.create(seed=2, shape=(128, 128), gain=1.5, read_noise=6.0)
    rng = np.random.default_rng(1)
    frames = [det.bias(rng) for _ in range(4)]
    # the sky fades while the exposures lengthen: 30,000 e- at 2 s down to 15,000 at 6 s
    for t, level in ((2.0, 30_000.0), (3.0, 27_000.0), (4.5, 21_000.0), (6.0, 15_000.0)):
        frames += [det.flat(level, "V", rng, exptime=t) for _ in range(2)]
    found = characterize(_write(frames, tmp_path / "raw"))
    assert found.linearity is not None and not found.linearity.measured
    assert "twilight" in found.linearity.note
    assert found.gain.value == pytest.approx(1.5, rel=0.02)
