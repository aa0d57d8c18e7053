"""Calibration steps: arithmetic, variance, masks, overscan, and agreement with ccdproc."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy import units as u

from ccdcal import flags
from ccdcal.calibration import calibrate, flat_correct, gain_correct, subtract_bias, subtract_dark
from ccdcal.errors import CcdcalError, CcdcalWarning
from ccdcal.frame import Frame
from ccdcal.overscan import Overscan, overscan_level, subtract_overscan, trim
from ccdcal.saturation import flag_saturation


@pytest.fixture
def rng():
    return np.random.default_rng(42)


def test_overscan_constant_and_poly(rng):
    ny, nx = 300, 60
    rows = np.arange(ny)
    drift = 500 + 0.02 * rows  # a bias level sloping along the readout
    data = drift[:, None] + rng.normal(0, 3, (ny, nx))
    frame = Frame(data, header={"BIASSEC": "[51:60,1:300]"})
    level = overscan_level(frame, (slice(None), slice(50, 60)), Overscan("median"))
    assert level.ndim == 0 and abs(float(level) - drift.mean()) < 0.5
    poly = overscan_level(frame, (slice(None), slice(50, 60)), Overscan("poly", order=1))
    assert poly.shape == (ny, 1)
    # a fit to 10-pixel row medians recovers the slope to well within the per-row noise
    np.testing.assert_allclose(poly[:, 0], drift, atol=0.5)
    out = subtract_overscan(frame, overscan="poly")
    assert abs(float(np.mean(out.data[:, :50]))) < 0.2
    assert "OVERSCAN" in out.header and frame.data.mean() > 400  # input untouched


def test_overscan_is_sigma_clipped(rng):
    data = 1000 + rng.normal(0, 2, (100, 20))
    data[10, 15] = 60000  # a cosmic ray in the overscan
    frame = Frame(data)
    level = overscan_level(frame, (slice(None), slice(10, 20)), Overscan("mean"))
    assert abs(float(level) - 1000) < 0.5


def test_trim_fits_convention():
    data = np.arange(20 * 30, dtype=float).reshape(20, 30)
    out = trim(Frame(data, header={"TRIMSEC": "[2:25, 3:20]", "BIASSEC": "[26:30,1:20]"}))
    # FITS: x 2..25 -> columns 1..24, y 3..20 -> rows 2..19 (1-based, inclusive)
    np.testing.assert_array_equal(out.data, data[2:20, 1:25])
    assert "BIASSEC" not in out.header


def test_malformed_section_names_file_and_keyword():
    frame = Frame(np.zeros((4, 4)), header={"TRIMSEC": "[a:b]"}, path="cam/x.fits")
    with pytest.raises(CcdcalError, match=r"x.fits: TRIMSEC = '\[a:b\]'"):
        trim(frame)


def test_dark_scaling_and_variance():
    light = Frame(np.full((3, 3), 100.0), variance=np.full((3, 3), 4.0), header={"EXPTIME": 30})
    dark = Frame(np.full((3, 3), 20.0), variance=np.full((3, 3), 1.0), header={"EXPTIME": 120})
    out = subtract_dark(light, dark)
    np.testing.assert_allclose(out.data, 95.0)
    np.testing.assert_allclose(out.variance, 4.0 + 0.25**2 * 1.0)
    with pytest.raises(CcdcalError, match="exposure time unknown"):
        subtract_dark(Frame(np.ones((3, 3))), dark)


def test_flat_variance_propagation(rng):
    # Monte Carlo: the propagated variance matches the scatter of the result
    data = rng.normal(1000, 30, (200, 200))
    flat_true = 0.8
    flat = rng.normal(flat_true, 0.01, (200, 200))
    out = flat_correct(
        Frame(data, variance=np.full(data.shape, 900.0)),
        Frame(flat, variance=np.full(data.shape, 1e-4)),
    )
    predicted = float(np.mean(out.variance))
    measured = float(np.var(out.data))
    assert abs(measured / predicted - 1) < 0.03


def test_flat_low_response_not_divided():
    flat = np.ones((3, 3))
    flat[1, 1] = 0.01
    out = flat_correct(Frame(np.full((3, 3), 5.0)), Frame(flat))
    assert out.data[1, 1] == 5.0
    assert out.mask[1, 1] & flags.BAD and not out.mask[0, 0]


def test_calibrate_chain_noise_model(rng):
    """The variance attached by calibrate matches the scatter of simulated pixels."""
    gain, rn, bias_level, t = 2.0, 8.0, 300.0, 60.0
    shape = (400, 400)
    flat = rng.normal(1.0, 0.05, shape)
    sky_e = 400.0
    electrons = rng.poisson(sky_e * flat)
    raw = electrons / gain + bias_level + rng.normal(0, rn / gain, shape)
    frame = Frame(np.round(raw), header={"EXPTIME": t, "GAIN": gain, "RDNOISE": rn})
    out = calibrate(frame, bias=Frame(np.full(shape, bias_level)), flat=Frame(flat))
    assert out.header["BUNIT"] == "electron"
    resid = out.data - sky_e
    assert abs(float(resid.mean())) < 0.2
    # quantization adds gain^2/12 e-^2 that the model leaves out: within 2 %
    assert abs(float(resid.var()) / float(out.variance.mean()) - 1) < 0.02


def test_calibrate_flags_saturation():
    data = np.full((4, 4), 1000.0)
    data[0, 0] = 65535
    out = calibrate(Frame(data, header={"GAIN": 1.0}), bias_level=0.0)
    assert out.mask[0, 0] & flags.SATURATED and not out.mask[1, 1]
    out = calibrate(Frame(data, header={"GAIN": 1.0, "SATURATE": 900}), bias_level=0.0)
    assert (out.mask & flags.SATURATED).all()


def test_calibrate_without_gain_warns_and_stays_adu():
    from ccdcal.errors import CcdcalWarning

    with pytest.warns(CcdcalWarning, match="no GAIN"):
        out = calibrate(Frame(np.ones((2, 2))), bias_level=0.0)
    assert out.header["BUNIT"] == "adu"


def test_photons_are_counted_above_the_bias_whatever_removes_it():
    """600 ADU raw on a 500 ADU bias, gain 1, read noise 5 e-: 100 photo-electrons, so the
    variance is 100 + 25 = 125 e², however the bias level is known (a master bias, a dark
    that holds it, an overscan, the configured level) and never 600 + 25 (the bias counted
    as photons); with no level known, the read noise alone and a warning."""
    from ccdcal.errors import CcdcalWarning

    header = {"GAIN": 1.0, "RDNOISE": 5.0, "EXPTIME": 10.0}
    raw = Frame(np.full((4, 6), 600.0), header=header)
    by_bias = calibrate(raw, bias=Frame(np.full((4, 6), 500.0)))
    dark = Frame(np.full((4, 6), 500.0), header={"EXPTIME": 10.0, "BIASSUB": False})
    by_dark = calibrate(raw, dark=dark)
    by_level = calibrate(raw, bias_level=500.0)
    scan = np.full((4, 8), 600.0)
    scan[:, 6:] = 500.0
    by_overscan = calibrate(
        Frame(scan, header={**header, "BIASSEC": "[7:8,1:4]", "TRIMSEC": "[1:6,1:4]"})
    )
    for out in (by_bias, by_dark, by_level, by_overscan):
        np.testing.assert_allclose(out.data, 100.0)
        np.testing.assert_allclose(out.variance, 125.0)
    with pytest.warns(CcdcalWarning, match="counts no photon noise"):
        alone = calibrate(raw)
    np.testing.assert_allclose(alone.variance, 25.0)
    with pytest.raises(CcdcalError, match="holds the bias"):
        calibrate(Frame(np.full((4, 6), 600.0), header={**header, "EXPTIME": 20.0}), dark=dark)


def test_the_masters_noise_is_kept_apart_as_the_common_variance():
    """VARCOMMON holds what the masters bring (bias and scaled dark variance, flat noise
    times the signal²), through flat and gain; the rest of the variance is the light's own."""
    header = {"GAIN": 2.0, "RDNOISE": 4.0, "EXPTIME": 30.0}
    raw = Frame(np.full((3, 3), 1100.0), header=header)
    bias = Frame(np.full((3, 3), 100.0), variance=np.full((3, 3), 2.0))
    dark = Frame(np.full((3, 3), 10.0), variance=np.full((3, 3), 0.5), header={"EXPTIME": 60.0})
    flat = Frame(np.full((3, 3), 0.8), variance=np.full((3, 3), 1e-4))
    out = calibrate(raw, bias=bias, dark=dark, flat=flat)
    signal = (1100.0 - 100.0 - 5.0) / 0.8  # ADU above bias and dark, flattened
    common = ((2.0 + 0.25 * 0.5) / 0.64 + signal**2 * 1e-4 / 0.64) * 4.0
    own = ((1000.0 / 2.0 + 4.0) / 0.64) * 4.0  # photons above the bias, read noise (ADU²)
    np.testing.assert_allclose(out.extras["VARCOMMON"], common, rtol=1e-5)
    np.testing.assert_allclose(out.variance, own + common, rtol=1e-5)
    assert "VARCOMMON" not in calibrate(raw, bias=Frame(np.full((3, 3), 100.0))).extras


