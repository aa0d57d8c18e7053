"""How long a user's commands take: the demo (first and second run), the experiments, and
``ccdcal reduce`` of the real nights (first run and rerun).

Each command runs as a fresh ``ccdcal`` process, as a user types it, after one warm-up run
that compiles the kernels into numba's cache, as ``make``'s ``ccdcal compile`` does at
install (a first run on a machine where nothing compiled them spends up to half a minute
more on that, once). Wall time is the best of ``--rounds`` runs; CPU time is the
process's user + system time in that run (above the wall time where the compiled kernels
use several cores). The real nights are those in ``../shared/data``, left out where absent.
It prints, and writes to ``benchmarks/results/user_timings.md``, the table that README
includes.

Usage::

    python benchmarks/user_timings.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "user_timings.md"
DATA = ROOT.parent / "shared" / "data"
NIGHTS = {"Lowell": "lowell-42in-2019-03-26", "Feder": "feder-2013-07-04"}


def _ccdcal() -> str:
    beside = Path(sys.executable).with_name("ccdcal")
    return str(beside) if beside.exists() else "ccdcal"


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``ccdcal`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([_ccdcal(), *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(runs, key=lambda r: r[0])


def measure(rounds: int, work: Path) -> list[tuple[str, float, float]]:
    """(what, wall s, CPU s) for each command."""
    rows: list[tuple[str, float, float]] = []
    timed(["demo", "warmup"], work)  # compiles and caches the kernels
    first, second = [], []
    for i in range(rounds):
        folder = f"demo{i}"
        first.append(timed(["demo", folder], work))
        second.append(timed(["demo", folder], work))
    rows.append(("`ccdcal demo DIR`, first run", *best(first)))
    rows.append(("`ccdcal demo DIR` again (everything kept)", *best(second)))
    for name in ("frames", "cosmic-rays", "vignetting"):
        runs = [timed(["experiment", name, "--out", f"x{i}-{name}"], work) for i in range(rounds)]
        rows.append((f"`ccdcal experiment {name}`", *best(runs)))
    for label, folder in NIGHTS.items():
        raw = DATA / folder
        if not raw.is_dir():
            continue
        first, again = [], []
        for i in range(rounds):
            out = work / f"{folder}-{i}"
            first.append(timed(["reduce", str(raw), str(out)], work))
            again.append(timed(["reduce", str(raw), str(out)], work))
            shutil.rmtree(out)
        rows.append((f"`ccdcal reduce` of the {label} night, first run", *best(first)))
        rows.append((f"`ccdcal reduce` of the {label} night again (everything kept)", *best(again)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command (best)")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]  # a shared machine: how busy it was, said with the numbers
    with tempfile.TemporaryDirectory(prefix="ccdcal-timings-") as tmp:
        rows = measure(args.rounds, Path(tmp))
    load = max(load, os.getloadavg()[0])
    when = dt.date.today().isoformat()
    machine = describe()
    nights = [label for label, folder in NIGHTS.items() if (DATA / folder).is_dir()]
    lines = [
        f"Measured by `benchmarks/user_timings.py` on {when}, {machine}; each command a fresh "
        f"process with its kernels already compiled, best of {args.rounds} runs; load "
        f"average {load:.1f} at the start or the end"
        + ("" if len(nights) == len(NIGHTS) else "; real nights absent: not measured")
        + ".",
        "",
        "| command | wall s | CPU s |",
        "| --- | ---: | ---: |",
        *(f"| {what} | {wall:.1f} | {cpu:.1f} |" for what, wall, cpu in rows),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(f"written: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
