"""Masters from raw files, prepared band by band as the combine reads them, and masters of
frames whose prepared frames do not fit in memory (spilled to a folder): the same results."""

from __future__ import annotations

import numpy as np
import pytest

from ccdcal import flags
from ccdcal.errors import CcdcalError
from ccdcal.frame import Frame
from ccdcal.masters import CombineSpec, master_bias, master_dark, master_flat
from ccdcal.simulate import Detector

SHAPE = (200, 300)
N = 12
#: 12 prepared frames take 4.3 MB or more (data, mask, variance); a combine needs ~1 MB, and
#: measuring the flats' levels (a sample of every pixel) 1.9 MB more
LIMIT = 3 * 2**20


@pytest.fixture(scope="module")
def raw_sets():
    rng = np.random.default_rng(3)
    det = Detector.create(seed=3, shape=SHAPE)
    biases = [det.bias(rng) for _ in range(N)]
    darks = [det.dark(120.0, rng) for _ in range(N)]
    flats = [det.flat(20000.0, "V", rng) for _ in range(N)]
    return biases, darks, flats


def _small(kind: str) -> CombineSpec:
    spec = CombineSpec.default(kind)
    return CombineSpec(spec.method, spec.reject, {**spec.options, "memory_limit": LIMIT})


def _check(here: Frame, spilled: Frame, seen: list[list[str]], folder) -> None:
    np.testing.assert_array_equal(here.data, spilled.data)
    np.testing.assert_array_equal(here.variance, spilled.variance)
    np.testing.assert_array_equal(here.mask, spilled.mask)
    assert here.header["NCOMBINE"] == spilled.header["NCOMBINE"] == N
    # while preparing, the frames went to a scratch folder in workdir; it is gone after
    assert len(seen) == N and all(n and n[0].startswith(".ccdcal-prepared-") for n in seen)
    assert list(folder.iterdir()) == []


def test_spilled_masters_equal_masters_in_memory(raw_sets, tmp_path):
    biases, darks, flats = raw_sets
    seen: list[list[str]] = []

    def look(_n: int) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))

    bias = master_bias(biases)
    _check(bias, master_bias(biases, combine=_small("bias"), workdir=tmp_path, progress=look),
           seen, tmp_path)  # fmt: skip
    seen.clear()
    dark = master_dark(darks, bias=bias)
    spilled = master_dark(darks, bias=bias, combine=_small("dark"), workdir=tmp_path, progress=look)
    _check(dark, spilled, seen, tmp_path)
    assert dark.header["NHOTPIX"] == spilled.header["NHOTPIX"] > 0
    seen.clear()
    flat = master_flat(flats, bias=bias, dark=dark)
    spilled = master_flat(
        flats, bias=bias, dark=dark, combine=_small("flat"), workdir=tmp_path, progress=look
    )
    _check(flat, spilled, seen, tmp_path)


