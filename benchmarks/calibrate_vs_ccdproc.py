"""Calibrating frames: ccdcal against ccdproc's documented chain, on the same files, in one run.

Each contender runs in its own subprocess, so that its peak memory (max RSS) is its own:

- ccdcal: ``Frame.read`` + ``calibrate`` (overscan, trim, bias, scaled dark, flat, gain, with
  variance and mask) + ``Frame.write``;
- ccdproc: ``CCDData.read`` + ``subtract_overscan`` + ``trim_image`` + ``subtract_bias`` +
  ``subtract_dark(scale=True)`` + ``flat_correct`` + ``gain_correct`` + ``write``, with
  uncertainty propagation as ccdproc's tutorial does it (``create_deviation``).

Usage::

    python benchmarks/calibrate_vs_ccdproc.py [--n 10] [--size 2048]

Prints wall time per frame, peak memory and the ratio; ccdcal's time split into reading,
calibrating and writing; and the largest difference between the two calibrated images; and
writes the table to ``benchmarks/results/calibrate_vs_ccdproc.md`` (README quotes it).
Neither contender flushes its files to the disk (as ``ccdcal reduce`` writes them).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

CCDCAL = """
import sys, time, json
from pathlib import Path
from ccdcal.frame import Frame
from ccdcal.calibration import calibrate
d = Path(sys.argv[1]); n = int(sys.argv[2])
bias, dark, flat = (Frame.read(d / f"{k}.fits") for k in ("bias", "dark", "flat"))
phases = {"read": 0.0, "calibrate": 0.0, "write": 0.0}
t0 = time.perf_counter()
for i in range(n):
    t = time.perf_counter()
    raw = Frame.read(d / f"raw_{i:03d}.fits")
    raw.data.sum()  # the read is lazy: touch the pixels
    phases["read"] += time.perf_counter() - t
    t = time.perf_counter()
    out = calibrate(raw, bias=bias, dark=dark, flat=flat, overscan="rows")  # as ccdproc's
    phases["calibrate"] += time.perf_counter() - t
    t = time.perf_counter()
    out.write(d / "ccdcal" / f"cal_{i:03d}.fits", step="calibrate", durable=False)  # as reduce
    phases["write"] += time.perf_counter() - t
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": peak, "phases": phases}))
"""

CCDPROC = """
import sys, time, json, warnings
from pathlib import Path
import astropy.units as u
from astropy.nddata import CCDData
import ccdproc
warnings.simplefilter("ignore")
d = Path(sys.argv[1]); n = int(sys.argv[2])
bias, dark, flat = (CCDData.read(d / f"{k}.fits", unit="adu") for k in ("bias", "dark", "flat"))
for c in (bias, dark, flat):
    c.mask = None
t0 = time.perf_counter()
for i in range(n):
    ccd = CCDData.read(d / f"raw_{i:03d}.fits", unit="adu")
    h = ccd.header
    ccd = ccdproc.subtract_overscan(ccd, fits_section=h["BIASSEC"], median=True, overscan_axis=1)
    ccd = ccdproc.trim_image(ccd, fits_section=h["TRIMSEC"])
    ccd = ccdproc.create_deviation(ccd, gain=h["GAIN"] * u.electron / u.adu,
                                   readnoise=h["RDNOISE"] * u.electron)
    ccd = ccdproc.subtract_bias(ccd, bias)
    ccd = ccdproc.subtract_dark(ccd, dark, exposure_time="EXPTIME", exposure_unit=u.s, scale=True)
    ccd = ccdproc.flat_correct(ccd, flat, norm_value=1.0)
    ccd = ccdproc.gain_correct(ccd, h["GAIN"] * u.electron / u.adu)
    ccd.write(d / "ccdproc" / f"cal_{i:03d}.fits", overwrite=True)
import resource
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": peak}))
"""


def make_data(folder: Path, n: int, size: int) -> None:
    from astropy.io import fits

    rng = np.random.default_rng(0)
    over = 32
    shape = (size, size + over)
    for i in range(n):
        data = rng.normal(1000, 8, shape) + rng.poisson(300, shape) * (np.arange(shape[1]) < size)
        h = fits.Header({"EXPTIME": 60.0, "GAIN": 1.5, "RDNOISE": 8.0,
                         "BIASSEC": f"[{size + 1}:{size + over},1:{size}]",
                         "TRIMSEC": f"[1:{size},1:{size}]"})  # fmt: skip
        fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16), h).writeto(
            folder / f"raw_{i:03d}.fits"
        )
    for name, value, t in (("bias", 0.0, 0.0), ("dark", 12.0, 120.0), ("flat", 1.0, 1.0)):
        noise = 0.01 if name == "flat" else 1.0
        img = (value + rng.normal(0, noise, (size, size))).astype(np.float32)
        fits.PrimaryHDU(img, fits.Header({"EXPTIME": t})).writeto(folder / f"{name}.fits")


def run(script: str, folder: Path, n: int) -> dict:
    (folder / ("ccdcal" if "ccdcal.frame" in script else "ccdproc")).mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", script, str(folder), str(n)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        make_data(folder, args.n, args.size)
        print(f"data: {args.n} raw frames of {args.size}x{args.size + 32} uint16 "
              f"({time.perf_counter() - t0:.1f} s to write)")  # fmt: skip
        ours = run(CCDCAL, folder, args.n)
        theirs = run(CCDPROC, folder, args.n)
        from astropy.io import fits

        diff = max(
            float(np.nanmax(np.abs(fits.getdata(folder / "ccdcal" / f"cal_{i:03d}.fits")
                                   - fits.getdata(folder / "ccdproc" / f"cal_{i:03d}.fits"))))
            for i in range(args.n)
        )  # fmt: skip
    import datetime as dt

    machine = describe()
    split = ", ".join(f"{k} {v / args.n:.3f} s" for k, v in ours["phases"].items())
    lines = [
        f"Measured by `benchmarks/calibrate_vs_ccdproc.py` on {dt.date.today().isoformat()}, "
        f"{machine}: {args.n} raw frames of {args.size}x{args.size + 32} uint16 (overscan, "
        "trim, bias, scaled dark, flat, gain, with variance and mask; read and written).",
        "",
        "| tool | s per frame | peak MB | time vs ccdcal |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {r['seconds'] / args.n:.3f} | {r['peak_mb']:.0f} | "
          f"{r['seconds'] / ours['seconds']:.1f}x |"
          for name, r in (("ccdcal", ours), ("ccdproc", theirs))),
        "",
        f"ccdcal per frame: {split} (the first frame loads the compiled kernel). The largest "
        f"difference between the calibrated images: {diff:.3g} electron.",
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    print(text)
    results = Path(__file__).resolve().parent / "results" / "calibrate_vs_ccdproc.md"
    results.parent.mkdir(exist_ok=True)
    results.write_text(text)
    print(f"written: {results}")


if __name__ == "__main__":
    main()
