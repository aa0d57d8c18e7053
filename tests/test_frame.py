"""Frame and FITS I/O: every BITPIX a camera writes, gzip, errors, atomic writes, CCDData."""

from __future__ import annotations

import gzip
import io
import os
import warnings
from unittest import mock

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import CCDData, StdDevUncertainty

from ccdcal import flags
from ccdcal.checksums import verify_checksums
from ccdcal.cli import main
from ccdcal.errors import FrameError
from ccdcal.fitsio import ImageReader
from ccdcal.frame import Frame

VALUES = np.array([[0, 1, 2, 3], [100, 200, 250, 255]], dtype=np.int64)


@pytest.mark.parametrize(
    ("dtype", "bzero"),
    [(np.uint8, None), (np.int16, None), (np.uint16, 32768), (np.int32, None),
     (np.float32, None), (np.float64, None)],
)  # fmt: skip
def test_read_every_bitpix(tmp_path, dtype, bzero):
    path = tmp_path / "x.fits"
    data = (VALUES * (200 if dtype in (np.uint16, np.int32) else 1)).astype(dtype)
    fits.PrimaryHDU(data).writeto(path)
    if bzero is not None:
        assert fits.getval(path, "BZERO") == bzero
    frame = Frame.read(path)
    assert frame.data.dtype == np.float32
    np.testing.assert_array_equal(frame.data, data.astype(np.float32))
    assert "BZERO" not in frame.header and "BITPIX" not in frame.header


def test_uint16_full_range_and_raw_rows(tmp_path):
    path = tmp_path / "u.fits"
    data = np.array([[0, 1, 32767, 32768, 65534, 65535]], dtype=np.uint16)
    fits.PrimaryHDU(data).writeto(path)
    with ImageReader(path) as reader:
        raw = reader.raw_rows()
        assert raw.dtype == np.uint16
        np.testing.assert_array_equal(raw, data)
        np.testing.assert_array_equal(reader.rows(), data.astype(np.float32))


def test_gzip_and_first_image_extension(tmp_path):
    path = tmp_path / "x.fit.gz"
    hdul = fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.arange(12.0).reshape(3, 4))])
    with gzip.open(path, "wb") as fh:
        hdul.writeto(fh)
    frame = Frame.read(path)
    assert frame.shape == (3, 4)
    assert frame.data[2, 3] == 11


def test_write_round_trip_with_mask_variance_and_checksums(tmp_path):
    mask = np.zeros((3, 4), np.uint16)
    mask[1, 2] = flags.HOT | flags.SATURATED
    f = Frame(np.ones((3, 4)), variance=np.full((3, 4), 2.0), mask=mask,
              header={"BUNIT": "electron", "EXPTIME": 5.0})  # fmt: skip
    path = tmp_path / "out" / "a.fits"
    f.write(path, step="test", inputs=["raw.fits"], params={"alpha": 1})
    assert verify_checksums(path)
    g = Frame.read(path)
    np.testing.assert_array_equal(g.mask, mask)
    np.testing.assert_array_equal(g.variance, f.variance)
    history = "\n".join(str(h) for h in g.header["HISTORY"])
    assert "ccdcal" in history and "raw.fits" in history and "alpha=1" in history
    # astropy reads it back with its uncertainty and mask
    ccd = CCDData.read(path)
    assert ccd.unit == "electron"
    assert type(ccd.uncertainty).__name__ == "VarianceUncertainty"
    assert ccd.mask[1, 2] and ccd.mask.sum() == 1


def test_written_headers_raise_no_verify_warning(tmp_path):
    f = Frame(np.ones((2, 2)), header={"OBJECT": "M31"})
    path = tmp_path / "a.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f.write(path, step="test", params={"a_very_long_parameter_name": "x" * 200})
        with fits.open(path, checksum=True) as hdul:
            hdul.verify("exception")


def test_checksum_detects_corruption(tmp_path):
    path = tmp_path / "a.fits"
    Frame(np.arange(2880.0).reshape(48, 60)).write(path)
    assert verify_checksums(path)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert not verify_checksums(path)


