"""Finding and classifying frames from their headers; the two real nights."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ccdcal.collection import Collection, FrameInfo, classify, find_fits, read_info, scan
from ccdcal.config import Config, loads_config
from ccdcal.errors import CcdcalError, FrameError


def write(path: Path, header: dict | None = None, *, shape=(4, 6), dtype=np.uint16) -> Path:
    """A tiny FITS file with the given header keywords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hdu = fits.PrimaryHDU(np.zeros(shape, dtype), header=fits.Header(header or {}))
    if path.name.endswith(".gz"):
        hdul = fits.HDUList([hdu])
        raw = path.with_name(path.name[:-3])
        hdul.writeto(raw)
        path.write_bytes(gzip.compress(raw.read_bytes()))
        raw.unlink()
    elif path.name.endswith(".fz"):
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(hdu.data, header=hdu.header)]).writeto(
            path
        )
    else:
        hdu.writeto(path)
    return path


def info_of(tmp_path: Path, header: dict, config: Config | None = None, **kw) -> FrameInfo:
    path = write(tmp_path / "x.fits", header, **kw)
    return read_info(path, config=config)


# ---------------------------------------------------------------------------- kinds
@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("BIAS", "bias"), ("Bias", "bias"), ("ZERO", "bias"), ("zero", "bias"),
        ("Bias Frame", "bias"), ("DARK", "dark"), ("Dark Frame", "dark"),
        ("FLAT", "flat"), ("SKYFLAT", "flat"), ("DOMEFLAT", "flat"), ("TWIFLAT", "flat"),
        ("Flat Field", "flat"), ("Flat Frame", "flat"), ("SKY_FLAT", "flat"),
        ("LIGHT", "light"), ("OBJECT", "light"), ("SCIENCE", "light"), ("Light Frame", "light"),
        ("  light  frame ", "light"),
        # not in the table, but containing exactly one kind's word
        ("Twilight Flats", "flat"), ("Master Bias", "bias"), ("DARKCURRENT", "dark"),
    ],
)  # fmt: skip
def test_every_alias(tmp_path, value, kind):
    info = info_of(tmp_path, {"IMAGETYP": value, "EXPTIME": 1.0})
    assert info.kind == kind
    assert info.reason.startswith(f"IMAGETYP={' '.join(value.split())!r} -> {kind}")
    assert info.imagetyp == " ".join(value.split())


@pytest.mark.parametrize("key", ["OBSTYPE", "FRAMETYP", "FRAME"])
def test_type_keyword_fallbacks(tmp_path, key):
    info = info_of(tmp_path, {key: "Dark Frame", "EXPTIME": 10})
    assert info.kind == "dark" and info.reason.startswith(f"{key}='Dark Frame' -> dark")


def test_first_recognized_type_wins(tmp_path):
    info = info_of(tmp_path, {"IMAGETYP": "FOO", "OBSTYPE": "FLAT", "EXPTIME": 1})
    assert info.kind == "flat" and "OBSTYPE='FLAT' -> flat" in info.reason


def test_unknown_and_ambiguous_types(tmp_path):
    info = info_of(tmp_path, {"IMAGETYP": "FOCUS"})
    assert info.kind == "unknown"
    assert "IMAGETYP='FOCUS': unknown type (map it in [types])" in info.reason
    assert info_of(tmp_path / "b", {"IMAGETYP": "dark flat"}).kind == "unknown"
    none = info_of(tmp_path / "c", {"EXPTIME": 3})
    assert none.kind == "unknown" and "no IMAGETYP/OBSTYPE/FRAMETYP/FRAME keyword" in none.reason


def test_config_types_and_keywords(tmp_path):
    cfg = loads_config(
        '[types]\n"Twilight Sky" = "flat"\nFOCUS = "light"\n'
        '[keywords]\nimagetyp = ["KIND"]\nfilter = ["WHEEL"]\n'
    )
    assert info_of(tmp_path, {"KIND": "twilight_sky"}, cfg).kind == "flat"
    assert info_of(tmp_path / "b", {"KIND": "Focus", "WHEEL": "Ha"}, cfg).filter == "Ha"
    assert info_of(tmp_path / "c", {"IMAGETYP": "BIAS"}, cfg).kind == "unknown"