def test_shape_mismatch_names_both():
    with pytest.raises(CcdcalError, match="does not match the master bias"):
        calibrate(Frame(np.ones((3, 3)), header={"GAIN": 1}), bias=Frame(np.ones((4, 4))))


def test_matches_ccdproc_chain(rng):
    """Bias, scaled dark, flat and gain equal ccdproc's documented chain (float32 rounding)."""
    ccdproc = pytest.importorskip("ccdproc")
    shape = (64, 80)
    raw = Frame(rng.uniform(900, 5000, shape).round(), header={"EXPTIME": 30.0, "GAIN": 1.7})
    bias = Frame(rng.normal(500, 3, shape), header={"EXPTIME": 0.0})
    dark = Frame(rng.normal(40, 2, shape), header={"EXPTIME": 120.0})
    flat = Frame(rng.normal(1.0, 0.05, shape))
    ours = calibrate(raw, bias=bias, dark=dark, flat=flat, overscan="none")

    ccd = raw.to_ccddata(unit="adu")
    ccd = ccdproc.subtract_bias(ccd, bias.to_ccddata(unit="adu"))
    ccd = ccdproc.subtract_dark(ccd, dark.to_ccddata(unit="adu"), exposure_time="EXPTIME",
                                exposure_unit=u.s, scale=True)  # fmt: skip
    ccd = ccdproc.flat_correct(ccd, flat.to_ccddata(unit="adu"), norm_value=1.0)
    ccd = ccdproc.gain_correct(ccd, 1.7 * u.electron / u.adu)
    np.testing.assert_allclose(ours.data, ccd.data, rtol=2e-6, atol=1e-3)


