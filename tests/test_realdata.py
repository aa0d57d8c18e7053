"""The two real nights in ../shared/data: reduced with no hand editing, checked physically and
against ccdproc's documented workflow. Skipped where the data are absent."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.stats import mad_std, sigma_clipped_stats

from ccdcal.frame import Frame
from ccdcal.masters import CombineSpec, master_bias, preprocess
from ccdcal.pipeline import reduce

# one worker reduces each real night once (the fixtures are per module and per worker)
pytestmark = [pytest.mark.realdata, pytest.mark.slow, pytest.mark.xdist_group("realdata")]


@pytest.fixture(scope="module")
def lowell(lowell_night, tmp_path_factory):
    out = tmp_path_factory.mktemp("lowell")
    return lowell_night, reduce(lowell_night, out, report=False)


@pytest.fixture(scope="module")
def feder(feder_night, tmp_path_factory):
    out = tmp_path_factory.mktemp("feder")
    return feder_night, reduce(feder_night, out, report=False)


# ---------------------------------------------------------------------------- Lowell
def test_lowell_overscan_removed_and_trimmed(lowell):
    _, result = lowell
    bias = Frame.read(result.masters["bias"])
    # TRIMSEC = [18:1382,1:1370]: 1365 columns, 1370 rows
    assert bias.shape == (1370, 1365)
    assert abs(float(np.median(bias.data))) < 2.0  # the 1626 adu level came off with the overscan
    light = Frame.read(result.calibrated[0])
    assert light.shape == (1370, 1365)
    assert light.header["BUNIT"] == "electron"
    assert abs(light.header["GAINCORR"] - 4.95) < 0.2


def test_lowell_master_bias_noise_is_read_noise_over_sqrt_n(lowell):
    raw_dir, _ = lowell
    paths = sorted((raw_dir / "zero").glob("*.fits*"))
    assert len(paths) == 10
    frames = [preprocess(Frame.read(p)).data for p in paths]
    # read noise in adu from the five pairs, fixed pattern cancelled; a clipped std, not
    # mad_std: the MAD of integer-valued differences is quantized and underestimates ~1 adu
    pairs = [sigma_clipped_stats(frames[i] - frames[i + 1], sigma=5)[2] for i in range(0, 10, 2)]
    read_noise = float(np.mean(pairs)) / np.sqrt(2)
    assert 0.8 < read_noise < 2.0  # README: about 1.3 adu
    spec = CombineSpec.default("bias")  # the pipeline's own recipe for a master bias
    half1 = master_bias(paths[:5], combine=spec).data
    half2 = master_bias(paths[5:], combine=spec).data
    per_master = sigma_clipped_stats(half1 - half2, sigma=5)[2] / np.sqrt(2)
    expected = read_noise / np.sqrt(5)
    assert abs(per_master / expected - 1) < 0.15, (per_master, expected)


def test_lowell_bias_by_esd_not_by_a_mad_clip(lowell):
    """16-bit biases with a read noise near 1 ADU: most of a pixel's values tie, the MAD
    collapses and a MAD clip throws good values away; the default ESD keeps them. Each
    master's noise from the difference of two masters of five biases each."""
    from ccdcal.stacking import SigmaClip

    raw_dir, _ = lowell
    paths = sorted((raw_dir / "zero").glob("*.fits*"))

    def noise(spec: CombineSpec) -> float:
        a = master_bias(paths[:5], combine=spec).data
        b = master_bias(paths[5:], combine=spec).data
        return sigma_clipped_stats(a - b, sigma=5)[2] / np.sqrt(2)

    mean = noise(CombineSpec("mean"))
    mad_clip = noise(CombineSpec("mean", SigmaClip(low=3, high=3, spread="mad_std")))
    esd = noise(CombineSpec.default("bias"))
    assert mad_clip > 1.10 * mean, (mad_clip, mean)
    assert esd < 1.05 * mean, (esd, mean)


def _box_medians(data: np.ndarray, boxes: int = 6) -> np.ndarray:
    ny, nx = data.shape
    out = []
    for i in range(boxes):
        for j in range(boxes):
            box = data[
                i * ny // boxes : (i + 1) * ny // boxes, j * nx // boxes : (j + 1) * nx // boxes
            ]
            _, median, _ = sigma_clipped_stats(box[np.isfinite(box)], sigma=2.5, maxiters=10)
            out.append(median)
    return np.array(out)


def test_lowell_calibrated_sky_is_flat(lowell):
    _, result = lowell
    stack = Frame.read(result.stacks[next(iter(result.stacks))])
    medians = _box_medians(stack.data)
    spread = np.std(medians) / np.median(medians)
    assert spread < 0.01, spread
    # and the raw frame was not: the flat took the vignetting out
    raw_dir = result.collection.root
    raw = preprocess(Frame.read(raw_dir / "5945" / "20190326.0126.fits.gz")).data
    raw_spread = np.std(_box_medians(raw)) / np.median(_box_medians(raw))
    assert raw_spread > 2 * spread


