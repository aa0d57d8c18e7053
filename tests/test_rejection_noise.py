"""VarianceClip: rejection by each frame's own noise, against its reference and statistics.

The reference (:func:`ccdcal.stacking.reference.varclip_keep`) is checked on
hypothesis-generated stacks with variance planes; the statistics on large stacks of known
noise: the fraction of good values rejected must be the normal distribution's for the
threshold, as often high as low, and outliers must go.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from ccdcal import Frame, flags
from ccdcal.stacking import CCDClip, VarianceClip, combine
from ccdcal.stacking import reference as ref

SIGMAS = [1.3137, 2.0417, 2.5519, 3.1416]


@st.composite
def noisy_stacks(draw):
    """(data, variance, mask, slopes): each frame its own noise level and photon slope."""
    n = draw(st.integers(1, 25))
    ny, nx = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    slopes = rng.choice([0.0, 0.5, 1.0], n)
    base = rng.uniform(1.0, 30.0, n)
    level = 50.0
    data = np.empty((n, ny, nx), np.float32)
    var = np.empty((n, ny, nx), np.float32)
    for i in range(n):
        truth = rng.normal(0.0, np.sqrt(base[i] + slopes[i] * level), (ny, nx)) + level
        data[i] = truth
        var[i] = base[i] + slopes[i] * np.maximum(data[i], 0.0)
    out = rng.random(data.shape) < draw(st.sampled_from([0.0, 0.1, 0.3]))
    data[out] += np.float32(rng.choice([-300.0, 300.0, 3000.0]))
    data[rng.random(data.shape) < 0.1] = np.nan
    var[rng.random(data.shape) < 0.05] = np.nan
    var[rng.random(data.shape) < draw(st.sampled_from([0.0, 0.1, 1.0]))] = 0.0  # no noise
    mask = np.where(rng.random(data.shape) < 0.1, flags.COSMIC_RAY, 0).astype(np.uint16)
    return data, var, mask, slopes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    noisy_stacks(),
    st.sampled_from(SIGMAS),
    st.integers(-3, 4),
    st.sampled_from([1, 3, None]),
    st.sampled_from([(0.0, 0.0), (0.1, 40.0)]),
)
def test_varclip_equals_reference(stk, sigma, nkeep, maxiters, snoise_sky):
    data, var, mask, slopes = stk
    snoise, sky = snoise_sky
    frames = [Frame(d, variance=v, mask=m) for d, v, m in zip(data, var, mask, strict=True)]
    rej = VarianceClip(
        low=sigma, high=sigma * 1.1, maxiters=maxiters, slope=tuple(slopes), snoise=snoise,
        sky=sky,
    )  # fmt: skip
    out = combine(frames, reject=rej, nkeep=nkeep, keep_rejected=True)
    stack = np.where((mask & flags.EXCLUDE) != 0, np.nan, data).astype(np.float64)
    n = data.shape[0]
    keep = np.zeros(data.shape, bool)
    for y, x in np.ndindex(data.shape[1:]):
        keep[:, y, x] = ref.varclip_keep(
            stack[:, y, x], variances=var[:, y, x].astype(np.float64),
            slopes=np.asarray(slopes), zeros=np.zeros(n), low=sigma, high=sigma * 1.1,
            maxiters=maxiters, snoise=snoise, sky=sky,
            nkeep=ref.need(nkeep, int(np.isfinite(stack[:, y, x] + var[:, y, x]).sum())),
        )  # fmt: skip
    np.testing.assert_array_equal(out.extras["NCOMBINE"], keep.sum(0))
    np.testing.assert_array_equal(out.extras["REJECTED"] == 0, keep)
    expect = ref.combine_kept(stack, keep, "mean")
    np.testing.assert_allclose(out.data, expect, rtol=2e-6, atol=1e-3, equal_nan=True)


NAN = float("nan")
# stacks with no noise of their own (every variance 0, photon slopes only) where the kernel
# and the reference differed by rounding alone (hypothesis found them): the centre a value's
# own within rounding, a value at a bound within rounding, two distances tied within rounding
NOISELESS = [
    ([63.176456451416016, 50.65009689331055, 50.820621490478516, NAN, NAN, 47.55192565917969,
      52.01417541503906, 56.75784683227539, 50.568077087402344, 49.9949951171875, NAN,
      52.106754302978516, 52.07777404785156, 51.28127670288086, 52.20341491699219,
      53.98331832885742, 47.048095703125, 45.32301330566406, NAN, 51.698787689208984,
      43.36085891723633, 49.986976623535156],
     [0.5, 0.5, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5,
      0.0, 0.0, 1.0, 1.0], 1.3137, 0),
    ([66.4542465209961, NAN, NAN, 52.32909393310547, 346.459228515625, 44.97563934326172,
      64.3100814819336, 39.29512023925781, NAN, 52.418277740478516, 39.50898361206055,
      48.840457916259766, 57.68013000488281, 48.187442779541016, 50.43080520629883, NAN],
     [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.0, 0.0], 3.1416,
     4),
    ([49.517727, 50.30691, NAN, NAN, 47.327007, 39.151546, 49.1999, 54.9547, 53.233185,
      42.589012, 50.461044, 40.892857, 54.515717, 46.327457],
     [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.5, 1.0, 0.0, 0.0, 1.0, 0.0], 1.3137, -2),
]  # fmt: skip


@pytest.mark.parametrize(("values", "slopes", "sigma", "nkeep"), NOISELESS)
def test_varclip_on_noiseless_values_equals_reference(values, slopes, sigma, nkeep):
    """Where nothing but rounding separates two choices (see
    :data:`ccdcal.stacking.varclip.TIE`), the kernel makes the reference's."""
    data = np.array(values, np.float32).reshape(-1, 1, 1)
    frames = [Frame(d, variance=np.zeros((1, 1), np.float32)) for d in data]
    maxiters = 1 if nkeep == -2 else 3
    rej = VarianceClip(low=sigma, high=sigma * 1.1, maxiters=maxiters, slope=tuple(slopes))
    out = combine(frames, reject=rej, nkeep=nkeep, keep_rejected=True)
    stack = data[:, 0, 0].astype(np.float64)
    need = ref.need(nkeep, int(np.isfinite(stack).sum()))
    keep = ref.varclip_keep(stack, variances=np.zeros(stack.size), slopes=np.array(slopes),
                            low=sigma, high=sigma * 1.1, maxiters=maxiters, nkeep=need)  # fmt: skip
    np.testing.assert_array_equal(out.extras["REJECTED"][:, 0, 0] == 0, keep)


