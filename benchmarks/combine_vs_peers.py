"""Stacking: ccdcal.combine against its peers, on the same files, in one run.

Writes N frames of SIZE x SIZE (sky + noise + cosmic rays) as float32 FITS and as uint16 FITS
with BZERO=32768, then times, each in its own subprocess (so that its peak memory, the max
RSS, is its own):

- ccdcal.combine from the files (sigma-clipped mean, as astropy's and as ccdproc's one-pass
  clip; median) and from the in-memory stack (numba cache warm: one small call first);
- ccdproc.combine on the float32 files (sigma_clip + average; median);
- astropy.stats.sigma_clip(axis=0) + mean of the in-memory stack;
- numpy.median and bottleneck.nanmedian of the in-memory stack;
- one numpy.sum(axis=0) pass over the in-memory stack (the speed of memory);
- Siril (``siril-cli``) when installed.

Prints a table: best wall time of the repeats (after one untimed warm-up run when a
contender is repeated), peak RSS, time and memory ratios against the matching ccdcal run,
and the largest absolute difference from it. Timings on a shared machine vary from run to
run; compare within one run.

Usage::

    python benchmarks/combine_vs_peers.py [--n 20] [--size 2048] [--quick] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

SKY, NOISE = 1000.0, 10.0
RESULTS = Path(__file__).resolve().parent / "results" / "combine_vs_peers.md"


# --------------------------------------------------------------------------- data


def make_data(folder: Path, n: int, size: int) -> tuple[list[Path], list[Path]]:
    """float32 and uint16 (BZERO) files of the same frames; reused when already there."""
    from ccdcal import Frame

    folder.mkdir(parents=True, exist_ok=True)
    f32 = [folder / f"f32_{i:03d}.fits" for i in range(n)]
    u16 = [folder / f"u16_{i:03d}.fits" for i in range(n)]
    stamp = folder / "made.json"
    want = {"n": n, "size": size, "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == want:
        return f32, u16
    rng = np.random.default_rng(2024)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    sky = SKY + 50 * xx + 30 * yy  # a gentle gradient
    for i in range(n):
        data = sky + rng.normal(0, NOISE, (size, size)).astype(np.float32)
        hits = rng.random((size, size)) < 0.001  # cosmic rays
        data[hits] += rng.uniform(200, 20000, int(hits.sum())).astype(np.float32)
        header = {"EXPTIME": 60.0, "IMAGETYP": "LIGHT"}
        Frame(data, header=header).write(f32[i])
        Frame(np.clip(data, 0, 65535), header=header).write(u16[i], dtype="uint16")
    stamp.write_text(json.dumps(want))
    return f32, u16


# --------------------------------------------------------------------------- children


def _stack(files: list[str]) -> np.ndarray:
    from astropy.io import fits

    first = fits.getdata(files[0])
    stack = np.empty((len(files), *first.shape), np.float32)
    for i, f in enumerate(files):
        stack[i] = fits.getdata(f)
    return stack


def _ccdcal(kind: str, files: list[str]) -> tuple[object, np.ndarray]:
    from ccdcal.stacking import SigmaClip, combine

    combine([np.zeros((8, 8), np.float32)] * 3, reject=SigmaClip())  # load compiled kernels
    inputs = _stack(files) if kind.endswith("-mem") else files
    task = kind.removesuffix("-mem")
    if task == "sigclip":
        return lambda: combine(inputs, reject=SigmaClip()).data, inputs
    if task == "sigclip1":
        return lambda: combine(inputs, reject=SigmaClip(maxiters=1)).data, inputs
    if task == "median":
        return lambda: combine(inputs, method="median").data, inputs
    raise ValueError(kind)


def _peer(kind: str, files: list[str]) -> tuple[object, object]:
    import warnings

    warnings.simplefilter("ignore")
    if kind.startswith("ccdproc"):
        import ccdproc

        if kind == "ccdproc-sigclip":
            return lambda: np.asarray(
                ccdproc.combine(
                    files,
                    method="average",
                    unit="adu",
                    sigma_clip=True,
                    sigma_clip_low_thresh=3,
                    sigma_clip_high_thresh=3,
                    sigma_clip_func=np.ma.median,
                    sigma_clip_dev_func=np.ma.std,
                ).data
            ), None
        return lambda: np.asarray(ccdproc.combine(files, method="median", unit="adu").data), None
    stack = _stack(files)
    if kind == "astropy-sigclip":
        from astropy.stats import sigma_clip

        def run() -> np.ndarray:
            clipped = sigma_clip(
                stack, sigma=3, maxiters=5, axis=0, cenfunc="median", stdfunc="std"
            )
            return np.ma.mean(clipped, axis=0).filled(np.nan)

        return run, stack
    if kind == "numpy-median":
        return lambda: np.median(stack, axis=0), stack
    if kind == "bottleneck-nanmedian":
        import bottleneck

        return lambda: bottleneck.nanmedian(stack, axis=0), stack
    if kind == "numpy-sum":
        return lambda: np.sum(stack, axis=0), stack
    raise ValueError(kind)


def child(kind: str, files: list[str], repeat: int, out: Path) -> None:
    """Run one contender ``repeat`` times; print JSON with its best time and peak RSS."""
    make = _ccdcal if kind.startswith("ccdcal") else _peer
    run, _keep = make(kind.removeprefix("ccdcal-"), files)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    best = float("inf")
    result = None
    if repeat > 1:
        result = run()  # type: ignore[operator]  # warm-up: first-touch page faults, thread pool
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    np.save(out, np.asarray(result, dtype=np.float32))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": best, "peak_mb": peak, "base_mb": base}))


def run_child(kind: str, files: list[Path], repeat: int, out: Path) -> dict | None:
    cmd = [sys.executable, __file__, "--child", kind, "--repeat", str(repeat), "--out", str(out)]
    proc = subprocess.run(
        [*cmd, "--files", *map(str, files)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print(f"  {kind} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_siril(files: list[Path], work: Path, repeats: int = 3) -> dict | None:
    """Siril 1.0's sigma-clipped mean stack (``rej 3 3 -nonorm``) of the same frames.

    Siril wants float FITS in [0, 1]: the frames are written again divided by 65535 (not
    timed). Timed: the whole ``siril-cli`` run (conversion to its sequence + stack) and, from
    its log, the stack alone ("Execution time" of the stack command); the best of
    ``repeats`` runs, as the fresh ``ccdcal combine`` it is compared with.
    """
    import re

    from astropy.io import fits

    exe = shutil.which("siril-cli")
    if exe is None:
        return None
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    for i, f in enumerate(files):
        data = fits.getdata(f).astype(np.float32) / np.float32(65535)
        fits.PrimaryHDU(data).writeto(work / f"img_{i + 1:05d}.fit")
    script = work / "stack.ssf"
    script.write_text(
        "requires 1.0.0\nconvert img -out=seq\ncd seq\n"
        "stack img_ rej 3 3 -nonorm -out=siril_out\nclose\n"
    )
    # a wrapper process of its own, so that the peak memory measured is Siril's alone
    wrapper = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(p.stdout)\n"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(p.returncode)\n"
    )
    out = work / "seq" / "siril_out.fit"
    best: dict | None = None
    for _ in range(repeats):
        shutil.rmtree(work / "seq", ignore_errors=True)  # each run converts anew
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", wrapper, exe, "-d", str(work.resolve()), "-s",
             str(script.resolve())],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        seconds = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            print(f"  siril-cli failed:\n{proc.stdout[-1500:]}", file=sys.stderr)
            return None
        after = proc.stdout.split("Stacked sequence successfully", 1)[-1]
        match = re.search(r"Execution time: ([0-9.]+) (ms|s)", after)
        stack_s = None
        if match:
            stack_s = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
        peak = re.search(r"PEAK_KB (\d+)", proc.stdout)
        if best is None or seconds < best["seconds"]:
            best = {
                "seconds": seconds,
                "stack_seconds": stack_s,
                "peak_mb": int(peak.group(1)) / 1024 if peak else float("nan"),
            }
    assert best is not None
    best["data"] = fits.getdata(out).astype(np.float64) * 65535
    return best


def run_ccdcal_command(files: list[Path], work: Path, repeats: int = 3) -> float:
    """Wall time of ``ccdcal combine`` as a fresh command (numba's cache warm), the best of
    ``repeats`` runs (as Siril's, which it is compared with; one run swung by a tenth)."""
    exe = Path(sys.executable).with_name("ccdcal")
    out = work / "ccdcal_cli.fits"
    cmd = [str(exe), "-q", "combine", *map(str, files), "-o", str(out),
           "--method", "mean", "--reject", "sigclip", "--sigma", "3"]  # fmt: skip
    best = math.inf
    for _ in range(repeats):
        out.unlink(missing_ok=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


# --------------------------------------------------------------------------- table

# (label, kind, files, repeats, ccdcal reference kind)
PLAN = [
    ("ccdcal sigclip-mean  f32 files", "ccdcal-sigclip", "f32", 9, None),
    ("ccdcal sigclip-mean  u16 files", "ccdcal-sigclip", "u16", 9, None),
    ("ccdcal sigclip1-mean f32 files", "ccdcal-sigclip1", "f32", 9, None),
    ("ccdcal median        f32 files", "ccdcal-median", "f32", 9, None),
    ("ccdcal median        u16 files", "ccdcal-median", "u16", 9, None),
    ("ccdcal sigclip-mean  in memory", "ccdcal-sigclip-mem", "f32", 9, None),
    ("ccdcal median        in memory", "ccdcal-median-mem", "f32", 9, None),
    ("ccdproc sigclip+average  files", "ccdproc-sigclip", "f32", 1, "ccdcal-sigclip1"),
    ("ccdproc median           files", "ccdproc-median", "f32", 1, "ccdcal-median"),
    ("astropy sigma_clip+mean memory", "astropy-sigclip", "f32", 1, "ccdcal-sigclip-mem"),
    ("numpy.median           memory", "numpy-median", "f32", 2, "ccdcal-median-mem"),
    ("bottleneck.nanmedian   memory", "bottleneck-nanmedian", "f32", 2, "ccdcal-median-mem"),
    ("numpy.sum (one pass)   memory", "numpy-sum", "f32", 5, "ccdcal-sigclip"),
]


def _targets(results: dict[str, dict], stack_mb: float, command_s: float) -> list[str]:
    """The goals on a 2-core machine (20 frames of 2048x2048), met or not, as lines."""

    def t(key: str) -> float | None:
        res = results.get(key)
        return None if res is None else res["seconds"]

    checks = [
        ("ccdproc sigclip / ccdcal (files)", "ccdproc-sigclip:f32", "ccdcal-sigclip1:f32", ">=",
         10),
        ("ccdproc median / ccdcal (files)", "ccdproc-median:f32", "ccdcal-median:f32", ">=", 25),
        ("ccdcal sigclip (files) / numpy.sum", "ccdcal-sigclip:f32", "numpy-sum:f32", "<=", 6),
        ("ccdcal median (files) / numpy.sum", "ccdcal-median:f32", "numpy-sum:f32", "<=", 6),
    ]  # fmt: skip
    lines = []
    for text, num, den, op, goal in checks:
        a, b = t(num), t(den)
        if a is None or b is None or b == 0:
            continue
        value = a / b
        ok = value >= goal if op == ">=" else value <= goal
        lines.append(f"| {text} | {value:.1f} | {op} {goal} | {'met' if ok else 'NOT met'} |")
    for key in ("ccdcal-sigclip:f32", "ccdcal-sigclip:u16", "ccdcal-median:f32"):
        res = results.get(key)
        if res:
            value = res["peak_mb"] / stack_mb
            lines.append(f"| peak RSS / float32 stack, {key} | {value:.2f} | <= 1.3 | "
                         f"{'met' if value <= 1.3 else 'NOT met'} |")  # fmt: skip
    files = t("ccdcal-sigclip:f32")
    if files is not None:
        over = command_s - files
        lines.append(f"| fresh `ccdcal combine` less the in-process combine, s | {over:.2f} | "
                     f"<= 1 | {'met' if over <= 1 else 'NOT met'} |")  # fmt: skip
    for line in lines:
        print("  " + line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="number of frames")
    parser.add_argument("--size", type=int, default=2048, help="frame side in pixels")
    parser.add_argument("--quick", action="store_true", help="8 frames of 512x512")
    parser.add_argument("--dir", type=Path, default=Path("bench-output/combine_vs_peers"))
    parser.add_argument("--skip", nargs="*", default=[], help="contender kinds to leave out")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.files, args.repeat, args.out)
        return 0
    n, size = (8, 512) if args.quick else (args.n, args.size)
    folder = args.dir / f"{n}x{size}"
    t0 = time.perf_counter()
    f32, u16 = make_data(folder, n, size)
    stack_mb = n * size * size * 4 / 2**20
    print(
        f"{n} frames of {size}x{size}: float32 stack {stack_mb:.0f} MiB; files in {folder} "
        f"({time.perf_counter() - t0:.1f} s); {describe()}"
    )
    results: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    # numba compiles the kernels on the first run after a change of the code and caches
    # them: compile here, untimed, so that no contender's time or memory includes it
    run_child("ccdcal-sigclip", f32[:3], 1, folder / "warmup.npy")
    for label, kind, which, repeat, _ in PLAN:
        if kind in args.skip:
            continue
        key = f"{kind}:{which}"
        out = folder / f"result_{kind}_{which}.npy"
        res = run_child(kind, f32 if which == "f32" else u16, repeat, out)
        if res is not None:
            results[key] = res
            arrays[key] = np.load(out)
        print(f"  done: {label.strip()}", file=sys.stderr)
    siril = run_siril(f32, folder / "siril")
    command_s = run_ccdcal_command(f32, folder)

    head = (
        f"{'contender':32} {'time s':>8} {'peak MiB':>9} {'x stack':>8} "
        f"{'t/ccdcal':>9} {'mem/ccdcal':>10} {'max|diff|':>10}"
    )
    print(head)
    print("-" * len(head))
    for label, kind, which, _, ref in PLAN:
        res = results.get(f"{kind}:{which}")
        if res is None:
            continue
        ref_key = f"{ref}:f32" if ref else None
        ratio_t = ratio_m = diff = ""
        if ref_key and ref_key in results:
            ratio_t = f"{res['seconds'] / results[ref_key]['seconds']:.2f}"
            ratio_m = f"{res['peak_mb'] / results[ref_key]['peak_mb']:.2f}"
            if kind != "numpy-sum":
                d = np.abs(arrays[f"{kind}:{which}"] - arrays[ref_key])
                diff = f"{np.nanmax(d):.2e}"
        print(
            f"{label:32} {res['seconds']:8.3f} {res['peak_mb']:9.0f} "
            f"{res['peak_mb'] / stack_mb:8.2f} {ratio_t:>9} {ratio_m:>10} {diff:>10}"
        )
    print(f"{'ccdcal combine (fresh command)':32} {command_s:8.3f}")
    if siril is None:
        print(f"{'siril-cli':32} {'not installed or failed':>8}")
    else:
        ours = results.get("ccdcal-sigclip:f32")
        d = np.abs(siril["data"] - arrays["ccdcal-sigclip:f32"]) if ours else None
        agree = f"median|diff| {np.nanmedian(d):.2e}, max {np.nanmax(d):.2e}" if ours else ""
        print(f"{'siril-cli (convert + stack)':32} {siril['seconds']:8.3f} {siril['peak_mb']:9.0f}"
              f"   command / ccdcal command {siril['seconds'] / command_s:.2f}")  # fmt: skip
        if siril["stack_seconds"] is not None and ours:
            print(f"{'siril stack alone (its log)':32} {siril['stack_seconds']:8.3f}"
                  f"   / ccdcal sigclip files {siril['stack_seconds'] / ours['seconds']:.2f}"
                  f"   ({agree}; Siril clips with its own rule)")  # fmt: skip
    goals = _targets(results, stack_mb, command_s)
    if not args.quick and not args.no_write:
        _write_results(results, arrays, PLAN, siril, command_s, goals, n, size, stack_mb)
    a = arrays.get("ccdcal-sigclip:f32")
    b = arrays.get("ccdcal-sigclip:u16")
    if a is not None and b is not None:
        # the uint16 files hold the same frames rounded to integers
        print(f"ccdcal f32 vs u16 files, sigclip-mean: max|diff| {np.nanmax(np.abs(a - b)):.2f}")
    base = results.get("ccdcal-sigclip:f32")
    if base:
        print(
            f"ccdcal process baseline (interpreter + imports) {base['base_mb']:.0f} MiB; "
            f"peak {base['peak_mb']:.0f} MiB for a {stack_mb:.0f} MiB stack"
        )
    return 0


def _write_results(
    results: dict, arrays: dict, plan: list, siril: dict | None, command_s: float,
    goals: list[str], n: int, size: int, stack_mb: float,
) -> None:  # fmt: skip
    """The table README quotes, with the machine and the date."""
    import datetime as dt

    rows = ["| contender | time (s) | peak MiB | vs ccdcal | max abs difference |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, kind, which, _, ref in plan:
        res = results.get(f"{kind}:{which}")
        if res is None:
            continue
        ref_key = f"{ref}:f32" if ref else None
        ratio = diff = ""
        if ref_key and ref_key in results:
            x = res["seconds"] / results[ref_key]["seconds"]
            ratio = f"{x:.1f}x slower" if x >= 1 else f"{1 / x:.1f}x faster"
            if kind == "numpy-sum":
                ratio = f"ccdcal from files: {1 / x:.1f}x this"
            else:
                diff = f"{np.nanmax(np.abs(arrays[f'{kind}:{which}'] - arrays[ref_key])):.1e}"
        rows.append(f"| {' '.join(label.split())} | {res['seconds']:.3f} | "
                    f"{res['peak_mb']:.0f} | {ratio} | {diff} |")  # fmt: skip
    rows.append(f"| `ccdcal combine` as a fresh command, f32 files | {command_s:.2f} | | | |")
    if siril is not None:
        rows.append(f"| `siril-cli` convert + stack, f32 files | {siril['seconds']:.2f} | "
                    f"{siril['peak_mb']:.0f} | {siril['seconds'] / command_s:.2f}x the "
                    "fresh `ccdcal combine` | Siril's own rule |")  # fmt: skip
    machine = describe()
    text = "\n".join([
        f"Measured by `benchmarks/combine_vs_peers.py` on {dt.date.today().isoformat()}, "
        f"{machine}: {n} frames of {size}x{size} ({stack_mb:.0f} MiB as float32), each "
        "contender in its own process (peak memory: that process's maximum RSS), best of "
        "its repeats.", "", *rows, "", "| goal | value | target | |", "| --- | --- | --- | --- |",
        *goals,
    ])  # fmt: skip
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text + "\n")
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    sys.exit(main())
