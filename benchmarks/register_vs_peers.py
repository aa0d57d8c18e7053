"""Registration: ccdcal against astroalign used directly (and Siril where installed), on
the same simulated frames in one run, with the simulator's truth; and the memory of a
reduction that aligns 200 frames of 1024x1024 under a memory limit.

1. Star detection: sep (ccdcal's choice) against photutils' DAOStarFinder: time per
   frame and centroid error against the true star positions.
2. Finding the transform: ccdcal (``find_stars`` + ``match``) against
   ``astroalign.find_transform`` on the images: time per frame and error of the transform
   at the frame's centre and corners against the truth.
3. Aligning a frame (transform and resampling): ccdcal (Lanczos-3 with variance and mask)
   against ``astroalign.register`` (scikit-image's warp of the data alone).
4. ``siril-cli`` registering the same frames, where it is installed.
5. Peak memory (maximum RSS) of ``ccdcal reduce`` on a night whose 200 lights of 1024x1024
   move, under ``--memory-limit``, in a fresh process.

Prints the tables and writes them to ``benchmarks/results/register_vs_peers.md``.

Usage::

    python benchmarks/register_vs_peers.py [--frames 8] [--size 1024] [--memory-frames 200]
        [--memory-limit 1GB]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import describe  # benchmarks/machine.py

RESULTS = Path(__file__).resolve().parent / "results" / "register_vs_peers.md"
MOTION = {"dither": 8.0, "drift": 0.5, "rotate": 0.5, "fwhm_range": (2.5, 4.0)}


def _affine(row) -> np.ndarray:
    return np.array([[row["a11"], row["a12"], row["tx"]], [row["a21"], row["a22"], row["ty"]],
                     [0.0, 0.0, 1.0]])  # fmt: skip


def _truth(night) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Scene-to-frame matrices, and the stars (x, y in the scene)."""
    from astropy.table import Table

    table = Table.read(night.truth["pointing"], format="ascii.ecsv")
    stars = night.scene.stars
    return [_affine(r) for r in table], np.asarray(stars["x"]), np.asarray(stars["y"])


def _error(matrix: np.ndarray, truth: np.ndarray, shape: tuple[int, int]) -> float:
    ny, nx = shape
    pts = np.array([[(nx - 1) / 2, (ny - 1) / 2], [0, 0], [nx - 1, 0], [0, ny - 1],
                    [nx - 1, ny - 1]], float)  # fmt: skip
    a = pts @ matrix[:2, :2].T + matrix[:2, 2]
    b = pts @ truth[:2, :2].T + truth[:2, 2]
    return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=1))))


