"""The night configuration: defaults, TOML loading, one-line errors, rules."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from ccdcal.config import (
    EXAMPLE_TOML,
    KINDS,
    REJECT_PARAMS,
    CombineOptions,
    Config,
    DarkOptions,
    Detector,
    FlatOptions,
    Keywords,
    RegisterOptions,
    Rule,
    SelectOptions,
    config_from_dict,
    load_config,
    loads_config,
)
from ccdcal.errors import CcdcalError

FULL = """
[keywords]
filter = ["FILTNAME", "FILTER"]
exptime = "ITIME"

[types]
"Twilight_Sky" = "flat"
FOCUS = "unknown"

[[rules]]
match = { path = "flat/*", OBJECT = "VR *" }
set = { filter = "  VR ", kind = "flat" }

[[rules]]
match = { EXPTIME = 0 }
set = { kind = "bias", exptime = 0 }

[detector]
gain = 4.95
rdnoise = 6
saturation = 60000
biassec = "[1388:1432, 1:1370]"
trimsec = "[18:1382,1:1370]"
overscan = "Poly"
overscan_order = 3
overscan_sigma = 2.5
readout_axis = "y"

[combine.bias]
method = "median"
reject = "none"

[combine.dark]
alpha = 0.01

[combine.flat]
method = "mean"
reject = "minmax"
nlow = 1
nhigh = 2
scale = "mode"

[combine.light]
reject = "ccdclip"
gain = 1.5
read_noise = 5
snoise = 0.01
sigma = 3.5

[dark]
match = "scale"

[flat]
min_response = 0.3