def test_overscan_readout_axis(rng):
    # a strip of rows at the top, read out along y: one value per column
    ny, nx = 40, 300
    cols = 800 + 0.05 * np.arange(nx)
    data = cols[None, :] + rng.normal(0, 2, (ny, nx))
    frame = Frame(data)
    level = overscan_level(frame, (slice(30, 40), slice(None)), Overscan("poly", axis="y"))
    assert level.shape == (1, nx)
    np.testing.assert_allclose(level[0], cols, atol=0.5)
    with pytest.raises(ValueError, match="axis"):
        Overscan("rows", axis="z")


def _chained(raw, bias, dark, flat, *, gain, read_noise, exptime, flat_min, overscan):
    """calibrate() as the composition of the public steps (what its compiled pass replaces)."""
    from dataclasses import replace

    work = replace(flag_saturation(raw), variance=None)
    work = trim(subtract_overscan(work, overscan=overscan))
    gfn = gain or 1.0
    above = work.data - bias.data if bias is not None else work.data
    poisson = np.clip(above, 0, None) / np.float32(gfn)
    rn_adu = read_noise / gfn
    work = replace(work, variance=(poisson + np.float32(rn_adu * rn_adu)).astype(np.float32))
    if bias is not None:
        work = subtract_bias(work, bias)
    if dark is not None:
        work = subtract_dark(work, dark, exptime=exptime, bias=bias)
    if flat is not None:
        work = flat_correct(work, flat, min_value=flat_min)
    if gain:
        work = gain_correct(work, gain)
    return work