def _best(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def detection(frames, matrices, sx, sy) -> list[str]:
    import warnings

    from photutils.background import Background2D
    from photutils.detection import DAOStarFinder
    from scipy.spatial import cKDTree

    from ccdcal.registration import find_stars

    rows = []
    for name, run in (
        ("sep (ccdcal.registration.find_stars)", lambda f: find_stars(f)[0].xy()),
        ("photutils DAOStarFinder", None),
    ):
        times, errors, counts = [], [], []
        for frame, a in zip(frames, matrices, strict=True):
            truth = (a[:2] @ np.vstack([sx, sy, np.ones(len(sx))])).T
            if run is None:

                def dao(f=frame):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        bkg = Background2D(f.data, 64)
                        found = DAOStarFinder(fwhm=3.0, threshold=5 * bkg.background_rms_median)(
                            f.data - bkg.background
                        )
                        return np.column_stack([found["xcentroid"], found["ycentroid"]])

                t, xy = _best(dao)
            else:
                t, xy = _best(lambda f=frame, fn=run: fn(f))
            d, _ = cKDTree(truth).query(xy)
            good = d < 1.0
            times.append(t)
            errors.append(float(np.sqrt(np.median(d[good] ** 2))))
            counts.append(int(good.sum()))
        rows.append(f"| {name} | {1000 * np.median(times):.0f} | {np.median(errors):.4f} | "
                    f"{np.median(counts):.0f} |")  # fmt: skip
    return ["| detector | ms per frame | centroid error, px (median) | stars found |",
            "| --- | --- | --- | --- |", *rows]  # fmt: skip


def transforms(frames, matrices) -> list[str]:
    import astroalign

    from ccdcal.registration import find_stars, match

    ref = len(frames) // 2
    shape = frames[0].shape
    ref_stars = find_stars(frames[ref])[0]
    rows = []
    t_ours, e_ours, t_aa, e_aa, t_reg_ours, t_reg_aa = [], [], [], [], [], []
    for i, (frame, a) in enumerate(zip(frames, matrices, strict=True)):
        if i == ref:
            continue
        truth = matrices[ref] @ np.linalg.inv(a)

        def ours(f=frame):
            return match(find_stars(f)[0], ref_stars).transform

        t, transform = _best(ours)
        t_ours.append(t)
        e_ours.append(_error(transform.matrix, truth, shape))
        src = np.nan_to_num(frame.data).astype(np.float64)
        dst = np.nan_to_num(frames[ref].data).astype(np.float64)
        t, (found, _) = _best(lambda s=src, d=dst: astroalign.find_transform(s, d))
        t_aa.append(t)
        e_aa.append(_error(np.asarray(found.params), truth, shape))

        from ccdcal.registration import resample

        t, _ = _best(lambda f=frame: resample(f, ours(f), shape), repeat=2)
        t_reg_ours.append(t)
        t, _ = _best(lambda s=src, d=dst: astroalign.register(s, d), repeat=2)
        t_reg_aa.append(t)
    rows.append(f"| ccdcal (sep stars, astroalign asterisms, refined on all stars) | "
                f"{1000 * np.median(t_ours):.0f} | {np.median(e_ours):.4f} | "
                f"{np.max(e_ours):.4f} | {1000 * np.median(t_reg_ours):.0f} |")  # fmt: skip
    rows.append(f"| astroalign.find_transform / astroalign.register | "
                f"{1000 * np.median(t_aa):.0f} | {np.median(e_aa):.4f} | {np.max(e_aa):.4f} | "
                f"{1000 * np.median(t_reg_aa):.0f} |")  # fmt: skip
    return ["| registration | transform, ms per frame | error at centre and corners, px "
            "(median) | (worst) | aligned frame (transform + resampling), ms |",
            "| --- | --- | --- | --- | --- |", *rows]  # fmt: skip


def siril(folder: Path, frames) -> list[str]:
    exe = shutil.which("siril-cli")
    if exe is None:
        return ["`siril-cli` is not installed here: no Siril row."]
    work = folder / "siril"
    work.mkdir()
    for i, frame in enumerate(frames):
        frame.write(work / f"light_{i + 1:05d}.fits")
    script = work / "register.ssf"
    script.write_text("requires 1.0.0\nconvert light -out=.\nregister light\nclose\n")
    t0 = time.perf_counter()
    done = subprocess.run([exe, "-d", str(work), "-s", str(script)], capture_output=True,
                          text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return [f"`siril-cli` failed: {done.stderr.strip()[-200:]}"]
    return [
        f"`siril-cli` convert + register of {len(frames)} frames: {wall:.2f} s "
        f"({1000 * wall / len(frames):.0f} ms per frame, the start of Siril included)."
    ]


def memory(folder: Path, nframes: int, size: int, limit: str) -> list[str]:
    import ccdcal

    night = ccdcal.simulate.night(folder / "big", seed=2, shape=(size, size), nbias=5, ndark=3,
                                  nflat=5, nlight=nframes, nstars=150, **MOTION)  # fmt: skip
    cmd = [sys.executable, __file__, "--reduce-only", str(night.raw_dir), str(folder / "big-out"),
           limit]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    from ccdcal.stacking.stream import parse_bytes

    raw_bytes = nframes * size * size * 10
    return [
        f"{nframes} lights of {size}x{size} that move (dither, drift, rotation, changing "
        f"seeing), {raw_bytes / 2**30:.1f} GiB of calibrated frames to align and stack: "
        f"`ccdcal reduce --memory-limit {limit}` ran in {stats['wall']:.0f} s with a peak "
        f"RSS of {stats['rss'] / 2**30:.2f} GiB (Python, numba and astropy alone: "
        f"{stats['base'] / 2**30:.2f} GiB; limit {parse_bytes(limit) / 2**30:.2f} GiB); "
        f"{stats['used']} of {nframes} lights stacked."
    ]


def reduce_only(raw: str, out: str, limit: str) -> None:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from ccdcal.pipeline import reduce

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t0 = time.perf_counter()
    result = reduce(raw, out, report=False, progress=False, memory_limit=limit)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    from ccdcal.frame import Frame

    used = int(Frame.read(next(iter(result.stacks.values()))).header["NCOMBINE"])
    print(json.dumps({"wall": wall, "rss": rss, "base": base, "used": used}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--memory-frames", type=int, default=200)
    parser.add_argument("--memory-limit", default="1GB")
    parser.add_argument("--reduce-only", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reduce_only:
        reduce_only(*args.reduce_only)
        return

    import ccdcal

    machine = describe()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        night = ccdcal.simulate.night(folder / "night", seed=1, shape=(args.size, args.size),
                                      nbias=5, ndark=3, nflat=5, nlight=args.frames, nstars=150,
                                      **MOTION)  # fmt: skip
        result = ccdcal.reduce(night.raw_dir, folder / "out", report=False, progress=False)
        from ccdcal.frame import Frame

        frames = [Frame.read(p) for p in result.calibrated]
        matrices, sx, sy = _truth(night)
        # compile and load the kernels before anything is timed
        from ccdcal.registration import find_stars, resample

        find_stars(frames[0])
        resample(frames[0], ccdcal.registration.Transform.identity(), frames[0].shape)
        sections = [
            f"{args.frames} calibrated frames of {args.size}x{args.size} with 150 stars, "
            "dithered by 8 px, drifting 0.5 px a frame, rotating 0.5 degrees, seeing 2.5 to "
            "4 px; best of 3 runs per frame, median over the frames.",
            "\n".join(detection(frames, matrices, sx, sy)),
            "\n".join(transforms(frames, matrices)),
            "\n".join(siril(folder, frames)),
        ]
        print("\n\n".join(sections), flush=True)
        if args.memory_frames:
            sections.append("\n".join(memory(folder, args.memory_frames, args.size,
                                             args.memory_limit)))  # fmt: skip
            print(sections[-1])
    when = dt.date.today().isoformat()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(f"Measured by `benchmarks/register_vs_peers.py` on {when}, {machine}.\n\n"
                       + "\n\n".join(sections) + "\n")  # fmt: skip
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
