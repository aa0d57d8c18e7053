"""Registration against the simulator's truth: lights that move are aligned, resampled and
stacked, with their quality measured and the bad ones left out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Table

import ccdcal
from ccdcal import flags
from ccdcal.frame import Frame
from ccdcal.photometry import compare_with_truth as photometry_vs_truth
from ccdcal.pipeline import reduce
from ccdcal.registration import Registration, Transform, find_stars, register, resample
from ccdcal.simulate.pointing import Pointing

SHAPE = (256, 256)
MOVING = {"dither": 8.0, "drift": 0.5, "rotate": 0.5, "fwhm_range": (2.5, 4.0)}


def _night(base, seed=31, **motion):
    return ccdcal.simulate.night(base, seed=seed, shape=SHAPE, nbias=5, ndark=3, nflat=5,
                                 nlight=8, nstars=60, **motion)  # fmt: skip


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    base = tmp_path_factory.mktemp("moved")
    night = _night(base / "night", **MOVING)
    return night, reduce(night.raw_dir, base / "out", report=False)


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    """The same field and depth, unmoved, at the moved night's median seeing."""
    base = tmp_path_factory.mktemp("still")
    night = _night(base / "night", fwhm=3.25)
    return night, reduce(night.raw_dir, base / "out", report=False)


def _affine(row) -> np.ndarray:
    return np.array([[row["a11"], row["a12"], row["tx"]], [row["a21"], row["a22"], row["ty"]],
                     [0.0, 0.0, 1.0]])  # fmt: skip


def _truth_to_reference(night, reference: str) -> dict[str, Transform]:
    """Each light's true transform onto the reference light (scene -> frame, inverted)."""
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    rows = {f"{r['frame']}.fits": r for r in table}
    ref = _affine(rows[reference])
    return {name: Transform(ref @ np.linalg.inv(_affine(r))) for name, r in rows.items()}


def test_transforms_match_the_truth(moved):
    night, result = moved
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    reference = reg.frames[reg.reference].name
    truth = _truth_to_reference(night, reference)
    ny, nx = SHAPE
    points = np.array([[(nx - 1) / 2, (ny - 1) / 2], [0, 0], [nx - 1, 0], [0, ny - 1],
                       [nx - 1, ny - 1]], float)  # fmt: skip
    errors = []
    for f in reg.frames:
        assert f.used, f.why
        err = np.hypot(*(f.transform.apply(points) - truth[f.name].apply(points)).T)
        errors.append(float(np.sqrt(np.mean(err**2))))
    print("rms error at centre and corners, px:", np.round(errors, 4))
    assert max(errors) <= 0.05
    # the frames really moved: up to ~8 px of dither plus the drift, and the rotation
    assert max(truth[f.name].displacement(SHAPE) for f in reg.frames) > 4
    assert reg.resample


def test_the_reference_is_the_sharpest(moved):
    night, result = moved
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    sharpest = f"{table['frame'][int(np.argmin(table['fwhm']))]}.fits"
    assert reg.frames[reg.reference].name == sharpest
    measured = [f.quality.fwhm for f in reg.frames]
    # the measured seeing follows the truth (sep's half-light radius, a few per cent high)
    assert np.corrcoef(measured, table["fwhm"])[0, 1] > 0.95
    np.testing.assert_allclose(measured, table["fwhm"], rtol=0.06)


def test_the_stack_is_as_sharp_as_its_frames(moved):
    _, result = moved
    stack = Frame.read(result.stacks[("SIMFIELD", "V")])
    singles = [find_stars(Frame.read(p))[1].fwhm for p in result.calibrated]
    _, quality = find_stars(stack)
    print(f"stack FWHM {quality.fwhm:.3f} px, single frames {np.round(singles, 2)}")
    assert quality.fwhm <= 1.1 * float(np.median(singles))


def _reference_stars(night, reference: str) -> Table:
    """The truth's stars where the reference light sees them."""
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    row = next(r for r in table if f"{r['frame']}.fits" == reference)
    stars = night.scene.stars
    xy = _affine(row)[:2] @ np.vstack([stars["x"], stars["y"], np.ones(len(stars))])
    stars["x"], stars["y"] = xy
    return stars