@pytest.mark.parametrize("masters", ["all", "bias", "dark+flat", "none"])
@pytest.mark.parametrize("gain", [None, 1.7])
def test_compiled_pass_equals_the_chained_steps(rng, masters, gain):
    shape = (37, 53)
    raw = Frame(
        rng.normal(1500, 40, (37, 60)).astype(np.float32),
        header={"BIASSEC": "[54:60,1:37]", "TRIMSEC": "[1:53,1:37]", "EXPTIME": 45.0},
    )
    raw.data[3, 4] = np.nan
    raw.data[5, 6] = 70000.0  # saturated

    def master(level, noise, *, exptime=None):
        m = Frame(
            rng.normal(level, noise, shape).astype(np.float32),
            variance=rng.uniform(0.1, 2, shape).astype(np.float32),
            mask=np.where(rng.random(shape) < 0.02, flags.HOT, 0).astype(np.uint16),
            header={} if exptime is None else {"EXPTIME": exptime},
        )
        return m

    bias = master(0.0, 3.0) if masters in ("all", "bias") else None
    dark = master(20.0, 5.0, exptime=120.0) if masters in ("all", "dark+flat") else None
    if dark is not None and bias is not None:  # a master dark: its variance holds the bias's
        dark.variance += bias.variance
        dark.header["DARKBVAR"] = True
    flat = master(1.0, 0.05) if masters in ("all", "dark+flat") else None
    if flat is not None:
        flat.data[0, :5] = [0.01, np.nan, np.inf, 0.3, 1.2]  # not divided: below 0.1, not finite
        flat.mask[1, 1] = flags.BAD
        flat = Frame(flat.data, variance=None if masters == "dark+flat" else flat.variance,
                     mask=flat.mask)  # fmt: skip
    kw = dict(gain=gain, read_noise=6.0, exptime=45.0, flat_min=0.1, overscan="median")
    want = _chained(raw, bias, dark, flat, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CcdcalWarning)
        got = calibrate(raw, bias=bias, dark=dark, flat=flat, **kw)
    np.testing.assert_array_equal(got.data, want.data)
    np.testing.assert_array_equal(got.variance, want.variance)
    np.testing.assert_array_equal(got.mask, want.mask)
    for key in ("OVERSCAN", "TRIMSEC", "DARKSCAL", "GAINCORR", *(["BUNIT"] if gain else [])):
        assert got.header.get(key) == want.header.get(key), key