def _stack(rng, n, shape, sigmas, slope=0.0, level=100.0, read=5.0):
    frames = []
    for s in sigmas[:n]:
        if slope:  # photons in electrons plus read noise; the variance from the value
            d = rng.poisson(level, shape) + rng.normal(0.0, read, shape)
            v = np.maximum(d, 0.0) + read**2
        else:
            d = rng.normal(level, s, shape)
            v = np.full(shape, s * s)
        frames.append(Frame(d.astype(np.float32), variance=v.astype(np.float32)))
    return frames


@pytest.mark.parametrize(
    "n, kind",
    [(5, "equal"), (10, "equal"), (30, "equal"), (10, "unequal"), (30, "unequal"),
     (10, "photons"), (30, "photons")],
)  # fmt: skip
def test_good_values_rejected_at_the_normal_rate(n, kind):
    """3σ rejects 0.27 % of Gaussian values, as many high as low; photon noise too."""
    rng = np.random.default_rng(n)
    shape = (256, 256)
    sigmas = [10.0] * n if kind == "equal" else [5.0 + 3.0 * i for i in range(n)]
    frames = _stack(rng, n, shape, sigmas, slope=1.0 if kind == "photons" else 0.0)
    slope = 1.0 if kind == "photons" else 0.0
    out = combine(frames, reject=VarianceClip(slope=slope))
    values = n * shape[0] * shape[1]
    lo = int(out.extras["NREJLO"].sum())
    hi = int(out.extras["NREJHI"].sum())
    expected = 2 * norm.sf(3.0) * values
    assert abs(lo + hi - expected) < 0.1 * expected + 4 * np.sqrt(expected), (lo, hi, expected)
    # as often high as low: within 4 binomial σ plus 10 %
    assert abs(hi - lo) < 0.1 * (hi + lo) + 4 * np.sqrt(hi + lo), (lo, hi)


def test_ccdclip_is_skewed_where_varianceclip_is_not():
    """ccdclip's σ from the value's own photons rejects more high than low."""
    rng = np.random.default_rng(7)
    frames = _stack(rng, 10, (256, 256), [0.0] * 10, slope=1.0, level=30.0, read=5.0)
    ccd = combine(frames, reject=CCDClip(gain=1.0, read_noise=5.0, center="median"))
    var = combine(frames, reject=VarianceClip(slope=1.0))
    lo_c, hi_c = ccd.extras["NREJLO"].sum(), ccd.extras["NREJHI"].sum()
    lo_v, hi_v = var.extras["NREJLO"].sum(), var.extras["NREJHI"].sum()
    assert hi_c > 1.3 * lo_c
    assert abs(hi_v - lo_v) < 0.15 * (hi_v + lo_v)


def test_outliers_go_and_a_noisy_frame_is_not_an_outlier():
    rng = np.random.default_rng(3)
    shape = (128, 128)
    n = 10
    sigmas = [3.0] * (n - 1) + [30.0]  # one frame ten times noisier (another exposure)
    frames = _stack(rng, n, shape, sigmas)
    hits = rng.random((n, *shape)) < 0.02
    for f, h in zip(frames, hits, strict=True):
        f.data[h] += rng.uniform(200.0, 5000.0, h.sum()).astype(np.float32)
    out = combine(frames, reject=VarianceClip(), keep_rejected=True)
    rej = out.extras["REJECTED"] != 0
    assert rej[hits].mean() > 0.999
    # the noisy frame's good values are rejected at the normal rate, not as outliers
    good_noisy = ~hits[-1]
    assert rej[-1][good_noisy].mean() < 2 * 2 * norm.sf(3.0)
    resid = out.data - 100.0
    expect = 1.0 / np.sqrt(np.sum(1.0 / np.square(sigmas)))
    assert np.std(resid) < 1.5 * np.sqrt(np.mean(np.square(sigmas)) / n)
    assert np.std(resid) > expect  # the mean is a plain one, the noisy frame weighs in


