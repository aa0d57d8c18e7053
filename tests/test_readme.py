"""README tells the truth: its generated tables equal the files the code and the benchmarks
wrote, every command and snippet it shows runs, and running them writes those very files."""

from __future__ import annotations

import glob
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: a fenced block: its info string, its text, and the line before the fence
FENCE = re.compile(r"(?P<before>[^\n]*)\n```(?P<info>[^\n`]*)\n(?P<body>.*?)\n```", re.DOTALL)
#: the comment that exempts the block after it from being run, with the reason
NOT_RUN = re.compile(r"<!-- not run by the tests: [^>]+-->\s*$", re.DOTALL)


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def blocks(text: str) -> list[tuple[str, str, bool]]:
    """Every fenced block of ``text``: (info string, body, exempted from running)."""
    out = []
    for m in FENCE.finditer(text):
        head = text[: m.start("info") - 3]
        out.append((m.group("info").strip(), m.group("body"), bool(NOT_RUN.search(head))))
    return out


def commands(text: str) -> list[str]:
    """README's shell commands, in order, from the ``sh`` blocks that are run."""
    out = []
    for info, body, exempt in blocks(text):
        if info == "sh" and not exempt:
            out += [line for line in body.splitlines() if line.split("#")[0].strip()]
    return out


# ---------------------------------------------------------------------------- tables
def test_readme_tables_are_the_generated_ones():
    script = _script("update_readme")
    text = README.read_text()
    assert script.sections(text), "README.md has no generated sections"
    assert script.generated(text) == text, "run: python scripts/update_readme.py"


def test_benchmark_tables_name_their_run():
    """Timings are not checked against a rerun (machines differ); that they came from a run
    of the benchmark, with its machine and date, is."""
    script = _script("update_readme")
    for path in script.sections(README.read_text()):
        if path.startswith("benchmarks/results/"):
            text = (ROOT / path).read_text()
            benchmark = Path(path).stem
            assert (ROOT / "benchmarks" / f"{benchmark}.py").is_file(), path
            assert text.startswith(f"Measured by `benchmarks/{benchmark}.py` on 20"), path
            assert " cores, " in text and " Python 3." in text, path  # the machine


def test_every_results_file_is_made_by_a_readme_command_and_shown():
    """docs/results/ holds only what scripts/make_results.py makes, README includes each,
    and README shows the command that makes each (run below)."""
    results = _script("make_results").RESULTS
    text = README.read_text()
    shown = set(_script("update_readme").sections(text))
    on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "results").glob("*")}
    assert on_disk == set(results)
    assert set(results) <= shown
    run = {" ".join(shlex.split(line, comments=True)) for line in commands(text)}
    for path, result in results.items():
        command = result.command.replace("{data}", "../shared/data")
        assert command in " ".join(text.split()), (path, command)
        if not result.needs_data:
            assert command in run, (path, command)


def test_check_catches_a_drifted_table(tmp_path):
    script = _script("update_readme")
    (tmp_path / "t.md").write_text("| a |\n| 1 |\n")
    readme = "x\n<!-- BEGIN t.md -->\n| a |\n| 2 |\n<!-- END t.md -->\ny\n"
    fixed = script.generated(readme, root=tmp_path)
    assert fixed == "x\n<!-- BEGIN t.md -->\n| a |\n| 1 |\n<!-- END t.md -->\ny\n"
    assert script.generated(fixed, root=tmp_path) == fixed


# ---------------------------------------------------------------------------- code blocks
def test_every_code_block_says_what_it_is():
    """A block is shell commands (``sh``, run below unless a comment before it says why
    not), Python (run below) or ``text`` (output, a diagram, a command's synopsis); an
    indented block would escape all of this."""
    text = README.read_text()
    found = blocks(text)
    assert found
    for info, body, exempt in found:
        assert info in ("sh", "python", "text"), (info, body[:60])
        assert not exempt or info == "sh", body[:60]
    assert sum(exempt for *_, exempt in found) <= 1  # the few that cannot run, each said why
    outside = FENCE.sub("", text)
    assert not re.search(r"\n\n    \S", outside), "an indented code block: fence it"


