"""The robust median and spread: astropy's numbers, from one median fewer."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import mad_std
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdcal.robust import median, median_and_std


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16])
@pytest.mark.parametrize("size", [1, 2, 7, 100_001, 100_000])
def test_median_and_std_are_numpys_median_and_astropys_mad_std(dtype, size):
    rng = np.random.default_rng(size)
    values = rng.normal(1000.0, 15.0, size)
    values[: size // 50] = 30000.0  # outliers, which neither statistic may follow
    values = values.astype(dtype)
    kept = values.copy()
    level, spread = median_and_std(values)
    assert level == float(np.median(values)) and spread == float(mad_std(values))
    np.testing.assert_array_equal(values, kept)  # the input is left as it was
    if size > 1000:
        assert abs(level - 1000.0) <= 1.0 and abs(spread - 15.0) < 0.5  # int16: whole ADU


def test_constant_values_have_no_spread():
    assert median_and_std(np.full(10, 3.0, np.float32)) == (3.0, 0.0)


def _same(a, b) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def _distributions(rng, size):
    normal = rng.normal(1000.0, 30.0, size)
    yield "normal", normal
    yield "sorted", np.sort(normal)
    yield "reversed", np.sort(normal)[::-1].copy()
    yield "whole ADU", np.round(normal)  # many ties at the median
    yield "two values", rng.integers(0, 2, size).astype(float)
    yield "constant", np.full(size, 7.5)
    yield "heavy tails", rng.standard_cauchy(size)
    # columns far apart: a sample that strode along rows would see one column
    yield "columns", (np.arange(size) % 2048 * 10.0 + rng.normal(0, 1, size))
    with_inf = normal.copy()
    with_inf[: size // 3] = np.inf
    yield "a third +inf", with_inf
    with_inf[: size // 2 + 2] = -np.inf
    yield "half -inf", with_inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [40_000, 40_001, 2048 * 64])
def test_median_is_numpys_median(dtype, size):
    rng = np.random.default_rng(size)
    for name, values in _distributions(rng, size):
        x = values.astype(dtype)
        kept = x.copy()
        got, want = median(x), np.median(x)
        assert _same(got, want) and got.dtype == want.dtype, (name, got, want)
        np.testing.assert_array_equal(x, kept)  # the input is left as it was


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_with_nan_is_numpys_median_and_nanmedian(dtype):
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 1.0, 100_000).astype(dtype)
    x[rng.integers(0, x.size, 20_000)] = np.nan
    assert np.isnan(median(x)) and median(x).dtype == dtype
    assert median(x, omit_nan=True) == np.nanmedian(x)
    x[: x.size - 10] = np.nan  # too few left for the fast path
    assert median(x, omit_nan=True) == np.nanmedian(x)


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(32_768, 70_000),
    spread=st.sampled_from([0.0, 1e-6, 1.0, 1e6]),
    ties=st.booleans(),
    outliers=st.floats(0.0, 0.49),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_median_equals_numpy_on_random_values(size, spread, ties, outliers, seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.normal(100.0, spread, size)
    if ties:
        x = np.round(x)
    x[rng.random(size) < outliers] = 1e30
    x = x.astype(dtype)
    assert _same(median(x), np.median(x))


def test_median_takes_its_fast_path(monkeypatch):
    x = np.random.default_rng(4).normal(0.0, 1.0, 2048 * 2048).astype(np.float32)
    want = np.median(x)

    def refused(*args, **kwargs):
        raise AssertionError("NumPy's median was called")

    # the sample's bounds hold the median of such values: NumPy's median is never needed
    monkeypatch.setattr(np, "median", refused)
    assert median(x) == want
    assert median_and_std(x)[0] == float(want)
