"""ccdcal's FITS writer gives astropy's bytes, checksums included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.io import fits

from ccdcal import checksums, fitswrite
from ccdcal.frame import Frame


def _astropy(hdul: fits.HDUList, path, when: str) -> bytes:
    for hdu in hdul:
        hdu.add_checksum(when=when)
    hdul.writeto(path, overwrite=True)
    return path.read_bytes()


def _ours(hdul: fits.HDUList, path, when: str) -> bytes:
    fitswrite.write(hdul, path, when=when)
    return path.read_bytes()


ARRAYS = {
    "float32": np.random.default_rng(0).normal(0, 1e4, (37, 41)).astype(np.float32),
    "float64": np.random.default_rng(1).normal(0, 1e4, (5, 3)),
    "int16": np.arange(-7, 8, dtype=np.int16).reshape(3, 5),
    "uint16": (np.arange(15, dtype=np.uint16) * 4099).reshape(3, 5),  # top bits set too
    "int32": np.arange(-3, 4, dtype=np.int32) * 123456789,
    "uint8": (np.arange(15, dtype=np.uint8) * 17).reshape(3, 5),  # 15 bytes: a word padded
    "uint8 over chunks": np.arange(fitswrite.CHUNK + 7, dtype=np.uint32).astype(np.uint8),
    "big-endian float32": np.arange(6, dtype=">f4").reshape(2, 3),
    # more values than one chunk, an odd count: the 16-bit pairs cross the chunks
    "uint16 over chunks": np.arange(fitswrite.CHUNK * 2 + 3, dtype=np.uint32).astype(np.uint16),
    "float32 over chunks": np.linspace(-1, 1, fitswrite.CHUNK + 5, dtype=np.float32),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_bytes_equal_astropys(tmp_path, name):
    def hdul() -> fits.HDUList:
        header = fits.Header({"OBJECT": "M 31", "EXPTIME": 60.0})
        return fits.HDUList([fits.PrimaryHDU(header=header), fits.ImageHDU(ARRAYS[name], name="X")])

    assert _ours(hdul(), tmp_path / "b.fits", "t") == _astropy(hdul(), tmp_path / "a.fits", "t")


def test_a_calibrated_frame_equals_astropys_and_verifies(tmp_path):
    rng = np.random.default_rng(2)
    data = rng.normal(100, 10, (64, 96)).astype(np.float32)
    mask = np.where(rng.random(data.shape) < 0.05, 2**15 + 8, 0).astype(np.uint16)
    extras = {"VARCOMMON": data / 10, "NCOMBINE": np.full(data.shape, 3, np.int16)}
    frame = Frame(data, variance=data / 2, mask=mask, header={"BUNIT": "electron"}, extras=extras)
    ours = _ours(frame.to_hdulist(), tmp_path / "b.fits", "t")
    assert ours == _astropy(frame.to_hdulist(), tmp_path / "a.fits", "t")
    fitswrite.write(frame.to_hdulist(), tmp_path / "c.fits")  # astropy's time stamps
    with fits.open(tmp_path / "a.fits") as hdul:
        sums = [h.header["DATASUM"] for h in hdul]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a wrong checksum is a warning
        with fits.open(tmp_path / "c.fits", checksum=True) as hdul:
            assert [h.header["DATASUM"] for h in hdul] == sums
    back = Frame.read(tmp_path / "c.fits")
    np.testing.assert_array_equal(back.mask, mask)
    np.testing.assert_array_equal(back.variance, data / 2)


def test_what_it_does_not_write_astropy_does(tmp_path):
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="J", array=[1, 2])])

    def hdul() -> fits.HDUList:
        return fits.HDUList([fits.PrimaryHDU(np.arange(4, dtype=np.int8)), table.copy()])

    assert _ours(hdul(), tmp_path / "b.fits", "t") == _astropy(hdul(), tmp_path / "a.fits", "t")


def test_encoding_follows_the_fits_standard():
    # against astropy's own encoder, over values whose bytes reach the excluded characters
    from astropy.io.fits.hdu.base import _ValidHDU

    hdu = fits.PrimaryHDU()
    for value in (0, 1, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF, 123456789):
        assert checksums.encode(value) == _ValidHDU._char_encode(hdu, value)