def test_blocks_parse_and_commands_are_ccdcals():
    text = (
        "a\n```sh\nccdcal info x  # what\n\n# only a comment\n```\n"
        "<!-- not run by the tests: it installs -->\n```sh\nmake demo\n```\n"
        "```python\nimport ccdcal\n```\n"
    )
    assert [(i, e) for i, _, e in blocks(text)] == [("sh", False), ("sh", True), ("python", False)]
    assert commands(text) == ["ccdcal info x  # what"]
    for line in commands(README.read_text()):
        assert shlex.split(line, comments=True)[0] == "ccdcal", line


def _expand(words: list[str]) -> list[str]:
    """A shell's globbing, for the words of README's commands."""
    out = []
    for word in words:
        if any(c in word for c in "*?["):
            matches = sorted(glob.glob(word))
            assert matches, f"{word} matches no file"
            out += matches
        else:
            out.append(word)
    return out


@pytest.mark.slow
def test_readme_commands_run_and_write_readmes_results(tmp_path, monkeypatch, capsys):
    """Every shell command of README, in order, in one fresh folder, as a user would type
    them (a command that appears twice runs once: it would write the same files again);
    then what they wrote is README's results, byte for byte."""
    from ccdcal.cli import main

    monkeypatch.chdir(tmp_path)
    ran: set[str] = set()
    for line in commands(README.read_text()):
        words = shlex.split(line, comments=True)
        if " ".join(words) in ran:
            continue
        ran.add(" ".join(words))
        code = main(_expand(words[1:]))
        out = capsys.readouterr()
        assert code == 0, (line, out.err[-2000:])
    assert (tmp_path / "out" / "report" / "index.html").is_file()
    assert (tmp_path / "demo" / "reduced" / "report" / "index.html").is_file()
    results = _script("make_results").RESULTS
    for path, result in results.items():
        if result.needs_data:
            continue
        made = (tmp_path / result.writes).read_text(encoding="utf-8")
        assert made == (ROOT / path).read_text(encoding="utf-8"), (
            f"{path} differs from what `{result.command}` writes now: run "
            "python scripts/make_results.py"
        )


@pytest.mark.slow
def test_readme_python_runs(tmp_path, monkeypatch):
    """README's Python, end to end on the simulated night it makes; the snippet's own
    calibration of a light gives the pipeline's calibrated light."""
    from ccdcal.frame import Frame

    monkeypatch.chdir(tmp_path)
    found = [body for info, body, _ in blocks(README.read_text()) if info == "python"]
    assert found
    namespace: dict = {"__name__": "readme"}
    for body in found:
        exec(compile(body, "README.md", "exec"), namespace)  # README's own code
    result, calibrated = namespace["result"], namespace["calibrated"]
    assert len(result.stacks) == 1 and namespace["stack"].shape == (200, 200)
    assert len(namespace["registration"].used) == 10
    made = {str(p.relative_to(result.out_dir)) for p in result.built}
    assert set(namespace["plan"].products) == made and not result.reused
    pipeline = Frame.read(result.calibrated[0])
    np.testing.assert_allclose(calibrated.data, pipeline.data, rtol=1e-5, atol=1e-3)


@pytest.mark.realdata
@pytest.mark.slow
def test_lowell_characterize_is_readmes(lowell_night, tmp_path):
    """README's characterize table of the Lowell night is what the command prints today."""
    script = _script("make_results")
    path = "docs/results/lowell_characterize.md"
    result = script.RESULTS[path]
    printed = script.run(result.command, tmp_path, data=lowell_night.parent)
    assert script.text_of(result, tmp_path, printed) == (ROOT / path).read_text(), (
        "run: python scripts/make_results.py lowell"
    )
