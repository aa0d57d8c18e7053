"""The experiments' science in their quick modes, their outputs, and the CLI."""

from __future__ import annotations

import csv
import io
import math

import matplotlib.pyplot as plt
import pytest

from ccdcal import experiments as ex
from ccdcal.cli import main


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def frames_result():
    return ex.frames(seed=3, quick=True)


@pytest.fixture(scope="module")
def cosmic_result():
    return ex.cosmic_rays(seed=3, quick=True)


@pytest.fixture(scope="module")
def vignetting_result():
    return ex.vignetting(seed=3, quick=True)


# ---------------------------------------------------------------------------- frames
def test_frames_random_noise_falls_as_inverse_sqrt_n(frames_result):
    r = frames_result
    assert [row["n"] for row in r.rows] == [1, 2, 4, 8]
    assert abs(r.slope_mean + 0.5) < 3 * r.slope_mean_err, r.summary()
    # a 3-sigma clip acts only from N ~ 9: up to N = 8 the clipped mean is the plain mean
    assert abs(r.slope + 0.5) < 3 * r.slope_err, r.summary()
    assert r.slope_err < 0.02
    for row in r.rows:
        assert row["random"] == pytest.approx(row["random_mean"], rel=1e-3)


def test_frames_full_size_floor_and_clipping_cost():
    """Default settings: 1/sqrt(N) for plain means to N = 32; the 3-sigma clip costs ~1 %
    of noise once it acts; the masters' floor is reached near N = 20."""
    r = ex.frames(seed=0)
    assert abs(r.slope_mean + 0.5) < 3 * r.slope_mean_err, r.summary()
    assert -0.5 < r.slope < -0.49
    last = r.rows[-1]
    assert 1.0 < last["random"] / last["random_mean"] < 1.03
    assert 10 < r.n_floor < 40
    assert r.floor_fit == pytest.approx(r.floor, rel=0.05)


def test_frames_master_floor(frames_result):
    """The stacks alone give the same floor as the masters' pattern, and it stops the gain."""
    r = frames_result
    assert r.floor > 0
    assert r.floor_fit == pytest.approx(r.floor, abs=3 * r.floor_fit_err + 0.05 * r.floor)
    last = r.rows[-1]
    assert last["noise"] > last["random"] + 5 * last["noise_err"]
    # the model (σ1²/N + floor²) predicts the measured total noise
    for row in r.rows:
        assert row["noise"] == pytest.approx(row["expected"], rel=0.03)
    # the gain from N=1 to N=8 falls short of sqrt(8) because of the floor
    assert last["gain"] < math.sqrt(8) - 0.2
    assert 1 < r.n_floor < 100


def test_frames_is_reproducible(frames_result):
    again = ex.frames(seed=3, quick=True)
    assert again.rows == frames_result.rows
    other = ex.frames(seed=4, quick=True)
    assert other.rows != frames_result.rows


def test_frames_outputs(frames_result, tmp_path):
    text = frames_result.table()
    assert "random noise ∝ N^" in text and "masters [e-]" in text
    csv_path, png_path, md_path = frames_result.write(tmp_path)
    rows = read_csv(csv_path)
    assert [int(r["n"]) for r in rows] == [1, 2, 4, 8]
    assert float(rows[0]["noise"]) == frames_result.rows[0]["noise"]  # full precision
    assert plt.imread(png_path).shape[0] > 300
    md = md_path.read_text()
    assert md == frames_result.markdown()
    cells = [line.split(" | ") for line in md.splitlines() if line.startswith("| ")][2:]
    assert [int(c[0].strip("| ")) for c in cells] == [1, 2, 4, 8]
    first = frames_result.rows[0]
    assert cells[0][1] == f"{first['noise']:.3f} ± {first['noise_err']:.3f}"
    slope = f"{frames_result.slope_mean:.4f}".replace("-", "−")
    assert f"Plain-mean stacks fall as N^({slope} ± " in md
    assert f"floor of {frames_result.floor_fit:.3f} ± " in md


def test_frames_rejects_bad_n():
    with pytest.raises(ValueError, match="positive"):
        ex.frames(n=(0, 2), quick=True)


# ---------------------------------------------------------------------------- cosmic rays
def test_sigma_clip_removes_cosmic_rays_given_enough_frames(cosmic_result):
    r = cosmic_result
    for rate in (1.0, 20.0):
        mean = r.survived("mean", rate_factor=rate, nframes=10)
        clipped = r.survived("sigma clip", rate_factor=rate, nframes=10)
        assert mean > 20
        assert clipped <= 0.1 * mean, (rate, mean, clipped)
        assert r.survived("ccd clip", rate_factor=rate, nframes=10) <= 0.02 * mean
        assert r.survived("median", rate_factor=rate, nframes=10) <= 0.02 * mean


