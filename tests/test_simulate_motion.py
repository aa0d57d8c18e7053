"""The simulator's telescope moves: dithers, drift, rotation, seeing and clouds per light."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from astropy.table import Table

import ccdcal
from ccdcal.cli import main
from ccdcal.frame import Frame
from ccdcal.simulate.pointing import Pointing, footprint, frame_rate, pointings
from ccdcal.simulate.scene import FWHM_PER_SIGMA, Scene


@pytest.fixture(scope="module")
def moving(tmp_path_factory):
    base = tmp_path_factory.mktemp("moving")
    night = ccdcal.simulate.night(
        base / "n", seed=21, shape=(90, 110), nbias=2, ndark=2, nflat=2, nlight=6,
        dither=8.0, drift=0.5, rotate=0.5, fwhm_range=(2.5, 4.0),
        transparency_range=(0.5, 1.0), nstars=40, gain=1.0, read_noise=3.0,
    )  # fmt: skip
    return night


def _centroid(image: np.ndarray, x: float, y: float, r: int = 5) -> tuple[float, float]:
    ix, iy = round(x), round(y)
    box = image[iy - r : iy + r + 1, ix - r : ix + r + 1]
    box = box - np.median(image)
    box = np.clip(box, 0, None)
    yy, xx = np.mgrid[iy - r : iy + r + 1, ix - r : ix + r + 1]
    return float((box * xx).sum() / box.sum()), float((box * yy).sum() / box.sum())


def test_pointing_table_is_the_truth_of_every_light(moving):
    table = Table.read(moving.truth["pointing"], format="ascii.ecsv")
    lights = moving.of_kind("light")
    assert list(table["frame"]) == [p.stem for p in lights]
    # the drift: a steady 0.5 px per frame in one direction, under dithers of +-8 px
    assert np.all(np.abs(table["dx"]) < 8 + 0.5 * 5 + 1e-9)
    assert list(table["rotation"]) == pytest.approx([0.1 * i for i in range(6)])
    assert np.all((table["fwhm"] >= 2.5) & (table["fwhm"] <= 4.0))
    assert np.all((table["transparency"] >= 0.5) & (table["transparency"] <= 1.0))
    assert len(set(np.round(table["dx"], 6))) == 6  # every light looks elsewhere


def test_stars_are_where_the_pointing_puts_them(moving):
    """Bright isolated stars of each raw light sit at their transformed place (0.05 px)."""
    table = Table.read(moving.truth["pointing"], format="ascii.ecsv")
    stars = moving.scene.stars
    bias = float(moving.detector.bias_level)
    for row, path in zip(table, moving.of_kind("light"), strict=True):
        a = np.array([[row["a11"], row["a12"], row["tx"]], [row["a21"], row["a22"], row["ty"]]])
        xy = a @ np.vstack([stars["x"], stars["y"], np.ones(len(stars))])
        image = Frame.read(path).data - bias
        ny, nx = image.shape
        errors = []
        for k in range(len(stars)):
            x, y = xy[:, k]
            others = np.hypot(xy[0] - x, xy[1] - y)
            isolated = np.sort(others)[1] > 12 if len(stars) > 1 else True
            if 10 < x < nx - 10 and 10 < y < ny - 10 and isolated and stars["peak_rate"][k] > 60:
                cx, cy = _centroid(image, x, y)
                errors.append(math.hypot(cx - x, cy - y))
        assert len(errors) >= 3, row["frame"]
        assert np.median(errors) < 0.05, (row["frame"], errors)


def test_transparency_scales_sky_and_stars(moving):
    table = Table.read(moving.truth["pointing"], format="ascii.ecsv")
    det = moving.detector
    bias = Frame.read(moving.truth["bias"]).data
    dark = Frame.read(moving.truth["dark_current"]).data * 60.0
    flat = Frame.read(moving.truth["flat_V"]).data
    measured = []
    for path, view in zip(moving.of_kind("light"), moving.pointings, strict=True):
        electrons = (Frame.read(path).data - bias) * det.gain - dark
        clear = frame_rate(moving.scene, replace(view, transparency=1.0), moving.footprint) * 60
        sky = clear < np.percentile(clear, 50) * 1.001  # away from the stars: noise is symmetric
        measured.append(np.median((electrons / flat)[sky]) / np.median(clear[sky]))
    np.testing.assert_allclose(measured, table["transparency"], rtol=0.02)
    assert np.ptp(table["transparency"]) > 0.1


def test_seeing_per_frame_keeps_the_flux():
    """Rendered with any FWHM, a star keeps its total flux and has that FWHM."""
    scene = Scene.from_stars((80, 80), [40.3], [39.6], [100.0], fwhm=3.0, sky_rate=0.0)
    where = footprint((40, 40), [Pointing()], margin=20)
    assert where.shape == (80, 80) and where.centre == (39.5, 39.5)
    flux = float(scene.stars["flux_rate"][0])
    for fwhm in (2.0, 4.5):
        rate = frame_rate(scene, Pointing(dx=0.25, fwhm=fwhm), where)
        assert rate.sum() == pytest.approx(flux, rel=1e-6)
        xx = np.mgrid[0:40, 0:40][1]
        cx = (rate * xx).sum() / rate.sum()
        sigma = math.sqrt((rate * (xx - cx) ** 2).sum() / rate.sum() - 1 / 12)  # pixel width
        assert sigma * FWHM_PER_SIGMA == pytest.approx(fwhm, rel=0.01)
        assert cx == pytest.approx(40.3 - 20 + 0.25, abs=1e-6)


def test_the_scene_covers_every_frame():
    views = pointings(20, np.random.default_rng(3), dither=10, drift=2, rotate=5)
    where = footprint((50, 70), views)
    ny, nx = where.frame_shape
    corners = (
        np.array([-0.5, nx - 0.5, nx - 0.5, -0.5]),
        np.array([-0.5, -0.5, ny - 0.5, ny - 0.5]),
    )
    for view in views:
        sx, sy = view.to_scene(*corners, where.centre, where.frame_centre)
        assert sx.min() >= -0.5 - 1e-9 and sx.max() <= where.shape[1] - 0.5 + 1e-9
        assert sy.min() >= -0.5 - 1e-9 and sy.max() <= where.shape[0] - 0.5 + 1e-9
        back = view.to_frame(sx, sy, where.centre, where.frame_centre)
        np.testing.assert_allclose(back, np.vstack(corners), atol=1e-9)


def test_default_night_does_not_move(tmp_path):
    night = ccdcal.simulate.night(tmp_path / "n", seed=2, shape=(40, 40), nbias=1, ndark=1,
                                  nflat=1, nlight=2)  # fmt: skip
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    assert np.all(table["dx"] == 0) and np.all(table["rotation"] == 0)
    assert np.all(table["transparency"] == 1) and np.all(table["fwhm"] == 3.0)
    assert night.scene.shape == (40, 40)
    assert "motion" not in night.params


def test_cli_motion_options(tmp_path, capsys):
    options = ["--drift", "1.5", "--rotate", "2", "--fwhm-range", "2,3",
               "--transparency-range", "0.4,0.9"]  # fmt: skip
    code = main(["-q", "simulate", str(tmp_path / "n"), "--size", "48x40", "--nbias", "1",
                 "--ndark", "0", "--nflat", "1", "--nlight", "3", *options])  # fmt: skip
    assert code == 0
    table = Table.read(tmp_path / "n" / "truth" / "pointing.ecsv", format="ascii.ecsv")
    assert math.hypot(table["dx"][2], table["dy"][2]) == pytest.approx(3.0)
    assert table["rotation"][2] == 2.0
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", str(tmp_path / "m"), "--fwhm-range", "4,2"])
    assert exit_info.value.code == 2 and "MIN must not exceed MAX" in capsys.readouterr().err
    code = main(["-q", "simulate", str(tmp_path / "m"), "--transparency-range", "0.5,1.5"])
    assert code == 1 and "within (0, 1]" in capsys.readouterr().err