# ---------------------------------------------------------------------------- values
@pytest.mark.parametrize("key", ["EXPTIME", "EXPOSURE", "ITIME", "EXP_TIME", "DARKTIME"])
def test_exptime_fallbacks(tmp_path, key):
    info = info_of(tmp_path, {"IMAGETYP": "LIGHT", key: 30, "OBJECT": "M1"})
    assert info.exptime == 30.0
    assert ("exptime from" in info.reason) == (key != "EXPTIME")


def test_exptime_strings_and_missing(tmp_path):
    assert info_of(tmp_path, {"IMAGETYP": "DARK", "EXPTIME": " 30 "}).exptime == 30.0
    assert info_of(tmp_path / "b", {"IMAGETYP": "DARK", "EXPTIME": "15 s"}).exptime == 15.0
    bad = info_of(tmp_path / "c", {"IMAGETYP": "DARK", "EXPTIME": "long", "EXPOSURE": 5})
    assert bad.exptime == 5.0 and "EXPTIME='long' is not a number" in bad.reason
    light = info_of(tmp_path / "d", {"IMAGETYP": "LIGHT", "OBJECT": "M1"})
    assert light.exptime is None and "no exposure time (EXPTIME, EXPOSURE" in light.reason
    bias = info_of(tmp_path / "e", {"IMAGETYP": "BIAS"})
    assert bias.exptime is None and bias.reason == "IMAGETYP='BIAS' -> bias"


@pytest.mark.parametrize("key", ["FILTER", "FILTNAME", "FILTER1", "INSFILTE", "FILT"])
def test_filter_fallbacks(tmp_path, key):
    info = info_of(tmp_path, {"IMAGETYP": "FLAT", "EXPTIME": 1, key: "  Johnson   V "})
    assert info.filter == "Johnson V"
    if key == "FILTER":
        assert info.reason == "IMAGETYP='FLAT' -> flat"
    else:
        assert f"filter from {key} (no FILTER)" in info.reason


def test_blank_filter_falls_through(tmp_path):
    info = info_of(tmp_path, {"IMAGETYP": "FLAT", "FILTER": "  ", "FILTNAME": "VR"})
    assert info.filter == "VR"


def test_bias_and_dark_carry_no_filter(tmp_path):
    info = info_of(tmp_path, {"IMAGETYP": "BIAS", "EXPTIME": 0, "FILTER": "R"})
    assert (
        info.filter is None
        and info.reason == "IMAGETYP='BIAS' -> bias; FILTER='R' ignored for bias"
    )
    dark = info_of(tmp_path / "b", {"IMAGETYP": "DARK", "EXPTIME": 5, "FILTNAME": "VR"})
    assert dark.filter is None and "FILTNAME='VR' ignored for dark" in dark.reason


@pytest.mark.parametrize("key", ["OBJECT", "OBJNAME", "TARGNAME", "FIELD"])
def test_object_fallbacks(tmp_path, key):
    info = info_of(tmp_path, {"IMAGETYP": "LIGHT", "EXPTIME": 1, key: " SA 112 "})
    assert info.object == "SA 112"
    assert ("object from" in info.reason) == (key != "OBJECT")
    missing = info_of(tmp_path / "b", {"IMAGETYP": "LIGHT", "EXPTIME": 1})
    assert missing.object is None
    assert "no object (OBJECT, OBJNAME, TARGNAME, FIELD)" in missing.reason


def test_detector_values_and_dates(tmp_path):
    info = info_of(
        tmp_path,
        {
            "IMAGETYP": "LIGHT",
            "EGAIN": 1.5,
            "READNOIS": "7.5",
            "MAXLIN": 60000,
            "DATE-OBS": "2019-03-26",
            "UTC-OBS": "02:02:50.58",
            "BIASSEC": "[5:6,1:4]",
            "TRIMSEC": " [1:4,1:4] ",
        },
    )
    assert (info.gain, info.rdnoise, info.saturation) == (1.5, 7.5, 60000.0)
    assert info.date_obs == "2019-03-26T02:02:50.58"
    assert (info.biassec, info.trimsec, info.datasec) == ("[5:6,1:4]", "[1:4,1:4]", None)
    assert info.section("biassec") == (slice(0, 4), slice(4, 6))
    assert info.section("DATASEC") is None
    lowell = info_of(tmp_path / "b", {"AGAIN_01": 4.95, "ARDNS_01": 9.3, "GAIN": 0})
    assert (lowell.gain, lowell.rdnoise) == (4.95, 9.3)
    assert "GAIN=0 is not a valid gain" in lowell.reason
    assert info_of(tmp_path / "c", {"DATE-OBS": "2013-07-04T05:42:02"}).date_obs == (
        "2013-07-04T05:42:02"
    )


