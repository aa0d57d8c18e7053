"""A night reduced with ccdproc as astropy's CCD Data Reduction Guide does it.

Following https://www.astropy.org/ccd-reduction-and-photometry-guide (notebooks 02-04,
03-05, 05-04, 06-03): master bias combined by a sigma-clipped average (5 sigma about the
median with the MAD, ``mem_limit=350e6``); darks bias-subtracted, written, combined the same
way per exposure time; flats bias- and scaled-dark-subtracted, written, combined per filter
with ``scale=inv_median``; lights calibrated (bias, scaled dark, flat) and written; then the
calibrated lights of each filter stacked by the same sigma-clipped average.

Usage: ``python ccdproc_night.py RAW_DIR OUT_DIR`` (used by ``night_vs_peers.py``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import astropy.units as u
import ccdproc as ccdp
import numpy as np
from astropy.stats import mad_std

warnings.filterwarnings("ignore")  # astropy's FITSFixed and unit chatter, as in the guide

CLIP = dict(
    sigma_clip=True,
    sigma_clip_low_thresh=5,
    sigma_clip_high_thresh=5,
    sigma_clip_func=np.ma.median,
    sigma_clip_dev_func=mad_std,
    mem_limit=350e6,
)


def main(raw: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    files = ccdp.ImageFileCollection(raw)
    imtype = files.summary["imagetyp"]

    def kind(name: str) -> list[str]:
        return [
            str(raw / f) for f, t in zip(files.files, imtype, strict=True) if str(t).lower() == name
        ]

    bias = ccdp.combine(kind("bias"), unit="adu", method="average", **CLIP)
    bias.meta["combined"] = True
    bias.write(out / "master_bias.fits", overwrite=True)

    darks: dict[float, ccdp.CCDData] = {}
    by_time: dict[float, list[Path]] = {}
    for path in kind("dark"):
        ccd = ccdp.subtract_bias(ccdp.CCDData.read(path, unit="adu"), bias)
        target = out / f"dark_{Path(path).name}"
        ccd.write(target, overwrite=True)
        by_time.setdefault(float(ccd.header["exptime"]), []).append(target)
    for t, paths in by_time.items():
        darks[t] = ccdp.combine([str(p) for p in paths], method="average", **CLIP)
        darks[t].write(out / f"master_dark_{t:g}.fits", overwrite=True)

    def dark_for(t: float) -> ccdp.CCDData:
        return darks[min(darks, key=lambda d: abs(d - t))]

    flats: dict[str, list[Path]] = {}
    for path in kind("flat"):
        ccd = ccdp.subtract_bias(ccdp.CCDData.read(path, unit="adu"), bias)
        ccd = ccdp.subtract_dark(
            ccd,
            dark_for(float(ccd.header["exptime"])),
            exposure_time="exptime",
            exposure_unit=u.second,
            scale=True,
        )
        target = out / f"flat_{Path(path).name}"
        ccd.write(target, overwrite=True)
        flats.setdefault(str(ccd.header.get("filter", "")), []).append(target)
    master_flats = {}
    for name, paths in flats.items():
        master_flats[name] = ccdp.combine(
            [str(p) for p in paths],
            method="average",
            scale=lambda a: 1 / np.ma.median(a),
            **CLIP,
        )
        master_flats[name].write(out / f"master_flat_{name}.fits", overwrite=True)

    lights: dict[str, list[Path]] = {}
    for path in kind("light"):
        ccd = ccdp.CCDData.read(path, unit="adu")
        ccd = ccdp.subtract_bias(ccd, bias)
        ccd = ccdp.subtract_dark(
            ccd,
            dark_for(float(ccd.header["exptime"])),
            exposure_time="exptime",
            exposure_unit=u.second,
            scale=True,
        )
        name = str(ccd.header.get("filter", ""))
        ccd = ccdp.flat_correct(ccd, master_flats[name])
        target = out / f"light_{Path(path).name}"
        ccd.write(target, overwrite=True)
        lights.setdefault(name, []).append(target)
    for name, paths in lights.items():
        stack = ccdp.combine([str(p) for p in paths], method="average", **CLIP)
        stack.write(out / f"stack_{name}.fits", overwrite=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