def test_a_read_only_flat_is_prepared_once_and_a_writable_one_every_time(rng):
    """The pipeline holds its masters read-only: a read-only flat's divisor is computed once
    for all its lights (and forgotten with the flat); a writable flat may have changed
    since the last light, so it is looked at again, every time."""
    import gc

    from ccdcal import calibration

    shape = (40, 50)
    light = Frame(rng.normal(1000, 30, shape).astype(np.float32), header={"EXPTIME": 10.0})
    flat = Frame(rng.normal(1.0, 0.02, shape).astype(np.float32),
                 mask=np.zeros(shape, np.uint16))  # fmt: skip

    def cal(flat: Frame) -> Frame:  # photons counted above a constant bias: VARSLOPE
        return calibrate(light, flat=flat, bias_level=100.0, warn_no_gain=False)

    first = cal(flat)
    flat.data[:, :10] *= 2.0  # a user's flat, changed in place
    again = cal(flat)
    np.testing.assert_allclose(again.data[:, :10], first.data[:, :10] / 2.0, rtol=1e-6)

    held = Frame(flat.data.copy(), mask=flat.mask.copy())
    for plane in (held.data, held.mask):
        plane.setflags(write=False)
    before = len(calibration._DIVISORS)
    a = cal(held)
    prepared = calibration._flat_divisor(held, 0.1)
    assert calibration._flat_divisor(held, 0.1) is prepared  # computed once
    b = cal(held)
    for x in (a, b):  # as from the writable flat with the same values, bit for bit
        np.testing.assert_array_equal(x.data, again.data)
        np.testing.assert_array_equal(x.variance, again.variance)
        assert x.header["VARSLOPE"] == again.header["VARSLOPE"]
    assert len(calibration._DIVISORS) == before + 1
    del held, prepared
    gc.collect()
    assert len(calibration._DIVISORS) == before  # forgotten with the flat

    # a read-only view of a writable array changes with it: not kept
    base = flat.data.copy()
    view = base[:]
    view.setflags(write=False)
    mask = flat.mask.copy()
    mask.setflags(write=False)  # read-only and its own: only the view may change
    seen = Frame(view, mask=mask)
    first = cal(seen)
    base *= 2.0
    np.testing.assert_allclose(cal(seen).data, first.data / 2.0, rtol=1e-6)


TRIM = {"TRIMSEC": "[1:50,1:40]"}


@pytest.mark.parametrize("sections", [{}, TRIM, {**TRIM, "BIASSEC": "[51:60,1:40]"}])
def test_calibrate_leaves_its_inputs_as_they_were(rng, sections):
    """calibrate takes no copy of the raw frame on its way (it only reads its data) and ORs
    the masters' flags into a mask of its own: neither the raw frame nor a master changes,
    whether it is trimmed, overscan-subtracted or neither."""
    shape = (40, 60) if sections else (40, 50)
    raw = Frame(rng.normal(1500, 10, shape).astype(np.float32), header={"EXPTIME": 10.0,
                **sections}, mask=np.zeros(shape, np.uint16))  # fmt: skip
    raw.data[5, 5] = 70000  # saturated: flagged in the output, not in the input
    bias = Frame(np.full((40, 50), 500.0, np.float32), mask=np.zeros((40, 50), np.uint16))
    bias.mask[3, 4] = flags.HOT
    dark = Frame(np.full((40, 50), 2.0, np.float32), header={"EXPTIME": 10.0},
                 mask=np.zeros((40, 50), np.uint16))  # fmt: skip
    dark.mask[7, 8] = flags.HOT
    before = [a.copy() for a in (raw.data, raw.mask, bias.mask, dark.mask)]
    out = calibrate(raw, bias=bias, dark=dark, gain=1.0, read_noise=5.0, saturation=65000)
    assert out.shape == (40, 50)
    assert out.mask[3, 4] & flags.HOT and out.mask[7, 8] & flags.HOT
    assert out.mask[5, 5] & flags.SATURATED
    for now, then in zip((raw.data, raw.mask, bias.mask, dark.mask), before, strict=True):
        np.testing.assert_array_equal(now, then)
    assert not np.shares_memory(out.mask, raw.mask) and not np.shares_memory(out.data, raw.data)
    # as the steps one by one, each on a copy
    expected = trim(subtract_overscan(raw)).data - np.float32(500.0) - np.float32(2.0)
    np.testing.assert_array_equal(out.data[6:, 10:], expected[6:, 10:])