def test_lowell_stack_rejects_cosmic_rays(lowell):
    """Bright outliers on the sky in one frame only (cosmic rays, not stars) are gone from the
    stack: there it sits at the level of the other frames."""
    _, result = lowell
    frames = np.stack([Frame.read(p).data for p in result.calibrated])
    levels = np.nanmedian(frames, axis=(1, 2))
    frames = frames - levels[:, None, None] + levels.mean()  # the stack's zero offsets
    median = np.nanmedian(frames, axis=0)
    noise = np.array([mad_std(f - median, ignore_nan=True) for f in frames])
    excess = (frames - median) / noise[:, None, None]
    sky = np.abs(median - np.nanmedian(median)) < 5 * noise.mean()
    hits = (excess > 15).sum(axis=0) == 1
    hits &= sky & (np.nanmax(np.abs(excess), axis=0) == np.nanmax(excess, axis=0))
    assert hits.sum() > 100  # 300 s exposures: there are cosmic rays to reject
    stack = Frame.read(next(iter(result.stacks.values()))).data
    stack_noise = mad_std(stack - median, ignore_nan=True)
    left = np.abs(stack - median)[hits] > 6 * stack_noise
    assert left.mean() < 0.01, (left.mean(), hits.sum())


# ---------------------------------------------------------------------------- Feder
def test_feder_darks_flats_and_stacks(feder):
    _, result = feder
    assert sorted(k for k in result.masters if k.startswith("dark_")) == [
        "dark_120s", "dark_15s", "dark_30s", "dark_5s", "dark_60s"]  # fmt: skip
    assert sorted(k for k in result.masters if k.startswith("flat_")) == [
        "flat_B", "flat_I", "flat_R", "flat_V"]  # fmt: skip
    assert sorted(f for _, f in result.stacks) == ["B", "I", "R", "V"]
    for path in result.calibrated:
        header = Frame.read(path).header
        # the dark of the light's own exposure: no scaling
        assert header["DARKSCAL"] == 1.0, path.name
        history = "\n".join(str(h) for h in header["HISTORY"])
        assert f"dark=dark_{header['EXPTIME']:g}s.fits" in history, path.name


def test_lowell_run_checks_its_header_gain(lowell):
    """The run measures the camera from the night's biases and flats and says that the
    header's AGAIN_01 and ARDNS_01 differ from it (see tests/test_camera.py for the numbers
    and why), and where each number came from."""
    _, result = lowell
    gain = [n for n in result.notices if "AGAIN_01 = 4.95" in n]
    noise = [n for n in result.notices if "ARDNS_01 = 9.3" in n]
    assert len(gain) == 1 and "3.66" in gain[0] and "+35 %" in gain[0] and len(noise) == 1
    summary = result.summary()
    assert "gain: AGAIN_01 = 4.95" in summary and "filter: FILTER = VR" in summary
    assert "measured gain: 3.6" in summary


def test_feder_without_gain_stays_in_adu(feder):
    _, result = feder
    assert Frame.read(result.calibrated[0]).header["BUNIT"] == "adu"
    assert any("gain" in n.lower() for n in result.notices)


def test_feder_matches_ccdproc_workflow(feder):
    """Master bias and a calibrated light equal ccdproc's documented steps on the same files."""
    ccdproc = pytest.importorskip("ccdproc")
    from astropy import units as u
    from astropy.nddata import CCDData

    raw_dir, result = feder
    bias_paths = sorted(p for p in raw_dir.glob("*bias*"))
    assert len(bias_paths) == 10

    def ccdproc_prepare(path):
        ccd = CCDData.read(path, unit="adu")
        ccd = ccdproc.subtract_overscan(ccd, fits_section=ccd.header["BIASSEC"].replace(" ", ""),
                                        median=True, overscan_axis=1)  # fmt: skip
        return ccdproc.trim_image(ccd, fits_section=ccd.header["TRIMSEC"].replace(" ", ""))

    theirs_bias = ccdproc.combine([ccdproc_prepare(p) for p in bias_paths], method="median")
    ours_bias = master_bias(bias_paths, combine=CombineSpec("median"), overscan="rows")
    np.testing.assert_allclose(ours_bias.data, theirs_bias.data, atol=1e-3)

    light_path = sorted(raw_dir.glob("SA112-SF1-001V1*"))[0]
    dark = CCDData.read(result.masters["dark_30s"], unit="adu")
    flat = CCDData.read(result.masters["flat_V"], unit="adu")
    bias = CCDData.read(result.masters["bias"], unit="adu")
    for c in (dark, flat, bias):
        c.mask = None
        c.uncertainty = None
    ccd = ccdproc_prepare(light_path)
    ours_pre = preprocess(Frame.read(light_path), overscan="median")
    # same overscan model for the comparison: a constant from the strip
    ccd = CCDData(ours_pre.data, unit="adu", meta=ccd.meta)
    ccd = ccdproc.subtract_bias(ccd, bias)
    ccd = ccdproc.subtract_dark(ccd, dark, exposure_time="EXPTIME", exposure_unit=u.s, scale=True)
    ccd = ccdproc.flat_correct(ccd, flat, norm_value=1.0)
    ours = Frame.read(result.calibrated[[p.name for p in result.calibrated].index(
        light_path.name.replace(".fit.gz", ".fits"))])  # fmt: skip
    good = np.isfinite(ours.data) & np.isfinite(ccd.data) & (flat.data > 0.5)
    np.testing.assert_allclose(ours.data[good], ccd.data[good], rtol=1e-5, atol=1e-3)