def test_bad_section_is_reported_lazily_naming_file_and_keyword(tmp_path):
    info = info_of(tmp_path, {"IMAGETYP": "BIAS", "BIASSEC": "[5:9,1:4]"})
    assert info.kind == "bias"  # scanning does not parse sections
    with pytest.raises(FrameError, match=r"x.fits: BIASSEC = '\[5:9,1:4\]': section out of range"):
        info.section("biassec")
    with pytest.raises(ValueError):
        info.section("overscan")


@pytest.mark.parametrize(
    ("dtype", "header", "expected"),
    [
        (np.uint8, {}, "uint8"),
        (np.int16, {}, "int16"),
        (np.uint16, {}, "uint16"),
        (np.int32, {}, "int32"),
        (np.uint32, {}, "uint32"),
        (np.float32, {}, "float32"),
        (np.float64, {}, "float64"),
    ],
)
def test_dtype_from_bitpix_and_bzero(tmp_path, dtype, header, expected):
    assert info_of(tmp_path, header, dtype=dtype).dtype == expected


def test_scaled_integers_are_float(tmp_path):
    path = tmp_path / "s.fits"
    hdu = fits.PrimaryHDU(np.zeros((2, 2), np.int16))
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 10.0
    hdu.writeto(path)
    assert read_info(path).dtype == "float32"


# ---------------------------------------------------------------------------- rules
def test_rules_set_filter_kind_and_exptime(tmp_path):
    cfg = loads_config(
        """
[[rules]]
match = { path = "flat/*", OBJECT = "*twil flat*" }
set = { filter = "VR" }
[[rules]]
match = { OBJECT = "V twil*" }
set = { filter = "V" }
[[rules]]
match = { path = "*focus*" }
set = { kind = "unknown" }
[[rules]]
match = { path = "junk/*" }
set = { kind = "bias", filter = "none", exptime = 0 }
"""
    )
    write(tmp_path / "flat/a.fits", {"IMAGETYP": "SKYFLAT", "OBJECT": "VR twil flat"})
    write(tmp_path / "flat/b.fits", {"IMAGETYP": "SKYFLAT", "OBJECT": "V twil flat"})
    write(tmp_path / "focus_01.fits", {"IMAGETYP": "LIGHT", "OBJECT": "star"})
    write(tmp_path / "junk/c.fits", {"IMAGETYP": "LIGHT"})
    c = scan(tmp_path, config=cfg)
    a, b, focus, junk = c.frames
    assert (a.filter, b.filter) == ("VR", "V")  # the later rule overrides the earlier
    assert "rule 1 (path='flat/*', OBJECT='*twil flat*') set filter='VR'" in a.reason
    assert "rule 2" in b.reason and "rule 1" in b.reason
    assert focus.kind == "unknown" and "rule 3" in focus.reason
    assert (junk.kind, junk.filter, junk.exptime) == ("bias", "none", 0.0)  # a rule's filter stays


# ---------------------------------------------------------------------------- files
def test_finds_fits_names_case_insensitively_recursively_sorted(tmp_path):
    for name in [
        "b/A.FITS",
        "a.fit",
        "c.Fts",
        "d.fits.gz",
        "e.FIT.GZ",
        "f.fits.fz",
        "z/y/deep.fits",
    ]:
        write(tmp_path / name, {"IMAGETYP": "BIAS"})
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "g.fits.bak").write_text("x")
    write(tmp_path / ".hidden.fits")
    write(tmp_path / ".git" / "h.fits")
    rel = [p.relative_to(tmp_path).as_posix() for p in find_fits(tmp_path)]
    assert rel == [
        "a.fit",
        "b/A.FITS",
        "c.Fts",
        "d.fits.gz",
        "e.FIT.GZ",
        "f.fits.fz",
        "z/y/deep.fits",
    ]
    flat = [p.name for p in find_fits(tmp_path, recursive=False)]
    assert flat == ["a.fit", "c.Fts", "d.fits.gz", "e.FIT.GZ", "f.fits.fz"]
    c = scan(tmp_path)
    assert [f.kind for f in c.frames] == ["bias"] * 7
    assert {f.shape for f in c.frames} == {(4, 6)} and {f.dtype for f in c.frames} == {"uint16"}
    assert c.frames[5].hdu == 1  # the tile-compressed image is in an extension
    assert len(scan(tmp_path, recursive=False)) == 5


