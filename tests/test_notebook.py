"""The tutorial notebook: committed with its outputs, up to date with its build script, on
public API only, and it runs from top to bottom to the outputs committed."""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "ccd_calibration.ipynb"

#: the modules of ccdcal a notebook may import: those README presents as its API
PUBLIC = {"ccdcal", "ccdcal.experiments", "ccdcal.quality", "ccdcal.photometry"}


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebook", EXAMPLES / "build_notebook.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_notebook"] = module
    spec.loader.exec_module(module)
    return module


def _images(nb) -> int:
    return sum(
        any(k.startswith("image/") for k in o.get("data", {}))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


def test_notebook_matches_its_build_script_and_is_executed():
    import nbformat

    builder = _builder()
    stored = nbformat.read(NOTEBOOK, as_version=4)
    built = builder.build()
    assert [c.source for c in stored.cells] == [c.source for c in built.cells], (
        "examples/ccd_calibration.ipynb is stale: run python examples/build_notebook.py"
    )
    nbformat.validate(stored)
    code = [c for c in stored.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "committed without running it"
    assert builder.problems(stored) == []
    assert _images(stored) >= 8
    assert not any("execution" in c.metadata for c in stored.cells)  # no run's time stamps


def test_problems_are_found():
    import nbformat
    from nbformat.v4 import new_code_cell, new_output

    builder = _builder()
    nb = builder.build()
    nb.cells.append(new_code_cell("x", outputs=[
        new_output("stream", name="stdout", text="report: /tmp/ccdcal-x/index.html\n"),
        new_output("execute_result", data={"text/plain": "<matplotlib.image.AxesImage at 0x7>"}),
        new_output("stream", name="stderr", text="TqdmWarning: IProgress not found\n"),
    ]))  # fmt: skip
    found = builder.problems(nbformat.from_dict(nb))
    assert len(found) == 4, found  # stderr, the folder, the repr and the warning


def test_notebook_uses_public_api_only():
    builder = _builder()
    for kind, source in builder.CELLS:
        if kind != "code":
            continue
        lines = [line for line in source.splitlines() if not line.startswith("%")]
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("ccdcal"):
                assert node.module in PUBLIC, node.module
                assert not any(a.name.startswith("_") for a in node.names), source
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("ccdcal.") or alias.name in PUBLIC
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                raise AssertionError(f"private name {node.attr} in\n{source}")


@pytest.mark.slow
def test_notebook_runs_to_its_committed_outputs(tmp_path):
    pytest.importorskip("ipykernel")
    import nbformat

    builder = _builder()
    nb = builder.build()
    builder.execute(nb, tmp_path, timeout=300)
    builder.drop_compile_notice(nb)  # said on a first run on a machine, as it should be
    assert builder.problems(nb) == []
    assert _images(nb) >= 8
    text = "".join(builder.texts(nb))
    assert "comparison with truth" in text
    assert "random noise ∝ N^" in text
    assert "stars measured" in text
    # what a reader sees committed is what the notebook prints today
    stored = nbformat.read(NOTEBOOK, as_version=4)
    assert builder.texts(nb) == builder.texts(stored), (
        "the committed outputs are stale: run python examples/build_notebook.py"
    )
