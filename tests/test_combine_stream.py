"""Streaming from FITS files under a memory limit, integer files, ccdproc, and the CLI."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
from astropy.io import fits

from ccdcal import Frame, flags
from ccdcal.cli import main
from ccdcal.stacking import MinMaxClip, SigmaClip, combine
from ccdcal.stacking.stream import OPEN_FILE_BYTES, OUTPUT_BYTES_PER_PIXEL, plan_rows


@pytest.fixture(scope="module")
def fits_stack(tmp_path_factory):
    """24 frames of 640x512 float32 with masks and cosmic rays, as files and in memory."""
    folder = tmp_path_factory.mktemp("stack")
    rng = np.random.default_rng(4)
    n, shape = 24, (640, 512)
    data = rng.normal(500, 12, (n, *shape)).astype(np.float32)
    hits = rng.random(data.shape) < 0.002
    data[hits] += 3000
    masks = np.where(rng.random(data.shape) < 0.01, flags.SATURATED, 0).astype(np.uint16)
    paths = []
    for i in range(n):
        p = folder / f"f{i:02d}.fits"
        Frame(data[i], mask=masks[i], header={"EXPTIME": 10.0, "IMAGETYP": "LIGHT"}).write(p)
        paths.append(p)
    return paths, data, masks


@pytest.mark.parametrize("reject", [None, SigmaClip(), MinMaxClip()], ids=repr)
@pytest.mark.parametrize("method", ["mean", "median"])
def test_streamed_equals_in_memory(fits_stack, reject, method):
    paths, data, masks = fits_stack
    stack_bytes = data.nbytes
    limit = stack_bytes // 4
    frames = [Frame(d, mask=m) for d, m in zip(data, masks, strict=True)]
    mem = combine(frames, method=method, reject=reject)
    rows = plan_rows(
        len(paths), data.shape[1:], memory_limit=limit, has_mask=True, has_variance=False,
        keep_rejected=False, open_files=len(paths),
    )  # fmt: skip
    assert rows < data.shape[1] // 4  # several bands
    streamed = combine(paths, method=method, reject=reject, memory_limit=limit)
    np.testing.assert_array_equal(streamed.data, mem.data)
    np.testing.assert_array_equal(streamed.variance, mem.variance)
    np.testing.assert_array_equal(streamed.mask, mem.mask)
    for key in ("NCOMBINE", "NREJLO", "NREJHI"):
        np.testing.assert_array_equal(streamed.extras[key], mem.extras[key])
    assert streamed.header["IMAGETYP"] == "LIGHT"
    assert any("f00.fits" in str(h) for h in streamed.header["HISTORY"])


def test_streaming_peak_memory_within_limit(fits_stack):
    paths, data, _ = fits_stack
    limit = data.nbytes // 4
    # imports, caches and the sigma clip's kernel: compiled within the traced combine (where
    # no earlier test of this process compiled it), numba's own memory counted as the stack's
    combine(paths[:2], reject=SigmaClip(), memory_limit=limit)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = combine(paths, reject=SigmaClip(), memory_limit=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= limit, (peak, limit)
    assert out.data.shape == data.shape[1:]


def test_keep_rejected_streamed(fits_stack):
    paths, data, masks = fits_stack
    out = combine(paths, reject=SigmaClip(), keep_rejected=True, memory_limit=data.nbytes)
    rej = out.extras["REJECTED"]
    assert rej.shape == data.shape
    assert np.all(rej[(masks & flags.EXCLUDE) != 0] == 1)
    np.testing.assert_array_equal(rej.sum(0), len(paths) - out.extras["NCOMBINE"])


def test_uint16_bzero_files_do_not_overflow(tmp_path):
    values = [65000, 65535, 60000]
    paths = []
    for i, v in enumerate(values):
        p = tmp_path / f"u{i}.fits"
        Frame(np.full((8, 6), v)).write(p, dtype="uint16")
        with fits.open(p) as h:
            assert h[0].header["BITPIX"] == 16 and h[0].header["BZERO"] == 32768
        paths.append(p)
    out = combine(paths, method="sum")
    np.testing.assert_array_equal(out.data, float(sum(values)))
    out = combine(paths)
    np.testing.assert_allclose(out.data, np.mean(values), rtol=1e-7)
    per_row = 3 * 6 * 4 + 2 * 6 * 12
    limit = 8 * 6 * OUTPUT_BYTES_PER_PIXEL + 3 * OPEN_FILE_BYTES + 3 * per_row
    assert (
        plan_rows(
            3,
            (8, 6),
            memory_limit=limit,
            has_mask=False,
            has_variance=False,
            keep_rejected=False,
            open_files=3,
        )
        == 3
    )
    out = combine(paths, method="median", memory_limit=limit)
    np.testing.assert_array_equal(out.data, 65000.0)


@pytest.mark.parametrize(
    ("stored", "keywords"),
    [
        ("int16", {}),
        ("int16", {"BZERO": 32768}),
        ("int16", {"BSCALE": 0.25, "BZERO": -100.5, "BLANK": -7}),
        ("float32", {}),
        ("float64", {}),  # not decoded directly: astropy reads it
        ("float32", {"BSCALE": 2.0}),  # likewise
    ],
    ids=repr,
)
def test_files_decode_as_astropy_reads_them(tmp_path, stored, keywords):
    """Bands decoded from the mapped bytes equal astropy's scaled data, BLANK as NaN."""
    from ccdcal.stacking.stream import FileSource

    rng = np.random.default_rng(8)
    raw = rng.integers(-32768, 32767, (37, 23)).astype(stored)
    raw.flat[::11] = -7
    path = tmp_path / "x.fits"
    hdu = fits.PrimaryHDU(raw)
    hdu.header.update(keywords)
    hdu.writeto(path)
    with fits.open(path) as h:
        want = np.asarray(h[0].data, np.float32)  # astropy scales and makes BLANK NaN
    source = FileSource(path)
    decoded = stored == "int16" or (stored == "float32" and not keywords)
    assert (source._layout is not None) == decoded  # the direct path is the one under test
    out = np.full((37, 23), 1e30, np.float32)
    for y0 in range(0, 37, 10):
        source.read_into(y0, min(37, y0 + 10), out[y0:])
    source.close()
    np.testing.assert_array_equal(out, want)
    if "BLANK" in keywords:
        assert np.isnan(out.flat[::11]).all()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
