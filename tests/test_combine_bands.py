"""A combine split into row bands (separate tasks) equals the whole combine, bit for bit."""

from __future__ import annotations

import itertools
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdcal import Frame, flags
from ccdcal.stacking import (
    CCDClip,
    Combination,
    ESDClip,
    MinMaxClip,
    PercentileClip,
    SigmaClip,
    WinsorizedSigmaClip,
)

REJECTIONS = [
    None,
    SigmaClip(),
    SigmaClip(center="mean", spread="mad_std"),
    MinMaxClip(nlow=1, nhigh=1),
    PercentileClip(),
    WinsorizedSigmaClip(),
    CCDClip(gain=1.0, read_noise=5.0),
    ESDClip(),
]


def _files(folder, n, shape, seed, *, mask=True, variance=True):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        data = rng.normal(100 + 10 * i, 5, shape).astype(np.float32)
        data[rng.random(shape) < 0.01] += 500  # cosmic rays
        m = np.where(rng.random(shape) < 0.02, flags.SATURATED, 0).astype(np.uint16)
        v = np.full(shape, 25 + i, np.float32)
        path = folder / f"f{i:02d}.fits"
        Frame(data, mask=m if mask else None, variance=v if variance else None,
              header={"EXPTIME": 10.0 + i}).write(path)  # fmt: skip
        paths.append(path)
    return paths


def _assert_same(a: Frame, b: Frame) -> None:
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.variance, b.variance)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.extras.keys() == b.extras.keys()
    for key in a.extras:
        np.testing.assert_array_equal(a.extras[key], b.extras[key], err_msg=key)
    assert _cards(a) == _cards(b)


def _cards(frame: Frame) -> list[tuple[str, str]]:
    """Header cards but the time stamp of the provenance."""
    stamp = re.compile(r"ccdcal \S+ \w+ \d{4}-\d\d-\d\dT")
    return [(k, str(v)) for k, v in frame.header.items() if not stamp.match(str(v))]


def _split(c: Combination, inputs, cuts):
    setup = pickle.loads(pickle.dumps(c.setup(inputs)))  # the setup travels to workers
    edges = [0, *cuts, setup.shape[0]]
    parts = [c.rows(inputs, setup, y0, y1) for y0, y1 in itertools.pairwise(edges)]
    parts = [pickle.loads(pickle.dumps(p)) for p in reversed(parts)]  # and the bands back
    return c.assemble(setup, parts)


@pytest.mark.parametrize("reject", REJECTIONS, ids=repr)
@pytest.mark.parametrize("method", ["mean", "median", "sum"])
def test_bands_from_files_equal_one_combine(tmp_path, reject, method):
    paths = _files(tmp_path, 7, (37, 29), seed=1)
    c = Combination(method=method, reject=reject, scale="median", zero="median",
                    keep_rejected=True)  # fmt: skip
    _assert_same(_split(c, paths, [1, 13, 14, 30]), c(paths))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9),
    ny=st.integers(2, 24),
    nx=st.integers(1, 20),
    seed=st.integers(0, 2**16),
    reject=st.sampled_from(REJECTIONS),
    weights=st.sampled_from([None, "variance", "frame"]),
    data=st.data(),
)
def test_bands_in_memory_equal_one_combine(n, ny, nx, seed, reject, weights, data):
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 3, (n, ny, nx)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    values[:, 0, 0] = 1.0  # a valid pixel in every frame, for the zero levels
    masks = (rng.random(values.shape) < 0.05).astype(np.uint16) * flags.BAD
    masks[:, 0, 0] = 0
    frames = [
        Frame(values[i], variance=np.full((ny, nx), 1.0 + i, np.float32), mask=masks[i])
        for i in range(n)
    ]
    w = [1.0 + i for i in range(n)] if weights == "frame" else weights
    c = Combination(reject=reject, weights=w, zero="median", memory_limit="64MB")
    cuts = sorted(data.draw(st.sets(st.integers(1, ny - 1), max_size=ny - 1)))
    _assert_same(_split(c, frames, cuts), c(frames))
    stack = np.ascontiguousarray(values)  # an (n, ny, nx) array is read in place
    _assert_same(_split(c.__class__(reject=reject), stack, cuts), c.__class__(reject=reject)(stack))


def test_band_memory_counts_the_band_only(tmp_path):
    """A band task's limit covers its own rows: a limit too small for the whole output planes
    still combines a band of it."""
    paths = _files(tmp_path, 4, (400, 300), seed=2, mask=False, variance=False)
    whole = Combination(memory_limit=2_000_000)
    with pytest.raises(Exception, match="too small to combine"):
        whole(paths)
    setup = whole.setup(paths)
    part = whole.rows(paths, setup, 0, 100)
    reference = Combination()(paths)
    np.testing.assert_array_equal(part.data, reference.data[:100])


def test_assemble_refuses_gaps_and_wrong_inputs(tmp_path):
    paths = _files(tmp_path, 3, (10, 8), seed=3)
    c = Combination()
    setup = c.setup(paths)
    with pytest.raises(ValueError, match="uncovered or overlap"):
        c.assemble(setup, [c.rows(paths, setup, 0, 4), c.rows(paths, setup, 5, 10)])
    with pytest.raises(ValueError, match="end at row 4"):
        c.assemble(setup, [c.rows(paths, setup, 0, 4)])
    with pytest.raises(ValueError, match="outside the image"):
        c.rows(paths, setup, 4, 11)
    with pytest.raises(ValueError, match="not the ones the setup"):
        c.rows(paths[:2], setup, 0, 4)
