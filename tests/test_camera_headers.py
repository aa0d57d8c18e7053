"""Real cameras' header habits, written by hand in small simulated nights: gain keywords of
varying meaning, header read noises that are wrong, sections in forms ccdcal does not read,
filters in other keywords, 12-bit and shifted ADCs, and frames with no type at all."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from astropy.io import fits

import ccdcal
from ccdcal import flags
from ccdcal.classify import classify
from ccdcal.cli import main
from ccdcal.config import Config, Detector, loads_config
from ccdcal.errors import CcdcalError
from ccdcal.frame import Frame
from ccdcal.pipeline import plan, reduce
from ccdcal.saturation import adc_ceiling


def _night(tmp_path, name="night", **params):
    defaults = dict(shape=(96, 96), nbias=4, ndark=0, nflat=4, nlight=2, nstars=6, seed=2)
    return ccdcal.simulate.night(tmp_path / name, **{**defaults, **params})


def _edit(folder, change):
    """Rewrite every raw header of a folder with ``change(header, path)``."""
    for path in sorted(folder.iterdir()):
        with fits.open(path, mode="update") as hdul:
            change(hdul[0].header, path)


# ---------------------------------------------------------------------------- gain
def test_cafos_gain_comes_from_ccdsens_not_ccdgain(tmp_path):
    night = _night(tmp_path, gain=1.43)

    def cafos(h, _):
        del h["GAIN"]
        h["CCDGAIN"] = (20, "amplifier setting")
        h["CCDSENS"] = (1.43, "e-/ADU")

    _edit(night.raw_dir, cafos)
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    light = fits.getheader(result.calibrated[0])
    assert light["GAINCORR"] == pytest.approx(1.43) and light["BUNIT"] == "electron"
    assert result.plan.sources["gain"] == "CCDSENS = 1.43"
    assert not any("CCDGAIN" in n for n in result.notices)


def test_an_unsure_gain_keyword_is_used_only_where_the_flats_agree(tmp_path):
    night = _night(tmp_path, gain=1.43)

    def ccdgain(value):
        def change(h, _):
            h.remove("GAIN", ignore_missing=True)
            h["CCDGAIN"] = value

        return change

    _edit(night.raw_dir, ccdgain(20))  # the amplifier's setting, not e-/ADU
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    assert fits.getheader(result.calibrated[0])["BUNIT"] == "adu"
    (notice,) = [n for n in result.notices if "CCDGAIN" in n]
    assert "CCDGAIN = 20 not used as the gain" in notice and "1.4" in notice
    assert 'gain = "measured"' in notice

    _edit(night.raw_dir, ccdgain(1.45))  # where a camera does write e-/ADU there
    result = reduce(night.raw_dir, tmp_path / "out2", report=False)
    light = fits.getheader(result.calibrated[0])
    assert light["BUNIT"] == "electron" and light["GAINCORR"] == pytest.approx(1.45)
    assert "confirmed by the flats" in light["GAINSRC"]
    assert not any("CCDGAIN" in n for n in result.notices)


def test_measured_gain_and_read_noise_replace_wrong_headers(tmp_path, caplog):
    night = _night(tmp_path, gain=2.0, read_noise=10.0, nbias=8, nflat=6)

    def wrong(h, _):
        h["GAIN"] = 3.5
        h["RDNOISE"] = 5.0

    _edit(night.raw_dir, wrong)
    with caplog.at_level(logging.WARNING, logger="ccdcal"):
        result = reduce(night.raw_dir, tmp_path / "out", report=False)
    notices = [n for n in result.notices if "differs from" in n]
    assert len(notices) == 2
    assert any("GAIN = 3.5" in n and "+7" in n for n in notices)  # 3.5 / 2.0 - 1 = +75 %
    assert any("RDNOISE = 5" in n for n in notices)
    assert fits.getheader(result.calibrated[0])["GAINCORR"] == 3.5  # told, not overruled

    cfg = loads_config('[detector]\ngain = "measured"\nrdnoise = "measured"\n')
    result = reduce(night.raw_dir, tmp_path / "measured", report=False, config=cfg)
    light = fits.getheader(result.calibrated[0])
    assert light["GAINCORR"] == pytest.approx(2.0, rel=0.03)
    assert light["RDNOISE"] == pytest.approx(10.0, rel=0.05)
    assert light["GAINSRC"].startswith("measured") and light["RDNSRC"].startswith("measured")
    summary = result.summary()
    assert "gain: measured from the night's frames" in summary
    measured = float(summary.split("measured gain: ")[1].split()[0])
    assert measured == pytest.approx(light["GAINCORR"], rel=1e-3)


def test_measured_values_without_pairs_are_refused_before_any_work(tmp_path):
    night = _night(tmp_path, nbias=3, nflat=1)
    with pytest.raises(CcdcalError, match=r'gain = "measured" needs two flats of one filter'):
        plan(night.raw_dir, tmp_path / "out", config=Config(detector=Detector(gain="measured")))
    plan(night.raw_dir, tmp_path / "out", config=Config(detector=Detector(rdnoise="measured")))
    night = _night(tmp_path, "two", nbias=0, nflat=3)
    with pytest.raises(CcdcalError, match=r"and a bias level \(biases, an overscan"):
        plan(night.raw_dir, tmp_path / "out", config=Config(detector=Detector(gain="measured")))
    with pytest.raises(CcdcalError, match=r'rdnoise = "measured" needs two biases'):
        plan(night.raw_dir, tmp_path / "out", config=Config(detector=Detector(rdnoise="measured")))
    # a bias level said in the config is enough for the gain
    cfg = Config(detector=Detector(gain="measured", bias_level=500.0))
    assert "masters/camera.ecsv" in plan(night.raw_dir, tmp_path / "out", config=cfg).products


def test_lights_that_do_not_use_the_measurement_do_not_depend_on_it(tmp_path):
    night = _night(tmp_path)
    p = plan(night.raw_dir, tmp_path / "out")
    assert "masters/camera.ecsv" in p.products
    assert all("masters/camera.ecsv" not in q.needs for q in p.of_kind("light"))


# ---------------------------------------------------------------------------- sections
def _bad_biassec(h, _):
    h["BIASSEC"] = "[0,513:0,1536]"  # CAFOS


def test_a_section_in_a_form_we_do_not_read(tmp_path):
    night = _night(tmp_path, overscan=8)
    _edit(night.raw_dir, _bad_biassec)
    with pytest.raises(CcdcalError) as err:
        plan(night.raw_dir, tmp_path / "out")
    text = str(err.value)
    assert "\n" not in text
    assert "BIASSEC = '[0,513:0,1536]'" in text and "bias_001.fits" in text
    assert 'biassec = "none"' in text
    # overscan = "none": BIASSEC is not needed, so not read, and said so
    cfg = loads_config('[detector]\noverscan = "none"\n')
    result = reduce(night.raw_dir, tmp_path / "none", report=False, config=cfg)
    assert any("BIASSEC = '[0,513:0,1536]'" in n and "ignored" in n for n in result.notices)
    assert len(result.stacks) == 1
    # biassec = "none" overrides the header's, the overscan method kept for another time
    cfg = loads_config('[detector]\nbiassec = "none"\n')
    result = reduce(night.raw_dir, tmp_path / "biassec", report=False, config=cfg)
    assert "OVERSCAN" not in fits.getheader(result.calibrated[0])


def test_trimsec_none_keeps_the_whole_frame(tmp_path):
    night = _night(tmp_path, overscan=8)
    _edit(night.raw_dir, lambda h, _: h.set("TRIMSEC", "[1:96]"))
    with pytest.raises(CcdcalError, match=r'TRIMSEC = .\[1:96\].*trimsec = "none"'):
        plan(night.raw_dir, tmp_path / "out")
    cfg = loads_config('[detector]\ntrimsec = "none"\n')
    result = reduce(night.raw_dir, tmp_path / "out", report=False, config=cfg)
    light = Frame.read(result.calibrated[0])
    assert light.shape == (96, 104)  # overscan columns kept
    assert "trim" not in light.header["CALSTEPS"].split()


# ---------------------------------------------------------------------------- filters
@pytest.mark.parametrize(
    ("header", "expected", "source"),
    [
        ({"INSFLNAM": "V"}, "V", "INSFLNAM = V"),
        ({"FILTNAM": "B"}, "B", "FILTNAM = B"),
        ({"FILTERID": "r'"}, "r'", "FILTERID = r'"),
        ({"FILTER1": "Open", "FILTER2": "R"}, "R", "FILTER2 = R"),
        ({"FILTER1": "B", "FILTER2": "clear"}, "B", "FILTER1 = B"),
        ({"FILTER1": "B", "FILTER2": "Ha"}, "B+Ha", "FILTER1+FILTER2 = B+Ha"),
        ({"OBJECT": "V twil flat"}, "V", "OBJECT = 'V twil flat'"),
        ({"OBJECT": "Dome flat"}, None, None),
    ],
)
def test_filter_keywords(header, expected, source):
    info = classify({"IMAGETYP": "FLAT", "EXPTIME": 3.0, **header})
    assert info.filter == expected
    assert info.sources.get("filter") == source


def test_filters_only_in_insflnam_are_not_lumped_together(tmp_path):
    night = _night(tmp_path, filters=("B", "V"))

    def insflnam(h, _):
        if "FILTER" in h:
            h["INSFLNAM"] = h["FILTER"]
            del h["FILTER"]

    _edit(night.raw_dir, insflnam)
    p = plan(night.raw_dir, tmp_path / "out")
    assert {"masters/flat_B.fits", "masters/flat_V.fits"} <= set(p.products)
    assert p.sources["filter"] == "INSFLNAM = B (2 lights); INSFLNAM = V (2 lights)"


def test_flats_without_a_filter_are_never_mixed_in(tmp_path):
    night = _night(tmp_path)

    def no_filter_on_flats(h, path):
        if path.name.startswith("flat"):
            del h["FILTER"]
            h.remove("OBJECT", ignore_missing=True)  # which could name the filter

    _edit(night.raw_dir, no_filter_on_flats)
    p = plan(night.raw_dir, tmp_path / "out")
    assert not any(name.startswith("masters/flat") for name in p.products)
    assert any("4 flats have no filter while the lights have V" in n for n in p.notices)


# ---------------------------------------------------------------------------- saturation
def test_adc_ceilings():
    assert adc_ceiling(np.array([4095.0, 4095.0, 10.0])) == (4095.0, "12-bit")
    assert adc_ceiling(np.array([16383.0, 16383.0])) == (16383.0, "14-bit")
    assert adc_ceiling(np.array([65535.0, 3.0])) == (65535.0, "16-bit")
    assert adc_ceiling(np.array([65520.0, 65520.0, 16.0])) == (
        65520.0, "12-bit, stored shifted left by 4 bits")  # fmt: skip
    assert adc_ceiling(np.array([65520.0, 65520.0, 17.0])) is None  # not multiples of 16
    assert adc_ceiling(np.array([4095.0, 10.0])) is None  # one pixel: a chance maximum
    assert adc_ceiling(np.array([4000.0, 4001.0])) is None
    assert adc_ceiling(np.array([-3.0, 4095.0, 4095.0])) is None  # not raw counts


@pytest.mark.parametrize(("bits", "shift"), [(12, 0), (14, 0), (12, 4)])
def test_saturation_of_an_adc_with_fewer_bits(tmp_path, bits, shift):
    """A camera whose header names no saturation: the pixels at its ADC's ceiling are
    flagged, and the run says which level it took."""
    ceiling = ((1 << bits) - 1) << shift
    gain = 2.0 * 4096 / (1 << bits) / (1 << shift)  # star peaks of 1,000-10,000 12-bit ADU
    night = _night(tmp_path, adc_bits=bits, adc_shift=shift, gain=gain, nstars=12,
                   bias_level=200 * (1 << shift), full_well=10**7,
                   flat_level=ceiling * gain / 3)  # fmt: skip
    _edit(night.raw_dir, lambda h, _: h.remove("SATURATE"))
    raw = fits.getdata(night.raw[-1])
    assert raw.max() == ceiling and (raw == ceiling).sum() >= 2
    result = reduce(night.raw_dir, tmp_path / "out", report=False)
    light = Frame.read(result.calibrated[-1])
    saturated = (light.mask & flags.SATURATED) > 0
    trim = raw[:, : light.shape[1]]
    np.testing.assert_array_equal(saturated, trim >= ceiling)
    assert any(f"{ceiling} ADU, the {bits}-bit" in n for n in result.notices)


def test_datamax_is_a_saturation_keyword_where_it_is_an_adc_ceiling():
    info = classify({"IMAGETYP": "LIGHT", "DATAMAX": 16383})
    assert info.saturation == 16383 and info.sources["saturation"] == "DATAMAX = 16383"
    # many writers put the frame's own largest value there
    info = classify({"IMAGETYP": "LIGHT", "DATAMAX": 60211})
    assert info.saturation is None and "not an ADC's ceiling" in info.reason


# ---------------------------------------------------------------------------- no types
def test_frames_without_a_type_get_the_rules_that_would_classify_them(tmp_path):
    night = _night(tmp_path)
    raw = night.raw_dir
    for path in sorted(raw.iterdir()):
        kind = path.name.split("_")[0]
        folder = raw / {"bias": "zero", "flat": "flats", "light": "m51"}[kind]
        folder.mkdir(exist_ok=True)
        path.rename(folder / path.name.replace(f"{kind}_", "img_"))
    _edit_all = [p for p in raw.rglob("*.fits")]
    for path in _edit_all:
        with fits.open(path, mode="update") as hdul:
            del hdul[0].header["IMAGETYP"]
    with pytest.raises(CcdcalError) as err:
        plan(raw, tmp_path / "out")
    text = str(err.value)
    assert "no light frames found" in text and "[[rules]]" in text
    rules = text.split("for example:\n", 1)[1]
    cfg = loads_config(rules)  # the rules shown are valid and classify the night
    p = plan(raw, tmp_path / "out", config=cfg)
    assert "masters/bias.fits" in p.products and "masters/flat_V.fits" in p.products
    assert len(p.of_kind("light")) == 2


# ---------------------------------------------------------------------------- telling
def test_info_why_names_where_each_number_came_from(tmp_path, capsys):
    night = _night(tmp_path)

    def cafos(h, _):
        del h["GAIN"]
        h["CCDGAIN"] = 20

    _edit(night.raw_dir, cafos)
    assert main(["info", "--why", str(night.raw_dir)]) == 0
    out = capsys.readouterr().out
    light = next(line for line in out.splitlines() if line.startswith("light_V_001"))
    assert "exposure EXPTIME = 60" in light and "filter FILTER = V" in light
    assert "read noise RDNOISE = 8" in light and "gain none (CCDGAIN unsure)" in light
    assert "saturation SATURATE =" in light


def test_a_failed_measurement_does_not_stop_the_night(tmp_path):
    """Saturated flats measure nothing, and a measurement that fails is a note in the
    camera table, never an error of the night."""
    from ccdcal.camera import characterize
    from ccdcal.pipeline.camera import camera_recipe, read_camera

    night = _night(tmp_path, flat_level=90_000.0, full_well=200_000.0)
    found = characterize(night.raw_dir)
    assert found.gain is None and any("saturated; not used" in n for n in found.notes)
    bias, flat = sorted(night.raw_dir.glob("bias_*"))[0], sorted(night.raw_dir.glob("flat_*"))[0]
    odd = tmp_path / "odd.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.uint16)).writeto(odd)
    table, _ = camera_recipe(
        [bias, odd, flat], memory_limit=None, workdir=tmp_path,
        frames=[("bias", None, 0.0, None), ("bias", None, 0.0, None), ("flat", "V", 5.0, None)],
        detector=Detector(), header={"gain": (None, None), "rdnoise": (None, None)}, unsure=[],
    )  # fmt: skip
    assert table.meta["gain"] is None
    assert any("camera not measured" in n and "odd.fits" in n for n in table.meta["notes"])
    path = tmp_path / "camera.ecsv"
    table.write(path, format="ascii.ecsv")
    assert read_camera(path)["rdnoise"] is None


def test_rdnoise_measured_at_the_lights_own_gain(tmp_path):
    night = _night(tmp_path, gain=2.0, read_noise=10.0, nbias=8, nflat=1)
    _edit(night.raw_dir, lambda h, _: h.set("GAIN", 2.5))  # not what the flats would say
    cfg = loads_config('[detector]\nrdnoise = "measured"\n')
    result = reduce(night.raw_dir, tmp_path / "out", report=False, config=cfg)
    light = fits.getheader(result.calibrated[0])
    # 5 ADU of amplifier noise, at the 2.5 e-/ADU the light is calibrated with
    assert light["GAINCORR"] == 2.5
    assert light["RDNOISE"] == pytest.approx(12.5, rel=0.05)


def test_unsure_gain_without_flats_to_confirm_it(tmp_path):
    night = _night(tmp_path, nbias=1, nflat=1)

    def ccdgain(h, _):
        del h["GAIN"]
        h["CCDGAIN"] = 1.5

    _edit(night.raw_dir, ccdgain)
    p = plan(night.raw_dir, tmp_path / "out")
    assert "masters/camera.ecsv" not in p.products
    (notice,) = [n for n in p.notices if "CCDGAIN" in n]
    assert "not used as the gain of 2 lights" in notice and "set [detector] gain" in notice


def test_a_flat_object_that_names_no_light_filter_is_no_filter(tmp_path):
    """A night without any filter keyword: "Flat 5s" names no filter of the lights, so the
    flats stay the lights' ("none") and are used, as before."""
    night = _night(tmp_path)

    def no_filters(h, path):
        h.remove("FILTER", ignore_missing=True)
        if path.name.startswith("flat"):
            h["OBJECT"] = "Flat 5s"

    _edit(night.raw_dir, no_filters)
    p = plan(night.raw_dir, tmp_path / "out")
    assert "masters/flat_none.fits" in p.products


def test_the_rules_hint_in_one_folder(tmp_path):
    night = _night(tmp_path)
    for path in sorted(night.raw_dir.iterdir()):
        name = path.name.replace("light_V_", "m31_").replace("flat_V_", "flat_")
        path.rename(night.raw_dir / name)
    _edit(night.raw_dir, lambda h, _: h.remove("IMAGETYP"))
    with pytest.raises(CcdcalError) as err:
        plan(night.raw_dir, tmp_path / "out")
    rules = str(err.value).split("for example:\n", 1)[1]
    p = plan(night.raw_dir, tmp_path / "out", config=loads_config(rules))
    kinds = {f.name.split("_")[0]: f.kind for f in p.collection.frames}
    assert kinds == {"bias": "bias", "flat": "flat", "m31": "light"}