@pytest.mark.parametrize("dtype", ["uint16", None])  # None: float32
def test_one_open_file_per_plain_input(tmp_path, dtype):
    """A combine of a thousand raw frames must stay within the usual limit of 1024 files."""
    from ccdcal.stacking.stream import FileSource

    paths = []
    for i in range(30):
        paths.append(tmp_path / f"u{i}.fits")
        Frame(np.full((6, 5), i + 1, np.float32)).write(paths[-1], dtype=dtype)
    before = len(os.listdir("/proc/self/fd"))
    sources = [FileSource(p) for p in paths]
    assert len(os.listdir("/proc/self/fd")) - before == len(paths)
    for source in sources:
        source.close()
    assert len(os.listdir("/proc/self/fd")) == before
    out = combine(paths, scale="median")  # the scaling sample comes from the mapping too
    np.testing.assert_allclose(out.data, 15.5, rtol=1e-6)  # scaled to the mean level


def test_truncated_file_named_at_open(tmp_path):
    from ccdcal.errors import FrameError
    from ccdcal.stacking.stream import FileSource

    path = tmp_path / "cut.fits"
    fits.PrimaryHDU(np.zeros((200, 100), np.int16)).writeto(path)
    path.write_bytes(path.read_bytes()[: 2880 + 100 * 100 * 2])
    with pytest.raises(FrameError, match=r"cut\.fits.*truncated"):
        FileSource(path)


def test_variance_planes_from_files(tmp_path):
    rng = np.random.default_rng(2)
    paths = []
    for i in range(4):
        p = tmp_path / f"v{i}.fits"
        Frame(rng.normal(0, 1, (5, 5)), variance=np.full((5, 5), 1.0 + i)).write(p)
        paths.append(p)
    out = combine(paths, weights="variance")
    np.testing.assert_allclose(out.variance, 1 / sum(1 / (1.0 + i) for i in range(4)), rtol=1e-6)


