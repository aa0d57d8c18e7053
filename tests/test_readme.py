"""README's generated tables equal the files the benchmarks and experiments wrote."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "update_readme", ROOT / "scripts" / "update_readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_the_generated_ones():
    script = _script()
    text = (ROOT / "README.md").read_text()
    assert script.sections(text), "README.md has no generated sections"
    assert script.generated(text) == text, "run: python scripts/update_readme.py"


def test_benchmark_tables_name_their_run():
    """Timings are not checked against a rerun (machines differ); that they came from a run
    of the benchmark, with its machine and date, is."""
    script = _script()
    for path in script.sections((ROOT / "README.md").read_text()):
        if path.startswith("benchmarks/results/"):
            text = (ROOT / path).read_text()
            benchmark = Path(path).stem
            assert text.startswith(f"Measured by `benchmarks/{benchmark}.py` on 20"), path
            assert " cores, Python " in text, path


def test_check_catches_a_drifted_table(tmp_path):
    script = _script()
    (tmp_path / "t.md").write_text("| a |\n| 1 |\n")
    readme = "x\n<!-- BEGIN t.md -->\n| a |\n| 2 |\n<!-- END t.md -->\ny\n"
    fixed = script.generated(readme, root=tmp_path)
    assert fixed == "x\n<!-- BEGIN t.md -->\n| a |\n| 1 |\n<!-- END t.md -->\ny\n"
    assert script.generated(fixed, root=tmp_path) == fixed
