"""Build ``examples/ccd_calibration.ipynb`` from the cells below, executed.

Run ``python examples/build_notebook.py``: it builds the notebook, runs it from top to
bottom in a fresh kernel of this Python (in a scratch folder, so that its outputs name no
folder of this machine) and writes it with its outputs, so that a reader sees the figures
without running it. ``tests/test_notebook.py`` runs it again and compares.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NOTEBOOK = Path(__file__).with_name("ccd_calibration.ipynb")

#: what no output may hold: a folder of the machine that ran it, a matplotlib object's
#: repr left by a cell's last expression, a warning
FORBIDDEN = re.compile(
    r"(/tmp/|/home/|/root/|/work/|/Users/|[A-Z]:\\|<matplotlib\.[\w.]+ at 0x|Warning\b)"
)


CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# CCD calibration with ccdcal: bias, dark, flat, stacks — checked against the truth

The tutorial *Images & CCD Calibration* builds synthetic frames with NumPy and calibrates
them by hand. Here the same story runs on **ccdcal**: a simulator whose detector keeps its
own bias pattern, hot pixels and flat response from frame to frame (as a real CCD does),
a pipeline that builds the masters and stacks, and — because the night is simulated —
the truth to compare every step with.

Everything this notebook writes goes to `ccdcal-notebook/`, beside it.""",
    ),
    (
        "code",
        """from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from astropy.visualization import ImageNormalize, ZScaleInterval
from IPython.display import Image

import ccdcal

%config InlineBackend.figure_formats = ["jpeg"]  # images of noise: small as JPEG, huge as PNG
work = Path("ccdcal-notebook")


def show(ax, data, title, unit, **style):
    \"\"\"An image in pixel coordinates, zscale-stretched, with a colour bar.\"\"\"
    norm = style.pop("norm", None) or ImageNormalize(data, interval=ZScaleInterval())
    im = ax.imshow(data, origin="lower", cmap=style.pop("cmap", "gray"), norm=norm, **style)
    ax.set(title=title, xlabel="x [pix]", ylabel="y [pix]")
    ax.figure.colorbar(im, ax=ax, label=unit)""",
    ),
    (
        "md",
        """## 1. Simulate a night

25 bias frames, 15 darks of 60 s, 15 dome flats and 10 lights of 60 s of a star field in
V — the tutorial's numbers. The raw files go to `night/raw`, what is true to `night/truth`.""",
    ),
    (
        "code",
        """night = ccdcal.simulate.night(work / "night", seed=1)
print(night.summary())""",
    ),
    (
        "md",
        """## 2. Look at the raw frames

Every image below uses the *zscale* stretch, pixel coordinates and a colour bar in ADU.""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(2, 2, figsize=(10, 8), layout="constrained")
names = ["bias_001", "dark_060s_001", "flat_V_001", "light_V_001"]
for ax, name in zip(axes.flat, names, strict=True):
    show(ax, ccdcal.Frame.read(night.raw_dir / f"{name}.fits").data, name, "adu")
plt.show()""",
    ),
    (
        "md",
        """## 3. Reduce: masters, calibrated lights, a stack

`ccdcal.reduce` scans the folder, combines the masters (bias, dark per exposure, flat per
filter), calibrates each light — bias, exposure-scaled dark, flat, gain, with variance and
a data-quality mask — and stacks the lights with outlier rejection.""",
    ),
    (
        "code",
        """result = ccdcal.reduce(night.raw_dir, work / "reduced", progress=False)
print(result.summary())""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
for ax, (name, path) in zip(axes, result.masters.items(), strict=True):
    master = ccdcal.Frame.read(path)
    show(ax, master.data, f"master {name}", master.header.get("BUNIT") or "relative")
plt.show()""",
    ),
    (
        "md",
        """## 4. How close did we get to the truth?

The simulator knows the true bias, dark current, flat and sky. `ccdcal.quality` compares
each master, a calibrated light and the stack with them, and says what noise the detector
model expects for each.""",
    ),
    (
        "code",
        """from ccdcal.quality import compare_with_truth

truth = compare_with_truth(night.folder, result)
print(truth.table())""",
    ),
    (
        "code",
        """fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
# the last two residual maps: a calibrated light and the stack, minus the truth
for ax, (title, resid) in zip(axes, list(truth.residuals.items())[-2:], strict=True):
    lim = np.nanpercentile(np.abs(resid), 99)
    show(ax, resid, title, "electron", cmap="RdBu_r", norm=plt.Normalize(-lim, lim))
plt.show()""",
    ),
    (
        "md",
        """## 5. Stacking: noise and cosmic rays

One calibrated light against the stack, and the map of values the rejection threw out:
the cosmic rays, and good values at the rate a 3σ rejection throws them out (0.27 %). The
cosmic-ray experiment below measures what each rejection removes and costs.""",
    ),
    (
        "code",
        """stack = ccdcal.Frame.read(next(iter(result.stacks.values())))
single = ccdcal.Frame.read(result.calibrated[0])
rejected = stack.extras["NREJLO"] + stack.extras["NREJHI"]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
show(axes[0], single.data, "one calibrated light", "electron")
show(axes[1], stack.data, f"stack of {len(result.calibrated)}", "electron")
show(axes[2], rejected, "values rejected per pixel", "frames", cmap="magma_r",
     norm=plt.Normalize(0, max(1, rejected.max())))
plt.show()""",
    ),
    (
        "md",
        """## 6. Photometry against the true fluxes

Aperture photometry of every star that is neither at the edge nor crowded, against its
true flux (corrected for the light outside the aperture).""",
    ),
    (
        "code",
        """from ccdcal.photometry import compare_with_truth as photometry_vs_truth

phot = photometry_vs_truth(stack, night.folder / "truth" / "stars.ecsv",
                           float(stack.header["EXPTIME"]))
print(phot.summary())
Image(filename=str(phot.plot(work / "photometry.png")))""",
    ),
    (
        "md",
        """## 7. Try it — the tutorial's questions, measured

Each experiment simulates its own nights; `quick=True` keeps them small for this notebook
(`ccdcal experiment NAME` runs the full versions and writes CSV and PNG files).

**More frames:** does the noise fall as 1/√N? Until the noise of the master frames, the
same in every calibrated frame, sets a floor.""",
    ),
    (
        "code",
        """from ccdcal import experiments

frames = experiments.frames(seed=1, quick=True)
print(frames.table())
Image(filename=str(frames.plot(work / "frames.png")))""",
    ),
    (
        "md",
        """**More cosmic rays:** which combine methods remove them, and what does each cost in
noise? Note that a 3-sigma clip cannot reject anything in fewer than about 9 frames.""",
    ),
    (
        "code",
        """cosmic = experiments.cosmic_rays(seed=1, quick=True)
rows = [r for r in cosmic.rows if r["rate_factor"] == 20 and r["nframes"] == 10]
for r in rows:
    print(f"{r['method']:>22}: {r['survived']:5d} cosmic-ray pixels left, "
          f"noise x {r['noise_ratio']:.3f}")
Image(filename=str(cosmic.plot(work / "cosmic.png")))""",
    ),
    (
        "md",
        """**Stronger vignetting, worse flats:** photometric error across the field.""",
    ),
    (
        "code",
        """vign = experiments.vignetting(seed=1, quick=True)
print(vign.table())
Image(filename=str(vign.plot(work / "vignetting.png")))""",
    ),
    (
        "md",
        """## 8. The report

`ccdcal reduce` (and `ccdcal demo`) also write an HTML report with every figure; open it
in a browser:""",
    ),
    (
        "code",
        """print(result.report.relative_to(Path.cwd().resolve()))""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook, without outputs."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in CELLS:
        nb.cells.append(new_markdown_cell(source) if kind == "md" else new_code_cell(source))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    return nb


def _kernelspec(folder: Path) -> str:
    """A kernelspec running this very interpreter, found first on JUPYTER_PATH, so that
    running the notebook needs no kernel installed and cannot pick another Python's."""
    spec = folder / "kernels" / "ccdcal-notebook"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "ccdcal", "language": "python"})
    )
    return "ccdcal-notebook"


