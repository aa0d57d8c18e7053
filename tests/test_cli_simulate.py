"""``ccdcal simulate``: options reach the simulator, the summary is printed, bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from ccdcal.cli import main
from ccdcal.cli.simulate import parse_size

SMALL = ["--nbias", "2", "--ndark", "1", "--nflat", "2", "--nlight", "3"]


def test_simulate_writes_a_night(tmp_path, capsys):
    out = tmp_path / "night"
    code = main(["simulate", str(out), "--seed", "1", "--size", "48x32", *SMALL])
    assert code == 0
    printed = capsys.readouterr().out
    assert "2 biases, 1 dark, 2 flats, 3 lights" in printed and str(out / "raw") in printed
    raw = sorted(p.name for p in (out / "raw").glob("*.fits"))
    assert raw[0] == "bias_001.fits" and "light_V_003.fits" in raw and len(raw) == 8
    # WIDTHxHEIGHT: 48 columns, 32 rows
    assert fits.getdata(out / "raw" / "light_V_001.fits").shape == (32, 48)
    assert (out / "truth" / "stars.ecsv").exists()


def test_options_reach_the_detector(tmp_path, capsys):
    out = tmp_path / "n"
    code = main(["simulate", str(out), "--size", "40", *SMALL, "--filters", "B, V",
                 "--overscan", "8", "--gain", "2.5", "--read-noise", "4", "--exptime", "30",
                 "--dark-exptime", "30", "--vignetting", "0.3", "--cosmic-rate", "0",
                 "--bias-drift", "2", "--nstars", "5", "--flat-level", "20000"])  # fmt: skip
    assert code == 0
    assert "8 overscan columns" in capsys.readouterr().out
    h = fits.getheader(out / "raw" / "light_B_001.fits")
    assert (h["GAIN"], h["RDNOISE"], h["EXPTIME"]) == (2.5, 4.0, 30.0)
    assert h["BIASSEC"] == "[41:48,1:40]" and h["NAXIS1"] == 48
    assert (out / "raw" / "dark_030s_001.fits").exists()
    assert (out / "raw" / "flat_V_002.fits").exists()
    info = json.loads((out / "truth" / "detector.json").read_text())
    assert info["detector"]["vignetting"] == 0.3 and info["detector"]["bias_drift"] == 2.0
    assert info["night"]["flat_level"] == 20000.0 and info["scene"]["nstars"] == 5
    for mask in (out / "truth").glob("cosmic_*.fits"):
        assert not np.any(fits.getdata(mask))  # --cosmic-rate 0


def test_same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        assert main(["simulate", str(tmp_path / name), "--seed", "3", "--size", "32x32",
                     *SMALL]) == 0  # fmt: skip
    for p in sorted((tmp_path / "a" / "raw").iterdir()):
        assert p.read_bytes() == (tmp_path / "b" / "raw" / p.name).read_bytes()


@pytest.mark.parametrize("size", ["200by200", "10x10", "x", "3x4x5", "-40x40"])
def test_bad_size_is_an_argparse_error(tmp_path, size, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", str(tmp_path), "--size", size])
    assert exit_info.value.code == 2
    assert "--size" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option", [["--nbias", "-1"], ["--gain", "0"], ["--exptime", "abc"], ["--filters", ","]]
)
def test_bad_numbers_are_argparse_errors(tmp_path, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", str(tmp_path), *option])
    assert exit_info.value.code == 2
    assert option[0] in capsys.readouterr().err


def test_impossible_detector_is_one_line_error(tmp_path, capsys):
    code = main(["simulate", str(tmp_path), "--size", "32", *SMALL, "--vignetting", "1.5"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("ccdcal: error:") and "vignetting" in err and err.count("\n") == 1


def test_parse_size():
    assert parse_size("300x200") == (200, 300)
    assert parse_size("64X64") == (64, 64)
    assert parse_size("128") == (128, 128)
