"""ccdcal.combine: API, masks, variance, scaling, header, and physical invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.io import fits

import ccdcal
from ccdcal import Frame, flags
from ccdcal.stacking import (
    CCDClip,
    ESDClip,
    MinMaxClip,
    PercentileClip,
    SigmaClip,
    WinsorizedSigmaClip,
    combine,
)
from ccdcal.stacking.kernels import sorting_network

ALL_REJECTS = [
    None,
    SigmaClip(),
    SigmaClip(rule="siril"),
    SigmaClip(center="mean", spread="mad_std"),
    MinMaxClip(),
    PercentileClip(),
    WinsorizedSigmaClip(),
    CCDClip(gain=2.0, read_noise=5.0),
    ESDClip(),
]


def _stack(n=9, shape=(6, 7), seed=0, loc=100.0, sigma=5.0):
    rng = np.random.default_rng(seed)
    return rng.normal(loc, sigma, (n, *shape)).astype(np.float32)


# --------------------------------------------------------------------------- the API


def test_lazy_names_resolve_to_function_and_classes():
    assert callable(ccdcal.combine)
    assert ccdcal.SigmaClip is SigmaClip
    assert ccdcal.ESDClip is ESDClip
    out = ccdcal.combine([np.ones((2, 2)), 3 * np.ones((2, 2))])
    assert out.data[0, 0] == 2.0


def test_repr_is_readable():
    assert repr(SigmaClip(low=2.0)) == (
        "SigmaClip(low=2.0, high=3.0, maxiters=5, center='median', spread='std', rule='astropy')"
    )
    assert repr(CCDClip(gain=1.5, read_noise=4.0)).startswith("CCDClip(gain=1.5, read_noise=4.0")


@pytest.mark.parametrize(
    "make",
    [
        lambda: SigmaClip(low=-1),
        lambda: SigmaClip(center="mode"),
        lambda: SigmaClip(maxiters=0),
        lambda: SigmaClip(rule="iraf"),
        lambda: MinMaxClip(nlow=1.5),
        lambda: PercentileClip(low=60, high=40),
        lambda: CCDClip(gain=0, read_noise=1),
        lambda: ESDClip(alpha=1.5),
    ],
)
def test_bad_parameters_raise_value_error(make):
    with pytest.raises(ValueError):
        make()


def test_frozen():
    with pytest.raises(AttributeError):
        SigmaClip().low = 1.0  # type: ignore[misc]


def test_errors():
    a = np.zeros((3, 4))
    with pytest.raises(ValueError, match="at least one input"):
        combine([])
    with pytest.raises(ValueError, match=r"<array 1>: shape \(4, 3\) differs.*\(3, 4\)"):
        combine([a, np.zeros((4, 3))])
    with pytest.raises(ValueError, match="method"):
        combine([a], method="mode")
    with pytest.raises(TypeError, match="reject"):
        combine([a], reject="sigclip")
    with pytest.raises(ValueError, match="nkeep"):
        combine([a], nkeep=1.5)
    with pytest.raises(ValueError, match="weights"):
        combine([a, a], weights=[1.0])
    with pytest.raises(ValueError, match="variance"):
        combine([a, a], weights="variance")
    with pytest.raises(ValueError, match="median"):
        combine([a, a], method="median", weights=[1, 2])
    with pytest.raises(ValueError, match="too small"):
        combine([a, a], memory_limit=100)
    with pytest.raises(TypeError):
        combine([a, a, 3])


def test_shape_mismatch_names_the_file(tmp_path):
    Frame(np.zeros((3, 4))).write(tmp_path / "a.fits")
    Frame(np.zeros((5, 4))).write(tmp_path / "b.fits")
    with pytest.raises(ValueError, match=r"b\.fits: shape \(5, 4\) differs from .*a\.fits"):
        combine([tmp_path / "a.fits", tmp_path / "b.fits"])


def test_bad_file_raises_frame_error(tmp_path):
    (tmp_path / "bad.fits").write_text("not fits")
    with pytest.raises(ccdcal.FrameError, match=r"bad\.fits"):
        combine([tmp_path / "bad.fits"])


# --------------------------------------------------------------------------- the network


@pytest.mark.parametrize("n", range(1, 15))
def test_sorting_network_sorts_every_zero_one_input(n):
    ci, cj = sorting_network(n)
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    x = bits.astype(np.int8).T.copy()
    for i, j in zip(ci, cj, strict=True):
        lo, hi = np.minimum(x[i], x[j]), np.maximum(x[i], x[j])
        x[i], x[j] = lo, hi
    assert np.all(np.diff(x, axis=0) >= 0)


@pytest.mark.parametrize("n", [17, 20, 33, 64, 100])
def test_sorting_network_large(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 200))
    ci, cj = sorting_network(n)
    for i, j in zip(ci, cj, strict=True):
        x[i], x[j] = np.minimum(x[i], x[j]), np.maximum(x[i], x[j])
    assert np.all(np.diff(x, axis=0) >= 0)


# --------------------------------------------------------------------------- methods


def test_mean_median_sum_without_rejection():
    s = _stack()
    np.testing.assert_allclose(combine(s).data, s.mean(0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_array_equal(combine(s, method="median").data, np.median(s, 0))
    np.testing.assert_allclose(combine(s, method="sum").data, s.sum(0, dtype=np.float64), rtol=1e-6)


def test_sum_is_mean_of_kept_times_valid_count():
    s = _stack(n=5)
    s[2, 0, 0] = np.nan  # excluded: not a frame of the sum
    s[4, 0, 0] = 1e6  # rejected: counts at the mean of the others
    out = combine(s, method="sum", reject=MinMaxClip(nlow=0, nhigh=1))
    kept = np.delete(s[:, 0, 0], [2, 4])
    assert out.extras["NCOMBINE"][0, 0] == 3
    assert math.isclose(out.data[0, 0], kept.mean() * 4, rel_tol=1e-6)


def test_weighted_mean():
    s = _stack(n=3)
    w = [1.0, 2.0, 5.0]
    out = combine(s, weights=w)
    np.testing.assert_allclose(out.data, np.average(s, axis=0, weights=w), rtol=1e-6)


def test_inverse_variance_weights_and_variance():
    s = _stack(n=4)
    var = np.array([1.0, 4.0, 2.0, 8.0], np.float32)
    frames = [Frame(s[i], variance=np.full(s.shape[1:], var[i])) for i in range(4)]
    out = combine(frames, weights="variance")
    np.testing.assert_allclose(out.data, np.average(s, axis=0, weights=1 / var), rtol=1e-6)
    np.testing.assert_allclose(out.variance, 1 / np.sum(1 / var), rtol=1e-6)


def test_median_equals_nanmedian_with_nans():
    s = _stack(n=8)
    rng = np.random.default_rng(3)
    s[rng.random(s.shape) < 0.3] = np.nan
    s[:, 0, 0] = np.nan
    out = combine(list(s), method="median")
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        ref = np.nanmedian(s, axis=0)
    np.testing.assert_allclose(out.data, ref, rtol=1e-6, equal_nan=True)
    assert out.mask[0, 0] & flags.NO_DATA


# --------------------------------------------------------------------------- masks


def test_masked_pixels_excluded_and_all_masked_is_no_data():
    s = _stack(n=3)
    masks = np.zeros(s.shape, np.uint16)
    masks[0, 1, 1] = flags.COSMIC_RAY
    s[0, 1, 1] = 1e6
    masks[:, 2, 2] = flags.BAD
    masks[:, 3, 3] = flags.HOT  # informational: kept, and propagated when in every input
    masks[:, 5, 5] = flags.SATURATED | flags.REJECTED
    masks[1, 4, 4] = flags.BAD
    frames = [Frame(s[i], mask=masks[i]) for i in range(3)]
    out = combine(frames)
    assert math.isclose(out.data[1, 1], s[1:, 1, 1].mean(), rel_tol=1e-6)
    assert out.extras["NCOMBINE"][1, 1] == 2
    assert np.isnan(out.data[2, 2]) and np.isnan(out.variance[2, 2])
    assert out.mask[2, 2] == flags.BAD | flags.NO_DATA
    assert out.extras["NCOMBINE"][3, 3] == 3 and out.mask[3, 3] == flags.HOT
    assert out.mask[5, 5] == flags.SATURATED | flags.REJECTED | flags.NO_DATA
    assert out.mask[4, 4] == 0  # not in all inputs
    assert out.mask[0, 0] == 0
    out2 = combine(frames, exclude=0)
    assert out2.extras["NCOMBINE"][2, 2] == 3
    out3 = combine(frames, exclude=flags.HOT)
    assert out3.extras["NCOMBINE"][3, 3] == 0 and out3.extras["NCOMBINE"][2, 2] == 3


def test_infinite_values_excluded():
    s = _stack(n=3)
    s[0, 0, 0] = np.inf
    out = combine(s)
    assert out.extras["NCOMBINE"][0, 0] == 2


def test_keep_rejected_cube():
    s = _stack(n=15)
    s[2, 1, 1] = 1e5
    s[4, 2, 3] = np.nan
    out = combine(list(s), reject=SigmaClip(), keep_rejected=True)
    rej = out.extras["REJECTED"]
    assert rej.shape == s.shape and rej.dtype == np.uint8
    assert rej[2, 1, 1] == 1 and rej[4, 2, 3] == 1
    np.testing.assert_array_equal(rej.sum(0), 15 - out.extras["NCOMBINE"])
    assert out.extras["NREJHI"][1, 1] == 1


def test_extras_dtypes():
    out = combine([np.ones((2, 2))] * 3)
    for key in ("NCOMBINE", "NREJLO", "NREJHI"):
        assert out.extras[key].dtype == np.int16
    assert out.data.dtype == np.float32 and out.variance.dtype == np.float32
    assert out.mask.dtype == np.uint16


# --------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("reject", ALL_REJECTS, ids=repr)
@pytest.mark.parametrize("method", ["mean", "median"])
def test_bounded_and_order_invariant(reject, method):
    s = _stack(n=13, shape=(9, 11), seed=5)
    s[3, :, :4] = 500.0  # outliers
    out = combine(list(s), method=method, reject=reject)
    assert np.all(out.data >= s.min(0)) and np.all(out.data <= s.max(0))
    perm = np.random.default_rng(1).permutation(13)
    out2 = combine(list(s[perm]), method=method, reject=reject)
    np.testing.assert_allclose(out.data, out2.data, rtol=1e-6)
    np.testing.assert_array_equal(out.extras["NCOMBINE"], out2.extras["NCOMBINE"])


def test_cosmic_rays_rejected_by_sigma_clip():
    rng = np.random.default_rng(11)
    n, shape = 20, (64, 64)
    truth, noise = 1000.0, 10.0
    s = rng.normal(truth, noise, (n, *shape)).astype(np.float32)
    hits = rng.random(s.shape) < 0.003
    s[hits] += rng.uniform(300, 5000, hits.sum()).astype(np.float32)
    plain = combine(list(s))
    clipped = combine(list(s), reject=SigmaClip(low=3, high=3), keep_rejected=True)
    assert np.abs(plain.data - truth).max() > 10
    single = hits.sum(0) <= 1  # two hits in one pixel of 20 frames can hide each other
    assert single.mean() > 0.99
    assert np.abs(clipped.data - truth)[single].max() < 5 * noise / np.sqrt(n - 3)
    assert np.all(clipped.extras["REJECTED"][hits & single[None]] == 1)


def test_variance_from_scatter_matches_gaussian_theory():
    rng = np.random.default_rng(7)
    n, sigma = 16, 3.0
    s = rng.normal(50.0, sigma, (n, 128, 128)).astype(np.float32)
    mean = combine(s)
    med = combine(s, method="median")
    # estimated variance ≈ σ²/N; and it matches the scatter of the combined image
    assert math.isclose(float(np.mean(mean.variance)), sigma**2 / n, rel_tol=0.03)
    assert math.isclose(float(np.var(mean.data)), sigma**2 / n, rel_tol=0.06)
    assert math.isclose(float(np.mean(med.variance)), math.pi * sigma**2 / (2 * n), rel_tol=0.03)
    assert math.isclose(float(np.var(med.data)), math.pi * sigma**2 / (2 * n), rel_tol=0.1)
    sm = combine(s, method="sum")
    assert math.isclose(float(np.mean(sm.variance)), sigma**2 * n, rel_tol=0.03)


def test_variance_propagated_from_inputs():
    rng = np.random.default_rng(8)
    n, sigma = 10, 2.0
    frames = [
        Frame(rng.normal(0, sigma, (40, 40)), variance=np.full((40, 40), sigma**2))
        for _ in range(n)
    ]
    out = combine(frames)
    np.testing.assert_allclose(out.variance, sigma**2 / n, rtol=1e-6)
    out = combine(frames, method="median")
    np.testing.assert_allclose(out.variance, math.pi / 2 * sigma**2 / n, rtol=1e-6)
    out = combine(frames, method="sum")
    np.testing.assert_allclose(out.variance, n * sigma**2, rtol=1e-6)


# --------------------------------------------------------------------------- scaling


def test_scale_median_keeps_mean_level():
    base = _stack(n=1, shape=(20, 20), sigma=1.0)[0]
    levels = np.array([1.0, 2.0, 4.0])
    s = np.stack([base * k for k in levels])
    out = combine(list(s), scale="median")
    np.testing.assert_allclose(out.data, base * levels.mean(), rtol=1e-5)
    hist = " ".join(str(v) for v in out.header["HISTORY"])
    assert "scale=median" in hist


def test_scale_levels_and_zero_levels():
    base = _stack(n=1, shape=(10, 10))[0]
    s = [base * 2, base]
    out = combine(s, scale=[2.0, 1.0])
    np.testing.assert_allclose(out.data, base * 1.5, rtol=1e-6)
    out = combine([base + 10, base - 10, base + 30], zero=[10, -10, 30])
    np.testing.assert_allclose(out.data, base + 10, rtol=1e-6)
    out = combine([base + 10, base - 10, base + 30], zero="median")
    np.testing.assert_allclose(out.data, base + 10, rtol=1e-5)


def test_scale_exposure_and_region():
    base = np.full((10, 10), 100.0)
    frames = [Frame(base * t, header={"EXPTIME": t}) for t in (1.0, 3.0)]
    out = combine(frames, scale="exposure")
    np.testing.assert_allclose(out.data, 200.0, rtol=1e-6)
    with pytest.raises(ValueError, match="EXPTIME"):
        combine([base, base], scale="exposure")
    a = base.copy()
    a[:5] = 1000.0
    out = combine([a, a * 2], scale="median", scale_region=(slice(5, None), slice(None)))
    np.testing.assert_allclose(out.data[6:], 150.0, rtol=1e-6)
    with pytest.raises(ValueError, match="scale_region"):
        combine([a, a], scale="median", scale_region=(slice(3, 3), slice(None)))


def test_scale_on_large_frames_uses_sample():
    from ccdcal.stacking.scaling import sample_rows

    groups, _ = sample_rows(None, (4096, 4096))
    assert sum(len(g) for g in groups) * 4096 <= 2**20 + 8 * 4096
    rng = np.random.default_rng(1)
    big = rng.normal(100, 1, (1100, 1000)).astype(np.float32)
    out = combine([big, big * 2], scale="median")
    np.testing.assert_allclose(out.data, big * 1.5, rtol=1e-3)


def test_mode_scale():
    base = _stack(n=1, shape=(30, 30), sigma=2.0)[0]
    out = combine([base, base * 3], scale="mode")
    np.testing.assert_allclose(out.data, base * 2, rtol=1e-5)


def test_nonpositive_scale_level_raises():
    with pytest.raises(ValueError, match="not positive"):
        combine([np.zeros((3, 3)), np.ones((3, 3))], scale="median")


# --------------------------------------------------------------------------- nkeep


def test_nkeep_limits_rejection():
    values = np.array([1.0, 2.0, 3.0, 4.0, 100.0, 200.0], np.float32)
    s = values[:, None, None] * np.ones((1, 2, 2), np.float32)
    out = combine(s, reject=MinMaxClip(nlow=2, nhigh=2), nkeep=4)
    assert out.extras["NCOMBINE"][0, 0] == 4
    assert out.data[0, 0] == pytest.approx(np.mean([2.0, 3.0, 4.0, 100.0]))
    out = combine(s, reject=SigmaClip(low=0.1, high=0.1), nkeep=3)
    assert out.extras["NCOMBINE"][0, 0] == 3
    out = combine(s, reject=SigmaClip(low=0.1, high=0.1), nkeep=0)
    assert out.extras["NCOMBINE"][0, 0] <= 2


def test_single_frame():
    a = _stack(n=1)[0]
    for reject in ALL_REJECTS:
        out = combine([a], reject=reject)
        np.testing.assert_array_equal(out.data, a)
        assert (out.extras["NCOMBINE"] == 1).all()


# --------------------------------------------------------------------------- integers, header


def test_integer_inputs_do_not_overflow():
    a = np.full((4, 4), 65000, np.uint16)
    out = combine([a, a, a], method="sum")
    np.testing.assert_array_equal(out.data, 195000.0)
    out = combine([a, np.full((4, 4), 65535, np.uint16)])
    np.testing.assert_array_equal(out.data, 65267.5)


def test_header_and_history():
    h = fits.Header({"OBJECT": "M51", "BZERO": 32768, "EXPTIME": 30.0})
    frames = [Frame(np.ones((3, 3)), header=h) for _ in range(3)]
    out = combine(frames, reject=SigmaClip(low=2.5))
    assert out.header["NCOMBINE"] == 3 and out.header["OBJECT"] == "M51"
    assert "BZERO" not in out.header
    hist = [str(v) for v in out.header["HISTORY"]]
    assert hist[0].startswith("ccdcal") and "combine" in hist[0]
    text = "".join(h.strip() for h in hist)
    assert "SigmaClip(low=2.5" in text and "method=mean" in text


def test_written_header_has_no_verify_warning(tmp_path):
    frames = [Frame(np.ones((3, 3)) * i) for i in range(1, 4)]
    out = combine(frames, reject=SigmaClip(), scale="median")
    out.write(tmp_path / "o.fits")  # warnings are errors under pytest
    back = Frame.read(tmp_path / "o.fits")
    assert set(back.extras) == {"NCOMBINE", "NREJLO", "NREJHI"}


def test_sum_with_rejection_counts_every_valid_frame():
    """Nine values of 10 and one cosmic ray: the sum is 100, not 90 (or 1090)."""
    import ccdcal

    frames = [np.full((2, 2), 10.0, np.float32) for _ in range(9)]
    frames.append(np.full((2, 2), 1000.0, np.float32))
    out = ccdcal.combine(frames, method="sum", reject=ccdcal.MinMaxClip(nlow=0, nhigh=1))
    np.testing.assert_allclose(out.data, 100.0)
    masked = ccdcal.Frame(np.full((2, 2), 10.0), mask=np.full((2, 2), ccdcal.flags.BAD))
    out = ccdcal.combine([*frames[:9], masked], method="sum")
    np.testing.assert_allclose(out.data, 90.0)  # an excluded input is not a frame of the sum
