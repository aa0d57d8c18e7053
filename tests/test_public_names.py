"""Public names resolve one way, load on first use, and the command starts without the
numeric stack."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import ccdcal

#: what ``--version`` and ``--help`` must not import (about a second of start-up)
HEAVY = ("numpy", "astropy", "numba", "scipy", "matplotlib")


def _modules() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.walk_packages(ccdcal.__path__, "ccdcal.")
        if m.name != "ccdcal.__main__"
    )


def test_every_name_of_all_resolves():
    for name in ccdcal.__all__:
        assert getattr(ccdcal, name) is not None, name
    assert set(ccdcal.SUBPACKAGES) <= set(ccdcal.__all__)
    assert set(ccdcal.__all__) <= set(dir(ccdcal))


@pytest.mark.parametrize("module", _modules())
def test_every_modules_all_resolves(module):
    mod = importlib.import_module(module)
    for name in getattr(mod, "__all__", ()):
        assert getattr(mod, name, None) is not None, f"{module}.{name}"


def test_modules_as_attributes():
    for name in ("experiments", "simulate", "registration", "camera", "pipeline", "config",
                 "report", "masters", "quality", "flags", "stacking", "calibration"):  # fmt: skip
        assert isinstance(getattr(ccdcal, name), types.ModuleType), name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = ccdcal.nothing


def test_calibrate_and_combine_are_the_functions_and_their_modules_are_others():
    import ccdcal.calibration as calibration
    import ccdcal.stacking as stacking

    assert callable(calibration.subtract_bias) and callable(calibration.flat_correct)
    # importing the modules leaves the functions under their names
    assert isinstance(ccdcal.calibrate, types.FunctionType)
    assert ccdcal.calibrate is calibration.calibrate
    assert isinstance(ccdcal.combine, types.FunctionType) and ccdcal.combine is stacking.combine
    assert ccdcal.stacking.SigmaClip is ccdcal.SigmaClip
    from ccdcal import Frame, SigmaClip, combine

    assert Frame is ccdcal.frame.Frame and SigmaClip is stacking.SigmaClip
    assert combine is stacking.combine


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["combine", "--help"]])
def test_version_and_help_do_not_import_the_numeric_stack(argv):
    code = (
        "import contextlib, io, json, sys\n"
        "from ccdcal.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        f"        main({argv!r})\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))"
    )
    assert json.loads(_run(code).stdout) == []


def test_import_ccdcal_is_light():
    code = (
        f"import json, sys, ccdcal\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    assert json.loads(_run(code).stdout) == []


def test_python_dash_m_ccdcal():
    done = subprocess.run([sys.executable, "-m", "ccdcal", "--version"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout == f"ccdcal {ccdcal.__version__}\n"
    done = subprocess.run([sys.executable, "-m", "ccdcal", "info"], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and done.stderr.startswith("ccdcal: error: info: give the folder")


def test_the_command_and_its_workers_leave_the_heap_out_of_the_exit_collections(monkeypatch):
    """The installed command (``entry``) returns main's status with the objects alive frozen,
    so that the interpreter's collections at exit skip them (0.3-0.4 s of each command); a
    worker process registers the same as it starts."""
    code = (
        "import gc, json, sys\n"
        "from ccdcal.cli import entry\n"
        "sys.argv = ['ccdcal', 'info']\n"
        "status = entry()\n"
        "print(json.dumps([status, gc.get_freeze_count() > 0]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert json.loads(done.stdout.splitlines()[-1]) == [1, True], done.stderr
    assert done.stderr.startswith("ccdcal: error: info: give the folder")

    import atexit

    from ccdcal import parallel, threads
    from ccdcal.process_state import skip_exit_collection

    registered = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(threads, "_count", threads._count)  # the initializer sets it
    parallel._start_worker(1)
    assert registered == [skip_exit_collection]