def test_photometry_of_the_aligned_stack(moved, still):
    results = {}
    for label, (night, result) in (("moved", moved), ("still", still)):
        reg_path = result.registrations["SIMFIELD_V"]
        reg = Registration.read(reg_path)
        stars = _reference_stars(night, reg.frames[reg.reference].name)
        stack = Frame.read(result.stacks[("SIMFIELD", "V")])
        # 7 px: 99.8 % of the light of the worst seeing (FWHM 4), all of the median's
        results[label] = photometry_vs_truth(stack, stars, 60.0, radius=7.0, fwhm=3.25,
                                             annulus=(10.0, 14.0), min_separation=12.0)  # fmt: skip
        print(label, results[label].summary())
    moved_phot, still_phot = results["moved"], results["still"]
    assert len(moved_phot.table) >= 12
    assert abs(moved_phot.median_ratio - 1) <= 0.005
    assert moved_phot.ratio_spread <= 1.25 * still_phot.ratio_spread + 0.002


def test_cosmic_rays_are_rejected_in_the_aligned_stack(moved):
    """The stack against the same lights combined with every true cosmic-ray hit left out
    (plain weighted mean, same zero offsets): no pixel a hit touched stands 5 sigma above."""
    from dataclasses import replace

    from ccdcal.combine import combine

    night, result = moved
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    stack = Frame.read(result.stacks[("SIMFIELD", "V")])
    aligned, weights = [], []
    for i, (f, path) in enumerate(zip(reg.frames, result.calibrated, strict=True)):
        frame = Frame.read(path)
        hits = Frame.read(night.truth[f"cosmic_{path.stem}"]).data > 0
        mask = frame.mask_or_zeros().copy()
        mask[hits] |= flags.COSMIC_RAY
        frame = replace(frame, mask=mask)
        aligned.append(frame if i == reg.reference else resample(frame, f.transform, SHAPE))
        weights.append(1.0 / float(frame.header["MEDVAR"]))
    ideal = combine(aligned, method="mean", zero="median", weights=weights)
    touched = np.zeros(SHAPE, bool)
    for frame in aligned:
        touched |= (frame.mask & flags.COSMIC_RAY) != 0
    touched &= (stack.mask & flags.NO_DATA) == 0
    z = (stack.data - ideal.data) / np.sqrt(stack.variance)
    left = int((z[touched] > 5).sum())
    print(f"{touched.sum()} stack pixels touched by a cosmic ray in some light; {left} left")
    assert touched.sum() > 1000
    assert left <= 0.001 * touched.sum()


def test_a_clouded_frame_is_left_out(tmp_path):
    views = [Pointing(dx=0.7 * i, dy=-0.4 * i, fwhm=3.0) for i in range(6)]
    views[3] = Pointing(dx=2.1, dy=-1.2, fwhm=3.0, transparency=0.2)
    night = ccdcal.simulate.night(tmp_path / "n", seed=4, shape=(160, 160), nbias=3, ndark=3,
                                  nflat=3, nlight=6, nstars=40, pointings=views)  # fmt: skip
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    out = [f.name for f in reg.frames if not f.used]
    assert out == ["light_V_004.fits"]
    assert "clouds" in reg.frames[3].why or "stars" in reg.frames[3].why
    assert any("light_V_004.fits" in n and "left out" in n for n in result.notices)
    assert Frame.read(result.stacks[("SIMFIELD", "V")]).header["NCOMBINE"] == 5


def test_an_unmatched_frame_is_named_and_left_out(tmp_path):
    views = [Pointing(dx=0.6 * i, fwhm=3.0) for i in range(5)]
    views[2] = Pointing(dx=400.0, fwhm=3.0)  # pointed at another field
    night = ccdcal.simulate.night(tmp_path / "n", seed=6, shape=(160, 160), nbias=3, ndark=3,
                                  nflat=3, nlight=5, nstars=40, pointings=views)  # fmt: skip
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    assert not reg.frames[2].used and reg.frames[2].why.startswith("not matched")
    notice = [n for n in result.notices if "light_V_003.fits" in n]
    assert notice and "left out of the stack" in notice[0]


