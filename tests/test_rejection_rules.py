"""Rejection rules on hand-built cases where the authors' rules differ from a looser reading.

Each case was worked through by hand from IRAF's imcombine sources
(iraf-community/iraf, pkg/images/immatch/src/imcombine/src: iccclip.gx, icmm.gx,
icombine.x, icpclip.gx, icsclip.gx, icgdata.gx) and Siril's
(src/stacking/rejection_float.c), not from their help texts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccdcal import Frame
from ccdcal.stacking import (
    AvSigClip,
    CCDClip,
    Combination,
    LinearFitClip,
    MedianSigmaClip,
    MinMaxClip,
    PClip,
    SigmaClip,
    combine,
)
from ccdcal.stacking import reference as ref


def _stack(values, mask_last: int = 0):
    """One pixel per frame; the last ``mask_last`` frames NaN (missing)."""
    v = np.array(values, np.float32)
    if mask_last:
        v[-mask_last:] = np.nan
    return [Frame(np.array([[x]], np.float32)) for x in v]


def _kept(out) -> int:
    return int(out.extras["NCOMBINE"][0, 0])


# IRAF ccdclip, mclip=no (ic_accdclip): the mean leaves out one minimum and one maximum, so
# that one cosmic ray cannot drag it; σ = sqrt((rn/g)² + max(0, a)/g + (snoise·max(0, a))²)
@pytest.mark.parametrize(
    "values, rn, gain, snoise, kept, mean",
    [
        ([100, 101, 99, 100, 102, 98, 400], 0.0, 1.0, 0.0, 6, 100.0),  # the case
        ([100, 102, 98, 101, 99, 200], 0.0, 1.0, 0.0, 5, 100.0),
        ([100, 102, 98, 101, 99, 140], 10.0, 2.0, 0.0, 5, 100.0),  # σ = sqrt(25 + a/2)
        ([100, 102, 98, 101, 99, 60], 0.0, 1.0, 0.0, 5, 100.0),
        ([1000, 1010, 990, 1005, 995, 1150], 0.0, 1.0, 0.05, 6, 1025.0),  # snoise keeps it
        ([1000, 1010, 990, 1005, 995, 1150], 0.0, 1.0, 0.0, 5, 1000.0),
    ],
)  # fmt: skip
def test_ccdclip_mean_leaves_out_min_and_max(values, rn, gain, snoise, kept, mean):
    rej = CCDClip(gain=gain, read_noise=rn, snoise=snoise, center="mean", maxiters=None)
    out = combine(_stack(values), reject=rej)
    assert _kept(out) == kept
    assert float(out.data[0, 0]) == pytest.approx(mean, rel=1e-6)


def test_ccdclip_cosmic_rays_on_ten_frames_keep_the_good_values():
    """10 frames, 5 % of pixels hit: before, most hit pixels ended with NCOMBINE = 1."""
    rng = np.random.default_rng(0)
    data = rng.poisson(100.0, (10, 32, 16)).astype(np.float32)
    hit = rng.random(data.shape) < 0.05
    data[hit] += 3000.0
    frames = [Frame(d) for d in data]
    out = combine(frames, reject=CCDClip(gain=1.0, read_noise=0.0, center="mean"))
    n_hit = hit.sum(0)
    single = n_hit == 1
    # one hit among ten: the hit goes, the nine good values stay (a few more may go at 3σ)
    assert np.all(out.extras["NCOMBINE"][single] >= 7)
    assert np.mean(out.extras["NCOMBINE"][single]) > 8.9


def test_ccdclip_noise_never_negative():
    """max(0, c), not |c|: about a negative centre σ is the read noise alone (IRAF)."""
    values = [-50.0, -51.0, -49.0, -50.0, -50.5, -49.5, -30.0]
    out = combine(_stack(values), reject=CCDClip(gain=1.0, read_noise=3.0))
    # with |c| = 50 in the model σ would be 7.7 and -30 (2.6σ) would stay; σ = 3 rejects it
    assert _kept(out) == 6


# IRAF minmax (icombine.x, icmm.gx): a count is a fraction of the n images; at a pixel with
# m valid values int(m·fraction + 0.001) go
@pytest.mark.parametrize(
    "nlow, nhigh, n, missing, dropped",
    [
        (1, 2, 10, 0, (1, 2)),
        (1, 2, 10, 5, (0, 1)),  # 5 of 10 valid: int(0.5 + 0.001), int(1.0 + 0.001)
        (1, 2, 10, 1, (0, 1)),  # 9 valid: int(0.9 + 0.001), int(1.8 + 0.001)
        (1, 2, 10, 6, (0, 0)),  # 4 valid: nothing
        (0.25, 0.25, 10, 0, (2, 2)),  # fractions: int(2.5 + 0.001)
        (0.3, 0.0, 10, 0, (3, 0)),  # the 0.001 guards a product just below 3
    ],
)  # fmt: skip
def test_minmax_follows_irafs_rule_with_missing_values(nlow, nhigh, n, missing, dropped):
    values = list(range(1, n + 1))
    rej = MinMaxClip(nlow=nlow, nhigh=nhigh, rule="iraf")
    out = combine(_stack(values, missing), reject=rej, nkeep=0)
    assert (int(out.extras["NREJLO"][0, 0]), int(out.extras["NREJHI"][0, 0])) == dropped


@pytest.mark.parametrize(
    "nlow, nhigh, missing, dropped",
    [(1, 2, 0, (1, 2)), (1, 2, 5, (1, 2)), (0.25, 0.25, 0, (2, 2)), (0.25, 0.0, 2, (2, 0))],
)
def test_minmax_counts_drop_at_every_pixel(nlow, nhigh, missing, dropped):
    out = combine(_stack(list(range(1, 11)), missing), reject=MinMaxClip(nlow, nhigh), nkeep=0)
    assert (int(out.extras["NREJLO"][0, 0]), int(out.extras["NREJHI"][0, 0])) == dropped


# IRAF's negative nkeep: the most values the rejection may take (maxkeep = n1 + nkeep)
def test_negative_nkeep_caps_the_rejected():
    values = [100, 101, 99, 100, 102, 98, 100, 101, 99, 100, 160, 170]
    rej = CCDClip(gain=1.0, read_noise=0.0, center="median")
    assert _kept(combine(_stack(values), reject=rej, nkeep=1)) == 10  # both hits go
    capped = combine(_stack(values), reject=rej, nkeep=-1)  # at most one may go
    assert _kept(capped) == 11
    assert int(capped.extras["NREJHI"][0, 0]) == 1  # 170, the farther, stays rejected
    assert float(capped.data[0, 0]) == pytest.approx((sum(values) - 170) / 11)


# IRAF lthreshold/hthreshold (icgdata.gx): raw values strictly outside are left out, before
# scaling and rejection; a value on a threshold stays
def test_thresholds_on_raw_values(tmp_path):
    values = [4.9, 5.0, 50.0, 50.1]
    out = combine(_stack(values), thresholds=(5.0, 50.0))
    assert _kept(out) == 2 and float(out.data[0, 0]) == pytest.approx(27.5)
    assert _kept(combine(_stack(values), thresholds=(None, 50.0))) == 3
    # on raw values: 150 goes though scaled by 1/2 it would be 75
    frames = _stack([150.0, 60.0, 80.0])
    scaled = combine(frames, scale=[0.5, 1.0, 1.0], thresholds=(None, 100.0))
    assert _kept(scaled) == 2
    # left out like masked values: not counted as rejected
    assert int(out.extras["NREJLO"][0, 0] + out.extras["NREJHI"][0, 0]) == 0
    with pytest.raises(ValueError, match="thresholds"):
        combine(frames, thresholds=(10.0, 1.0))

    from ccdcal.cli import main

    paths = []
    for i, v in enumerate(values):
        paths.append(tmp_path / f"f{i}.fits")
        Frame(np.full((2, 2), v, np.float32)).write(paths[-1])
    dest = tmp_path / "o.fits"
    argv = ["-q", "combine", *map(str, paths), "-o", str(dest), "--lthreshold", "5"]
    assert main([*argv, "--hthreshold", "50"]) == 0
    assert float(Frame.read(dest).data[0, 0]) == pytest.approx(27.5)


# IRAF pclip (icombine.x, icpclip.gx): σ = distance from the median to the value p places
# away; rejection at or beyond the bounds (>=), one pass
@pytest.mark.parametrize(
    "values, missing, pclip, sigma, kept",
    [
        ([8, 9, 9, 10, 10, 10, 11, 11, 12, 30], 0, -0.5, 3.0, 9),
        ([8, 9, 9, 10, 10, 10, 11, 11, 12, 13], 0, -0.5, 3.0, 9),  # 13 is exactly 3σ: goes
        ([8, 9, 9, 10, 10, 10, 11, 11, 12, 30], 0, -0.5, 1.0, 3),
        ([10] * 9 + [30], 0, -0.5, 3.0, 10),  # σ = 0: nothing
        ([8, 9, 10, 10, 11, 12, 30, 0, 0, 0], 3, -0.5, 3.0, 6),  # p from the 10 inputs
        ([8, 9, 10, 10, 10, 11, 11, 12, 40], 0, 1, 3.0, 8),  # upwards
    ],
)  # fmt: skip
def test_pclip_follows_iraf(values, missing, pclip, sigma, kept):
    rej = PClip(pclip=pclip, low=sigma, high=sigma)
    assert _kept(combine(_stack(values, missing), reject=rej, nkeep=0)) == kept


def test_pclip_places_as_iraf_converts_them():
    assert [PClip(pclip=v).places(10) for v in (-0.5, 0.3, -4, -7, 3)] == [-2, 1, -4, -5, 3]
    assert PClip(pclip=0.1).places(3) == 1
    with pytest.raises(ValueError, match="pclip"):
        PClip(pclip=0)


def test_pclip_from_the_command_line_and_the_configuration(tmp_path):
    from ccdcal.cli import main
    from ccdcal.config import rejection_from_name

    assert rejection_from_name("iraf-pclip", pclip=-1, sigma=2.5) == PClip(-1, 2.5, 2.5)
    paths = []
    for i, v in enumerate([8, 9, 9, 10, 10, 10, 11, 11, 12, 30]):
        paths.append(tmp_path / f"f{i}.fits")
        Frame(np.full((2, 2), v, np.float32)).write(paths[-1])
    dest = tmp_path / "o.fits"
    assert main(["-q", "combine", *map(str, paths), "-o", str(dest), "--reject", "iraf-pclip"]) == 0
    assert float(Frame.read(dest).data[0, 0]) == pytest.approx(10.0)


# Siril linear fit clipping (rejection_float.c, LINEARFIT): a line through the sorted values
@pytest.mark.parametrize(
    "values, sigma, kept",
    [
        (list(range(1, 11)), 1.0, 10),  # a line: nothing goes (a sigma clip drops 1, 2, 9, 10)
        ([10, 11, 9, 10, 12, 8, 10, 11, 9, 30], 3.0, 9),
        ([*range(1, 11), 30], 2.0, 10),  # the exact fit keeps 1..10 (Siril 2024+ only 1..7)
        ([10, 11, 30], 0.5, 3),  # 4 or fewer: never
    ],
)  # fmt: skip
def test_linear_fit_clipping(values, sigma, kept):
    rej = LinearFitClip(low=sigma, high=sigma, maxiters=None)
    assert _kept(combine(_stack(values), reject=rej, nkeep=0)) == kept


def test_minmax_iraf_refuses_to_drop_every_input():
    """icombine.x: "Bad minmax rejection parameters" where nlow + nhigh >= the inputs."""
    with pytest.raises(ValueError, match="drop all 4 inputs"):
        combine(_stack([1, 2, 3, 4]), reject=MinMaxClip(nlow=2, nhigh=2, rule="iraf"))
    assert _kept(combine(_stack([1, 2, 3, 4]), reject=MinMaxClip(nlow=2, nhigh=2))) == 1


def test_ccdclip_snoise_only_above_the_sky():
    """snoise·max(0, c - sky): a centre below the sky adds no sensitivity noise."""
    values = [30.0, 31.0, 29.0, 30.0, 30.5, 29.5, 38.0]
    # median 30: σ = √30 = 5.48 and 38 is 1.46σ out; with (snoise·(c - sky))² = 25 in it σ
    # would be 7.42 and 38 only 1.08σ
    tight = CCDClip(gain=1.0, read_noise=0.0, snoise=0.5, sky=40.0, low=1.4, high=1.4)
    assert _kept(combine(_stack(values), reject=tight)) == 6


# Siril median sigma clipping (rejection_float.c, SIGMEDIAN): replaced by the median
@pytest.mark.parametrize(
    "values, sigma, mean, replaced",
    [
        ([10, 11, 9, 10, 12, 8, 10, 11, 9, 30], 3.0, 10.0, 1),
        ([10, 11, 9, 10, 30], 1.0, 10.0, 3),  # 30, then 9 and 11: all five end at 10
        ([100, 101, 99, 100, 102, 98, 100, 101, 99, 100, 160, 170], 2.0, 100.0, 2),
        ([10, 11, 9, 10, 12, 8, 10, 11, 9, 20], 3.0, 11.0, 0),  # 10 is not > 3 × 3.37
    ],
)  # fmt: skip
def test_median_sigma_clipping_replaces(values, sigma, mean, replaced):
    out = combine(_stack(values), reject=MedianSigmaClip(low=sigma, high=sigma))
    assert float(out.data[0, 0]) == pytest.approx(mean, rel=1e-6)
    assert int(out.extras["NREJLO"][0, 0] + out.extras["NREJHI"][0, 0]) == replaced
    assert _kept(out) == len(values) - replaced


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.sampled_from([1.3137, 2.0417, 3.1416]))
def test_median_sigma_clipping_equals_reference(seed, n, sigma):
    rng = np.random.default_rng(seed)
    data = rng.normal(10, 3, (n, 2, 3)).astype(np.float32)
    data[rng.random(data.shape) < 0.1] *= 20
    data[rng.random(data.shape) < 0.1] = np.nan
    frames = [Frame(d) for d in data]
    for method in ("mean", "median", "sum"):
        out = combine(frames, reject=MedianSigmaClip(low=sigma, high=sigma * 1.1),
                      method=method, keep_rejected=True)  # fmt: skip
        for y, x in np.ndindex(2, 3):
            keep, final = ref.medsig_values(data[:, y, x].astype(np.float64), low=sigma,
                                            high=sigma * 1.1)  # fmt: skip
            valid = np.isfinite(final)
            if not valid.any():
                assert np.isnan(out.data[y, x])
                continue
            expect = {"mean": np.mean(final[valid]), "median": np.median(final[valid]),
                      "sum": np.mean(final[valid]) * valid.sum()}[method]  # fmt: skip
            assert float(out.data[y, x]) == pytest.approx(expect, rel=2e-6, abs=2e-4)
            assert int(out.extras["NCOMBINE"][y, x]) == keep.sum()
            np.testing.assert_array_equal(out.extras["REJECTED"][:, y, x] == 0, keep)


# IRAF grow (icgrow.gx): a disk of radius grow around each rejected value, in its own
# image only, seeded by the rejection alone; a second pass without rejection
def test_grow_takes_a_cosmic_rays_edges():
    rng = np.random.default_rng(4)
    data = (100 + rng.normal(0, 1, (5, 9, 9))).astype(np.float32)
    data[1, 4, 4] = 1000.0  # a hit
    data[1, 4, 5] = 115.0  # its faint edge: 1.5σ, not an outlier by itself
    data[3, 0, 0] = np.nan  # left out: seeds nothing
    frames = [Frame(d) for d in data]
    rej = CCDClip(gain=1.0, read_noise=1.0)
    plain = combine(frames, reject=rej)
    assert int(plain.extras["NCOMBINE"][4, 4]) == 4 and int(plain.extras["NCOMBINE"][4, 5]) == 5
    grown = combine(frames, reject=rej, grow=1.0, keep_rejected=True)
    n = grown.extras["NCOMBINE"]
    cross = [(4, 4), (3, 4), (5, 4), (4, 3), (4, 5)]
    assert all(int(n[y, x]) == 4 for y, x in cross)
    assert int(n[3, 3]) == 5  # the corner: not within 1 pixel
    assert int(n[0, 0]) == 4  # only the NaN left out there
    assert float(grown.data[4, 5]) == pytest.approx(np.delete(data[:, 4, 5], 1).mean(), rel=1e-6)
    assert int(grown.extras["NREJLO"][4, 5] + grown.extras["NREJHI"][4, 5]) == 1
    assert (grown.extras["REJECTED"][1, 3:6, 3:6] != 0).sum() == 5
    square = combine(frames, reject=rej, grow=1.5)
    assert int(square.extras["NCOMBINE"][3, 3]) == 4  # 1.5: the whole 3×3
    with pytest.raises(ValueError, match="grow"):
        combine(frames, reject=rej, grow=-1.0)


def test_grow_leaves_the_first_value_where_nothing_would_be_left():
    data = np.full((3, 5, 5), 100.0, np.float32)
    data[:, 2, 3] = np.nan  # one pixel where only frame 0 has a value ...
    data[0, 2, 3] = 100.0
    data[0, 2, 2] = 900.0  # ... next to frame 0's hit
    frames = [Frame(d) for d in data]
    out = combine(frames, reject=CCDClip(gain=1.0, read_noise=1.0), grow=1.0)
    assert float(out.data[2, 3]) == pytest.approx(100.0)  # growing emptied it: pass 1 value
    assert int(out.extras["NCOMBINE"][2, 3]) == 1


def test_medsig_and_grow_from_the_command_line(tmp_path):
    from ccdcal.cli import main

    rng = np.random.default_rng(8)
    data = (100 + rng.normal(0, 1, (12, 7, 7))).astype(np.float32)
    data[2, 3, 3] = 5000.0  # among 12 one outlier can stand 3.2σ out (σ inflated by it)
    paths = []
    for i, d in enumerate(data):
        paths.append(tmp_path / f"f{i}.fits")
        Frame(d).write(paths[-1])
    dest = tmp_path / "o.fits"
    argv = ["-q", "combine", *map(str, paths), "-o", str(dest), "--reject", "medsig"]
    assert main([*argv, "--grow", "1"]) == 0
    out = Frame.read(dest)
    assert int(out.extras["NCOMBINE"][3, 3]) == 11 and int(out.extras["NCOMBINE"][3, 4]) == 11
    assert int(out.extras["NCOMBINE"][2, 2]) == 12


# IRAF avsigclip (icaclip.gx): one factor per image line, σ = s·√max(1, c)
def _avsig_line():
    """The research case: 3 clean pixels and one hit, 5 images, on one line."""
    clean = [100, 110, 90, 105, 95]
    line = np.array([clean, clean, clean, [400, 420, 380, 410, 600]], np.float32)  # (4, 5)
    return [Frame(line[:, i][None, :]) for i in range(5)]


def test_avsigclip_line_factor_and_clip():
    frames = _avsig_line()
    out = combine(frames, reject=AvSigClip(), method="mean")
    assert float(out.data[0, 3]) == pytest.approx(402.5)  # 600 went (4.13σ)
    assert [int(v) for v in out.extras["NCOMBINE"][0]] == [5, 5, 5, 4]
    med = combine(frames, reject=AvSigClip(center="median"), method="median")
    assert float(med.data[0, 3]) == pytest.approx(405.0)
    stack = np.stack([f.data for f in frames])
    from ccdcal.stacking.rejection import line_sigmas

    assert float(line_sigmas(stack)[0]) == pytest.approx(2.2738, abs=1e-4)
    with pytest.raises(ValueError, match="row bands"):
        Combination(reject=AvSigClip()).setup(frames)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 25), st.sampled_from(["mean", "median"]),
       st.integers(0, 3))  # fmt: skip
def test_avsigclip_equals_reference(seed, n, center, nkeep):
    from ccdcal.stacking.rejection import line_sigmas

    rng = np.random.default_rng(seed)
    data = rng.poisson(50.0, (n, 3, 6)).astype(np.float32) + rng.normal(0, 1, (n, 3, 6))
    data = data.astype(np.float32)
    data[rng.random(data.shape) < 0.1] *= 10
    data[rng.random(data.shape) < 0.1] = np.nan
    rej = AvSigClip(low=2.5519, high=3.1416, center=center)
    out = combine([Frame(d) for d in data], reject=rej, nkeep=nkeep, keep_rejected=True)
    factors = line_sigmas(data.astype(np.float64), center)
    for y, x in np.ndindex(3, 6):
        keep = ref.avsigclip_keep(data[:, y, x].astype(np.float64), s=factors[y], low=2.5519,
                                  high=3.1416, center=center, nkeep=nkeep)  # fmt: skip
        np.testing.assert_array_equal(out.extras["REJECTED"][:, y, x] == 0, keep)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 20), st.sampled_from([(8.0, 12.0), (None, 11.0),
       (9.5, None)]))  # fmt: skip
def test_thresholds_equal_leaving_the_values_out(seed, n, bounds):
    """Thresholds are masks on the raw values: the same as those values made NaN."""
    rng = np.random.default_rng(seed)
    data = rng.normal(10, 2, (n, 3, 4)).astype(np.float32)
    data[rng.random(data.shape) < 0.1] = np.nan
    lo, hi = bounds
    out_of = np.zeros(data.shape, bool)
    if lo is not None:
        out_of |= data < lo
    if hi is not None:
        out_of |= data > hi
    cut = np.where(out_of, np.nan, data)
    rej = SigmaClip(low=2.5519, high=2.5519)
    a = combine([Frame(d) for d in data], reject=rej, thresholds=bounds)
    b = combine([Frame(d) for d in cut], reject=rej)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.extras["NCOMBINE"], b.extras["NCOMBINE"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(3, 12), st.sampled_from([1.0, 1.5, 2.0]))
def test_grow_equals_reference(seed, n, radius):
    """IRAF's two passes written plainly: rejected values, grown by a disk in their own
    image, left out of a plain mean; the first pass's value where nothing is left."""
    from scipy.ndimage import binary_dilation

    rng = np.random.default_rng(seed)
    data = rng.poisson(100.0, (n, 8, 9)).astype(np.float32)
    data[rng.random(data.shape) < 0.03] += 3000.0
    data[rng.random(data.shape) < 0.05] = np.nan
    rej = CCDClip(gain=1.0, read_noise=2.0)
    out = combine([Frame(d) for d in data], reject=rej, grow=radius)
    stack = data.astype(np.float64)
    keep = ref.apply(ref.ccdclip_keep, stack, gain=1.0, read_noise=2.0)
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = yy**2 + xx**2 <= radius**2
    valid = np.isfinite(stack)
    gone = np.stack([binary_dilation(valid[i] & ~keep[i], disk) for i in range(n)]) & valid
    left = valid & ~gone
    first = ref.combine_kept(stack, keep)
    with np.errstate(invalid="ignore"):
        second = np.where(left, stack, 0).sum(0) / left.sum(0)
    expect = np.where(left.sum(0) == 0, first, second)
    np.testing.assert_allclose(out.data, expect, rtol=2e-6, equal_nan=True)
