"""Registration against the simulator's truth: lights that move are aligned, resampled and
stacked, with their quality measured and the bad ones left out."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from scipy import ndimage

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


def _cosmic_rays_left(night, result) -> tuple[int, int]:
    """The stack against the same lights combined with every true cosmic-ray hit left out
    (plain weighted mean, same scaling and zero offsets): the stack pixels a hit touched in
    some light, and how many of them stand 5 sigma above."""
    from dataclasses import replace

    from ccdcal.pipeline.stack_choice import throughput_levels
    from ccdcal.stacking import combine

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
    levels = throughput_levels([f.throughput for f in reg.frames], len(reg.frames))
    weights = [w * v**2 for w, v in zip(weights, levels, strict=True)]
    ideal = combine(aligned, method="mean", zero="median", weights=weights, scale=list(levels))
    touched = np.zeros(SHAPE, bool)
    for frame in aligned:
        touched |= (frame.mask & flags.COSMIC_RAY) != 0
    touched &= (stack.mask & flags.NO_DATA) == 0
    z = (stack.data - ideal.data) / np.sqrt(stack.variance)
    left = int((z[touched] > 5).sum())
    print(f"{touched.sum()} stack pixels touched by a cosmic ray in some light; {left} left")
    return int(touched.sum()), left


def test_cosmic_rays_are_rejected_in_the_aligned_stack(moved):
    touched, left = _cosmic_rays_left(*moved)
    assert touched > 1000
    assert left <= 0.001 * touched


def test_a_brighter_sky_or_a_thin_cloud_is_no_cosmic_ray(tmp_path):
    """Lights under skies up to 3 times as bright and clouds down to 0.6: each light's
    flags against the median of the others are its true hits (and their edges), not its
    sky."""
    from ccdcal.cosmic import flag_against_model, median_model
    from ccdcal.registration.stars import FWHM_PER_SIGMA

    night = _night(tmp_path / "n", seed=33, **MOVING, sky_range=(1.0, 3.0),
                   transparency_range=(0.6, 1.0))  # fmt: skip
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    reg = Registration.read(result.registrations["SIMFIELD_V"])
    assert all(f.used for f in reg.frames), [f.why for f in reg.frames]
    aligned = [
        Frame.read(p) if i == reg.reference else resample(Frame.read(p), f.transform, SHAPE)
        for i, (f, p) in enumerate(zip(reg.frames, result.calibrated, strict=True))
    ]
    model = median_model(aligned, throughput=[f.throughput for f in reg.frames])
    mean_through = np.mean([f.throughput for f in reg.frames])
    s2 = (np.array([f.quality.fwhm for f in reg.frames]) / FWHM_PER_SIGMA) ** 2
    for f, frame, own in zip(reg.frames, aligned, s2, strict=True):
        hits = resample(Frame.read(night.truth[f"cosmic_{Path(f.name).stem}"]), f.transform,
                        SHAPE, kernel="bilinear").data > 0  # fmt: skip
        near = ndimage.binary_dilation(hits, np.ones((5, 5), bool))
        out = flag_against_model(frame, model, throughput=f.throughput / mean_through,
                                 seeing=(own, np.median(s2)))  # fmt: skip
        flagged = (out.mask & flags.COSMIC_RAY) != 0
        false = int((flagged & ~near & (frame.mask & flags.NO_DATA == 0)).sum())
        print(f"{f.name}: {flagged.sum()} flagged, {false} away from any true hit")
        assert out.header["NCRSTACK"] >= 0
        assert false <= 1e-4 * flagged.size


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


def _scene_wcs(night, row):
    """A light's celestial WCS from its true pointing: a TAN sky on the scene grid, seen
    through the scene-to-frame transform (rotation included, so errors of sign or of the
    1-based pixels do not cancel)."""
    from astropy.wcs import WCS

    a = _affine(row)
    cx, cy = night.footprint.centre
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    inv = np.linalg.inv(a)[:2, :2]
    w.wcs.cd = np.array([[-1e-4, 0.0], [0.0, 1e-4]]) @ inv
    x, y = a[:2, :2] @ [cx, cy] + a[:2, 2]  # where the scene's centre lands, 0-based
    w.wcs.crpix = [x + 1, y + 1]
    return w


def test_aligned_frames_carry_the_reference_wcs(tmp_path):
    """Resampled frames (``write_aligned``, on the reference grid and on the union grid)
    carry the reference's WCS, moved with the grid: each pixel's sky position is that of
    the same star in the reference."""
    from astropy.wcs import WCS

    from ccdcal.registration import write_aligned

    night = ccdcal.simulate.night(tmp_path / "n", seed=9, shape=(96, 96), nbias=1, ndark=0,
                                  nflat=1, nlight=3, nstars=25, drift=3.0, rotate=4.0)  # fmt: skip
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    frames = []
    for path, row in zip(night.of_kind("light"), table, strict=True):
        frame = Frame.read(path)
        frame.header.update(_scene_wcs(night, row).to_header())
        frames.append(frame)
    by_wcs = register(frames, method="wcs", reference=0)
    by_stars = register(frames, method="stars", reference=0)
    for i in (1, 2):
        a, b = by_wcs.frames[i].transform, by_stars.frames[i].transform
        assert by_wcs.frames[i].method == "wcs"
        assert a.displacement((96, 96)) > 3  # moved and rotated
        assert math.hypot(*np.subtract(a.shift_at(48, 48), b.shift_at(48, 48))) < 0.05
    reference = WCS(frames[0].header)
    for grid in ("reference", "union"):
        reg = register(frames, method="stars", reference=0, grid=grid)
        out = write_aligned(frames, reg, tmp_path / grid)
        aligned = WCS(fits.getheader(out[2]))
        points = np.array([[10.0, 20.0], [70.0, 50.0]])
        # grid pixel p is reference pixel p + origin
        on_ref = reference.pixel_to_world_values(*(points + reg.origin).T)
        np.testing.assert_allclose(aligned.pixel_to_world_values(*points.T), on_ref, atol=1e-9)
        assert "REGA11" in fits.getheader(out[2])
    with pytest.raises(ccdcal.CcdcalError, match="overwrite an input"):
        inputs = [tmp_path / "reference" / p.name for p in out]
        write_aligned(inputs, register(inputs, reference=0), tmp_path / "reference")


def test_write_aligned_refuses_clashes_and_removes_its_own_stale_files(moved, tmp_path):
    from ccdcal.registration import write_aligned

    _, result = moved
    paths = result.calibrated[:3]
    twin = tmp_path / "other" / paths[1].name
    twin.parent.mkdir()
    twin.write_bytes(paths[1].read_bytes())
    with pytest.raises(ccdcal.CcdcalError, match="would both be written"):
        write_aligned([*paths, twin], register([*paths, twin]), tmp_path / "out")
    reg = register(paths)
    written = write_aligned(paths, reg, tmp_path / "out")
    assert len(written) == 3
    user_file = tmp_path / "out" / "notes.fits"
    user_file.write_bytes(paths[0].read_bytes())  # a file of the user's: never touched
    left_out = replace(reg, frames=[replace(f, used=i != 2, why="test" if i == 2 else "")
                                    for i, f in enumerate(reg.frames)])  # fmt: skip
    again = write_aligned(paths, left_out, tmp_path / "out")
    assert len(again) == 2 and not written[2].exists() and user_file.exists()


def test_frames_of_another_shape_are_left_out(moved):
    _, result = moved
    frames = [Frame.read(p) for p in result.calibrated[:4]]
    small = frames[2]
    frames[2] = replace(small, data=small.data[:200, :200], variance=small.variance[:200, :200],
                        mask=small.mask[:200, :200])  # fmt: skip
    reg = register(frames)
    assert [f.used for f in reg.frames] == [True, True, False, True]
    assert "shape (200, 200) differs" in reg.frames[2].why
    assert any("shape (200, 200)" in n for n in reg.notices)


def test_a_mirrored_frame_is_matched_with_an_affine_transform(moved):
    """A frame flipped left to right (a camera mounted the other way, a flip mirror): no
    similarity can map it, an affine transform can, and resampling it undoes the flip."""
    from ccdcal.registration import MatchError, match

    _, result = moved
    frame = Frame.read(result.calibrated[0])
    flip = (slice(None), slice(None, None, -1))
    flipped = replace(frame, data=frame.data[flip].copy(), variance=frame.variance[flip].copy(),
                      mask=frame.mask[flip].copy())  # fmt: skip
    stars, _ = find_stars(frame)
    mirrored, _ = find_stars(flipped)
    with pytest.raises(MatchError, match="mirrored frame needs transform='affine'"):
        match(mirrored, stars, kind="similarity")
    m = match(mirrored, stars, kind="affine")
    nx = SHAPE[1]
    np.testing.assert_allclose(m.transform.matrix, [[-1, 0, nx - 1], [0, 1, 0], [0, 0, 1]],
                               atol=2e-3)  # fmt: skip
    back = resample(flipped, m.transform, SHAPE, kernel="bilinear")
    inner = (slice(5, -5), slice(5, -5))
    both = np.isfinite(back.data[inner]) & frame.good[inner]
    assert both.mean() > 0.99  # bad pixels (NaN once resampled) aside
    np.testing.assert_allclose(back.data[inner][both], frame.data[inner][both], rtol=1e-3, atol=0.5)


def test_affine_fits_draw_their_triples_and_flags_spread_only_where_they_weigh():
    from ccdcal.registration.transform import _CANDIDATES, _subsets, fit

    triples = _subsets(2000, 3)  # all 1.3e9 triples would not fit in memory
    assert triples.shape == (_CANDIDATES, 3) and len(np.unique(triples, axis=0)) == _CANDIDATES
    assert np.all(np.diff(triples, axis=1) > 0)
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 1000, (1000, 2))
    truth = Transform(np.array([[1.001, 0.02, 3.0], [-0.019, 0.998, -2.0], [0, 0, 1]]))
    dst = truth.apply(src) + rng.normal(0, 0.02, src.shape)
    dst[:250] += rng.uniform(-40, 40, (250, 2))  # a quarter of wrong pairs
    np.testing.assert_allclose(fit(src, dst, "affine").matrix, truth.matrix, atol=2e-3)
    # one cosmic-ray pixel, half a pixel of shift: its flag marks the output pixels it
    # weighs at least 5 % in (12 of Lanczos-3's 36), the value of every other is computed
    # without it
    data = np.ones((32, 32), np.float32)
    mask = np.zeros((32, 32), np.uint16)
    mask[16, 16] = flags.COSMIC_RAY
    data[16, 16] = 1e6
    out = resample(Frame(data, mask=mask), Transform.from_parameters(dx=0.5, dy=0.5), (32, 32))
    hit = (out.mask & flags.COSMIC_RAY) != 0
    assert hit.sum() == 12
    np.testing.assert_allclose(out.data[4:-4, 4:-4], 1.0, rtol=1e-5)


# ------------------------------------------------------------- stars among cosmic rays
# Lights of 60 s at the simulator's default cosmic-ray rate: on 1024x1024, some 500 hits
# each (tracks and single pixels of 20,000 to 80,000 e-, as bright as the stars) against
# 30 stars. The first two lights look at the same place; the others moved and rotated.
COSMIC_VIEWS = [
    Pointing(fwhm=3.0),
    Pointing(fwhm=3.0),
    Pointing(dx=6.3, dy=-4.1, rotation=0.4, fwhm=2.6),
    Pointing(dx=-5.2, dy=7.7, rotation=-0.3, fwhm=3.6),
]


def _calibrated_lights(base: Path, shape: tuple[int, int], views: list[Pointing], **options):
    night = ccdcal.simulate.night(base / "night", seed=41, shape=shape, nbias=3, ndark=2, nflat=3,
                                  nlight=len(views), pointings=views, **options)  # fmt: skip
    result = reduce(night.raw_dir, base / "out", report=False, only="calibrated")
    return night, [Frame.read(p) for p in result.calibrated]


@pytest.fixture(scope="module")
def cosmic(tmp_path_factory):
    return _calibrated_lights(tmp_path_factory.mktemp("cosmic"), (1024, 1024), COSMIC_VIEWS)


def _found_against_truth(night, frame: Frame, stars) -> tuple[float, float]:
    """The share of the true stars (10 px or more inside the frame, their cores not
    saturated) found within 1.5 px, and the share of the detections there that are no
    true star."""
    from scipy.spatial import cKDTree

    truth = _reference_stars(night, frame.path.name)
    ny, nx = frame.shape

    def inside(x, y):
        return (x >= 10) & (y >= 10) & (x <= nx - 11) & (y <= ny - 11)

    tx, ty = np.asarray(truth["x"]), np.asarray(truth["y"])
    excluded = ndimage.maximum_filter((frame.mask & flags.EXCLUDE) != 0, size=5)
    clear = ~excluded[np.clip(np.round(ty).astype(int), 0, ny - 1),
                      np.clip(np.round(tx).astype(int), 0, nx - 1)]  # fmt: skip
    txy = np.column_stack([tx, ty])[inside(tx, ty) & clear]
    found = stars.xy()[inside(stars.x, stars.y)]
    recovered = float(np.mean(cKDTree(found).query(txy)[0] < 1.5))
    false = float(np.mean(cKDTree(txy).query(found)[0] >= 1.5))
    return recovered, false


def test_stars_are_told_from_cosmic_rays(cosmic):
    """Each light's stars are the simulator's: nearly all found, hardly a hit among them,
    and the seeing they give is the truth's (the hits' would be half of it)."""
    night, frames = cosmic
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    for frame, row in zip(frames, table, strict=True):
        hits = ndimage.label(fits.getdata(night.truth[f"cosmic_{row['frame']}"]) > 0)[1]
        stars, quality = find_stars(frame)
        recovered, false = _found_against_truth(night, frame, stars)
        print(
            f"{row['frame']}: {hits} hits, {len(stars)} stars found, {recovered:.1%} of "
            f"the truth's, {false:.1%} false; FWHM {quality.fwhm:.3f} ({row['fwhm']} true)"
        )
        assert hits > 10 * len(stars)
        assert recovered >= 0.9 and false < 0.1
        assert quality.fwhm == pytest.approx(row["fwhm"], rel=0.06)


def test_sky_level_and_noise_are_the_truth(cosmic):
    """Each light's sky level (the median of sep's sky mesh) is the simulator's sky, its
    rate times the exposure, seen through that light's transparency and sky brightness;
    its noise is the one the calibration propagated (the sky's photons, the dark's, the
    read noise and the few masters' noise of this night)."""
    import json

    night, frames = cosmic
    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    scene = json.loads(Path(night.truth["detector"]).read_text())["scene"]
    for frame, row in zip(frames, table, strict=True):
        sky = scene["sky_rate"] * frame.header["EXPTIME"] * row["transparency"] * row["sky"]
        _, quality = find_stars(frame)
        good = (frame.mask & flags.EXCLUDE) == 0
        noise = math.sqrt(float(np.median(frame.variance[good])))
        print(f"{row['frame']}: sky {quality.background:.3f} ({sky:.3f} true), noise "
              f"{quality.noise:.3f} ({noise:.3f} propagated)")  # fmt: skip
        # the mesh's mode estimate sits a small fraction of the noise off the mean sky
        assert quality.background == pytest.approx(sky, abs=0.05 * noise)
        assert quality.noise == pytest.approx(noise, rel=0.03)


def test_unmoved_lights_share_their_stars(cosmic):
    """Two lights of the same field taken one after the other find the same stars (not
    each its own hits): nearly every detection of one is within a pixel of one of the
    other's."""
    from scipy.spatial import cKDTree

    _, frames = cosmic
    first, second = (find_stars(f)[0] for f in frames[:2])
    shared = cKDTree(second.xy()).query(first.xy())[0] < 1.0
    print(f"{shared.sum()} of {len(first)} stars shared ({len(second)} in the other light)")
    assert shared.mean() >= 0.9 and len(first) >= 20


def test_lights_among_cosmic_rays_are_aligned(cosmic):
    """The lights are aligned to the truth within 0.05 px at the centre and the corners;
    the unmoved one has not moved."""
    night, frames = cosmic
    reg = register(frames, reference=0, select=None)
    truth = _truth_to_reference(night, frames[0].path.name)
    ny, nx = frames[0].shape
    points = np.array([[(nx - 1) / 2, (ny - 1) / 2], [0, 0], [nx - 1, 0], [0, ny - 1],
                       [nx - 1, ny - 1]], float)  # fmt: skip
    for frame, f in zip(frames, reg.frames, strict=True):
        assert f.transform is not None, f.why
        err = np.hypot(*(f.transform.apply(points) - truth[frame.path.name].apply(points)).T)
        print(f"{f.name}: {f.method}, {f.matched} pairs, error up to {err.max():.4f} px")
        assert err.max() <= 0.05
    assert reg.frames[1].transform.displacement(frames[0].shape) < 0.05


def test_undersampled_stars_are_told_from_cosmic_rays(tmp_path):
    """Stars of FWHM 1.2 px are nearly as sharp as a hit on one pixel: they are still
    found, hits are not, and the lights are aligned (to their centroids' precision, about
    0.2 px per star for such stars, which the transform's error states)."""
    views = [Pointing(fwhm=1.2), Pointing(dx=3.4, dy=-2.7, fwhm=1.2),
             Pointing(dx=-1.6, dy=4.3, rotation=0.3, fwhm=1.2)]  # fmt: skip
    night, frames = _calibrated_lights(tmp_path, (512, 512), views)
    for frame in frames:
        recovered, false = _found_against_truth(night, frame, find_stars(frame)[0])
        print(f"{frame.path.name}: {recovered:.1%} of the true stars, {false:.1%} false")
        assert recovered >= 0.9 and false < 0.1
    reg = register(frames, reference=0, select=None)
    truth = _truth_to_reference(night, frames[0].path.name)
    for frame, f in zip(frames[1:], reg.frames[1:], strict=True):
        assert f.method == "stars", f.why
        err = np.hypot(*(f.transform.apply([[0, 0], [511, 511]])
                         - truth[frame.path.name].apply([[0, 0], [511, 511]])).T)  # fmt: skip
        print(f"{f.name}: error up to {err.max():.3f} px, stated {f.error:.3f}")
        assert err.max() <= max(3 * f.error, 0.05)


def _field(rng, n=60):
    from ccdcal.registration.stars import Stars

    x, y = rng.uniform(50, 950, n), rng.uniform(50, 950, n)
    flux = np.sort(rng.uniform(1e3, 1e5, n))[::-1]
    return Stars(x, y, flux, np.full(n, 3.0), np.full(n, 0.05))


def test_a_near_guess_is_refined_and_a_far_one_falls_back_to_triangles(monkeypatch):
    """The previous frame's transform is tried first: where it pairs the stars, the
    triangles (astroalign) are never drawn and the result is the triangles' own; a guess
    far off pairs none and the triangles find the transform."""
    import astroalign

    from ccdcal.registration.match import match

    rng = np.random.default_rng(8)
    ref = _field(rng)
    truth = Transform(np.array([[1.0, 0.0, -7.3], [0.0, 1.0, 4.1], [0.0, 0.0, 1.0]]), "shift")
    inverse = np.linalg.inv(truth.matrix)
    own_xy = (inverse @ np.vstack([ref.x, ref.y, np.ones(len(ref))]))[:2]
    own_xy += rng.normal(0, 0.02, own_xy.shape)
    own = replace(ref, x=own_xy[0], y=own_xy[1])
    by_triangles = match(own, ref)
    np.testing.assert_allclose(by_triangles.transform.matrix, truth.matrix, atol=0.05)
    calls = []
    find = astroalign.find_transform
    monkeypatch.setattr(astroalign, "find_transform",
                        lambda *a, **k: calls.append(1) or find(*a, **k))  # fmt: skip
    near = Transform(np.array([[1.0, 0.0, -6.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]), "shift")
    guessed = match(own, ref, guess=near)
    assert calls == []
    np.testing.assert_array_equal(guessed.transform.matrix, by_triangles.transform.matrix)
    assert guessed.matched == by_triangles.matched
    far = Transform(np.array([[1.0, 0.0, 300.0], [0.0, 1.0, -250.0], [0.0, 0.0, 1.0]]), "shift")
    fallen = match(own, ref, guess=far)
    assert calls == [1]
    np.testing.assert_allclose(fallen.transform.matrix, truth.matrix, atol=0.05)
