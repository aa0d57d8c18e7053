"""The ``ccdcal`` command's habits: options where a user types them, help that shows the
defaults, one default seed."""

from __future__ import annotations

import argparse
import inspect
import logging

import pytest

from ccdcal.cli import COMMANDS, DEFAULT_SEED, build_parser, main


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sub.choices[name] for name in COMMANDS}


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["info", "{d}"], logging.INFO),
        (["-v", "info", "{d}"], logging.DEBUG),
        (["info", "-v", "{d}"], logging.DEBUG),
        (["info", "{d}", "--verbose"], logging.DEBUG),
        (["-q", "info", "{d}"], logging.WARNING),
        (["info", "{d}", "-q"], logging.WARNING),
    ],
)
def test_verbosity_before_or_after_the_command(tmp_path, argv, level):
    # an empty folder: info fails (exit 1) after the logging is set up
    assert main([a.format(d=tmp_path) for a in argv]) == 1
    assert logging.getLogger("ccdcal").level == level


def test_verbosity_after_the_command_keeps_the_top_level_one():
    parser = build_parser()
    args = parser.parse_args(["-q", "reduce", "raw", "out"])
    assert args.quiet and args.verbose == 0
    args = parser.parse_args(["reduce", "raw", "out", "-v", "-v"])
    assert args.verbose == 2 and not args.quiet


@pytest.mark.parametrize("name", COMMANDS)
def test_every_help_shows_the_defaults(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert "usage: ccdcal " + name in capsys.readouterr().out
    parser = _commands()[name]
    for action in parser._actions:
        default = action.default
        shown = (
            action.option_strings
            and action.nargs != 0
            and default is not None
            and default is not argparse.SUPPRESS
            and not (isinstance(default, list | tuple) and not default)
        )
        if shown:  # the option's lines as --help prints them
            formatter = parser._get_formatter()
            formatter.add_argument(action)
            assert "default" in formatter.format_help(), f"{name} {action.option_strings}"


def test_combine_help_says_its_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["combine", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: mean)", "(default: none)", "(default: 3.0)", "(default: 5)"):
        assert shown in text
    assert "(default: None)" not in text and "(default: False)" not in text
    assert "rejection algorithms (--reject):\n  none" in _commands()["combine"].format_help()


@pytest.mark.parametrize("name", ["info", "reduce", "characterize"])
def test_config_help_points_to_the_example(name):
    help_text = " ".join(_commands()[name].format_help().split())
    assert "ccdcal info --example-config" in help_text
    assert "ccdcal.config" not in help_text


def test_one_default_seed():
    """simulate, demo and experiment, from the command line and from Python, draw the same
    night unless told otherwise."""
    import ccdcal.simulate
    from ccdcal import experiments, quality

    commands = _commands()
    for name, argv in (("simulate", ["out"]), ("demo", []), ("experiment", ["frames"])):
        assert commands[name].parse_args(argv).seed == DEFAULT_SEED, name
    functions = [ccdcal.simulate.night, quality.demo, *experiments.EXPERIMENTS.values()]
    for function in functions:
        assert inspect.signature(function).parameters["seed"].default == DEFAULT_SEED, function


def test_combine_frame_weights_are_the_inverse_median_variances(tmp_path, capsys):
    """``--weights frame`` weights each file as the reduction weights its lights: by
    1/MEDVAR; a file without MEDVAR is refused with its name."""
    import numpy as np

    from ccdcal import Frame

    rng = np.random.default_rng(0)
    paths, values = [], []
    for i, medvar in enumerate((1.0, 4.0, 16.0)):
        data = rng.normal(100 + 10 * i, 1, (8, 9)).astype(np.float32)
        paths.append(str(tmp_path / f"f{i}.fits"))
        Frame(data, header={"MEDVAR": medvar}).write(paths[-1])
        values.append(data)
    out = tmp_path / "w.fits"
    assert main(["-q", "combine", *paths, "-o", str(out), "--weights", "frame"]) == 0
    w = np.array([1.0, 1 / 4, 1 / 16])[:, None, None]
    expected = (w * np.array(values, np.float64)).sum(0) / w.sum()
    np.testing.assert_allclose(Frame.read(out).data, expected, rtol=1e-6)

    Frame(values[0]).write(tmp_path / "plain.fits")
    argv = ["-q", "combine", *paths[:2], str(tmp_path / "plain.fits"), "-o", str(out), "--weights",
            "frame"]  # fmt: skip
    assert main(argv) == 1
    last = capsys.readouterr().err.splitlines()[-1]  # after "compiling kernels" on a first run
    assert last.startswith("ccdcal: error: ") and "plain.fits: no MEDVAR" in last
