"""The whole reduction on simulated nights, checked against the simulator's truth and ccdproc."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from astropy.nddata import CCDData

import ccdcal
from ccdcal import flags
from ccdcal.cli import main
from ccdcal.errors import CcdcalError
from ccdcal.frame import Frame
from ccdcal.pipeline import choose_dark, reduce
from ccdcal.quality import Truth, compare_with_truth


@pytest.fixture(scope="module")
def reduced_night(tmp_path_factory):
    """The default night of the tutorial (200x200, 25/15/15/10), reduced once."""
    base = tmp_path_factory.mktemp("night")
    ccdcal.simulate.night(base / "night", seed=11)
    result = reduce(base / "night" / "raw", base / "out", report=False)
    return base, result


def test_outputs_layout(reduced_night):
    base, result = reduced_night
    assert sorted(result.masters) == ["bias", "dark_60s", "flat_V"]
    raw_lights = sorted(p.name for p in (base / "night" / "raw").glob("light_*"))
    assert sorted(p.name for p in result.calibrated) == raw_lights
    assert len(result.stacks) == 1
    (obj, filt), path = next(iter(result.stacks.items()))
    assert path == base / "out" / "stacks" / f"{obj}_{filt}.fits"
    assert not result.failures


def test_calibrated_frames_readable_by_astropy(reduced_night):
    _, result = reduced_night
    ccd = CCDData.read(result.calibrated[0])
    assert ccd.unit == "electron"
    assert ccd.uncertainty is not None and ccd.mask is not None
    stack = CCDData.read(next(iter(result.stacks.values())))
    assert stack.unit == "electron"


def test_against_truth(reduced_night):
    """Calibrated light and stack within 10 % of the noise model; masters at their noise;
    at least 99.9 % of injected cosmic-ray pixels rejected."""
    base, result = reduced_night
    comparison = compare_with_truth(base / "night", result)
    print(comparison.table())
    failed = [c for c in comparison.checks if not c.ok]
    assert not failed, comparison.table()
    names = {c.name for c in comparison.checks}
    assert "calibrated light - truth: std" in names
    assert any(n.endswith("cosmic-ray pixels left") for n in names)
    assert any(n.startswith("master flat") for n in names)


def test_sqrt_n_law(tmp_path):
    """Noise of a stack of N frames falls as N^-0.5 (slope -0.5 +/- 0.05, N = 1..10).

    The difference of two stacks of N different frames each holds no master-frame noise
    (both were calibrated with the same masters), so its scatter is the frames' own noise.
    """
    ccdcal.simulate.night(tmp_path / "n", seed=5, shape=(128, 128), nlight=20, nbias=9,
                          ndark=5, nflat=5)  # fmt: skip
    result = reduce(tmp_path / "n" / "raw", tmp_path / "o", report=False)
    truth = Truth.read(tmp_path / "n")
    crs = np.zeros(truth.scene.shape, bool)
    for m in truth.cosmic.values():
        crs |= m
    frames = [Frame.read(p) for p in result.calibrated]
    ns = np.arange(1, 11)
    noise = []
    for n in ns:
        a = ccdcal.combine(frames[:n], method="mean", reject=ccdcal.SigmaClip())
        b = ccdcal.combine(frames[10 : 10 + n], method="mean", reject=ccdcal.SigmaClip())
        d = (a.data - b.data)[~crs & np.isfinite(a.data) & np.isfinite(b.data)]
        noise.append(np.std(d) / math.sqrt(2))
    slope, _ = np.polyfit(np.log(ns), np.log(noise), 1)
    assert abs(slope + 0.5) < 0.05, (slope, noise)


def test_master_bias_equals_ccdproc_median(reduced_night):
    ccdproc = pytest.importorskip("ccdproc")
    from ccdcal.masters import CombineSpec, master_bias

    base, _ = reduced_night
    paths = sorted((base / "night" / "raw").glob("bias_*.fits"))
    theirs = ccdproc.combine([str(p) for p in paths], method="median", unit="adu",
                             dtype=np.float64, mem_limit=2e9)  # fmt: skip
    ours = master_bias(paths, combine=CombineSpec("median")).data
    np.testing.assert_allclose(ours, theirs.data, rtol=0, atol=1e-3)


def test_calibrated_light_equals_ccdproc_chain(reduced_night):
    ccdproc = pytest.importorskip("ccdproc")
    from astropy import units as u

    base, result = reduced_night
    raw_path = base / "night" / "raw" / result.calibrated[0].name
    ccd = CCDData.read(raw_path, unit="adu")
    bias = CCDData.read(result.masters["bias"], unit="adu")
    dark = CCDData.read(result.masters["dark_60s"], unit="adu")
    flat = CCDData.read(result.masters["flat_V"], unit="adu")
    for c in (bias, dark, flat):
        c.mask = None
        c.uncertainty = None
    ccd = ccdproc.subtract_bias(ccd, bias)
    ccd = ccdproc.subtract_dark(ccd, dark, exposure_time="EXPTIME", exposure_unit=u.s, scale=True)
    ccd = ccdproc.flat_correct(ccd, flat, norm_value=1.0)
    ccd = ccdproc.gain_correct(ccd, float(ccd.header["GAIN"]) * u.electron / u.adu)
    ours = Frame.read(result.calibrated[0]).data
    np.testing.assert_allclose(ours, ccd.data, rtol=1e-5, atol=0.05)


def test_rerun_reuses_and_resumes(reduced_night, tmp_path, caplog):
    base, result = reduced_night
    n = len(result.plan.products)  # masters, lights, stars, stacks
    assert len(result.built) == n and not result.reused
    assert f"{n} outputs built, 0 up to date (kept); 10 calibrated lights, 1 stack, 0 failures" \
        in result.summary()  # fmt: skip
    with caplog.at_level(logging.INFO, logger="ccdcal"):
        again = reduce(base / "night" / "raw", base / "out", report=False)
    assert len(again.reused) == n and not again.built
    said = [r.getMessage() for r in caplog.records if r.name.startswith("ccdcal.pipeline")]
    assert sorted(said) == sorted(f"{name}: up to date" for name in result.plan.products)
    assert f"0 outputs built, {n} up to date (kept)" in again.summary()
    # a crashed run: a calibrated frame missing and a stack cut short
    victim = result.calibrated[3]
    victim.unlink()
    stack = next(iter(result.stacks.values()))
    stack.write_bytes(stack.read_bytes()[:5000])
    mtime = result.masters["bias"].stat().st_mtime_ns
    resumed = reduce(base / "night" / "raw", base / "out", report=False)
    assert victim.exists() and Frame.read(stack).shape == (200, 200)
    assert result.masters["bias"].stat().st_mtime_ns == mtime  # kept, not redone
    assert len(resumed.reused) == len(again.reused) - 2
    assert sorted(resumed.built) == sorted([victim, stack])


def test_raw_inputs_never_modified(tmp_path):
    ccdcal.simulate.night(tmp_path / "n", seed=2, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=3)  # fmt: skip
    raw = tmp_path / "n" / "raw"
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in raw.iterdir()}
    reduce(raw, tmp_path / "o", report=False)
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in raw.iterdir()}
    assert before == after


def test_missing_darks_and_flats_are_reported(tmp_path):
    ccdcal.simulate.night(tmp_path / "n", seed=3, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=3)  # fmt: skip
    raw = tmp_path / "n" / "raw"
    for p in list(raw.glob("dark_*")) + list(raw.glob("flat_*")):
        p.unlink()
    result = reduce(raw, tmp_path / "o", report=False)
    text = " ".join(result.notices)
    assert "no dark frames" in text and "unflattened" in text
    assert len(result.calibrated) == 3
    header = Frame.read(result.calibrated[0]).header
    assert "flat" not in header["CALSTEPS"] and "dark" not in header["CALSTEPS"]


def test_light_of_another_shape_is_named(tmp_path):
    ccdcal.simulate.night(tmp_path / "n", seed=3, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=3)  # fmt: skip
    odd = tmp_path / "n" / "raw" / "light_odd.fits"
    Frame(np.ones((30, 30)), header={"IMAGETYP": "LIGHT", "EXPTIME": 60.0,
                                     "FILTER": "V"}).write(odd)  # fmt: skip
    with pytest.raises(CcdcalError, match=r"light_odd\.fits"):
        reduce(tmp_path / "n" / "raw", tmp_path / "o", report=False)


def test_cli_reduce_and_bad_file(tmp_path, capsys):
    ccdcal.simulate.night(tmp_path / "n", seed=4, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=3)  # fmt: skip
    (tmp_path / "n" / "raw" / "broken.fits").write_text("not fits")
    code = main(["reduce", str(tmp_path / "n" / "raw"), str(tmp_path / "o"), "--no-report"])
    captured = capsys.readouterr()
    assert code == 1  # the broken file is reported, the rest is done
    assert "broken.fits" in captured.err and "calibrated lights" in captured.out
    assert len(list((tmp_path / "o" / "calibrated").glob("*.fits"))) == 3


@pytest.mark.parametrize(
    ("t", "available", "match", "expected"),
    [(30, [5, 15, 30, 60], "nearest", 30), (40, [5, 15, 60], "nearest", 60),
     (40, [5, 15, 60], "scale", 60), (10, [5, 15], "nearest", 15), (10, [], "nearest", None),
     (30, [15, 30], "exact", 30), (40, [15, 30], "exact", None)],
)  # fmt: skip
def test_choose_dark(t, available, match, expected):
    assert choose_dark(t, available, match=match) == expected


def test_overscan_night(tmp_path):
    """A night with an overscan strip: outputs trimmed, bias structure removed."""
    ccdcal.simulate.night(tmp_path / "n", seed=8, shape=(60, 50), overscan=12, nbias=5,
                          ndark=5, nflat=5, nlight=4)  # fmt: skip
    result = reduce(tmp_path / "n" / "raw", tmp_path / "o", report=False)
    assert Frame.read(result.masters["bias"]).shape == (60, 50)
    assert Frame.read(result.calibrated[0]).shape == (60, 50)
    mask = Frame.read(result.calibrated[0]).mask
    assert mask is not None and not (mask & flags.NO_DATA).any()


def test_demo_again_reuses_its_work(tmp_path, caplog):
    """A second demo into the same folder simulates the same night without touching a file,
    so the reduction keeps every product and the report keeps every figure."""
    from ccdcal.quality import demo

    small = {"shape": (64, 64), "nbias": 5, "ndark": 3, "nflat": 3, "nlight": 4}
    first = demo(tmp_path, seed=1, **small)
    assert first.result.built and not first.result.reused
    raw = sorted(p for p in (tmp_path / "night").rglob("*") if p.is_file())
    times = {p: p.stat().st_mtime_ns for p in raw}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ccdcal"):
        second = demo(tmp_path, seed=1, **small)
    assert not second.result.built
    assert sorted(second.result.reused) == sorted(first.result.built)
    assert {p: p.stat().st_mtime_ns for p in raw} == times
    assert second.truth.table() == first.truth.table()
    n = len(list((tmp_path / "reduced" / "report").glob("*.png")))
    assert f"({n} images, 0 drawn, {n} up to date)" in caplog.text
    # another seed is another night: everything is made again
    third = demo(tmp_path, seed=2, **small)
    assert not third.result.reused


@pytest.mark.parametrize(("gain", "dark_exptime"), [(2.0, 300.0), (1.5, 30.0)])
def test_against_truth_with_gain_and_scaled_darks(tmp_path, gain, dark_exptime):
    """Electrons from ADU and darks scaled by exposure, checked end to end against the truth."""
    ccdcal.simulate.night(tmp_path / "n", seed=21, shape=(128, 128), gain=gain,
                          dark_exptime=dark_exptime, nlight=6)  # fmt: skip
    result = reduce(tmp_path / "n" / "raw", tmp_path / "o", report=False)
    header = Frame.read(result.calibrated[0]).header
    assert header["BUNIT"] == "electron" and header["DARKSCAL"] == pytest.approx(60 / dark_exptime)
    comparison = compare_with_truth(tmp_path / "n", result)
    assert comparison.ok, comparison.table()


def test_same_file_names_in_subfolders_do_not_collide(tmp_path):
    ccdcal.simulate.night(tmp_path / "n", seed=6, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=2)  # fmt: skip
    raw = tmp_path / "n" / "raw"
    for sub in ("a", "b"):
        (raw / sub).mkdir()
        for p in raw.glob("light_*.fits"):
            (raw / sub / p.name).write_bytes(p.read_bytes())
    for p in raw.glob("light_*.fits"):
        p.unlink()
    result = reduce(raw, tmp_path / "o", report=False)
    assert len(result.calibrated) == len(set(result.calibrated)) == 4
    assert (tmp_path / "o" / "calibrated" / "a" / "light_V_001.fits").exists()
    again = reduce(raw, tmp_path / "o", report=False)
    # masters, the camera measured from them, 4 lights, 4 star lists, registration, stack
    assert len(again.reused) == len(result.plan.products) == len(result.masters) + 1 + 4 + 4 + 2


def test_without_bias_darks_are_not_scaled(tmp_path):
    ccdcal.simulate.night(tmp_path / "n", seed=7, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=2, dark_exptime=30.0)  # fmt: skip
    raw = tmp_path / "n" / "raw"
    for p in raw.glob("bias_*"):
        p.unlink()
    result = reduce(raw, tmp_path / "o", report=False)
    assert "cannot be scaled" in " ".join(result.notices)
    assert "dark" not in Frame.read(result.calibrated[0]).header["CALSTEPS"]


def test_exposure_from_a_fallback_keyword(tmp_path):
    """EXPTIME renamed ITIME (a built-in fallback): masters and darks still scale."""
    from astropy.io import fits

    ccdcal.simulate.night(tmp_path / "n", seed=8, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=2)  # fmt: skip
    for p in (tmp_path / "n" / "raw").glob("*.fits"):
        with fits.open(p) as hdul:
            header = hdul[0].header.copy()
            data = hdul[0].data.copy()
        header.rename_keyword("EXPTIME", "ITIME")
        fits.PrimaryHDU(data, header).writeto(p, overwrite=True)
    result = reduce(tmp_path / "n" / "raw", tmp_path / "o", report=False)
    assert sorted(result.masters) == ["bias", "dark_60s", "flat_V"]
    assert Frame.read(result.calibrated[0]).header["DARKSCAL"] == 1.0


def test_median_stack_with_default_weights(tmp_path):
    from ccdcal.config import loads_config

    ccdcal.simulate.night(tmp_path / "n", seed=9, shape=(40, 40), nbias=3, ndark=3, nflat=3,
                          nlight=3)  # fmt: skip
    cfg = loads_config('[combine.light]\nmethod = "median"\nreject = "none"\n')
    result = reduce(tmp_path / "n" / "raw", tmp_path / "o", config=cfg, report=False)
    assert len(result.stacks) == 1
