"""Every rejection algorithm against its reference, on hypothesis-generated stacks.

Stacks have n = 1..50 frames, NaNs, masks, ties (small integers) or continuous values, and
outliers. ``SigmaClip(rule="astropy")`` is checked against astropy's ``sigma_clip(axis=0)``
itself; the others against the NumPy references in :mod:`ccdcal.stacking.reference`. Clipping
thresholds are "irrational" numbers so that no value falls exactly on a bound (where the
order of a floating-point sum may decide either way, in astropy as here).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.stats import sigma_clip
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ccdcal import Frame, flags
from ccdcal.stacking import (
    CCDClip,
    ESDClip,
    LinearFitClip,
    MinMaxClip,
    PClip,
    PercentileClip,
    SigmaClip,
    WinsorizedSigmaClip,
    combine,
)
from ccdcal.stacking import reference as ref

SIGMAS = [0.7071, 1.3137, 2.0417, 2.5519, 3.1416, 4.4721]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def stacks(draw, max_n=50):
    """(data (n, ny, nx) float32 with NaNs, masks uint16) from a seeded generator."""
    n = draw(st.integers(1, max_n))
    ny = draw(st.integers(1, 3))
    nx = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    ties = draw(st.booleans())
    rng = np.random.default_rng(seed)
    if ties:
        data = rng.integers(-4, 5, (n, ny, nx)).astype(np.float32)
    else:
        data = rng.normal(10, 3, (n, ny, nx)).astype(np.float32)
    out = rng.random(data.shape) < draw(st.sampled_from([0.0, 0.05, 0.2]))
    data[out] *= np.float32(rng.choice([-30, 30]))
    data[rng.random(data.shape) < draw(st.sampled_from([0.0, 0.1, 0.4]))] = np.nan
    masks = np.where(rng.random(data.shape) < 0.1, flags.COSMIC_RAY, 0).astype(np.uint16)
    return data, masks


def _frames(data, masks):
    return [Frame(d, mask=m) for d, m in zip(data, masks, strict=True)]


def _excluded(data, masks):
    """The stack as the engine sees it: masked values as NaN, float64."""
    return np.where((masks & flags.EXCLUDE) != 0, np.nan, data).astype(np.float64)


def _check(out, stack, keep, method):
    expect = ref.combine_kept(stack, keep, method)
    scale = max(1.0, float(np.nanmax(np.abs(stack), initial=0.0)))
    np.testing.assert_allclose(out.data, expect, rtol=2e-6, atol=2e-6 * scale, equal_nan=True)
    np.testing.assert_array_equal(out.extras["NCOMBINE"], keep.sum(0))
    nv = np.isfinite(stack).sum(0)
    np.testing.assert_array_equal(
        out.extras["NCOMBINE"] + out.extras["NREJLO"] + out.extras["NREJHI"], nv
    )
    no_data = (out.mask & flags.NO_DATA) != 0
    np.testing.assert_array_equal(no_data, keep.sum(0) == 0)


@SETTINGS
@given(
    stacks(),
    st.sampled_from(SIGMAS),
    st.sampled_from(SIGMAS),
    st.sampled_from([1, 2, 5, None]),
    st.sampled_from(["median", "mean"]),
    st.sampled_from(["std", "mad_std"]),
    st.sampled_from(["mean", "median"]),
)
def test_sigclip_equals_astropy(stk, low, high, maxiters, center, spread, method):
    data, masks = stk
    stack = _excluded(data, masks)
    rej = SigmaClip(low=low, high=high, maxiters=maxiters, center=center, spread=spread)
    out = combine(_frames(data, masks), reject=rej, method=method, nkeep=0, keep_rejected=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clipped = sigma_clip(
            stack,
            sigma_lower=low,
            sigma_upper=high,
            maxiters=maxiters,
            cenfunc=center,
            stdfunc=spread,
            axis=0,
            masked=True,
        )
    keep = ~np.ma.getmaskarray(clipped)
    _check(out, stack, keep, method)
    np.testing.assert_array_equal(out.extras["REJECTED"] == 0, keep)
    # without the rejection cube the kernel sums the kept values in sorted order instead
    fast = combine(_frames(data, masks), reject=rej, method=method, nkeep=0)
    _check(fast, stack, keep, method)
    np.testing.assert_allclose(fast.variance, out.variance, rtol=1e-5, equal_nan=True)


REFERENCES = {
    "siril": (
        lambda s: SigmaClip(low=s, high=s * 1.1, maxiters=4, rule="siril"),
        lambda s, k: {
            "fn": ref.sigclip_siril_keep, "low": s, "high": s * 1.1, "maxiters": 4, "nkeep": k
        },
    ),
    "winsorized": (
        lambda s: WinsorizedSigmaClip(low=s, high=s, maxiters=None),
        lambda s, k: {
            "fn": ref.sigclip_siril_keep, "low": s, "high": s, "maxiters": None, "nkeep": k,
            "winsorize": True,
        },
    ),
    "ccdclip": (
        lambda s: CCDClip(gain=1.7, read_noise=3.3, snoise=0.02, low=s, high=s, center="median"),
        lambda s, k: {
            "fn": ref.ccdclip_keep, "gain": 1.7, "read_noise": 3.3, "snoise": 0.02, "low": s,
            "high": s, "nkeep": k,
        },
    ),
    "ccdclip-sky": (
        lambda s: CCDClip(gain=1.0, read_noise=2.0, snoise=0.3, sky=40.0, low=s, high=s),
        lambda s, k: {
            "fn": ref.ccdclip_keep, "gain": 1.0, "read_noise": 2.0, "snoise": 0.3, "sky": 40.0,
            "low": s, "high": s, "nkeep": k,
        },
    ),
    "ccdclip-mean": (
        lambda s: CCDClip(gain=0.8, read_noise=1.1, low=s, high=s, maxiters=2, center="mean"),
        lambda s, k: {
            "fn": ref.ccdclip_keep, "gain": 0.8, "read_noise": 1.1, "low": s, "high": s,
            "maxiters": 2, "center": "mean", "nkeep": k,
        },
    ),
    "minmax": (
        lambda s: MinMaxClip(nlow=1, nhigh=2),
        lambda s, k: {"fn": ref.minmax_keep, "nlow": 1, "nhigh": 2, "nkeep": k},
    ),
    "linfit": (
        lambda s: LinearFitClip(low=s, high=s * 1.1, maxiters=4),
        lambda s, k: {"fn": ref.linfit_keep, "low": s, "high": s * 1.1, "maxiters": 4, "nkeep": k},
    ),
    "iraf-pclip": (
        lambda s: PClip(low=s, high=s * 1.1),
        lambda s, k: {"fn": ref.iraf_pclip_keep, "low": s, "high": s * 1.1, "nkeep": k},
    ),
    "iraf-pclip-up": (
        lambda s: PClip(pclip=2, low=s, high=s),
        lambda s, k: {"fn": ref.iraf_pclip_keep, "pclip": 2, "low": s, "high": s, "nkeep": k},
    ),
    "minmax-iraf": (
        lambda s: MinMaxClip(nlow=2, nhigh=3, rule="iraf"),
        lambda s, k: {"fn": ref.minmax_keep, "nlow": 2, "nhigh": 3, "nkeep": k, "rule": "iraf"},
    ),
    "minmax-fraction": (
        lambda s: MinMaxClip(nlow=0.1, nhigh=0.25),
        lambda s, k: {"fn": ref.minmax_keep, "nlow": 0.1, "nhigh": 0.25, "nkeep": k},
    ),
    "pclip": (
        lambda s: PercentileClip(low=s * 5, high=100 - s * 3),
        lambda s, k: {"fn": ref.percentile_keep, "low": s * 5, "high": 100 - s * 3, "nkeep": k},
    ),
    "esd": (
        lambda s: ESDClip(max_outliers=0.4, alpha=0.05),
        lambda s, k: {"fn": ref.esd_keep, "max_outliers": 0.4, "alpha": 0.05, "nkeep": k},
    ),
    "esd-count": (
        lambda s: ESDClip(max_outliers=3, alpha=0.01),
        lambda s, k: {"fn": ref.esd_keep, "max_outliers": 3, "alpha": 0.01, "nkeep": k},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_algorithm_equals_reference(name):
    make, ref_args = REFERENCES[name]

    @SETTINGS
    @given(
        stacks(max_n=30),
        st.sampled_from(SIGMAS),
        st.integers(-3, 5),
        st.sampled_from(["mean", "median", "sum"]),
    )
    def check(stk, sigma, nkeep, method):
        data, masks = stk
        stack = _excluded(data, masks)
        reject = make(sigma)
        try:
            reject.kernel_args(data.shape[0])
        except ValueError:  # refused for so few inputs (IRAF's minmax)
            assume(False)
        out = combine(_frames(data, masks), reject=reject, method=method, nkeep=nkeep)
        kwargs = ref_args(sigma, nkeep)
        keep = ref.apply(kwargs.pop("fn"), stack, **kwargs)
        _check(out, stack, keep, method)

    check()


@SETTINGS
@given(stacks(), st.sampled_from([None, SigmaClip(), MinMaxClip(), ESDClip()]))
def test_order_invariance_and_bounds(stk, reject):
    data, masks = stk
    # continuous values: a tie on a bound could go either way in another summation order
    data = data + np.random.default_rng(0).normal(0, 1e-3, data.shape).astype(np.float32)
    perm = np.random.default_rng(data.shape[0]).permutation(data.shape[0])
    a = combine(_frames(data, masks), reject=reject)
    b = combine(_frames(data[perm], masks[perm]), reject=reject)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-6, atol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(a.extras["NCOMBINE"], b.extras["NCOMBINE"])
    stack = _excluded(data, masks)
    ok = np.isfinite(a.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanmin(stack, 0), np.nanmax(stack, 0)
    assert np.all(a.data[ok] >= lo[ok] - 1e-4 * np.abs(lo[ok]))
    assert np.all(a.data[ok] <= hi[ok] + 1e-4 * np.abs(hi[ok]))


@SETTINGS
@given(stacks())
def test_median_equals_nanmedian(stk):
    data, masks = stk
    stack = _excluded(data, masks)
    out = combine(_frames(data, masks), method="median")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expect = np.nanmedian(stack.astype(np.float32), axis=0)
    np.testing.assert_allclose(out.data, expect, rtol=1e-6, equal_nan=True)
