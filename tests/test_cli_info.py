"""``ccdcal info``: the table and summary of a folder, through ``main([...])``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from ccdcal.cli import main
from ccdcal.config import Config, loads_config


def write(path: Path, **header) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(np.zeros((4, 6), np.uint16), header=fits.Header(header)).writeto(path)


@pytest.fixture
def night(tmp_path: Path) -> Path:
    write(tmp_path / "raw" / "bias1.fits", IMAGETYP="BIAS", EXPTIME=0.0)
    write(tmp_path / "raw" / "flats" / "flat1.fits", IMAGETYP="SKYFLAT", EXPTIME=3.0, FILTNAME="VR")
    write(tmp_path / "raw" / "m51.fits", IMAGETYP="LIGHT", EXPTIME=60.0, FILTER="V", OBJECT="M51")
    (tmp_path / "raw" / "broken.fits").write_text("not fits")
    return tmp_path / "raw"


def test_info_prints_rows_and_summary(night, capsys):
    assert main(["info", str(night)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split() == ["file", "type", "exptime", "filter", "object", "size", "dtype"]
    rows = {line.split()[0]: line.split() for line in lines[2:6]}
    assert rows["bias1.fits"] == ["bias1.fits", "bias", "0", "-", "-", "6x4", "uint16"]
    assert rows["flats/flat1.fits"] == ["flats/flat1.fits", "flat", "3", "VR", "-", "6x4", "uint16"]
    assert rows["m51.fits"] == ["m51.fits", "light", "60", "V", "M51", "6x4", "uint16"]
    assert rows["broken.fits"][:2] == ["broken.fits", "unreadable"]
    assert f"4 files in {night}" in out
    assert "  light       1  M51 V: 1 (60 s)" in out
    assert "unreadable files:\n  broken.fits: not a FITS file" in out
    assert "why" not in lines[0]
    assert err == ""


def test_info_why(night, capsys):
    assert main(["info", str(night), "--why"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[-1] == "why"
    assert "IMAGETYP='SKYFLAT' -> flat; filter from FILTNAME (no FILTER)" in out


def test_info_no_recursive(night, capsys):
    assert main(["info", str(night), "--no-recursive"]) == 0
    assert "flat1.fits" not in capsys.readouterr().out


def test_info_with_config(night, tmp_path, capsys):
    toml = tmp_path / "night.toml"
    toml.write_text('[[rules]]\nmatch = { path = "m51*" }\nset = { object = "NGC 5194" }\n')
    assert main(["info", str(night), "--config", str(toml), "--why"]) == 0
    out = capsys.readouterr().out
    assert "NGC 5194" in out and "rule 1 (path='m51*') set object='NGC 5194'" in out


@pytest.mark.parametrize("what", ["missing", "empty", "file"])
def test_info_errors_are_one_line_exit_1(tmp_path, capsys, what):
    target = tmp_path / "nothing"
    if what == "empty":
        target.mkdir()
        (target / "notes.txt").write_text("x")
    elif what == "file":
        target.write_text("x")
    assert main(["info", str(target)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    expected = {"missing": "no such folder", "empty": "no FITS files", "file": "not a folder"}
    assert err.startswith(f"ccdcal: error: {target}: {expected[what]}")
    assert err.count("\n") == 1


def test_info_bad_config_exit_1(night, tmp_path, capsys):
    toml = tmp_path / "bad.toml"
    toml.write_text("[detector]\ngian = 2\n")
    assert main(["info", str(night), "--config", str(toml)]) == 1
    err = capsys.readouterr().err
    assert err == f"ccdcal: error: {toml}: [detector] gian: unknown key (did you mean 'gain'?)\n"


def test_info_without_folder(capsys):
    assert main(["info"]) == 1
    assert "give the folder" in capsys.readouterr().err


def test_example_config(capsys):
    assert main(["info", "--example-config"]) == 0
    assert loads_config(capsys.readouterr().out) == Config()


@pytest.mark.realdata
def test_info_on_the_lowell_night(lowell_night, capsys):
    assert main(["info", str(lowell_night)]) == 0
    out = capsys.readouterr().out
    assert "flat/20190326.0100.fits.gz  flat       2.7  V       V twil flat" in out
    assert "  flat         8  V: 1 (2.7 s), VR: 7 (2.7-4.5 s)" in out
    assert "  light        8  5945 Roachapproach VR: 8 (300 s)" in out