[cosmic]
method = "lacosmic"
sigclip = 5.0
niter = 2
clean = true
"""


def test_defaults():
    cfg = Config()
    assert cfg.detector.gain is None and cfg.detector.overscan == "median"
    assert cfg.dark.match == "nearest"
    assert cfg.flat.min_response == 0.5
    assert cfg.cosmic.method == "none" and dict(cfg.cosmic.params) == {}
    assert cfg.keywords.imagetyp[0] == "IMAGETYP" and "FILTNAME" in cfg.keywords.filter
    assert cfg.rules == ()
    bias = cfg.combine_options("bias")
    assert (bias.method, bias.reject, bias.params["alpha"]) == ("mean", "esd", 0.05)
    assert cfg.combine_options("flat") == CombineOptions("median", "none", {}, "median")
    light = cfg.combine_options("light")
    assert light == CombineOptions(
        "mean",
        "auto",
        {"low": 3.0, "high": 3.0, "maxiters": 5},
        zero="median",
        weights="frame",
    )
    for kind in KINDS:
        opts = cfg.combine_options(kind)
        assert set(opts.params) <= set(REJECT_PARAMS[opts.reject])
    with pytest.raises(ValueError, match="kind must be one of"):
        cfg.combine_options("stack")


def test_builtin_types():
    cfg = Config()
    for value, kind in [
        ("BIAS", "bias"), ("zero", "bias"), ("Bias Frame", "bias"),
        ("DARK", "dark"), ("Dark Frame", "dark"),
        ("FLAT", "flat"), ("SKYFLAT", "flat"), ("DOMEFLAT", "flat"), ("TWIFLAT", "flat"),
        ("Flat Field", "flat"), ("Flat Frame", "flat"), ("sky_flat", "flat"),
        ("LIGHT", "light"), ("OBJECT", "light"), ("SCIENCE", "light"), ("Light Frame", "light"),
    ]:  # fmt: skip
        assert cfg.type_kind(value) == kind, value
    assert cfg.type_kind("FOCUS") is None


def test_example_toml_is_the_defaults():
    assert loads_config(EXAMPLE_TOML) == Config()


_CHOICES = re.compile(r"^([\w-]+(?: \| [\w-]+)+)(?:;|$)")
_PARAM_CHOICES = re.compile(r"(\w+) ([\w-]+(?: \| [\w-]+)+)")


def _documented_choices(text: str) -> list[tuple[str, str, str, str | None]]:
    """(section, key, choice, reject) for every ``a | b | c`` the example documents: in a
    key's comment (beside it or above it), and for the rejections' parameters."""
    found: list[tuple[str, str, str, str | None]] = []
    section, above = "", []
    for line in text.splitlines():
        if line.startswith("["):
            section, above = line.strip("[]"), []
        elif line.startswith("#   ") and line[4] != " ":  # a rejection: name (params): note
            name = line[4:].split()[0]
            found.append(("combine.light", "reject", name, None))
            for param, choices in _PARAM_CHOICES.findall(line.split(":", 1)[-1]):
                found.extend(("combine.light", param, c, name) for c in choices.split(" | "))
        elif line.startswith("# ") and " = " not in line:
            above.append(line[2:])
        elif m := re.match(r"^(\w+) = ", line):
            comment = line.split("# ", 1)[1] if "# " in line else " ".join(above)
            if choices := _CHOICES.match(comment):
                found.extend((section, m[1], c, None) for c in choices[1].split(" | "))
            above = []
        else:
            above = []
    return found


def _refused(text: str) -> list[str]:
    """The documented choices that the parser refuses or does not keep."""
    refused = []
    for section, key, choice, reject in _documented_choices(text):
        toml = f'[{section}]\n{key} = "{choice}"\n'
        if reject is not None:
            toml = f'[{section}]\nreject = "{reject}"\n{key} = "{choice}"\n'
        try:
            cfg = loads_config(toml)
        except CcdcalError:
            refused.append(f"[{section}] {key} = {choice}")
            continue
        if section.startswith("combine."):
            options = cfg.combine_options(section.split(".")[1])
            kept = options.params[key] if reject else getattr(options, key)
        else:
            kept = getattr(getattr(cfg, section), key)
        if kept != choice and not (choice == "none" and kept is None):
            refused.append(f"[{section}] {key} = {choice} (kept as {kept!r})")
    return refused


def test_example_toml_documents_only_choices_the_parser_takes():
    """Every ``a | b | c`` of ``ccdcal info --example-config`` loads (the example once
    documented ``scale = none, median or mean``, and the parser refused "mean")."""
    found = _documented_choices(EXAMPLE_TOML)
    keys = {(section, key) for section, key, _, _ in found}
    for expected in [("combine.flat", "scale"), ("combine.light", "weights"),
                     ("combine.light", "reject"), ("combine.light", "spread"),
                     ("detector", "overscan"), ("register", "grid"), ("dark", "match"),
                     ("cosmic", "method")]:  # fmt: skip
        assert expected in keys, expected
    assert {c for s, k, c, _ in found if k == "reject"} == set(REJECT_PARAMS)
    assert {c for s, k, c, _ in found if (s, k) == ("combine.bias", "scale")} == {
        "none",
        "median",
        "mode",
        "exposure",
    }
    assert _refused(EXAMPLE_TOML) == []
    # the check finds a wrong choice where the example would document one
    wrong = EXAMPLE_TOML.replace("none | median | mode | exposure", "none | median | mean")
    assert _refused(wrong) == [f"[combine.{kind}] scale = mean" for kind in KINDS]


def test_example_toml_shows_every_key_of_the_model():
    text = EXAMPLE_TOML
    for cls, section in [(Keywords, "keywords"), (Detector, "detector"),
                         (RegisterOptions, "register"), (SelectOptions, "select"),
                         (DarkOptions, "dark"), (FlatOptions, "flat")]:  # fmt: skip
        body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
        for f in dataclasses.fields(cls):
            assert re.search(rf"^(# )?{f.name} = ", body, re.M), (section, f.name)
    for kind in KINDS:
        body = text.split(f"[combine.{kind}]\n", 1)[1].split("\n[", 1)[0]
        defaults = Config().combine_options(kind)
        for key in ("method", "scale", "zero", "reject", *defaults.params):
            assert re.search(rf"^{key} = ", body, re.M), (kind, key)


def test_config_is_immutable_and_combine_options_are_copies():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.dark = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.types["x"] = "flat"  # type: ignore[index]
    opts = cfg.combine_options("light")
    opts.params["low"] = 1.0
    assert cfg.combine_options("light").params["low"] == 3.0
    with pytest.raises(TypeError):
        cfg.combine["light"].params["low"] = 1.0  # type: ignore[index]


def test_load_full_file(tmp_path: Path):
    path = tmp_path / "night.toml"
    path.write_text(FULL)
    cfg = load_config(path)
    assert cfg.source == str(path)
    assert cfg.keywords.filter == ("FILTNAME", "FILTER") and cfg.keywords.exptime == ("ITIME",)
    assert cfg.keywords.object == Config().keywords.object
    assert cfg.type_kind("twilight sky") == "flat" and cfg.type_kind("Focus") == "unknown"
    assert cfg.type_kind("BIAS") == "bias"
    assert len(cfg.rules) == 2
    assert dict(cfg.rules[0].match) == {"path": "flat/*", "OBJECT": "VR *"}
    assert dict(cfg.rules[0].changes) == {"filter": "VR", "kind": "flat"}
    det = cfg.detector
    assert (det.gain, det.rdnoise, det.saturation) == (4.95, 6.0, 60000.0)
    assert det.biassec == "[1388:1432, 1:1370]" and det.overscan == "poly"
    assert (det.overscan_order, det.overscan_sigma, det.readout_axis) == (3, 2.5, "y")
    assert cfg.combine_options("bias") == CombineOptions("median", "none", {})
    dark = cfg.combine_options("dark")
    assert dark.reject == "esd" and dark.params["alpha"] == 0.01
    assert dark.params["max_outliers"] == 0.3  # untouched defaults kept
    assert cfg.combine_options("flat") == CombineOptions(
        "mean", "minmax", {"nlow": 1, "nhigh": 2}, "mode"
    )
    assert cfg.combine_options("light").params == {
        "gain": 1.5, "read_noise": 5.0, "snoise": 0.01, "low": 3.5, "high": 3.5,
    }  # fmt: skip
    assert cfg.dark.match == "scale" and cfg.flat.min_response == 0.3
    assert cfg.cosmic.method == "lacosmic"
    assert dict(cfg.cosmic.params) == {"sigclip": 5.0, "niter": 2, "clean": True}
    assert cfg != Config()


def test_replace_works_like_the_cli_does():
    cfg = Config()
    new = dataclasses.replace(cfg, cosmic=dataclasses.replace(cfg.cosmic, method="lacosmic"))
    assert new.cosmic.method == "lacosmic" and cfg.cosmic.method == "none"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[colour]\nx = 1", "[colour]: unknown section"),
        ("[detectr]\ngain = 1", "[detectr]: unknown section (did you mean [detector]?)"),
        ("[detector]\ngian = 1.5", "[detector] gian: unknown key (did you mean 'gain'?)"),
        (
            "[detector]\ngain = 'high'",
            "[detector] gain: expected a number or \"measured\", got 'high'",
        ),
        ("[detector]\ngain = true", "[detector] gain: expected a number, got a boolean"),
        ("[detector]\ngain = -1", "[detector] gain: must be > 0"),
        ("[detector]\noverscan_order = 1.5", "[detector] overscan_order: expected an integer"),
        ("[detector]\noverscan = 'fancy'", "[detector] overscan: must be one of none, mean"),
        ("[detector]\nbiassec = '[1:10]'", "[detector] biassec: malformed section '[1:10]'"),
        ("[keywords]\nfilter = [1]", "[keywords] filter: expected keyword names"),
        ("[keywords]\nfiltre = ['F']", "[keywords] filtre: unknown key (did you mean 'filter'?)"),
        ("[types]\nSKY = 'flats'", "[types] 'SKY': must be one of bias, dark, flat, light"),
        ("[combine.stack]\nmethod = 'mean'", "[combine] stack: unknown key"),
        ("[combine.light]\nmethod = 'avg'", "[combine.light] method: must be one of mean"),
        ("[combine.light]\nreject = 'magic'", "[combine.light] reject: must be one of none"),
        ("[combine.light]\nlow = 'x'", "[combine.light] low: expected a number"),
        ("[combine.light]\nnlow = 1", "[combine.light] nlow: unknown key ('auto' takes"),
        ("[combine.flat]\nsigma = 3", "[combine.flat] sigma: unknown key ('none' takes no param"),
        ("[combine.light]\nreject = 'minmax'\nnlow = -1", "[combine.light] nlow: must be >= 0"),
        ("[combine.light]\nreject = 'esd'\nalpha = 2", "[combine.light] alpha: must be between"),
        (
            "[combine.light]\nmetod = 'mean'",
            "[combine.light] metod: unknown key ('auto' takes low, high, maxiters, "
            "sigma; did you mean 'method'?)",
        ),
        ("[dark]\nmatch = 'closest'", "[dark] match: must be one of nearest, exact, scale"),
        ("[flat]\nmin_response = '0.5'", "[flat] min_response: expected a number"),
        ("[cosmic]\nmethod = 'lacosmic'\nclean = 1", "[cosmic] clean: expected true or false"),
        ("[cosmic]\nsigma = 4", "[cosmic] sigma: unknown key"),
        ("rules = 3", "[rules]: expected an array of tables"),
        ("[[rules]]\nmatch = {path='*'}", "[rules #1] set: missing"),
        ("[[rules]]\nmatch = {}\nset = {kind='flat'}", "[rules #1] match: empty"),
        ("[[rules]]\nmatch = {path='*'}\nset = {kind='flats'}", "[rules #1] set.kind: must be"),
        ("[[rules]]\nmatch = {path='*'}\nset = {exptime='x'}", "[rules #1] set.exptime: expected"),
        ("[[rules]]\nmatch = {path='*'}\nset = {colour='x'}", "[rules #1] colour: unknown key"),
        (
            "[[rules]]\nmatch = {path='*'}\nset = {kind='flat'}\nwhen = 1",
            "[rules #1] when: unknown",
        ),
    ],
)
def test_errors_are_one_line_with_file_section_and_key(tmp_path: Path, toml, expected):
    path = tmp_path / "night.toml"
    path.write_text(toml + "\n")
    with pytest.raises(CcdcalError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    assert expected in msg, msg


def test_file_problems(tmp_path: Path):
    with pytest.raises(CcdcalError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(CcdcalError, match="is a folder"):
        load_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("[detector\ngain = 1\n")
    with pytest.raises(CcdcalError, match=r"bad.toml: invalid TOML: .*line 1") as info:
        load_config(bad)
    assert "\n" not in str(info.value)


def test_reject_change_starts_parameters_afresh():
    cfg = config_from_dict({"combine": {"light": {"reject": "sigclip", "high": 4}}})
    assert cfg.combine_options("light").params == {"high": 4.0}
    cfg = config_from_dict({"combine": {"light": {"high": 4}}})
    assert cfg.combine_options("light").params["low"] == 3.0
    assert cfg.combine_options("light").params["high"] == 4.0
    cfg = config_from_dict({"combine": {"light": {"sigma": 2, "high": 5}}})
    assert (
        cfg.combine_options("light").params["low"],
        cfg.combine_options("light").params["high"],
    ) == (2.0, 5.0)
    cfg = config_from_dict({"combine": {"light": {"reject": "esd", "max_outliers": 0.2}}})
    assert cfg.combine_options("light").params == {"max_outliers": 0.2}


def test_rule_matching():
    rule = Rule({"path": "flat/*.fits*", "OBJECT": "*twil flat*"}, {"filter": "VR"})
    header = {"OBJECT": "VR Twil Flat", "EXPTIME": 4.5}
    assert rule.matches("flat/20190326.0101.fits.gz", header.get)
    assert not rule.matches("zero/20190326.0001.fits.gz", header.get)
    assert not rule.matches("flat/a.fits", {"OBJECT": "bias"}.get)
    assert not rule.matches("flat/a.fits", {}.get)
    by_name = Rule({"path": "*bias*"}, {"kind": "bias"})
    assert by_name.matches("deep/dir/flood-flat-001bias.fit.gz", {}.get)
    by_number = Rule({"EXPTIME": 4.5}, {"kind": "flat"})
    assert by_number.matches("a.fits", header.get)
    assert not by_number.matches("a.fits", {"EXPTIME": 4.0}.get)
    assert not by_number.matches("a.fits", {"EXPTIME": "long"}.get)
    assert "OBJECT='*twil flat*'" in rule.describe()