def test_sigma_clip_cannot_reject_in_three_frames(cosmic_result):
    """With 3 values an outlier is at most 1.41 std from the median: 3-sigma never clips."""
    r = cosmic_result
    assert r.survived("sigma clip", rate_factor=1.0, nframes=3) == r.survived(
        "mean", rate_factor=1.0, nframes=3
    )
    assert r.survived("min/max clip", rate_factor=1.0, nframes=3) <= 2


def test_rejection_costs_noise(cosmic_result):
    rows = {(x["rate_factor"], x["nframes"], x["method"]): x for x in cosmic_result.rows}
    median = rows[(1.0, 10, "median")]["noise_ratio"]
    assert 1.05 < median < 1.3  # the median's sqrt(pi/2) penalty, less for few frames
    assert rows[(1.0, 10, "sigma clip")]["noise_ratio"] < 1.02
    assert rows[(1.0, 10, "mean")]["noise_ratio"] == 1.0


def test_cosmic_outputs(cosmic_result, tmp_path):
    assert "winsorized sigma clip" in cosmic_result.table()
    csv_path, png_path, md_path = cosmic_result.write(tmp_path / "cr")
    assert csv_path.name == "cosmic_rays.csv" and md_path.name == "cosmic_rays.md"
    rows = read_csv(csv_path)
    assert len(rows) == 2 * 2 * 9
    assert plt.imread(png_path).shape[1] > 500
    # the Markdown's first table: 10 frames at rates x1 and x20, each method's count
    md = md_path.read_text().split("\n\n")
    table = [line.split(" | ") for line in md[2].splitlines()[2:]]
    assert len(table) == 9
    for cells in table:
        method = cells[0].strip("| ")
        assert cells[1] == f"{cosmic_result.survived(method, rate_factor=1.0, nframes=10):,}"
        assert cells[2] == f"{cosmic_result.survived(method, rate_factor=20.0, nframes=10):,}"
    assert table[0][3] == "reference |"


# ---------------------------------------------------------------------------- vignetting
def test_uncorrected_vignetting_error_grows(vignetting_result):
    r = vignetting_result
    none0, none5 = r.row(0.0, "none"), r.row(0.5, "none")
    assert none5["rms_dmag"] > 5 * none0["rms_dmag"]
    assert none5["edge_minus_centre"] > 0.3  # fainter towards the edge
    assert r.row(0.5, "other night")["rms_dmag"] > 5 * r.row(0.5, "good")["rms_dmag"]


def test_flat_fielded_photometry_at_noise_level(vignetting_result):
    r = vignetting_result
    for v in (0.0, 0.5):
        good = r.row(v, "good")
        assert good["stars"] >= 5
        assert good["chi2"] < 4, good
        assert good["rms_dmag"] < 2 * good["noise_mag"] + 1e-3, good
        assert abs(good["edge_minus_centre"]) < 0.01


def test_vignetting_outputs(vignetting_result, tmp_path):
    paths = vignetting_result.write(tmp_path)
    assert [p.name for p in paths] == [
        "vignetting.csv", "vignetting.png", "vignetting.md", "vignetting_stars.csv"
    ]  # fmt: skip
    md = paths[2].read_text()
    rms = f"| none | {vignetting_result.row(0.0, 'none')['rms_dmag']:.4f} | "
    assert rms + f"{vignetting_result.row(0.5, 'none')['rms_dmag']:.4f} |" in md
    stars = read_csv(paths[3])
    assert {s["flat"] for s in stars} == set(ex.FLAT_QUALITIES)
    assert plt.imread(paths[1]).ndim == 3


def test_vignetting_rejects_unknown_flat():
    with pytest.raises(ValueError, match="flat qualities"):
        ex.vignetting(flats=("perfect",), quick=True)


# ---------------------------------------------------------------------------- CLI
def test_cli_experiment(tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["experiment", "frames", "--quick", "--seed", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "random noise" in printed and "frames.csv" in printed and "frames.md" in printed
    assert (out / "frames.csv").exists() and (out / "frames.png").exists()
    assert (out / "frames.md").read_text().startswith("`ccdcal experiment frames` (seed 2, ")


def test_cli_experiment_ranges_and_errors(tmp_path, capsys):
    out = tmp_path / "v"
    code = main(
        ["experiment", "vignetting", "--quick", "--size", "96x96", "--flats", "good,none",
         "--out", str(out), "--keep"]
    )  # fmt: skip
    assert code == 0
    assert (out / "nights" / "vignetting").is_dir()
    assert main(["experiment", "frames", "--size", "big"]) == 1
    assert "size must look like" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["experiment", "nonsense"])