def _astropy_verifies(path) -> bool:
    """astropy's verdict on a file's checksums: every HDU has both cards, and opening and
    reading it with ``checksum=True`` warns of none (nor fails)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with open(path, "rb") as handle, fits.open(handle, checksum=True) as hdul:
                for hdu in hdul:
                    if "CHECKSUM" not in hdu.header or "DATASUM" not in hdu.header:
                        return False
                    if hdu.data is not None:
                        np.asarray(hdu.data).sum()
    except (OSError, ValueError, EOFError, TypeError, IndexError):
        return False
    return not any("checksum" in str(w.message).lower() for w in caught)


def test_checksums_are_verified_as_the_fits_standard_says(tmp_path):
    """verify_checksums sums the bytes itself (no decoding). On ccdcal's files its verdict is
    astropy's for each kind of damage (a byte changed in a header, in a data unit or in its
    padding, the file cut short, no checksum cards), except a file grown past its last HDU,
    which astropy reads with a warning and ccdcal takes for no whole output. Files astropy
    wrote with data units that carry a heap (a table of variable-length arrays, a
    tile-compressed image) verify as written and fail with any such damage (astropy's own
    check of those recomputes them from the table it read back, and gives no verdict to
    compare with: it refuses the file as written and takes a changed data byte)."""
    mask = np.zeros((40, 50), np.uint16)
    mask[3, 4] = flags.HOT
    rng = np.random.default_rng(3)
    ours = tmp_path / "ours.fits"
    Frame(rng.normal(100, 10, (40, 50)).astype(np.float32), variance=np.full((40, 50), 4.0),
          mask=mask, extras={"VARCOMMON": np.full((40, 50), 1.0, np.float32)},
          header={"EXPTIME": 5.0}).write(ours, step="test")  # fmt: skip
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(np.ones((3, 3))).writeto(plain)  # no checksum cards
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
        [fits.Column("x", "E", array=np.arange(7.0)), fits.Column("v", "PJ()",
         array=[np.arange(i) for i in range(7)])])]).writeto(table, checksum=True)  # fmt: skip
    packed = tmp_path / "packed.fits"
    fits.HDUList(
        [fits.PrimaryHDU(), fits.CompImageHDU(rng.integers(0, 3000, (64, 64)).astype(np.int16))]
    ).writeto(packed, checksum=True)
    for path in (ours, plain, table, packed):
        good = path.read_bytes()
        damaged = {
            "as written": good,
            "header byte": good[:200] + b"#" + good[201:],
            "data byte": good[: 2880 + 100] + bytes([good[2980] ^ 0x10]) + good[2981:],
            "last byte": good[:-1] + bytes([good[-1] ^ 0x01]),
            "cut in a header": good[:1000],
            "cut in data": good[: len(good) - 3000],
            "grown": good + b"\0" * 2880,
        }
        for what, raw in damaged.items():
            path.write_bytes(raw)
            if path in (ours, plain):
                expected = _astropy_verifies(path) and what != "grown"
            else:
                expected = what == "as written"
            assert verify_checksums(path) == expected, (path.name, what)
        path.write_bytes(good)
    assert _astropy_verifies(ours) and not _astropy_verifies(plain)


def test_checksum_verifier_edge_cases(tmp_path):
    """Random groups (NAXIS1 = 0 left out of their size) verify; a file of zeros (what a
    power cut leaves) is refused at its first block, not read to its end; a header value
    too large for a number makes a refusal, not an error."""
    groups = tmp_path / "groups.fits"
    pars = [np.arange(400.0, dtype=np.float32), np.ones(400, np.float32)]
    data = fits.GroupData(np.arange(400 * 6, dtype=np.float32).reshape(400, 2, 3),
                          parnames=["a", "b"], bitpix=-32, pardata=pars)  # fmt: skip
    fits.HDUList([fits.GroupsHDU(data)]).writeto(groups, checksum=True)
    assert verify_checksums(groups)
    zeros = tmp_path / "zeros.fits"
    with open(zeros, "wb") as handle:
        handle.truncate(64 * 2**20)
    read = []

    class Counted(io.FileIO):
        def read(self, size=-1):
            out = super().read(size)
            read.append(len(out))
            return out

        def readinto(self, buffer):
            got = super().readinto(buffer)
            read.append(got)
            return got

    import ccdcal.checksums

    with mock.patch.object(ccdcal.checksums, "open", Counted, create=True):
        assert not verify_checksums(zeros)
    assert sum(read) == 2880
    huge = tmp_path / "huge.fits"
    fits.PrimaryHDU(np.zeros((2, 2), np.float32)).writeto(huge, checksum=True)
    raw = bytearray(huge.read_bytes())
    at = raw.index(b"NAXIS1  =")
    raw[at : at + 80] = b"NAXIS1  =                1E400".ljust(80)
    huge.write_bytes(bytes(raw))
    assert not verify_checksums(huge)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "a.fits"
    Frame(np.ones((2, 2))).write(path)
    before = path.read_bytes()

    from ccdcal import fitswrite

    real = fitswrite.write_parts

    def boom(fd, parts):  # the disk fills up halfway through the file
        real(fd, parts[:1])
        raise OSError("disk full")

    monkeypatch.setattr(fitswrite, "write_parts", boom)
    with pytest.raises(OSError, match="disk full"):
        Frame(np.zeros((2, 2))).write(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.fits"]  # no temporary file left behind


def test_uint16_output_rounds_and_clips(tmp_path):
    path = tmp_path / "adc.fits"
    Frame(np.array([[-5.0, 1.4, 1.6, 70000.0]])).write(path, dtype="uint16")
    assert fits.getval(path, "BITPIX") == 16 and fits.getval(path, "BZERO") == 32768
    np.testing.assert_array_equal(Frame.read(path).data, [[0, 1, 2, 65535]])


def test_deterministic_write_is_byte_identical(tmp_path):
    f = Frame(np.arange(6.0).reshape(2, 3), header={"EXPTIME": 1.0})
    f.write(tmp_path / "a.fits", step="s", deterministic=True)
    f.write(tmp_path / "b.fits", step="s", deterministic=True)
    assert (tmp_path / "a.fits").read_bytes() == (tmp_path / "b.fits").read_bytes()


def test_ccddata_round_trip():
    ccd = CCDData(np.ones((2, 3)), unit="adu", uncertainty=StdDevUncertainty(np.full((2, 3), 2.0)),
                  mask=np.array([[True, False, False], [False, False, False]]))  # fmt: skip
    f = Frame.from_ccddata(ccd)
    assert f.variance[0, 0] == 4.0 and f.mask[0, 0] == flags.BAD and f.header["BUNIT"] == "adu"
    back = f.to_ccddata()
    np.testing.assert_allclose(back.uncertainty.array, 4.0)
    assert back.mask[0, 0] and not back.mask[0, 1]


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"", "empty file"), (b"hello, not fits" * 300, "not a FITS file")],
)
def test_bad_files_give_one_line_error(tmp_path, content, problem):
    path = tmp_path / "x.fits"
    path.write_bytes(content)
    with pytest.raises(FrameError, match=problem) as info:
        Frame.read(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_truncated_file(tmp_path):
    path = tmp_path / "t.fits"
    fits.PrimaryHDU(np.ones((100, 100), np.float32)).writeto(path)
    path.write_bytes(path.read_bytes()[:6000])
    with pytest.raises(FrameError, match="truncated"):
        Frame.read(path)


def test_no_image(tmp_path):
    path = tmp_path / "table.fits"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with pytest.raises(FrameError, match="no image"):
        Frame.read(path)


def test_cli_bad_file_one_line_and_nonzero(tmp_path, capsys):
    path = tmp_path / "bad.fits"
    path.write_text("nope")
    code = main(["combine", str(path), str(path), "-o", str(tmp_path / "o.fits")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err == f"ccdcal: error: {path}: not a FITS file"


def test_frame_rejects_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        Frame(np.ones(3))
    with pytest.raises(ValueError, match="variance shape"):
        Frame(np.ones((2, 2)), variance=np.ones((3, 3)))


def test_outputs_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        Frame(np.ones((2, 2))).write(tmp_path / "a.fits")
    finally:
        os.umask(old)
    assert (tmp_path / "a.fits").stat().st_mode & 0o777 == 0o644


def test_ccddata_mask_holds_only_excluding_flags():
    mask = np.array([[flags.HOT, flags.SATURATED]], np.uint16)
    ccd = Frame(np.ones((1, 2)), mask=mask).to_ccddata()
    assert ccd.mask.tolist() == [[False, True]]


def test_astropy_reads_the_mask_ccdcal_means(tmp_path):
    """On a reduced simulated night, ``CCDData.read`` masks exactly the pixels
    :meth:`Frame.to_ccddata` masks (HOT pixels are flagged but used, so a mask of every
    flag would mask more), reads the bit flags from FLAGS, and warns of nothing (MJD-OBS)."""
    import ccdcal

    ccdcal.simulate.night(tmp_path / "n", seed=3, shape=(96, 96), nbias=4, ndark=3, nflat=3,
                          nlight=3)  # fmt: skip
    result = ccdcal.reduce(tmp_path / "n" / "raw", tmp_path / "o", report=False)
    outputs = [result.calibrated[0], *result.masters.values(), *result.stacks.values()]
    hot_but_used = 0
    for path in [p for p in outputs if p.suffix == ".fits"]:
        frame = Frame.read(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no 'datfix' (MJD-OBS), no unit or WCS fix
            ccd = CCDData.read(path, hdu_flags="FLAGS")
        assert ccd.mask is not None, path
        np.testing.assert_array_equal(ccd.mask, frame.to_ccddata().mask, err_msg=str(path))
        np.testing.assert_array_equal(ccd.flags, frame.mask, err_msg=str(path))
        hot_but_used += int((((frame.mask & flags.HOT) != 0) & ~ccd.mask).sum())
        if "DATE-OBS" in ccd.header:
            assert "MJD-OBS" in ccd.header
    assert hot_but_used > 0  # the night has hot pixels that a mask of every flag would mask


def test_old_files_with_flags_in_mask_read_as_before(tmp_path):
    """Files of earlier versions hold the bit flags in MASK (no FLAGS): read as flags, by
    Frame.read and by the combine's file reader (direct and through astropy)."""
    from ccdcal import combine

    data = np.ones((4, 5), np.float32)
    old = np.zeros((4, 5), np.uint16)
    old[1, 1], old[2, 3] = flags.HOT, flags.SATURATED
    path = tmp_path / "old.fits"
    fits.HDUList([fits.PrimaryHDU(data), fits.ImageHDU(old, name="MASK")]).writeto(path)
    np.testing.assert_array_equal(Frame.read(path).mask, old)
    zipped = tmp_path / "old.fits.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    for p in (path, zipped):
        stack = combine([p, p], method="mean")
        assert stack.extras["NCOMBINE"][2, 3] == 0 and stack.extras["NCOMBINE"][1, 1] == 2


