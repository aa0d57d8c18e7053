"""A whole night reduced by ccdcal, by a ccdproc script and by Siril, side by side.

Simulates a night (by default issue 16's: 30 bias, 20 darks, 20 flats and 40 lights of
2048x2048; or takes a folder of raw frames with ``--raw``), then reduces it, in interleaved
rounds, each contender a fresh process:

- ``ccdcal reduce``, first run after a fresh install: ``make`` installs ccdcal and runs
  ``ccdcal compile`` (timed on its own, into an empty ``NUMBA_CACHE_DIR``), then the night;
- ``ccdcal reduce``, first run with numba's cache empty (``NUMBA_CACHE_DIR`` a new folder),
  as after an install that did not run ``ccdcal compile`` (``pip install``): the kernels the
  night needs are compiled while it runs;
- ``ccdcal reduce``, warm: the kernels loaded from the cache; so on 2 local worker
  processes (``--workers 2``); and doing only what Siril's script does (no stars, no
  alignment, no report: ``[register] method = "none"``, ``--no-report``);
- a ccdproc script following astropy's CCD Data Reduction Guide (``peers/ccdproc_night.py``:
  master bias, darks and flats combined with sigma clipping, calibrated darks, flats and
  lights written, the lights stacked), where ccdproc is installed;
- ``siril-cli`` running Siril's standard mono script (convert, master bias, dark and flat,
  preprocess, stack with rejection; ``peers/siril_night.ssf``), where Siril is installed
  (Debian's ``siril`` package);
- the floor: every raw file read and decoded once, and ccdcal's outputs' bytes written once
  (plain files, one sync at the end, as ``ccdcal reduce`` does).

For each it prints and writes to ``benchmarks/results/night_vs_peers.md`` the wall time
(best and every round), the CPU time of the process and its children, the peak resident
memory of its process tree (sampled every 20 ms) and the bytes its outputs take on disk.

Usage::

    python benchmarks/night_vs_peers.py [--raw FOLDER] [--size 2048] [--rounds 3]
        [--only ccdcal-warm siril ...]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from machine import describe  # benchmarks/machine.py

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "night_vs_peers.md"
PEERS = HERE / "peers"
CONTENDERS = ("ccdcal-installed", "ccdcal-first", "ccdcal-warm", "ccdcal-2proc", "ccdcal-lean",
              "ccdproc", "siril", "floor")  # fmt: skip
#: what the "ccdcal-installed" contender times before its reduction, as a row of its own
COMPILE = "ccdcal-compile"
LABELS = {
    COMPILE: "`ccdcal compile` (`make`'s install step; empty numba cache)",
    "ccdcal-installed": "`ccdcal reduce`, first run after `ccdcal compile`",
    "ccdcal-first": "`ccdcal reduce`, first run, empty numba cache (kernels compiled)",
    "ccdcal-warm": "`ccdcal reduce`, kernels cached",
    "ccdcal-2proc": "`ccdcal reduce --workers 2`, kernels cached",
    "ccdcal-lean": "`ccdcal reduce` doing Siril's script's work (no alignment, no report)",
    "ccdproc": "ccdproc script after astropy's CCD reduction guide",
    "siril": "`siril-cli` script (convert, masters, preprocess, stack)",
    "floor": "floor: raw files read once, ccdcal's outputs written once",
}


@dataclass
class Run:
    wall: float
    cpu: float
    peak: int
    written: int


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):  # a process that ended meanwhile
            total += p.memory_info().rss
    return total


def measure(cmd: list[str], env: dict[str, str], cwd: Path, outputs: list[Path]) -> Run:
    """Run ``cmd``; its wall and CPU time, the peak RSS of its process tree, and the bytes
    of the files under ``outputs`` afterwards."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    log, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    files = [f for o in outputs if o.exists() for f in ([o] if o.is_file() else o.rglob("*"))]
    written = sum(f.stat().st_size for f in files if f.is_file() and not f.is_symlink())
    return Run(wall, cpu, peak[0], written)


def simulate(folder: Path, size: int) -> Path:
    """Issue 16's night (30 bias, 20 darks, 20 flats, 40 lights of ``size``²), once."""
    raw = folder / "raw"
    if (folder / ".complete").exists():
        return raw
    import ccdcal

    ccdcal.simulate.night(folder, seed=1, shape=(size, size), nbias=30, ndark=20, nflat=20,
                          nlight=40)  # fmt: skip
    (folder / ".complete").write_text("")
    return raw


