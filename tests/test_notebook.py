"""The tutorial notebook: up to date with its build script, and it runs from top to bottom."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOK = EXAMPLES / "ccd_calibration.ipynb"


def _builder():
    spec = importlib.util.spec_from_file_location("build_notebook", EXAMPLES / "build_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_notebook_matches_its_build_script():
    import nbformat

    stored = nbformat.read(NOTEBOOK, as_version=4)
    built = _builder().build()
    assert [c.source for c in stored.cells] == [c.source for c in built.cells], (
        "examples/ccd_calibration.ipynb is stale: run python examples/build_notebook.py"
    )
    assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code")
    nbformat.validate(stored)


def _kernelspec(folder: Path) -> str:
    """A kernelspec running this very interpreter (the venv's), found first on JUPYTER_PATH,
    so that the test needs no kernel installed and cannot pick another Python's."""
    spec = folder / "kernels" / "ccdcal-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "ccdcal test", "language": "python"})
    )
    return "ccdcal-test"


@pytest.mark.slow
def test_notebook_runs(tmp_path, monkeypatch):
    pytest.importorskip("ipykernel")
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    name = _kernelspec(tmp_path)
    client = NotebookClient(
        nb, kernel_name=name, timeout=300, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]  # fmt: skip
    assert not errors, errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "comparison with truth" in text
    assert "random noise ∝ N^" in text
    assert "stars measured" in text
    images = sum(
        "image/png" in o.get("data", {})
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert images >= 8
