"""Build ``examples/ccd_calibration.ipynb`` (unexecuted) from the cells below.

Run ``python examples/build_notebook.py``; ``tests/test_notebook.py`` executes the result.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS: list[tuple[str, str]] = [
    (
        "md",
        """# CCD calibration with ccdcal: bias, dark, flat, stacks — checked against the truth

The tutorial *Images & CCD Calibration* builds synthetic frames with NumPy and calibrates
them by hand. Here the same story runs on **ccdcal**: a simulator whose detector keeps its
own bias pattern, hot pixels and flat response from frame to frame (as a real CCD does),
a pipeline that builds the masters and stacks, and — because the night is simulated —
the truth to compare every step with.""",
    ),
    (
        "code",
        """import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image

import ccdcal
from ccdcal.collection import scan
from ccdcal.frame import Frame
from ccdcal.report.figures import show_image

work = Path(tempfile.mkdtemp(prefix="ccdcal-notebook-"))""",
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
print(scan(night.raw_dir).summary())""",
    ),
    (
        "md",
        """## 2. Look at the raw frames

Every image below uses the *zscale* stretch, pixel coordinates and a colour bar in ADU.""",
    ),
    (
        "code",
        """raw = night.raw_dir
fig, axes = plt.subplots(2, 2, figsize=(10, 8), layout="constrained")
for ax, name in zip(axes.flat, ["bias_001", "dark_060s_001", "flat_V_001", "light_V_001"]):
    show_image(ax, Frame.read(raw / f"{name}.fits").data, title=name, unit="adu")""",
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
for ax, (name, path) in zip(axes, result.masters.items()):
    master = Frame.read(path)
    show_image(ax, master.data, title=f"master {name}", unit=master.header.get("BUNIT") or "")""",
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
for ax, (title, resid) in zip(axes, list(truth.residuals.items())[-2:]):
    lim = np.nanpercentile(np.abs(resid), 99)
    show_image(ax, resid, title=title, unit="electron", cmap="RdBu_r", vmin=-lim, vmax=lim)""",
    ),
    (
        "md",
        """## 5. Stacking: noise and cosmic rays

One calibrated light against the stack, and the map of values the rejection threw out.
Cosmic rays are among them, but so are ordinary values: with ten frames, a sigma clip that
measures the spread with the median absolute deviation clips a few per cent of good data
too. The cosmic-ray experiment below measures what each rejection removes and costs.""",
    ),
    (
        "code",
        """stack = Frame.read(next(iter(result.stacks.values())))
single = Frame.read(result.calibrated[0])
rejected = stack.extras["NREJLO"] + stack.extras["NREJHI"]
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
show_image(axes[0], single.data, title="one calibrated light", unit="electron")
show_image(axes[1], stack.data, title=f"stack of {len(result.calibrated)}", unit="electron")
show_image(axes[2], rejected, title="values rejected per pixel", unit="frames",
           stretch="minmax", cmap="magma_r")""",
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

`ccdcal reduce` (and `ccdcal demo`) also write an HTML report with every figure; open
`reduced/report/index.html` in a browser.""",
    ),
    (
        "code",
        """print(result.report)""",
    ),
]


def build() -> nbformat.NotebookNode:
    """The notebook, unexecuted."""
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


def main() -> Path:
    """Write ``ccd_calibration.ipynb`` next to this script."""
    path = Path(__file__).with_name("ccd_calibration.ipynb")
    nbformat.write(build(), path)
    return path


if __name__ == "__main__":
    print(main())