def test_spill_folder_removed_after_an_error(raw_sets, tmp_path):
    biases, _, _ = raw_sets
    odd = Frame(np.zeros((10, 10), np.float32), header=biases[0].header)
    with pytest.raises(CcdcalError, match="differs"):
        master_bias([*biases[:3], odd], combine=_small("bias"), workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_reduce_under_a_small_memory_limit(tmp_path, caplog):
    """A night whose masters do not fit the limit reduces to the same files."""
    from astropy.io import fits

    import ccdcal
    from ccdcal.pipeline import reduce

    ccdcal.simulate.night(tmp_path / "night", seed=2, shape=SHAPE, nbias=10, ndark=10, nflat=10,
                          nlight=4)  # fmt: skip
    raw = tmp_path / "night" / "raw"
    here = reduce(raw, tmp_path / "here", report=False)
    with caplog.at_level("INFO", logger="ccdcal.masters"):
        small = reduce(raw, tmp_path / "small", report=False, memory_limit="3.3MB")
    spilled = [r.message for r in caplog.records if "prepared frames exceed" in r.message]
    assert spilled == []  # the masters read their raw files prepared, band by band
    pairs = [(here.masters[k], small.masters[k]) for k in here.masters]
    pairs += [(here.stacks[k], small.stacks[k]) for k in here.stacks]
    for a, b in pairs:
        with fits.open(a) as x, fits.open(b) as y:
            for u, v in zip(x, y, strict=True):
                np.testing.assert_array_equal(u.data, v.data, err_msg=a.name)
    assert not [p for p in (tmp_path / "small" / "masters").iterdir() if p.is_dir()]
    # a killed run's scratch folder is cleared by the next run
    stale = tmp_path / "small" / "masters" / ".ccdcal-prepared-killed"
    stale.mkdir()
    (stale / "00000.fits").write_bytes(b"x")
    again = reduce(raw, tmp_path / "small", report=False, memory_limit="3.3MB")
    assert not stale.exists() and len(again.reused) == len(small.plan.products)
    with pytest.raises(CcdcalError, match="memory_limit"):
        reduce(raw, tmp_path / "bad", report=False, memory_limit="lots")


@pytest.mark.parametrize("counts", [(1, 1, 1), (5, 3, 5), (25, 15, 15)])
def test_master_variances_are_their_errors(tmp_path, counts):
    """Each master against the simulator's truth: (master - truth) / sqrt(variance) has a
    spread of 1 (within 7 %), with few frames, many, and one of each (whose variance the
    noise model gives, never NaN); a dark's error holds its master bias's."""
    import ccdcal
    from ccdcal.pipeline import reduce

    nbias, ndark, nflat = counts
    night = ccdcal.simulate.night(tmp_path / "n", seed=12, shape=(160, 160), nbias=nbias,
                                  ndark=ndark, nflat=nflat, nlight=1, nstars=5)  # fmt: skip
    result = reduce(night.raw_dir, tmp_path / "out", report=False, only="masters")
    det = night.detector
    bias = Frame.read(result.masters["bias"])
    dark = Frame.read(result.masters["dark_60s"])
    flat = Frame.read(result.masters["flat_V"])
    truth_bias = Frame.read(night.truth["bias"]).data
    truth_dark = Frame.read(night.truth["dark_current"]).data * 60.0 / det.gain
    truth_flat = Frame.read(night.truth["flat_V"]).data
    spreads = {}
    for name, master, truth in (("bias", bias, truth_bias), ("dark", dark, truth_dark),
                                ("flat", flat, truth_flat)):  # fmt: skip
        assert master.variance is not None and np.isfinite(master.variance).all(), name
        good = master.good & ((master.mask & flags.HOT) == 0)
        resid = master.data - truth
        if name == "flat":  # both normalized, each to its own median
            resid = master.data - truth * np.median(master.data[good] / truth[good])
        z = resid[good] / np.sqrt(master.variance[good])
        z = z - np.median(z)
        spreads[name] = 1.4826 * float(np.median(np.abs(z)))
    print(counts, {k: round(v, 3) for k, v in spreads.items()})
    for name, spread in spreads.items():
        assert spread == pytest.approx(1.0, abs=0.07), name


def test_dark_holding_the_bias_counts_its_dark_currents_noise():
    """No master bias: a dark's levels follow the bias pattern (no noise) and its dark
    current (noise): isolated hot pixels, a cluster and a glow keep their noise."""
    from ccdcal.masters import master_dark

    rng = np.random.default_rng(2)
    ny, nx = 200, 200
    yy, xx = np.mgrid[:ny, :nx]
    bias = 1000.0 + 20 * np.sin(2 * np.pi * xx / nx) + 10 * np.cos(2 * np.pi * yy / ny)
    current = np.full((ny, nx), 5.0)
    current[50:54, 50:54] = 800.0  # a cluster
    current += 300.0 * np.exp(-((xx - 190) ** 2 + (yy - 190) ** 2) / (2 * 15.0**2))  # glow
    hot = rng.random((ny, nx)) < 0.01
    current[hot] += rng.uniform(100, 2000, hot.sum())
    frames = [
        Frame((bias + rng.poisson(current) + rng.normal(0, 4.0, (ny, nx))).astype(np.float32),
              header={"EXPTIME": 60.0})
        for _ in range(5)
    ]  # fmt: skip
    dark = master_dark(frames, bias=None)
    one = dark.variance * dark.extras["NCOMBINE"]  # one dark's own noise
    truth = 16.0 + current
    for where in (current[50:54, 50:54] > 0, hot, truth > 100):
        sel = np.zeros((ny, nx), bool)
        if where.shape == (4, 4):
            sel[50:54, 50:54] = True
        else:
            sel = where
        ratio = np.mean(one[sel]) / np.mean(truth[sel])
        assert 0.8 < ratio < 1.25, ratio
    ordinary = current < 6
    assert 0.8 < np.mean(one[ordinary]) / np.mean(truth[ordinary]) < 1.25


@pytest.mark.parametrize("overscan", ["median", "rows", "poly"])
def test_masters_of_raw_files_equal_masters_of_frames(tmp_path, overscan):
    """Masters made from raw files (each prepared band by band as the combine reads it)
    equal masters made from the frames prepared whole, bit for bit: overscan per frame,
    per row or fitted, trim, saturation, bias, a dark scaled to the flats' exposure, 16-bit
    and float32 files."""
    import ccdcal
    from ccdcal.masters import _streamed

    night = ccdcal.simulate.night(
        tmp_path / "night", seed=5, shape=(96, 128), nbias=6, ndark=5, nflat=5, nlight=1,
        overscan=12, bias_drift=3.0, flat_level=60_000.0, dark_exptime=30.0,
        flat_exptime=20.0,
    )  # fmt: skip
    raw = tmp_path / "night" / "raw"
    kinds = {k: sorted(raw.glob(f"{k}_*.fits")) for k in ("bias", "dark", "flat_V")}
    # one bias as float32 (read through another path than the 16-bit files)
    Frame.read(kinds["bias"][0]).write(kinds["bias"][0])
    assert night is not None and all(_streamed(v) for v in kinds.values())

    def both(build, paths, **kw):
        streamed = build(paths, **kw)
        whole = build([Frame.read(p) for p in paths], **kw)
        for a, b in ((streamed.data, whole.data), (streamed.variance, whole.variance),
                     (streamed.mask, whole.mask)):  # fmt: skip
            np.testing.assert_array_equal(a, b)
        assert streamed.header == whole.header
        return streamed

    how = {"overscan": overscan}
    bias = both(master_bias, kinds["bias"], **how)
    assert bias.shape == (96, 128) and "OVERSCAN" in bias.header
    dark = both(master_dark, kinds["dark"], bias=bias, **how)
    flat = both(master_flat, kinds["flat_V"], bias=bias, dark=dark, **how)
    assert flat.header["DARKSCAL"] == pytest.approx(20.0 / 30.0)
    assert (flat.mask & flags.SATURATED).any()  # the ADC clipped the brightest flats


def test_a_dark_flat_file_is_refused(tmp_path):
    biases = [Frame(np.full((8, 8), 500.0) + i) for i in range(3)]
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"flat{i}.fits")
        Frame(np.full((8, 8), 400.0 if i == 1 else 20_000.0), header={"EXPTIME": 1.0}).write(
            paths[-1]
        )
    bias = master_bias(biases)
    with pytest.raises(CcdcalError, match=r"flat1.fits: flat has median"):
        master_flat(paths, bias=bias)
