"""A stack's error bars and its rejection against the simulator's truth (issue 13).

Nights with few and many masters, scaled darks and no bias frames: the stack's residual
from the truth over its own UNCERT must have unit spread (the masters' noise counted once),
the default rejection (each light's own variance) must reject good values at the normal
rate for 3σ, as often high as low, leave hot pixels as quiet as a plain mean, and still
reject the cosmic rays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

import ccdcal
from ccdcal import Frame, flags
from ccdcal.quality import Truth
from ccdcal.stacking import combine

NIGHTS = {
    "5 bias, 3 darks": {"nbias": 5, "ndark": 3, "nflat": 5},
    "25 bias, 15 darks": {"nbias": 25, "ndark": 15, "nflat": 15},
    "darks of 300 s scaled": {"nbias": 5, "ndark": 3, "nflat": 5, "dark_exptime": 300.0},
    "no bias frames": {"nbias": 0, "ndark": 5, "nflat": 5},
}


def _reduced(tmp_path: Path, seed: int, **kw):
    night = ccdcal.simulate.night(
        tmp_path / "night", seed=seed, shape=(256, 256), nlight=10, hot_fraction=0.01, **kw
    )
    result = ccdcal.reduce(night.raw_dir, tmp_path / "out", report=False)
    truth = Truth.read(tmp_path / "night")
    return result, truth


@pytest.mark.parametrize("name", list(NIGHTS))
def test_stack_error_bars_and_rejection_against_truth(tmp_path, name):
    result, truth = _reduced(tmp_path, seed=list(NIGHTS).index(name) + 11, **NIGHTS[name])
    (path,) = result.stacks.values()
    stack = Frame.read(path)
    t = float(stack.header["EXPTIME"])
    signal = truth.scene * t
    cr = np.zeros(signal.shape, bool)
    for m in truth.cosmic.values():
        cr |= m
    ok = stack.good & ~cr & np.isfinite(stack.variance)
    z = (stack.data - signal) / np.sqrt(stack.variance)
    assert abs(np.std(z[ok]) - 1.0) < 0.05, np.std(z[ok])

    lo = stack.extras["NREJLO"][ok].sum()
    hi = stack.extras["NREJHI"][ok].sum()
    seen = stack.extras["NCOMBINE"][ok].sum() + lo + hi
    expected = 2 * norm.sf(3.0)
    assert abs((lo + hi) / seen / expected - 1) < 0.2, ((lo + hi) / seen, expected)
    assert abs(hi - lo) < 0.2 * (hi + lo), (lo, hi)
    assert 0 < stack.header["REJFRAC"] < 0.01

    # hot pixels: the rejection knows their dark current's noise, so it rejects no more
    # there than elsewhere, and the stack is as quiet as a plain mean of the same lights
    hot = ok & (truth.dark_current * t >= 200.0)
    assert hot.sum() > 100
    plain = combine(result.calibrated)
    rms = np.sqrt(np.mean((stack.data - signal)[hot] ** 2))
    rms_plain = np.sqrt(np.mean((plain.data - signal)[hot] ** 2))
    assert rms <= 1.03 * rms_plain, (rms, rms_plain)


def test_cosmic_rays_still_rejected(tmp_path):
    result, truth = _reduced(tmp_path, seed=3, nbias=5, ndark=3, nflat=5)
    (path,) = result.stacks.values()
    stack = Frame.read(path)
    signal = truth.scene * float(stack.header["EXPTIME"])
    lights = [Frame.read(p) for p in result.calibrated]
    good = (stack.mask_or_zeros() & flags.NO_DATA) == 0
    hits = left = 0
    for light in lights:
        deposit = light.data - signal
        # hits well above the noise: kept, one lifts the stack by a tenth of itself or more
        strong = truth.cosmic[Path(light.name).stem] & light.good & good
        strong &= deposit > 20 * np.sqrt(light.variance)
        hits += int(strong.sum())
        left += int((strong & (stack.data - signal > 0.07 * deposit)).sum())
    assert hits > 300
    assert left <= 0.001 * hits, (left, hits)


def test_a_stack_that_rejects_much_says_so(tmp_path):
    """A clip at 1σ rejects a third of the values: the run's notices say so, by name."""
    from ccdcal.config import loads_config

    night = ccdcal.simulate.night(tmp_path / "n", seed=9, shape=(64, 64), nbias=3, ndark=3,
                                  nflat=3, nlight=5)  # fmt: skip
    cfg = loads_config('[combine.light]\nreject = "sigclip"\nsigma = 1.0\n')
    result = ccdcal.reduce(night.raw_dir, tmp_path / "o", config=cfg, report=False)
    (path,) = result.stacks.values()
    header = Frame.read(path).header
    assert header["REJFRAC"] > 0.1
    assert header["REJFRAC"] == pytest.approx(header["REJFRLO"] + header["REJFRHI"], abs=2e-6)
    (notice,) = [n for n in result.notices if "values rejected" in n]
    assert notice.startswith(f"{path.stem}: ") and "more than 1 %" in notice
    assert "% rejected" in result.summary()
    # the default rejection on the same night stays quiet
    quiet = ccdcal.reduce(night.raw_dir, tmp_path / "q", report=False)
    assert not [n for n in quiet.notices if "values rejected" in n]


def test_auto_rejection_needs_a_complete_variance(tmp_path):
    """Without any bias level (no bias frames, darks of another exposure) a light's variance
    counts no photons: the lights' own variance would make the rejection eat good values,
    so "auto" keeps to the noise model it knows (or the MAD clip), and rejects little."""
    night = ccdcal.simulate.night(tmp_path / "n", seed=5, shape=(96, 96), nbias=0, ndark=3,
                                  nflat=3, nlight=6, dark_exptime=300.0)  # fmt: skip
    result = ccdcal.reduce(night.raw_dir, tmp_path / "o", report=False)
    light = Frame.read(result.calibrated[0])
    assert light.header["VARSLOPE"] == 0.0
    (path,) = result.stacks.values()
    stack = Frame.read(path)
    history = " ".join(str(h) for h in stack.header["HISTORY"])
    assert "VarianceClip" not in history
    assert stack.header["REJFRAC"] < 0.01