def test_needs_variance_in_every_input(tmp_path):
    frames = [Frame(np.ones((2, 2), np.float32), variance=np.ones((2, 2), np.float32))] * 2
    Frame(np.ones((2, 2), np.float32)).write(tmp_path / "plain.fits")
    with pytest.raises(ValueError, match=r"plain\.fits: VarianceClip needs a variance plane"):
        combine([*frames, tmp_path / "plain.fits"], reject=VarianceClip())


def test_nkeep_brings_back_the_nearest():
    values = np.array([[100.0], [100.5], [99.5], [200.0], [260.0]], np.float32)[:, :, None]
    frames = [Frame(v, variance=np.ones((1, 1), np.float32)) for v in values]
    out = combine(frames, reject=VarianceClip(), nkeep=4)
    assert int(out.extras["NCOMBINE"][0, 0]) == 4
    assert out.data[0, 0] == pytest.approx((100.0 + 100.5 + 99.5 + 200.0) / 4)


def test_cli_and_config_varclip_take_each_frames_slope(tmp_path):
    from ccdcal.cli import main
    from ccdcal.config import rejection_from_name

    rng = np.random.default_rng(5)
    paths = []
    for i, slope in enumerate([1.0, 0.5, 1.0, 0.8]):
        d = (100.0 + rng.normal(0, 10, (8, 8))).astype(np.float32)
        f = Frame(d, variance=np.full((8, 8), 100.0, np.float32), header={"VARSLOPE": slope})
        paths.append(tmp_path / f"c{i}.fits")
        f.write(paths[-1])
    out = tmp_path / "s.fits"
    assert main(["-q", "combine", *map(str, paths), "-o", str(out), "--reject", "varclip"]) == 0
    expect = combine(paths, reject=VarianceClip(slope=(1.0, 0.5, 1.0, 0.8)))
    np.testing.assert_array_equal(Frame.read(out).data, expect.data)
    history = " ".join(str(h) for h in Frame.read(out).header["HISTORY"])
    assert "slope=(1.0, 0.5, 1.0, 0.8)" in history
    assert rejection_from_name("varclip", sigma=2.5) == VarianceClip(low=2.5, high=2.5)
    bad = ["--reject", "varclip", "--rule", "iraf"]
    assert main(["-q", "combine", *map(str, paths), "-o", str(out), *bad]) == 1


def test_no_noise_at_all_still_keeps_nkeep():
    """Values whose variance is 0 (all of it the masters'): the nearest come back."""
    values = [[5.0], [6.0], [7.0], [9.0], [12.0], [20.0]]
    frames = [
        Frame(np.array([v], np.float32), variance=np.ones((1, 1), np.float32)) for v in values
    ]
    for f in frames:
        f.extras["VARCOMMON"] = np.ones((1, 1), np.float32)
    out = combine(frames, reject=VarianceClip(), nkeep=2)
    assert int(out.extras["NCOMBINE"][0, 0]) == 2
    assert np.isfinite(out.data[0, 0])


def test_varclip_with_scale_zero_and_masters_noise_equals_reference():
    """Scaled and offset frames (slope × scale, photons above the offset) and the masters'
    part of the variance (left out of each value's σ) as the reference has them."""
    rng = np.random.default_rng(1)
    n, ny, nx = 7, 8, 8
    levels = np.array([1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.8])
    zeros = np.array([0.0, 5.0, -3.0, 2.0, 0.0, 1.0, 4.0])
    slopes = np.array([1.0, 0.5, 1.0, 0.8, 1.0, 0.3, 1.2])
    data = np.empty((n, ny, nx), np.float32)
    var = np.empty_like(data)
    for i in range(n):
        mu = 200.0 * levels[i]
        data[i] = rng.normal(mu, np.sqrt(20.0 + slopes[i] * mu), (ny, nx))
        var[i] = 20.0 + 4.0 + slopes[i] * np.maximum(data[i], 0)
    data[rng.random(data.shape) < 0.05] += 500
    common = np.full((ny, nx), 4.0, np.float32)
    frames = [
        Frame(d, variance=v, extras={"VARCOMMON": common}) for d, v in zip(data, var, strict=True)
    ]
    out = combine(frames, reject=VarianceClip(slope=tuple(slopes)), scale=list(levels),
                  zero=list(zeros), keep_rejected=True)  # fmt: skip
    f = np.mean(levels) / levels  # the engine's factors: the result keeps the mean level
    z = np.mean(zeros) - zeros
    for y, x in np.ndindex(ny, nx):
        keep = ref.varclip_keep(
            data[:, y, x].astype(np.float64) * f + z,
            variances=(var[:, y, x].astype(np.float64) - 4.0) * f**2, slopes=slopes * f,
            zeros=z,
        )  # fmt: skip
        np.testing.assert_array_equal(out.extras["REJECTED"][:, y, x] == 0, keep)