def test_median_equals_ccdproc(fits_stack, tmp_path):
    ccdproc = pytest.importorskip("ccdproc")
    from astropy.nddata import CCDData

    _paths, data, _ = fits_stack
    plain = []
    for i in range(7):
        p = tmp_path / f"p{i}.fits"
        CCDData(data[i], unit="adu").write(p)
        plain.append(str(p))
    theirs = ccdproc.combine(plain, method="median", unit="adu", dtype=np.float32)
    ours = combine(plain, method="median")
    np.testing.assert_allclose(ours.data, np.asarray(theirs.data), rtol=1e-6)


def test_sigma_clipped_mean_equals_ccdproc(fits_stack, tmp_path):
    ccdproc = pytest.importorskip("ccdproc")
    from astropy.nddata import CCDData

    _paths, data, _ = fits_stack
    plain = []
    for i in range(9):
        p = tmp_path / f"s{i}.fits"
        CCDData(data[i], unit="adu").write(p)
        plain.append(str(p))
    theirs = ccdproc.combine(
        plain,
        method="average",
        unit="adu",
        sigma_clip=True,
        sigma_clip_low_thresh=3,
        sigma_clip_high_thresh=3,
        sigma_clip_func=np.ma.median,
        sigma_clip_dev_func=np.ma.std,
        dtype=np.float64,
    )
    # ccdproc clips once (maxiters=1) with the median and std of all values
    ours = combine(plain, reject=SigmaClip(low=3, high=3, maxiters=1), nkeep=0)
    np.testing.assert_allclose(ours.data, np.asarray(theirs.data), rtol=1e-6)


# --------------------------------------------------------------------------- CLI


def test_cli_combine(fits_stack, tmp_path, capsys):
    paths, _data, _ = fits_stack
    out = tmp_path / "out.fits"
    argv = [*map(str, paths[:6]), "-o", str(out), "--method", "mean", "--reject", "sigclip"]
    assert main(["combine", *argv, "--sigma", "3", "--memory-limit", "12MB"]) == 0
    result = Frame.read(out)
    expect = combine(paths[:6], reject=SigmaClip(low=3, high=3))
    np.testing.assert_array_equal(result.data, expect.data)
    hist = " ".join(str(h) for h in result.header["HISTORY"])
    assert hist.count("ccdcal") == 1 and "f05.fits" in hist
    assert set(result.extras) == {"NCOMBINE", "NREJLO", "NREJHI"}


@pytest.mark.parametrize(
    "extra",
    [
        ["--reject", "minmax", "--nlow", "0", "--nhigh", "2"],
        ["--reject", "pclip", "--low", "20", "--high", "80"],
        ["--reject", "winsorized", "--low", "2.5"],
        ["--reject", "ccdclip", "--gain", "1.5", "--rdnoise", "8"],
        ["--reject", "esd", "--max-outliers", "2"],
        ["--reject", "sigclip", "--rule", "siril", "--maxiters", "0", "--spread", "mad_std"],
        ["--method", "median", "--scale", "median", "--zero", "median", "--keep-rejected"],
        ["--method", "sum", "--scale", "exposure", "--nkeep", "3"],
    ],
)
def test_cli_options(fits_stack, tmp_path, extra):
    paths, _, _ = fits_stack
    out = tmp_path / "o.fits"
    assert main(["-q", "combine", *map(str, paths[:5]), "-o", str(out), *extra]) == 0
    assert Frame.read(out).data.shape == (640, 512)


def test_cli_errors(fits_stack, tmp_path, capsys):
    paths, _, _ = fits_stack
    bad = tmp_path / "bad.fits"
    bad.write_text("nope")
    assert main(["combine", str(paths[0]), str(bad), "-o", str(tmp_path / "o.fits")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.fits" in err
    other = tmp_path / "small.fits"
    Frame(np.zeros((3, 3))).write(other)
    assert main(["combine", str(paths[0]), str(other), "-o", str(tmp_path / "o.fits")]) == 1
    assert "small.fits: shape (3, 3) differs" in capsys.readouterr().err
    assert main(["combine", str(paths[0]), "-o", "x.fits", "--reject", "ccdclip"]) == 1
    assert "--gain" in capsys.readouterr().err


def test_cli_help_lists_every_algorithm(capsys):
    with pytest.raises(SystemExit):
        main(["combine", "--help"])
    text = capsys.readouterr().out
    for name in ("sigclip", "minmax", "pclip", "winsorized", "ccdclip", "esd"):
        assert f"  {name} " in text