def siril_folders(raw: Path, work: Path) -> None:
    """Siril's script wants one folder per kind of frame: links to the raw files."""
    from astropy.io import fits

    for kind in ("biases", "darks", "flats", "lights"):
        (work / kind).mkdir(parents=True, exist_ok=True)
    names = {"BIAS": "biases", "ZERO": "biases", "DARK": "darks", "FLAT": "flats",
             "SKYFLAT": "flats", "LIGHT": "lights", "OBJECT": "lights"}  # fmt: skip
    for path in sorted(raw.glob("*.fit*")):
        kind = str(fits.getheader(path).get("IMAGETYP", "")).upper().split()[0]
        if kind in names:
            (work / names[kind] / path.name).symlink_to(path.resolve())


def command(name: str, raw: Path, work: Path, cache: Path) -> tuple[list[str], dict, list[Path]]:
    env = {**os.environ}
    out = work / "out"
    if name == COMPILE:
        env["NUMBA_CACHE_DIR"] = str(cache)
        return [sys.executable, "-m", "ccdcal", "-q", "compile"], env, []
    if name.startswith("ccdcal"):
        env["NUMBA_CACHE_DIR"] = str(cache)
        exe = [sys.executable, "-m", "ccdcal", "-q", "reduce", str(raw), str(out)]
        if name == "ccdcal-2proc":
            exe += ["--workers", "2"]
        if name == "ccdcal-lean":  # what Siril's script does: no stars, alignment or report
            config = work / "lean.toml"
            config.write_text('[register]\nmethod = "none"\n')
            exe += ["--no-report", "--config", str(config)]
        return exe, env, [out]
    if name == "ccdproc":
        return [sys.executable, str(PEERS / "ccdproc_night.py"), str(raw), str(out)], env, [out]
    if name == "siril":
        siril_folders(raw, work)
        cmd = ["siril-cli", "-d", str(work), "-s", str(PEERS / "siril_night.ssf")]
        return cmd, env, [work / "process", work / "result.fits", work / "result.fit"]
    return [sys.executable, str(PEERS / "floor.py"), str(raw), str(out)], env, [out]


def available(name: str) -> bool:
    if name == "siril":
        return shutil.which("siril-cli") is not None
    if name == "ccdproc":
        try:
            import ccdproc  # noqa: F401
        except ImportError:
            return False
    return True