def test_the_combine_reads_the_flags_not_the_mask(tmp_path):
    """Where MASK and FLAGS disagree, the flags decide (both ways of reading a file)."""
    from ccdcal import combine

    data = np.ones((4, 5), np.float32)
    bits = np.zeros((4, 5), np.uint16)
    bits[0, 4] = flags.COSMIC_RAY
    hdul = fits.HDUList([fits.PrimaryHDU(data), fits.ImageHDU(np.zeros((4, 5), np.uint8),
                         name="MASK"), fits.ImageHDU(bits, name="FLAGS")])  # fmt: skip
    path = tmp_path / "new.fits"
    hdul.writeto(path)
    zipped = tmp_path / "new.fits.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    for p in (path, zipped):
        np.testing.assert_array_equal(Frame.read(p).mask, bits)
        stack = combine([p, p, p], method="mean")
        assert stack.extras["NCOMBINE"][0, 4] == 0 and stack.extras["NCOMBINE"][0, 0] == 3


def test_mjd_obs_from_date_obs(tmp_path):
    """MJD-OBS written from DATE-OBS (joined to TIME-OBS where it holds the date alone), so
    that astropy's WCS finds them consistent and warns of nothing."""
    from astropy.time import Time
    from astropy.wcs import WCS

    for header, iso in [
        ({"DATE-OBS": "2013-07-04T05:40:16"}, "2013-07-04T05:40:16"),
        ({"DATE-OBS": "2013-07-04", "TIME-OBS": "05:40:16.5"}, "2013-07-04T05:40:16.5"),
    ]:
        path = tmp_path / "a.fits"
        Frame(np.ones((2, 2)), header=header).write(path)
        written = fits.getheader(path)
        assert written["DATE-OBS"] == iso
        assert written["MJD-OBS"] == pytest.approx(Time(iso, scale="utc").mjd, abs=1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            WCS(written)
            CCDData.read(path, unit="adu")
    # a header that has MJD-OBS keeps it; one without a date gets none
    Frame(np.ones((2, 2)), header={"DATE-OBS": "2013-07-04T05:40:16", "MJD-OBS": 1.5}).write(path)
    assert fits.getheader(path)["MJD-OBS"] == 1.5
    Frame(np.ones((2, 2))).write(path)
    assert "MJD-OBS" not in fits.getheader(path)
