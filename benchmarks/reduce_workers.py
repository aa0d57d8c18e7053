"""A whole night reduced in one process, on local worker processes, and on a Dask cluster.

Simulates nights with many independent products (4 filters, darks at 5 exposure times; by
default of 1024x1024 and of 2048x2048 frames), then reduces each with ``ccdcal.reduce`` in
one process one product at a time, in one process as by default (independent products on
threads, stars found on a process beside them), on N local worker processes and on a
``distributed.LocalCluster`` of N worker processes started by this script, each run in a
fresh Python process (as a user's ``ccdcal reduce`` is), in interleaved rounds. It prints,
and writes to ``benchmarks/results/reduce_workers.md``, each configuration's wall time, the
CPU time of the calling process and of the workers (a side process counts there), the
speed-up against one product at a time, and whether every output equals that run's.

Usage::

    python benchmarks/reduce_workers.py [--size 1024 2048] [--lights 5] [--workers 2]
        [--rounds 3] [--cosmic lacosmic]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

RESULTS = Path(__file__).resolve().parent / "results" / "reduce_workers.md"
FILTERS = ("B", "V", "R", "I")
DARKS = (5.0, 15.0, 30.0, 60.0, 120.0)


def _cpu() -> float:
    import psutil

    t = psutil.Process().cpu_times()
    return t.user + t.system


def one_run(raw: str, out: str, how: str, workers: int, cosmic: str) -> dict:
    """One reduction in this (fresh) process; its times as a dict."""
    from dataclasses import replace

    from ccdcal.config import Config
    from ccdcal.pipeline import reduce

    cfg = Config()
    cfg = replace(cfg, cosmic=replace(cfg.cosmic, method=cosmic))
    client = None
    options: dict = {"workers": workers if how == "processes" else 1}
    if how == "serial":  # what a run was before products shared threads (issue 16)
        import ccdcal.pipeline.reduction as reduction

        reduction.task_threads = lambda: 1
    if how == "cluster":
        import distributed

        client = distributed.Client(os.environ["CCDCAL_BENCH_SCHEDULER"])
        options = {"scheduler": client}
        before = sum(client.run(_cpu).values())
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    reduce(raw, out, config=cfg, report=False, progress=False, **options)
    wall = time.perf_counter() - t0
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    calling = own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime
    working = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
    if client is not None:
        working = sum(client.run(_cpu).values()) - before
        client.close()
    return {"wall": wall, "calling": calling, "workers": working}


def identical(a: Path, b: Path) -> bool:
    from astropy.io import fits

    files = sorted(p.relative_to(a) for p in a.rglob("*.fits"))
    if files != sorted(p.relative_to(b) for p in b.rglob("*.fits")):
        return False
    for rel in files:
        with fits.open(a / rel) as x, fits.open(b / rel) as y:
            for u, v in zip(x, y, strict=True):
                if not np.array_equal(u.data, v.data, equal_nan=True):
                    return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--lights", type=int, default=5, help="lights per filter")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cosmic", default="none", choices=("none", "lacosmic"))
    parser.add_argument("--one", nargs=4, metavar=("RAW", "OUT", "HOW", "WORKERS"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.one:
        raw, out, how, workers = args.one
        print(json.dumps(one_run(raw, out, how, int(workers), args.cosmic)))
        return

    import distributed

    machine = describe()
    sections = []
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=":0") as cluster,
    ):  # fmt: skip
        env = {**os.environ, "CCDCAL_BENCH_SCHEDULER": cluster.scheduler_address}
        for size in args.size:
            sections.append(_bench_size(Path(tmp) / str(size), size, args, env, machine))
    when = dt.date.today().isoformat()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        f"Measured by `benchmarks/reduce_workers.py` on {when}, {machine}; {args.rounds} "
        "interleaved rounds, each run a fresh Python process.\n\n" + "\n\n".join(sections) + "\n"
    )
    print(f"written: {RESULTS}")


def _bench_size(base: Path, size: int, args: argparse.Namespace, env: dict, machine: str) -> str:
    import ccdcal
    from ccdcal.pipeline import plan

    ccdcal.simulate.night(base / "night", seed=1, shape=(size, size), nbias=10, ndark=5,
                          nflat=5, nlight=args.lights, filters=FILTERS,
                          dark_exptime=list(DARKS))  # fmt: skip
    raw = base / "night" / "raw"
    nframes = len(list(raw.glob("*.fits")))
    parts = Counter(product.part for product in plan(raw, base / "planned").products.values())
    products = f"{sum(parts.values())} products (" + ", ".join(
        f"{n} {part}" for part, n in parts.items()) + ")"  # fmt: skip
    night = (
        f"{nframes} raw frames of {size}x{size} (10 bias, 5 darks at each of {len(DARKS)} "
        f"exposures, 5 flats and {args.lights} lights in each of {len(FILTERS)} filters): "
        f"{products}; cosmic rays: {args.cosmic}"
    )
    print(f"{machine}; {night}", flush=True)
    n = args.workers
    serial = "one process, one product at a time"
    hows = [(serial, "serial", 1),
            ("one process (default: products on threads, stars beside)", "processes", 1),
            (f"{n} local processes", "processes", n),
            (f"LocalCluster, {n} worker processes", "cluster", n)]  # fmt: skip
    times: dict[str, list[dict]] = {name: [] for name, _, _ in hows}
    same: dict[str, bool] = {}
    reference = base / "out_serial_1_0"
    for r in range(args.rounds):
        for name, how, workers in hows:
            out = base / f"out_{how}_{workers}_{r}"
            cmd = [sys.executable, __file__, "--cosmic", args.cosmic, "--one", str(raw),
                   str(out), how, str(workers)]  # fmt: skip
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            times[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            if out != reference:
                same[name] = same.get(name, True) and identical(reference, out)
                shutil.rmtree(out)
            print(f"round {r + 1} {name}: {times[name][-1]['wall']:.2f} s", flush=True)
    best1 = min(t["wall"] for t in times[serial])
    rows = ["| how | wall s (best; all) | CPU s, calling process | CPU s, workers | "
            "speed-up | outputs identical |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, _, _ in hows:
        runs = times[name]
        best = min(runs, key=lambda t: t["wall"])
        walls = ", ".join(f"{t['wall']:.1f}" for t in runs)
        check = "reference" if name == serial else ("yes" if same[name] else "NO")
        workers = f"{best['workers']:.1f}" if best["workers"] > 0 else "-"
        rows.append(f"| {name} | {best['wall']:.1f} ({walls}) | {best['calling']:.1f} | "
                    f"{workers} | {best1 / best['wall']:.2f}x | {check} |")  # fmt: skip
    table = "\n".join(rows)
    print(table, flush=True)
    return f"{night}:\n\n{table}"


if __name__ == "__main__":
    main()