def execute(nb: nbformat.NotebookNode, folder: Path, *, timeout: int = 600) -> None:
    """Run ``nb`` in place, in ``folder`` (its working folder), in a fresh kernel."""
    from nbclient import NotebookClient

    env = {
        "JUPYTER_PATH": str(folder / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(folder / "runtime"),
        "IPYTHONDIR": str(folder / "ipython"),
        "MPLCONFIGDIR": str(folder / "mpl"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        name = _kernelspec(folder / "jupyter")
        work = folder / "run"
        work.mkdir(exist_ok=True)
        client = NotebookClient(
            nb, kernel_name=name, timeout=timeout, resources={"metadata": {"path": str(work)}}
        )
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for cell in nb.cells:  # what changes from run to run and says nothing to a reader
        cell.metadata.pop("execution", None)
    nb.metadata["kernelspec"] = build().metadata["kernelspec"]
    nb.metadata["language_info"] = {"name": "python"}


#: what a first run on a machine says on standard error, once, while numba compiles
COMPILE_NOTICE = "compiling its kernels"


def drop_compile_notice(nb: nbformat.NotebookNode) -> bool:
    """Remove the first run's compile notice from ``nb``'s outputs; whether it was there."""
    found = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = [o for o in cell.outputs
                if not (o.output_type == "stream" and COMPILE_NOTICE in o.text)]  # fmt: skip
        found |= len(kept) != len(cell.outputs)
        cell.outputs = kept
    return found


def texts(nb: nbformat.NotebookNode) -> list[str]:
    """Every text the notebook's outputs hold: streams, results' text, errors."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                out.append(f"{o.name}: {o.text}")
            elif o.output_type == "error":
                out.append("\n".join(o.traceback))
            else:
                out.append(str(o.get("data", {}).get("text/plain", "")))
    return out


def problems(nb: nbformat.NotebookNode) -> list[str]:
    """What a committed notebook's outputs must not hold: errors, text on standard error,
    machine folders, stray reprs, warnings."""
    found = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.output_type == "error":
                found.append(f"cell {i}: {o.ename}: {o.evalue}")
            elif o.output_type == "stream" and o.name == "stderr":
                found.append(f"cell {i} wrote to stderr: {o.text[:200]}")
    found += [f"output holds {m.group(0)!r}" for t in texts(nb) for m in FORBIDDEN.finditer(t)]
    here = str(Path(__file__).resolve().parent.parent)
    found += [f"output holds {here}" for t in texts(nb) if here in t]
    return found


def main() -> Path:
    """Build, execute and write ``ccd_calibration.ipynb`` next to this script."""
    nb = build()
    with tempfile.TemporaryDirectory(prefix="ccdcal-notebook-") as tmp:
        execute(nb, Path(tmp))
    if drop_compile_notice(nb):  # a first run on this machine: again, with the kernels cached
        nb = build()
        with tempfile.TemporaryDirectory(prefix="ccdcal-notebook-") as tmp:
            execute(nb, Path(tmp))
    bad = problems(nb)
    if bad:
        raise SystemExit("the notebook's outputs are not fit to commit:\n" + "\n".join(bad))
    nbformat.write(nb, NOTEBOOK)
    return NOTEBOOK


if __name__ == "__main__":
    print(main())