def table(runs: dict[str, list[Run]], night: str, machine: str, rounds: int) -> str:
    def best(name: str) -> Run:
        return min(runs[name], key=lambda r: r.wall)

    rows = [
        "| contender | wall s (best; all) | CPU s | peak RSS | written | vs Siril | vs ccdproc |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in (COMPILE, *CONTENDERS):
        if name not in runs:
            continue
        b = best(name)
        walls = ", ".join(f"{r.wall:.1f}" for r in runs[name])
        siril = f"{b.wall / best('siril').wall:.2f}x" if "siril" in runs else "-"
        ccdproc = f"{best('ccdproc').wall / b.wall:.1f}x faster" if "ccdproc" in runs else "-"
        if name in ("ccdproc", COMPILE):
            siril = "" if name == COMPILE else siril
            ccdproc = ""
        rows.append(f"| {LABELS[name]} | {b.wall:.1f} ({walls}) | {b.cpu:.1f} | "
                    f"{b.peak / 1e9:.2f} GB | {b.written / 1e9:.2f} GB | {siril} | "
                    f"{ccdproc} |")  # fmt: skip
    lines = [
        f"Measured by `benchmarks/night_vs_peers.py` on {dt.date.today().isoformat()}, "
        f"{machine}; {rounds} interleaved rounds, each run a fresh process.",
        "",
        f"{night}:",
        "",
        *rows,
    ]
    goals = []
    if "ccdcal-warm" in runs:
        warm = best("ccdcal-warm")
        if "siril" in runs:
            goals.append(("warm run / Siril's script", warm.wall / best("siril").wall, "<=", 0.5))
        if "ccdproc" in runs:
            goals.append(("ccdproc script / warm run", best("ccdproc").wall / warm.wall, ">=", 8))
        if "ccdcal-installed" in runs:
            goals.append(("first run after a fresh install (`make`) / warm run",
                          best("ccdcal-installed").wall / warm.wall, "<=", 1.5))  # fmt: skip
        if "ccdcal-first" in runs:
            goals.append(("first run, no `ccdcal compile` (`pip install`) / warm run",
                          best("ccdcal-first").wall / warm.wall, "<=", 1.5))  # fmt: skip
        goals.append(("warm run's peak RSS, GB", warm.peak / 1e9, "<=", 1.0))
        if "floor" in runs:
            goals.append(("floor / warm run", best("floor").wall / warm.wall, ">=", 0.6))
    if goals:
        lines += ["", "| issue 16's goal | value | target | |", "| --- | --- | --- | --- |"]
        for text, value, op, target in goals:
            met = value <= target if op == "<=" else value >= target
            lines.append(f"| {text} | {value:.2f} | {op} {target} | "
                         f"{'met' if met else 'not met'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def from_log(log: Path) -> tuple[dict[str, list[Run]], str, str, int]:
    """The runs a log of this script holds (its lines ``round R NAME: ...``), its night,
    machine and number of rounds: the table again without running the night again."""
    import re

    runs: dict[str, list[Run]] = {}
    head = log.read_text().splitlines()
    machine, night = head[0].split("; ", 1)
    pattern = re.compile(r"round (\d+) (\S+): ([\d.]+) s wall, ([\d.]+) s CPU, ([\d.]+) GB "
                         r"peak, ([\d.]+) GB written")  # fmt: skip
    rounds = 0
    for line in head:
        m = pattern.fullmatch(line.strip())
        if m:
            rounds = max(rounds, int(m.group(1)))
            wall, cpu, peak, written = (float(m.group(i)) for i in range(3, 7))
            runs.setdefault(m.group(2), []).append(Run(wall, cpu, int(peak * 1e9),
                                                       int(written * 1e9)))  # fmt: skip
    return runs, night, machine, rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, help="a folder of raw frames (default: simulate)")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--work", type=Path, default=Path("bench-output") / "night_vs_peers")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--from-log", type=Path, help="the table from a saved log of a run")
    args = parser.parse_args()
    if args.from_log:
        runs, night, machine, rounds = from_log(args.from_log)
        text = table(runs, night, machine, rounds)
        print(text)
        if not args.no_write:
            RESULTS.write_text(text)
        return
    names = [n for n in CONTENDERS if n in args.only and available(n)]
    for n in args.only:
        if n not in names:
            print(f"{n}: not installed here, left out", flush=True)
    args.work = args.work.resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    raw = args.raw.resolve() if args.raw else simulate(args.work / f"night_{args.size}", args.size)
    count = len([p for p in raw.rglob("*") if p.is_file()])
    night = (f"{count} raw frames from {raw}" if args.raw else
             f"a simulated night of 30 bias, 20 darks, 20 flats and 40 lights of "
             f"{args.size}x{args.size} (uint16), cosmic rays at the simulator's rate")  # fmt: skip
    machine = describe()
    print(f"{machine}; {night}", flush=True)
    warm_cache = Path(tempfile.mkdtemp(prefix="numba-warm-", dir=args.work))
    runs: dict[str, list[Run]] = {}
    try:
        if "ccdcal-warm" in names:  # the warm runs' kernels, compiled before any round
            with tempfile.TemporaryDirectory(dir=args.work) as tmp:
                cmd, env, outs = command("ccdcal-warm", raw, Path(tmp), warm_cache)
                measure(cmd, env, Path(tmp), outs)
        for r in range(args.rounds):
            for name in names:
                with tempfile.TemporaryDirectory(dir=args.work) as tmp:
                    cache = warm_cache
                    steps = [name]
                    if name in ("ccdcal-first", "ccdcal-installed"):
                        cache = Path(tmp) / "numba-cache"
                    if name == "ccdcal-installed":  # the install's compile, then the night
                        steps = [COMPILE, name]
                    for step in steps:
                        cmd, env, outs = command(step, raw, Path(tmp), cache)
                        run = measure(cmd, env, Path(tmp), outs)
                        runs.setdefault(step, []).append(run)
                        print(f"round {r + 1} {step}: {run.wall:.1f} s wall, {run.cpu:.1f} s "
                              f"CPU, {run.peak / 1e9:.2f} GB peak, {run.written / 1e9:.2f} GB "
                              "written", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(warm_cache, ignore_errors=True)
    text = table(runs, night, machine, args.rounds)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(text)
        print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