def test_image_in_extension_with_keywords_in_primary(tmp_path):
    path = tmp_path / "mef.fits"
    primary = fits.PrimaryHDU(header=fits.Header({"IMAGETYP": "FLAT", "FILTER": "g"}))
    ext = fits.ImageHDU(np.zeros((3, 5), np.float32), header=fits.Header({"EXPTIME": 2.0}))
    fits.HDUList([primary, ext]).writeto(path)
    info = read_info(path)
    assert (info.kind, info.filter, info.exptime, info.shape, info.hdu) == (
        "flat",
        "g",
        2.0,
        (3, 5),
        1,
    )


def test_unreadable_files_are_listed_not_fatal(tmp_path):
    good = write(tmp_path / "good.fits", {"IMAGETYP": "BIAS"})
    (tmp_path / "x.fits").write_text("this is not FITS\n")
    (tmp_path / "empty.fits").write_bytes(b"")
    data = good.read_bytes()
    (tmp_path / "trunc.fits").write_bytes(data[: 2880 + 10])
    (tmp_path / "head.fits").write_bytes(data[:100])
    write(tmp_path / "table.fits")
    with fits.open(tmp_path / "table.fits", mode="update") as h:
        h[0] = fits.PrimaryHDU()
    c = scan(tmp_path)
    by_name = {f.name: f for f in c.frames}
    assert by_name["good.fits"].kind == "bias"
    problems = {f.name: f.error for f in c.unreadable}
    assert problems == {
        "x.fits": "not a FITS file",
        "empty.fits": "empty file, not a FITS file",
        "trunc.fits": "truncated FITS file",
        "head.fits": "not a FITS file",
        "table.fits": "no image in this FITS file",
    }
    assert all(f.kind == "unreadable" and f.shape is None for f in c.unreadable)
    assert c.counts()["unreadable"] == 5
    assert "unreadable files:\n  empty.fits: empty file, not a FITS file" in c.summary()
    assert "x.fits      unreadable" in c.table()


def test_truncated_gzip_found_from_headers_and_corrupt_tiles_with_verify(tmp_path):
    noise = np.random.default_rng(1).integers(0, 60000, (200, 200)).astype(np.uint16)
    hdr = fits.Header({"IMAGETYP": "BIAS"})
    plain = tmp_path / "plain.fits"
    fits.PrimaryHDU(noise, header=hdr).writeto(plain)
    (tmp_path / "t.fits.gz").write_bytes(gzip.compress(plain.read_bytes())[:-20000])
    plain.unlink()
    assert scan(tmp_path).frames[0].kind == "unreadable"  # astropy reads through the stream
    (tmp_path / "t.fits.gz").unlink()
    fz = tmp_path / "c.fits.fz"
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(noise, header=hdr)]).writeto(fz)
    damaged = bytearray(fz.read_bytes())
    middle = len(damaged) // 2
    damaged[middle : middle + 3000] = b"\xaa" * 3000
    fz.write_bytes(bytes(damaged))
    assert scan(tmp_path).frames[0].kind == "bias"  # headers alone look fine
    verified = scan(tmp_path, verify=True).frames[0]
    assert verified.kind == "unreadable"
    assert verified.error.startswith("corrupt compressed image data")