def test_a_night_where_nothing_matches_is_stacked_unaligned(tmp_path):
    night = ccdcal.simulate.night(tmp_path / "n", seed=7, shape=(64, 64), nbias=3, ndark=3,
                                  nflat=3, nlight=3, nstars=0)  # fmt: skip
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    assert any("stacked without alignment" in n for n in result.notices), result.notices
    assert Frame.read(result.stacks[("SIMFIELD", "V")]).header["NCOMBINE"] == 3


def test_unmoved_frames_are_stacked_as_they_are(still, tmp_path):
    """All shifts under 0.05 px: the stack equals one without registration, bit for bit."""
    night, result = still
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    assert not reg.resample and all(f.used for f in reg.frames)
    cfg = ccdcal.config.loads_config('[register]\nmethod = "none"\n')
    plain = reduce(night.raw_dir, tmp_path / "plain", config=cfg, report=False)
    a = Frame.read(result.stacks[("SIMFIELD", "V")])
    b = Frame.read(plain.stacks[("SIMFIELD", "V")])
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.variance, b.variance)
    assert not plain.registrations


def test_exposures_are_stacked_apart_or_scaled(tmp_path):
    base = tmp_path / "n"
    ccdcal.simulate.night(base / "a", seed=8, shape=(96, 96), nbias=3, ndark=3, nflat=3,
                          nlight=3, light_exptime=30.0, nstars=25)  # fmt: skip
    ccdcal.simulate.night(base / "b", seed=8, shape=(96, 96), nbias=3, ndark=3, nflat=3,
                          nlight=3, light_exptime=90.0, nstars=25)  # fmt: skip
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in (base / "a" / "raw").glob("*.fits"):
        (raw / p.name).write_bytes(p.read_bytes())
    for p in (base / "b" / "raw").glob("light_*.fits"):
        (raw / f"long_{p.name}").write_bytes(p.read_bytes())
    apart = reduce(raw, tmp_path / "apart", report=False)
    assert sorted(apart.stacks) == [("SIMFIELD", "V 30 s"), ("SIMFIELD", "V 90 s")]
    assert any("2 exposure times" in n for n in apart.notices)
    names = sorted(p.name for p in apart.stacks.values())
    assert names == ["SIMFIELD_V_30s.fits", "SIMFIELD_V_90s.fits"]
    cfg = ccdcal.config.loads_config('[combine.light]\nexposures = "scale"\n')
    mixed = reduce(raw, tmp_path / "mixed", config=cfg, report=False)
    stack = Frame.read(mixed.stacks[("SIMFIELD", "V")])
    assert stack.header["EXPTIME"] == 60.0 and stack.header["NCOMBINE"] == 6
    # each light scaled to 60 s (x2 and x2/3), the skies then brought to their mean level
    short, long = (np.median(Frame.read(apart.stacks[("SIMFIELD", f"V {t} s")]).data)
                   for t in (30, 90))  # fmt: skip
    assert np.median(stack.data) == pytest.approx((2 * short + long * 60 / 90) / 2, rel=0.02)


def test_register_api_and_wcs(tmp_path):
    """``method="wcs"`` maps frames through their celestial WCS."""
    from astropy.wcs import WCS

    night = ccdcal.simulate.night(tmp_path / "n", seed=9, shape=(96, 96), nbias=1, ndark=0,
                                  nflat=1, nlight=2, nstars=20, drift=3.0)  # fmt: skip
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    frames = []
    for path, row in zip(night.of_kind("light"), table, strict=True):
        frame = Frame.read(path)
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.cdelt = [-1e-4, 1e-4]
        w.wcs.crval = [150.0, 2.0]
        # the sky point at the scene's origin lands where the pointing puts it
        w.wcs.crpix = [row["tx"] + 1, row["ty"] + 1]
        frame.header.update(w.to_header())
        frames.append(frame)
    by_wcs = register(frames, method="wcs", reference=0)
    by_stars = register(frames, method="stars", reference=0)
    a, b = by_wcs.frames[1].transform, by_stars.frames[1].transform
    assert by_wcs.frames[1].method == "wcs"
    assert math.hypot(*np.subtract(a.shift_at(48, 48), b.shift_at(48, 48))) < 0.05


