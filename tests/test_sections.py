"""FITS sections: 1-based, inclusive, x first; and their numpy slices."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdcal.errors import FrameError
from ccdcal.sections import SectionError, format_section, header_section, parse_section


def test_fits_convention_one_based_inclusive_x_first():
    data = np.arange(5 * 7).reshape(5, 7)  # ny=5, nx=7
    ys, xs = parse_section("[2:4,1:2]")
    assert (ys, xs) == (slice(0, 2), slice(1, 4))
    # columns 2..4 (x) of rows 1..2 (y), as IRAF would give them
    assert data[ys, xs].tolist() == [[1, 2, 3], [8, 9, 10]]


def test_real_night_sections():
    assert parse_section("[1388:1432,1:1370]", shape=(1370, 1432)) == (
        slice(0, 1370),
        slice(1387, 1432),
    )
    assert parse_section("[18:1382,1:1370]") == (slice(0, 1370), slice(17, 1382))


@pytest.mark.parametrize(
    "text",
    ["[1:1536, 1:1024]", "[1:1536,1:1024]", " [ 1 : 1536 ,  1:1024 ] ", "[1536:1,1024:1]"],
)
def test_spaces_and_reversed_ranges(text):
    assert parse_section(text) == (slice(0, 1024), slice(0, 1536))


def test_star_and_single_line():
    assert parse_section("[*,1:100]") == (slice(0, 100), slice(None))
    assert parse_section("[*,1:100]", shape=(200, 50)) == (slice(0, 100), slice(0, 50))
    assert parse_section("[-*, *]", shape=(3, 4)) == (slice(0, 3), slice(0, 4))
    assert parse_section("[5,*]", shape=(10, 10)) == (slice(0, 10), slice(4, 5))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1:10,1:10",
        "[1:10]",
        "[1:10,1:5",
        "[1:10,1:5,1:2]",
        "[a:b,1:2]",
        "[0:10,1:5]",
        "[1:10:2,1:5]",
        "[1.5:10,1:5]",
        "[,]",
    ],
)
def test_malformed_sections_raise_with_the_text(text):
    with pytest.raises(ValueError, match="malformed section") as info:
        parse_section(text)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, SectionError)


def test_out_of_range_against_shape():
    with pytest.raises(SectionError, match="x runs to 1433 but the image has 1432 columns"):
        parse_section("[1388:1433,1:1370]", shape=(1370, 1432))
    with pytest.raises(SectionError, match="y runs to 1371"):
        parse_section("[1:10,1:1371]", shape=(1370, 1432))


def test_not_a_string():
    with pytest.raises(TypeError):
        parse_section(5)  # type: ignore[arg-type]


def test_header_section_absent_blank_and_good():
    assert header_section({}, "BIASSEC", "a.fits") is None
    assert header_section({"BIASSEC": "  "}, "BIASSEC", "a.fits") is None
    hdr = {"TRIMSEC": "[1:1536, 1:1024]"}
    assert header_section(hdr, "TRIMSEC", "a.fits", (1024, 1542)) == (
        slice(0, 1024),
        slice(0, 1536),
    )


def test_header_section_errors_name_file_and_keyword():
    with pytest.raises(FrameError) as info:
        header_section({"BIASSEC": "[1538:1541]"}, "BIASSEC", "night/b.fits")
    msg = str(info.value)
    assert msg.startswith("night/b.fits: BIASSEC = '[1538:1541]': malformed section")
    assert "\n" not in msg
    with pytest.raises(FrameError, match=r"x.fits: TRIMSEC = '\[1:2000,1:10\]': section out of"):
        header_section({"TRIMSEC": "[1:2000,1:10]"}, "TRIMSEC", "x.fits", (10, 100))
    with pytest.raises(FrameError, match="DATASEC = 3: malformed section"):
        header_section({"DATASEC": 3}, "DATASEC", "x.fits")


def test_format_section():
    assert format_section(slice(0, 1024), slice(1537, 1541)) == "[1538:1541,1:1024]"
    assert format_section(slice(None), slice(None)) == "[*,*]"
    assert format_section(slice(2, None), slice(None), shape=(5, 6)) == "[1:6,3:5]"
    for bad in (slice(0, 10, 2), slice(-5, None), slice(3, 3)):
        with pytest.raises(ValueError):
            format_section(bad, slice(0, 4))
    with pytest.raises(ValueError, match="open-ended"):
        format_section(slice(3, None), slice(0, 4))


ranges = st.tuples(st.integers(0, 4999), st.integers(1, 5000)).filter(lambda t: t[0] < t[1])


@given(ys=ranges, xs=ranges)
def test_round_trip_slices(ys, xs):
    y, x = slice(*ys), slice(*xs)
    text = format_section(y, x)
    assert parse_section(text) == (y, x)
    assert parse_section(text, shape=(5000, 5000)) == (y, x)


@given(
    x=st.tuples(st.integers(1, 9999), st.integers(1, 9999)),
    y=st.tuples(st.integers(1, 9999), st.integers(1, 9999)),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_round_trip_text(x, y, pad):
    text = f"[{pad}{x[0]}{pad}:{x[1]}{pad},{pad}{y[0]}:{pad}{y[1]}{pad}]"
    canonical = f"[{min(x)}:{max(x)},{min(y)}:{max(y)}]"
    assert format_section(*parse_section(text)) == canonical