def test_no_pixel_data_is_read(tmp_path, monkeypatch):
    write(tmp_path / "a.fits", {"IMAGETYP": "LIGHT"}, shape=(300, 400))
    write(tmp_path / "b.fits.gz", {"IMAGETYP": "FLAT"})
    write(tmp_path / "c.fits.fz", {"IMAGETYP": "DARK"})

    def no_data(self):
        raise AssertionError("scan read pixel data")

    import astropy.io.fits.hdu.image as image

    monkeypatch.setattr(image._ImageBaseHDU, "data", property(no_data))
    c = scan(tmp_path)
    assert [f.kind for f in c.frames] == ["light", "flat", "dark"]
    assert c.frames[0].shape == (300, 400)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(CcdcalError, match="no such folder"):
        scan(tmp_path / "nope")
    f = write(tmp_path / "a.fits")
    with pytest.raises(CcdcalError, match="not a folder"):
        scan(f)


# ---------------------------------------------------------------------------- collection
def make_night(tmp_path: Path) -> Collection:
    for i in range(3):
        write(tmp_path / f"bias{i}.fits", {"IMAGETYP": "BIAS", "EXPTIME": 0.0})
    for t in (5, 5, 30):
        write(
            tmp_path / f"dark{t}_{len(list(tmp_path.glob('dark*')))}.fits",
            {"IMAGETYP": "DARK", "EXPTIME": t},
        )
    for filt in ("V", "V", "R"):
        write(
            tmp_path / f"flat{filt}{len(list(tmp_path.glob('flat*')))}.fits",
            {"IMAGETYP": "FLAT", "EXPTIME": 3, "FILTER": filt},
        )
    for obj, filt in (("M51", "V"), ("M51", "V"), ("M51", "R"), ("M101", "V")):
        n = len(list(tmp_path.glob("light*")))
        write(
            tmp_path / f"light{n}.fits",
            {"IMAGETYP": "LIGHT", "EXPTIME": 60, "FILTER": filt, "OBJECT": obj},
        )
    (tmp_path / "bad.fits").write_text("nope")
    return scan(tmp_path)


def test_of_kind_groups_and_counts(tmp_path):
    c = make_night(tmp_path)
    assert c.counts() == {
        "bias": 3,
        "dark": 3,
        "flat": 3,
        "light": 4,
        "unknown": 0,
        "unreadable": 1,
    }
    assert (
        len(c.of_kind("dark", exptime=5.0)) == 2 and len(c.of_kind("dark", exptime=5.0000001)) == 2
    )
    assert len(c.of_kind("flat", filter="V")) == 2 and len(c.of_kind("light", filter=" R ")) == 1
    with pytest.raises(ValueError):
        c.of_kind("flats")
    g = c.groups()
    assert len(g.bias) == 3
    assert {t: len(v) for t, v in g.darks.items()} == {5.0: 2, 30.0: 1}
    assert list(g.flats) == ["R", "V"]
    assert {k: len(v) for k, v in g.lights.items()} == {
        ("M101", "V"): 1,
        ("M51", "R"): 1,
        ("M51", "V"): 2,
    }
    assert all(f.error is None for group in g.lights.values() for f in group)


def test_table_and_summary(tmp_path):
    c = make_night(tmp_path)
    table = c.table()
    lines = table.splitlines()
    assert lines[0].split() == ["file", "type", "exptime", "filter", "object", "size", "dtype"]
    assert len(lines) == 2 + len(c)
    row = next(line for line in lines if line.startswith("light3.fits"))
    assert row.split() == ["light3.fits", "light", "60", "V", "M101", "6x4", "uint16"]
    assert "why" not in lines[0]
    why = c.table(why=True)
    assert "IMAGETYP='LIGHT' -> light" in why and "not a FITS file" in why
    summary = c.summary()
    assert summary.splitlines()[0] == f"14 files in {tmp_path}"
    assert "  dark        3  5 s: 2, 30 s: 1" in summary
    assert "  flat        3  R: 1 (3 s), V: 2 (3 s)" in summary
    assert "M51 V: 2 (60 s)" in summary
    assert "  unreadable  1" in summary