@pytest.mark.realdata
def test_lowell_shifts_are_reported_and_the_stack_is_sharp(lowell_night, tmp_path):
    result = reduce(lowell_night, tmp_path, report=False)
    (path,) = result.registrations.values()
    reg = Registration.read(path)
    table = reg.table()
    print(table["frame", "method", "dx", "dy", "rotation", "matched", "rms", "fwhm", "used"])
    assert all(f.method in ("reference", "stars") for f in reg.frames)
    # the telescope drifted steadily by a few hundredths of a pixel per 300 s frame
    moved = np.hypot(np.asarray(table["dx"], float), np.asarray(table["dy"], float))
    assert moved.max() > 0.1 and np.all(np.asarray(table["rms"], float) < 0.2)
    stack = Frame.read(next(iter(result.stacks.values())))
    singles = [f.quality.fwhm for f in reg.frames]
    assert find_stars(stack)[1].fwhm <= 1.05 * float(np.median(singles))


def test_the_aligned_stack_in_bands_equals_one_task(moved, tmp_path):
    """Resampling, the median, the cosmic rays against it and the combine, split into
    tasks, give the same stack, bit for bit."""
    night, result = moved
    banded = reduce(night.raw_dir, tmp_path / "bands", report=False, band_rows=50)
    a = Frame.read(result.stacks[("SIMFIELD", "V")])
    b = Frame.read(banded.stacks[("SIMFIELD", "V")])
    for plane in ("data", "variance", "mask"):
        np.testing.assert_array_equal(getattr(a, plane), getattr(b, plane), err_msg=plane)
    assert not [p for p in (tmp_path / "bands" / "stacks").iterdir() if p.is_dir()]


def test_cli_register(moved, tmp_path, capsys):
    from ccdcal.cli import main

    _, result = moved
    out = tmp_path / "aligned"
    code = main(["-q", "register", *map(str, result.calibrated), "-o", str(out),
                 "--transform", "affine", "--grid", "union"])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "8 of 8 frames written" in text and "reference" in text
    reg = Registration.read(out / "registration.ecsv")
    written = sorted(p.name for p in out.glob("*.fits"))
    assert written == sorted(p.name for p in result.calibrated)
    aligned = Frame.read(out / written[0])
    assert aligned.shape == reg.shape and reg.shape[0] > SHAPE[0]  # the union is larger
    assert aligned.header["REGKERN"] == "lanczos3"
    with pytest.raises(SystemExit) as bad:
        main(["register", str(result.calibrated[0]), "-o", str(out), "--max-fwhm", "0"])
    assert bad.value.code == 2 and "expected a number > 0 or none" in capsys.readouterr().err
    code = main(["register", str(result.calibrated[0]), "-o", str(out), "--method", "stars",
                 "--reference", "nothing.fits"])  # fmt: skip
    assert code == 1 and "reference 'nothing.fits' is not among" in capsys.readouterr().err


def test_report_shows_the_registration(moved):
    from ccdcal.report import write_report

    _, result = moved
    index = write_report(result)
    html = index.read_text()
    assert 'id="registration"' in html and "reference light_V_" in html
    assert "8 of 8 lights used; resampled onto the reference grid" in html
    for png in ("registration_SIMFIELD_V.png", "aligned_SIMFIELD_V.png"):
        assert (index.parent / png).stat().st_size > 10_000
        assert png in html


def test_aligned_lights_beyond_the_memory_limit_are_spilled(moved, tmp_path, caplog):
    """Resampled lights that do not fit half the memory limit go to a scratch folder beside
    the stack, and the stack comes out the same, bit for bit."""
    night, result = moved
    with caplog.at_level("INFO", logger="ccdcal.masters"):
        small = reduce(night.raw_dir, tmp_path / "small", report=False, memory_limit="8MB")
    assert any("prepared frames exceed" in r.message for r in caplog.records)
    a = Frame.read(result.stacks[("SIMFIELD", "V")])
    b = Frame.read(small.stacks[("SIMFIELD", "V")])
    for plane in ("data", "variance", "mask"):
        np.testing.assert_array_equal(getattr(a, plane), getattr(b, plane), err_msg=plane)
    assert not [p for p in (tmp_path / "small" / "stacks").iterdir() if p.is_dir()]
