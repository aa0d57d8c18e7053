"""The robust median and spread: astropy's numbers, from one median fewer."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import mad_std

from ccdcal.robust import median_and_std


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