# ---------------------------------------------------------------------------- real nights
@pytest.mark.realdata
def test_lowell_night(lowell_night):
    c = scan(lowell_night)
    assert len(c) == 26 and not c.unreadable
    assert Counter(f.kind for f in c) == {"bias": 10, "flat": 8, "light": 8}
    assert {f.exptime for f in c.of_kind("bias")} == {0.0}
    flats = c.of_kind("flat")
    assert Counter(f.exptime for f in flats) == {2.7: 2, 3.3: 1, 4.5: 5}
    # the filter is only in FILTNAME; the first flat really is V (wheel position 3, OBJECT
    # 'V twil flat'), the others VR like the lights (position 1)
    assert Counter(f.filter for f in flats) == {"VR": 7, "V": 1}
    v_flat = c.of_kind("flat", filter="V")[0]
    assert v_flat.name == "20190326.0100.fits.gz" and v_flat.object == "V twil flat"
    assert all("filter from FILTNAME (no FILTER)" in f.reason for f in flats)
    lights = c.of_kind("light")
    assert {(f.object, f.filter, f.exptime) for f in lights} == {
        ("5945 Roachapproach", "VR", 300.0)
    }
    assert all(f.reason == "IMAGETYP='OBJECT' -> light" for f in lights)
    for f in c:
        assert f.shape == (1370, 1432) and f.dtype == "uint16"
        assert (f.biassec, f.trimsec) == ("[1388:1432,1:1370]", "[18:1382,1:1370]")
        assert f.section("trimsec") == (slice(0, 1370), slice(17, 1382))
        assert f.gain == 4.95 and f.rdnoise == 9.3  # AGAIN_01 / ARDNS_01
        assert f.date_obs is not None and f.date_obs.startswith("2019-03-26T")
    assert all(f.filter is None for f in c.of_kind("bias"))
    g = c.groups()
    assert {k: len(v) for k, v in g.flats.items()} == {"V": 1, "VR": 7}
    assert {k: len(v) for k, v in g.lights.items()} == {("5945 Roachapproach", "VR"): 8}
    assert not g.darks


@pytest.mark.realdata
def test_feder_night(feder_night):
    c = scan(feder_night)
    assert len(c) == 150 and not c.unreadable
    assert Counter(f.kind for f in c) == {"bias": 10, "dark": 50, "flat": 50, "light": 40}
    assert all(f.name.endswith("bias.fit.gz") for f in c.of_kind("bias"))
    assert {f.exptime for f in c.of_kind("bias")} == {0.0}
    assert all(f.filter is None for f in c.of_kind("bias") + c.of_kind("dark"))
    assert Counter(f.exptime for f in c.of_kind("dark")) == {5: 10, 15: 10, 30: 10, 60: 10, 120: 10}
    assert Counter((f.filter, f.exptime) for f in c.of_kind("flat")) == {
        ("B", 120): 20, ("V", 30): 10, ("R", 15): 10, ("I", 5): 10,
    }  # fmt: skip
    assert Counter((f.filter, f.exptime) for f in c.of_kind("light")) == {
        ("B", 60): 10, ("V", 30): 10, ("R", 30): 10, ("I", 30): 10,
    }  # fmt: skip
    # OBJECT was deleted from these headers by the package that reduced them to 8 bits
    assert {f.object for f in c.of_kind("light")} == {None}
    for f in c:
        assert f.shape == (1024, 1542) and f.dtype == "uint8"
        assert f.section("biassec") == (slice(0, 1024), slice(1537, 1541))
        assert f.section("trimsec") == (slice(0, 1024), slice(0, 1536))
        assert f.gain is None and f.rdnoise is None
    g = c.groups()
    assert sorted(g.darks) == [5.0, 15.0, 30.0, 60.0, 120.0]
    assert list(g.flats) == ["B", "I", "R", "V"]
    # a rule can name the field
    cfg = loads_config('[[rules]]\nmatch = { path = "SA112-*" }\nset = { object = "SA112" }')
    named = scan(feder_night, config=cfg)
    assert {f.object for f in named.of_kind("light")} == {"SA112"}
    assert list(named.groups().lights) == [
        ("SA112", "B"),
        ("SA112", "I"),
        ("SA112", "R"),
        ("SA112", "V"),
    ]


def test_classify_from_a_header_alone():
    info = classify(
        fits.Header({"IMAGETYP": "LIGHT", "EXPTIME": 10, "NAXIS1": 8, "NAXIS2": 4, "BITPIX": -32})
    )
    assert (info.kind, info.shape, info.dtype, info.path) == (
        "light",
        (4, 8),
        "float32",
        Path("<header>"),
    )
