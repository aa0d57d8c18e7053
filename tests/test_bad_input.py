"""Bad input, faults and crashes: refused with one line naming the file, or left out with a
notice, never used and never a traceback; raw files never changed; outputs complete or
absent. The corpus is built here, from a simulated night."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ccdcal
from ccdcal.calibration import calibrate
from ccdcal.cli import main
from ccdcal.collection import read_info
from ccdcal.errors import CcdcalError, CcdcalTypeError
from ccdcal.frame import Frame
from ccdcal.pipeline import reduce
from ccdcal.pipeline.outfolder import LOCK

CCDCAL = str(Path(sys.executable).parent / "ccdcal")


def _night(folder: Path, **params) -> Path:
    defaults = dict(shape=(64, 64), nbias=4, ndark=3, nflat=4, nlight=6, nstars=8, seed=4)
    return ccdcal.simulate.night(folder, **{**defaults, **params}).raw_dir


def _set(path: Path, **cards) -> None:
    with fits.open(path, mode="update") as hdul:
        for key, value in cards.items():
            hdul[0].header[key] = value


def _replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data and len(old) == len(new)
    path.write_bytes(data.replace(old, new, 1))


def _digests(folder: Path) -> dict[str, str | None]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
        for p in sorted(folder.iterdir())
    }


def _verified(out: Path) -> int:
    """Every FITS output opens with its checksums right (a checksum warning fails)."""
    count = 0
    for path in sorted(out.rglob("*.fits")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with fits.open(path, checksum=True) as hdul:
                for hdu in hdul:
                    _ = hdu.data
        count += 1
    return count


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([CCDCAL, *args], capture_output=True, text=True, timeout=300, **kwargs)


# ---------------------------------------------------------------------------- the corpus
CORPUS = {
    # file name: (what is wrong, the words of the line or notice that says so)
    "l_exp_neg.fits": ("EXPTIME -60", "without a usable exposure time"),
    "l_exp_nan.fits": ("EXPTIME 'nan'", "without a usable exposure time"),
    "l_exp_inf.fits": ("EXPTIME 'inf'", "without a usable exposure time"),
    "l_exp_zero.fits": ("EXPTIME 0", "lights of 0 s hold no light"),
    "l_gain_neg.fits": ("GAIN -1.5", "without a gain, among lights with one"),
    "l_gain_zero.fits": ("GAIN 0", "without a gain, among lights with one"),
    "l_bzero_abc.fits": ("BZERO 'abc'", "l_bzero_abc.fits:"),
    "l_bitpix.fits": ("BITPIX -16", "BITPIX = -16 is not a FITS pixel type"),
    "l_badcard.fits": ("an unparsable card", "header card 'EXPTIME' cannot be parsed"),
    "l_nonprint.fits": ("non-printable bytes", "header card 'OBJECT'"),
    "l_trunc.fits": ("truncated", "truncated FITS file"),
    "l_empty.fits": ("empty", "empty file"),
    "l_text.fits": ("not FITS", "not a FITS file"),
    "l_broken_link.fits": ("a broken link", "broken symbolic link"),
    "l_loop1.fits": ("a looping link", "symbolic link loop"),
    "d_zero.fits": ("a dark of 0 s", "darks of 0 s"),
    "d_short.fits": ("a dark of 0.001 s", "scaled ×5000, beyond ×100"),
}


def _corpus(raw: Path) -> None:
    src = sorted(raw.glob("light_*"))[0]
    dark = sorted(raw.glob("dark_*"))[0]

    def copy(name: str, source: Path = src) -> Path:
        shutil.copy(source, raw / name)
        return raw / name

    _set(copy("l_exp_neg.fits"), EXPTIME=-60.0)
    _set(copy("l_exp_nan.fits"), EXPTIME="nan")
    _set(copy("l_exp_inf.fits"), EXPTIME="inf")
    _set(copy("l_exp_zero.fits"), EXPTIME=0.0)
    _set(copy("l_gain_neg.fits"), GAIN=-1.5)
    _set(copy("l_gain_zero.fits"), GAIN=0.0)
    _replace_bytes(copy("l_bzero_abc.fits"), b"BZERO   =                32768",
                   b"BZERO   = 'abc'               ")  # fmt: skip
    _replace_bytes(copy("l_bitpix.fits"), b"BITPIX  =                   16",
                   b"BITPIX  =                  -16")  # fmt: skip
    data = copy("l_badcard.fits").read_bytes()
    i = data.index(b"EXPTIME =")
    (raw / "l_badcard.fits").write_bytes(data[:i] + b"EXPTIME = 6O.0 junk 'x" + data[i + 22 :])
    data = copy("l_nonprint.fits").read_bytes()
    i = data.index(b"OBJECT  = '") + 11
    (raw / "l_nonprint.fits").write_bytes(data[:i] + b"\x01\x02\x7f" + data[i + 3 :])
    copy("l_naïve.fits")  # a name a FITS header cannot hold: escaped, used
    (raw / "l_trunc.fits").write_bytes(src.read_bytes()[:5000])
    (raw / "l_empty.fits").write_bytes(b"")
    (raw / "l_text.fits").write_text("not a FITS file\n")
    os.symlink(raw / "nowhere.fits", raw / "l_broken_link.fits")
    os.symlink("l_loop2.fits", raw / "l_loop1.fits")
    os.symlink("l_loop1.fits", raw / "l_loop2.fits")
    _set(copy("l_nobzero.fits"), BZERO=0)  # the whole frame 32,768 ADU low
    with fits.open(copy("l_zeros.fits"), mode="update") as hdul:
        hdul[0].data[:] = 0
    fits.PrimaryHDU(np.full((64, 64), np.nan, np.float32),
                    header=fits.getheader(src)).writeto(raw / "l_nan.fits")  # fmt: skip
    _set(copy("d_zero.fits", dark), EXPTIME=0.0)
    _set(copy("d_short.fits", dark), EXPTIME=0.001)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    raw = _night(base / "night")
    _corpus(raw)
    return raw


def test_every_bad_input_gets_one_line_and_nothing_wrong_is_stacked(corpus, tmp_path):
    before = _digests(corpus)
    info = _run("info", "--why", str(corpus))
    assert info.returncode == 0 and "Traceback" not in info.stderr + info.stdout
    for name in ("l_bitpix.fits", "l_badcard.fits", "l_broken_link.fits", "l_loop1.fits"):
        assert any(line.startswith(name) and "unreadable" in line
                   for line in info.stdout.splitlines()), name  # fmt: skip

    # without alignment, so that the screening of the stack, not a failed match, is tested
    config = tmp_path / "night.toml"
    config.write_text('[register]\nmethod = "none"\n')
    out = tmp_path / "out"
    run = _run("reduce", str(corpus), str(out), "--no-report", "--config", str(config))
    text = run.stderr
    assert run.returncode == 1, text  # unreadable files: reported, exit status 1
    assert "Traceback" not in text
    for name, (what, words) in CORPUS.items():
        assert any(words in line for line in text.splitlines()), (name, what, words)
    errors = [line for line in text.splitlines() if line.startswith("ccdcal: error:")]
    assert all(str(corpus) in line for line in errors)  # each names its file and folder
    # the frames a wrong number would come from are left out of the stack, named
    for name in ("l_nobzero.fits", "l_zeros.fits"):
        assert any(name in line and "left out" in line for line in text.splitlines()), name
    assert before == _digests(corpus)  # raw files byte-identical
    assert _verified(out) > 10
    stack = Frame.read(out / "stacks" / "SIMFIELD_V.fits")
    assert abs(float(np.nanmedian(stack.data)) - 100.0) < 5.0  # the sky, as simulated
    assert "l_na\\xefve.fits" in str(stack.header["HISTORY"])


def test_bad_files_in_a_combine_are_one_line(corpus, tmp_path):
    good = sorted(corpus.glob("bias_*"))[:2]
    for bad in ("l_bitpix.fits", "l_trunc.fits", "l_text.fits", "l_broken_link.fits"):
        run = _run("combine", *map(str, good), str(corpus / bad), "-o", str(tmp_path / "m.fits"))
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.startswith("ccdcal: error:") and bad in run.stderr
        assert run.stderr.count("\n") == 1
    assert not (tmp_path / "m.fits").exists()


# ---------------------------------------------------------------------------- products
def test_earlier_outputs_inside_the_raw_folder_are_left_out(tmp_path):
    raw = _night(tmp_path / "night")
    first = reduce(raw, tmp_path / "first", report=False)
    shutil.copytree(tmp_path / "first" / "masters", raw / "masters")
    shutil.copytree(tmp_path / "first" / "calibrated", raw / "calibrated")
    again = reduce(raw, tmp_path / "again", report=False)
    notice = next(n for n in again.notices if "ccdcal products" in n)
    assert f"{len(first.masters) + len(first.calibrated)} files left out" in notice
    assert len(again.calibrated) == len(first.calibrated)
    a, b = (Frame.read(r.stacks[("SIMFIELD", "V")]) for r in (first, again))
    np.testing.assert_array_equal(a.data, b.data)


# ---------------------------------------------------------------------------- the API
def test_calibrate_validates_its_arguments(tmp_path):
    raw = Frame(np.full((4, 4), 600.0), header={"EXPTIME": 1.0})
    flat = Frame(np.ones((4, 4)))
    for kwargs, words in (
        ({"gain": -1.5}, "gain must be a finite number > 0"),
        ({"gain": 0.0}, "gain must be a finite number > 0"),
        ({"read_noise": float("nan")}, "read_noise must be a finite number >= 0"),
        ({"flat": flat, "flat_min": -0.1}, "flat_min must be > 0"),
        ({"exptime": float("inf")}, "exptime must be a finite number"),
    ):
        with pytest.raises(CcdcalError, match=words):
            calibrate(raw, **kwargs)
    with pytest.raises(CcdcalTypeError, match="expected a Frame, a 2-d array or a FITS path"):
        calibrate([[1, 2], [3, 4]])
    with pytest.raises(CcdcalError, match=r"GAIN = -1\.5 is not a valid gain"):
        calibrate(Frame(np.ones((2, 2)), header={"GAIN": -1.5}))
    # arrays and paths are taken where a user would pass them
    assert calibrate(np.full((4, 4), 5.0), bias=np.ones((4, 4)), gain=1.0).data[0, 0] == 4.0
    path = tmp_path / "raw.fits"
    raw.write(path)
    assert calibrate(path, gain=2.0, bias_level=500.0).header["BUNIT"] == "electron"


def test_library_errors_are_ccdcal_errors():
    with pytest.raises(CcdcalError):
        ccdcal.combine([Frame(np.ones((2, 2))), Frame(np.ones((3, 3)))])
    with pytest.raises(CcdcalError):
        ccdcal.SigmaClip(low=-1)


# ---------------------------------------------------------------------------- faults
def test_a_full_disk_is_one_line_and_a_rerun_finishes(tmp_path, monkeypatch, capsys):
    raw = _night(tmp_path / "night", nlight=3)
    out = tmp_path / "out"
    from ccdcal import fitsio

    real = fitsio.write_hdul
    calls = {"n": 0}

    def full(hdul, path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # the disk fills during the fifth output
            raise OSError(errno.ENOSPC, "No space left on device", str(Path(path).parent))
        return real(hdul, path, **kwargs)

    monkeypatch.setattr(fitsio, "write_hdul", full)
    monkeypatch.setattr(ccdcal.frame, "write_hdul", full)
    assert main(["reduce", str(raw), str(out), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "Traceback" not in err
    assert not list(out.rglob(".*.part"))
    monkeypatch.setattr(fitsio, "write_hdul", real)
    monkeypatch.setattr(ccdcal.frame, "write_hdul", real)
    assert main(["reduce", str(raw), str(out), "--no-report"]) == 0
    assert _verified(out) >= 6


@pytest.mark.skipif(shutil.which("setpriv") is None or os.geteuid() != 0,
                    reason="needs setpriv and root to run as an unprivileged user")  # fmt: skip
def test_an_output_folder_that_cannot_be_written():
    """Run as an unprivileged user (root writes anywhere): one line naming the folder."""
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="ccdcal-unprivileged-"))  # pytest's tmp is root's
    try:
        _unwritable(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _unwritable(base: Path) -> None:
    base.chmod(0o755)
    raw = _night(base / "night", nlight=2)
    out = base / "locked"
    out.mkdir()
    out.chmod(0o555)
    for folder in (raw.parent, raw):
        folder.chmod(0o755)
    for path in raw.iterdir():
        path.chmod(0o644)
    home = base / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home),
           "XDG_CACHE_HOME": str(home), "NUMBA_CACHE_DIR": str(home / "numba"),
           "MPLCONFIGDIR": str(home / "mpl")}  # fmt: skip
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*nobody, CCDCAL, "--version"], capture_output=True, text=True, env=env)
    if probe.returncode != 0:
        pytest.skip(f"the unprivileged user cannot run ccdcal here: {probe.stderr[-200:]}")
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CCDCAL, "reduce",
         str(raw), str(out / "o"), "--no-report"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert f"{out / 'o'}: the output folder cannot be written (permission denied)" in run.stderr


def test_a_second_run_into_the_same_folder_stops_at_once(tmp_path):
    from ccdcal.pipeline.outfolder import claim

    raw = _night(tmp_path / "night", nlight=2)
    out = tmp_path / "out"
    with claim(out):
        start = time.monotonic()
        run = _run("reduce", str(raw), str(out), "--no-report")
        assert time.monotonic() - start < 60
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "another ccdcal run is writing into this folder" in run.stderr
    assert f"process {os.getpid()}" in run.stderr
    assert not (out / "masters").exists()  # it touched nothing
    # the lock is gone with its holder: a run now goes through
    assert _run("reduce", str(raw), str(out), "--no-report").returncode == 0


def _wait_for(lock: Path, proc: subprocess.Popen) -> None:
    """Until ``proc`` holds the lock (its process number in the lock file)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if lock.exists() and f"process {proc.pid} " in lock.read_text():
            return
        time.sleep(0.02)


def _frames(out: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(out)): Frame.read(p).data for p in sorted(out.rglob("*.fits"))
            if "report" not in p.parts}  # fmt: skip


def test_killed_runs_rerun_to_the_same_outputs_and_leave_nothing(tmp_path):
    """SIGKILL at several moments, then a rerun: the outputs equal an uninterrupted run's,
    and no temporary file or scratch folder is left; SIGTERM stops with status 143."""
    raw = _night(tmp_path / "night", nlight=8, shape=(128, 128))
    clean = tmp_path / "clean"
    assert _run("reduce", str(raw), str(clean), "--no-report").returncode == 0
    expected = _frames(clean)
    out = tmp_path / "killed"
    total = len(expected)
    for share in (0.0, 0.25, 0.5, 0.8):  # killed at work, after that share of the outputs
        proc = subprocess.Popen([CCDCAL, "reduce", str(raw), str(out), "--no-report"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        _wait_for(out / LOCK, proc)
        deadline = time.monotonic() + 120
        while (len(list(out.rglob("*.fits"))) < share * total and proc.poll() is None
               and time.monotonic() < deadline):  # fmt: skip
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert len(list(out.rglob("*.fits"))) < total  # the last kill fell before the end
    proc = subprocess.Popen([CCDCAL, "reduce", str(raw), str(out), "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(out / LOCK, proc)  # the killed runs' lock file is there: taken over
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 143), err  # 0: it had finished
    if proc.returncode == 143:
        assert "terminated; rerun the same command" in err and "Traceback" not in err
    assert _run("reduce", str(raw), str(out), "--no-report").returncode == 0
    got = _frames(out)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    leftovers = [p for p in out.rglob("*") if p.name.endswith((".part", ".tmp"))
                 or p.name.startswith(".ccdcal-prepared-")]  # fmt: skip
    assert not leftovers


# ---------------------------------------------------------------------------- mutations
@pytest.fixture(scope="module")
def one_light(tmp_path_factory):
    raw = _night(tmp_path_factory.mktemp("mutate") / "night", nbias=1, ndark=0, nflat=1, nlight=1)
    return sorted(raw.glob("light_*"))[0]


_KEYS = ("EXPTIME", "GAIN", "RDNOISE", "BZERO", "BSCALE", "BITPIX", "NAXIS1", "SATURATE",
         "IMAGETYP", "FILTER", "OBJECT", "BIASSEC", "DATE-OBS")  # fmt: skip
_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**40), 2**40),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
    st.booleans(),
)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(_KEYS), value=_VALUES, cut=st.integers(0, 12_000),
       cut_it=st.booleans())  # fmt: skip
def test_mutated_headers_and_bytes_are_refused_or_used_never_a_traceback(
    one_light, tmp_path_factory, key, value, cut, cut_it
):
    """A header card set to anything, or the file cut anywhere: reading, classifying and
    calibrating it either works or raises one CcdcalError naming the file."""
    folder = tmp_path_factory.mktemp("m")
    path = folder / one_light.name
    data = one_light.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's own notes on odd values
        path.write_bytes(data)
        try:
            with fits.open(path, mode="update") as hdul:
                hdul[0].header[key] = value
        except Exception:  # astropy refused to write such a card: cut the file instead
            cut_it = True
        if cut_it:
            path.write_bytes(path.read_bytes()[: cut or 1])
        before = path.read_bytes()
        info = read_info(path)
        assert info.error is None or info.kind == "unreadable"
        try:
            frame = Frame.read(path)
            calibrate(frame, gain=1.0, bias_level=0.0)
        except CcdcalError as err:
            assert str(err).count("\n") == 0
            assert path.name in str(err) or "<memory>" in str(err) or key in str(err)
        assert path.read_bytes() == before


# ---------------------------------------------------------------------------- reruns
def test_a_swapped_raw_file_is_redone_and_a_removed_one_is_reported(tmp_path):
    raw = _night(tmp_path / "night", nlight=3)
    out = tmp_path / "out"
    reduce(raw, out, report=False)
    lights = sorted(raw.glob("light_*"))
    # another light of the same size, with the first one's modification time
    st = lights[0].stat()
    shutil.copy(lights[1], lights[0])
    os.utime(lights[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    lights[2].unlink()
    again = reduce(raw, out, report=False)
    kept = set(again.reused)
    redone = {name for name, p in again.plan.products.items() if p.path not in kept}
    assert "calibrated/light_V_001.fits" in redone and "calibrated/light_V_002.fits" not in redone
    (notice,) = [n for n in again.notices if "no longer in" in n]
    assert "calibrated/light_V_003.fits" in notice and "in no stack of this run" in notice


def test_checks_that_can_fail_fast_do_before_any_work(tmp_path, capsys):
    raw = _night(tmp_path / "night", nlight=2, shape=(256, 256))
    out = tmp_path / "out"
    assert main(["reduce", str(raw), str(out), "--memory-limit", "1MB"]) == 1
    err = capsys.readouterr().err
    assert "masters/bias.fits: memory_limit=1048576 bytes is too small" in err
    assert not out.exists()  # refused before a single product


def _peak_rss(args: list[str]) -> int:
    """Peak resident memory (bytes) of ``ccdcal ARGS`` run alone in a fresh process."""
    code = (
        "import resource, subprocess, sys\n"
        f"r = subprocess.run({[CCDCAL, *args]!r}, capture_output=True)\n"
        "assert r.returncode == 0, r.stderr\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) * 1024  # kilobytes on Linux


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kilobytes: Linux")
def test_a_combine_stays_within_its_memory_limit(tmp_path):
    """120 frames of 512² (120 MB as float32) under --memory-limit 30MB: the peak resident
    memory stays within the limit above the same command's on three tiny frames."""
    rng = np.random.default_rng(0)
    base = rng.normal(1000, 10, (512, 512)).astype(np.float32)
    for i in range(120):
        Frame(base + rng.normal(0, 5, base.shape).astype(np.float32)).write(
            tmp_path / f"f{i:03d}.fits", dtype="uint16")  # fmt: skip
    for i in range(3):
        Frame(np.full((8, 8), float(i), np.float32)).write(tmp_path / f"tiny{i}.fits")
    common = ["--method", "mean", "--reject", "sigclip"]
    tiny = sorted(map(str, tmp_path.glob("tiny*.fits")))
    frames = sorted(map(str, tmp_path.glob("f*.fits")))
    limit = 30 * 2**20
    big = ["combine", *frames, "-o", str(tmp_path / "m.fits"), *common, "--memory-limit", "30MB"]
    _peak_rss(big)  # a first run compiles what the kernels need for these frames, and caches it
    # the least of two runs each: another test's process compiling into the same cache at
    # the same moment makes one run recompile, and that is no part of the combine's memory
    baseline = min(_peak_rss(["combine", *tiny, "-o", str(tmp_path / "t.fits"), *common])
                   for _ in range(2))  # fmt: skip
    peak = min(_peak_rss(big) for _ in range(2))
    assert peak - baseline <= limit, (peak, baseline)


MASTER = """
import glob, resource, sys, tempfile
def spill(*args, **kwargs):
    raise AssertionError("prepared frames written to a scratch folder")
tempfile.mkdtemp = spill  # streamed: no frame is prepared whole, none spilled
from ccdcal.masters import CombineSpec, master_bias
spec = CombineSpec.default("bias")
spec = CombineSpec(spec.method, spec.reject, {"memory_limit": "30MB"})
master = master_bias(sorted(glob.glob(sys.argv[1] + "/bias_*.fits")), combine=spec)
assert master.header["NCOMBINE"] == int(sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in kilobytes: Linux")
def test_a_master_of_100_frames_stays_within_its_memory_limit(tmp_path):
    """A master bias of 100 raw frames of 512² (100 MB as float32), each read prepared band
    by band, under a memory limit of 30 MB: its process's peak resident memory stays within
    the limit above that of the same master of three tiny frames."""
    for name, shape, nbias in (("big", (512, 512), 100), ("tiny", (32, 32), 3)):
        ccdcal.simulate.night(tmp_path / name, seed=1, shape=shape, nbias=nbias, ndark=1,
                              nflat=1, nlight=1)  # fmt: skip

    def peak(name: str, n: int) -> int:
        done = subprocess.run([sys.executable, "-c", MASTER, str(tmp_path / name / "raw"),
                               str(n)], capture_output=True, text=True, check=True)  # fmt: skip
        return int(done.stdout.strip().splitlines()[-1]) * 1024  # kilobytes on Linux

    peak("tiny", 3)  # compiles what the kernels need, once
    baseline = min(peak("tiny", 3) for _ in range(2))
    big = min(peak("big", 100) for _ in range(2))
    assert big - baseline <= 30 * 2**20, (big, baseline)


def test_flats_that_are_not_normalized_or_empty_are_refused():
    from ccdcal.calibration import flat_correct

    frame = Frame(np.full((8, 8), 100.0))
    with pytest.raises(CcdcalError, match=r"median is 1e\+04, not about 1"):
        flat_correct(frame, Frame(np.full((8, 8), 10_000.0)))
    with pytest.raises(CcdcalError, match=r"no pixel of the flat is at or above 0\.1"):
        flat_correct(frame, Frame(np.zeros((8, 8))))
    assert flat_correct(frame, Frame(np.full((8, 8), 0.9))).data[0, 0] == pytest.approx(
        111.11, 0.01
    )


def test_screening_keeps_good_lights_of_changing_sky_and_crowded_fields(tmp_path):
    """Moonrise (sky ×1 to ×15), a gradient and 400 stars: no light is odd."""
    raw = _night(tmp_path / "night", nlight=6, shape=(128, 128), nstars=400,
                 sky_range=(1.0, 15.0), sky_gradient=0.3)  # fmt: skip
    result = reduce(raw, tmp_path / "out", report=False,
                    config=ccdcal.config.loads_config('[register]\nmethod = "none"\n'))  # fmt: skip
    assert not any("left out" in n for n in result.notices), result.notices
    assert not any(
        k.startswith("LEFTOUT") for k in fits.getheader(result.stacks[("SIMFIELD", "V")])
    )


def test_a_left_out_light_in_a_stack_made_in_bands(tmp_path):
    """The same screening, and the same stack, when the stack is made in row bands."""
    raw = _night(tmp_path / "night", nlight=6)
    with fits.open(sorted(raw.glob("light_*"))[2], mode="update") as hdul:
        hdul[0].data[:] = 0
    config = ccdcal.config.loads_config('[register]\nmethod = "none"\n')
    one = reduce(raw, tmp_path / "one", report=False, config=config)
    bands = reduce(raw, tmp_path / "bands", report=False, config=config, band_rows=16)
    a, b = (Frame.read(r.stacks[("SIMFIELD", "V")]) for r in (one, bands))
    np.testing.assert_array_equal(a.data, b.data)
    assert a.header["LEFTOUT1"] == b.header["LEFTOUT1"]
    assert a.header["LEFTOUT1"].startswith("light_V_003.fits")


def test_odd_files_in_the_raw_folder(tmp_path, capsys):
    raw = _night(tmp_path / "night", nlight=2)
    os.mkfifo(tmp_path / "pipe")
    os.symlink(tmp_path / "pipe", raw / "pipe.fits")  # would block a reader
    (raw / "folder.fits").mkdir()
    src = sorted(raw.glob("light_*"))[0]
    shutil.copy(src, raw / "l_vendor.fits")
    data = (raw / "l_vendor.fits").read_bytes()
    i = data.index(b"DATE-OBS=")
    card = b"SWCREATE= MaxIm DL Version 6.2".ljust(80)  # unquoted: not FITS, but common
    (raw / "l_vendor.fits").write_bytes(data[:i] + card + data[i + 80 :])
    shutil.copy(src, raw / "l_blank.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy says it is not FITS: that is the point
        _set(raw / "l_blank.fits", BLANK="x")
    run = _run("info", "--why", str(raw))
    assert run.returncode == 0 and "Traceback" not in run.stderr
    assert "l_vendor.fits" in run.stdout and "pipe.fits" not in run.stdout
    line = next(x for x in run.stdout.splitlines() if x.startswith("l_vendor.fits"))
    assert " light " in line  # a card ccdcal does not read does not make a file unreadable
    assert "BLANK = 'x' is not an integer" in run.stdout
    result = reduce(raw, tmp_path / "out", report=False)
    assert not any("no longer in" in n for n in result.notices)


def test_a_folder_that_cannot_be_locked_is_used_with_a_notice(tmp_path, monkeypatch, caplog):
    import fcntl
    import logging

    from ccdcal.pipeline.outfolder import claim

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="ccdcal"), claim(tmp_path / "out"):
        pass
    assert "cannot be locked (no locks available)" in caplog.text


def test_outputs_are_flushed_only_when_asked_and_a_torn_one_is_made_again(tmp_path, monkeypatch):
    """reduce writes its outputs without a flush each (a rerun verifies every checksum),
    flushes them once at its end only with durable=True; a file torn as a power cut would
    tear it is made again."""
    raw = _night(tmp_path / "night", nlight=2)
    calls = {"fsync": 0, "sync": 0}
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.__setitem__("fsync", calls["fsync"] + 1)
                        or real_fsync(fd))  # fmt: skip
    monkeypatch.setattr(os, "sync", lambda: calls.__setitem__("sync", calls["sync"] + 1))
    out = tmp_path / "out"
    reduce(raw, tmp_path / "durable", report=False, durable=True)
    assert calls == {"fsync": 0, "sync": 1}
    first = reduce(raw, out, report=False)
    assert calls == {"fsync": 0, "sync": 1}
    Frame(np.ones((2, 2))).write(tmp_path / "api.fits")  # the API's writes stay durable
    assert calls["fsync"] == 1
    light = first.calibrated[0]
    light.write_bytes(light.read_bytes()[: 2880 * 3])  # torn: its name, not its bytes
    again = reduce(raw, out, report=False)
    assert light not in again.reused and _verified(out) > 5


FIRST_RUN = """
import logging, sys
import numpy as np
from ccdcal import compiled
from ccdcal.stacking import Combination, kernels
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
assert not compiled.cached("combine:0"), "a fresh cache holds nothing"
compiled.compile_ahead(["combine:0"])  # compiled in a background process
compiled.ready("combine:0")
assert compiled.cached("combine:0")
Combination(method="median")([np.ones((3, 4), np.float32)] * 3)  # loads it: nothing said
assert not compiled._said, "arrays in memory need no decoder: none to announce"
run = kernels.kernel(0)
assert sum(run.stats.cache_hits.values()) == 1 and not run.stats.cache_misses, run.stats
compiled.say_if_compiling(["combine:2"])  # another is not cached: said once
compiled.say_if_compiling(["combine:2"])
compiled.stop_ahead()
"""


def test_a_first_run_compiles_ahead_and_says_so_once(tmp_path):
    """A kernel compiled in the background process is loaded from numba's cache, not
    compiled again; one that is not cached is announced once."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", FIRST_RUN], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("compiling its kernels") == 1


TWO_AT_ONCE = """
from ccdcal import compiled
compiled.compile_ahead(["decode", "calibrate", "combine:0"])
ahead = compiled._ahead
assert len(ahead.processes) == 2, ahead.processes
pids = {p.pid for p in ahead.processes}
for name in ("combine:0", "decode", "calibrate"):  # waited for in any order
    compiled.ready(name)
    assert compiled.cached(name), name
compiled.stop_ahead()
print(len(pids))
"""


def test_two_processes_compile_ahead_each_taking_the_next_kernel(tmp_path):
    """Where two cores may be used, two processes compile the plan's kernels, each sent the
    next as it finishes one; every kernel ends in numba's cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", TWO_AT_ONCE], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


COMPILE_NOW = """
import sys
from ccdcal import compiled
from ccdcal.cli import main
from ccdcal.registration.resample import _resample
assert not compiled.cached("resample")
assert compiled.compile_now(["decode", "resample"], 2) == ["decode", "resample"]
assert compiled.cached("decode") and compiled.cached("resample")
assert compiled.compile_now(["resample", "decode"]) == []  # cached: nothing to do
assert main(["compile", "--processes", "0"]) == 1  # refused in one line
import numpy as np
from ccdcal.frame import Frame
from ccdcal.registration import Transform, resample
ones = np.ones((6, 6), np.float32)
frame = Frame(ones, variance=ones, mask=np.zeros((6, 6), np.uint16), extras={"VARCOMMON": ones})
frame.write(sys.argv[1], step="calibrate", inputs=[], params={})
light = Frame.read(sys.argv[1])  # a calibrated light, as a stack reads it
move = Transform(np.array([[1.0, 0.0, 0.3], [0.0, 1.0, -0.2], [0.0, 0.0, 1.0]]))
resample(light, move, (6, 6))  # loaded, not compiled again
assert not _resample.stats.cache_misses and sum(_resample.stats.cache_hits.values()) == 1
"""


def test_compile_now_fills_the_cache_that_a_run_then_loads(tmp_path):
    """``ccdcal compile`` (:func:`ccdcal.compiled.compile_now`) compiles the kernels that
    numba's cache lacks, on processes beside, and nothing when it holds them; a stack's
    resampling then loads its kernel, compiled for the very types a run gives it."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    light = str(tmp_path / "light.fits")
    done = subprocess.run([sys.executable, "-c", COMPILE_NOW, light], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--processes must be at least 1" in done.stderr


STALE = """
import sys
from ccdcal import compiled
from ccdcal.stacking import kernels

if sys.argv[1] == "changed":  # as after a change of a module the kernels call
    kernels.sources_digest = lambda: "0" * 64
print(compiled.cached("combine:0"))
if sys.argv[2] == "compile":
    compiled._compile("combine:0")
"""


def test_a_change_in_a_module_the_kernels_call_is_a_new_kernel_to_numbas_cache(tmp_path):
    """numba's cache keys a kernel by its own code and closure, and checks only its own
    file's time stamp: after a change of varclip.py (a ``git pull`` into ``make``'s editable
    install) the combine kernels would load old machine code. The digest of the modules
    they call is in their closure: a changed digest is a kernel not yet in the cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}

    def cached(digest: str, then: str = "-") -> str:
        done = subprocess.run([sys.executable, "-c", STALE, digest, then], env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert cached("same", "compile") == "False"  # an empty cache
    assert cached("same") == "True"
    assert cached("changed") == "False"


RACE_KERNELS = """
import numba
from ccdcal.compiled import guard_cache

guard_cache()


def make(c):
    def kernel(x):
        return x * 10.0 + c

    return numba.njit(cache=True)(kernel)
"""

RACE_CHILD = """
import os, sys, time
import numba.core.caching as caching
import racekernels

c, guarded = int(sys.argv[1]), sys.argv[2] == "1"
if not guarded:  # the control: numba's own save
    caching.IndexDataCacheFile.save = caching.IndexDataCacheFile.save.__wrapped__
# numba's save made slow, so that saves at once overlap every time, not one time in many
cache_file = caching.IndexDataCacheFile
slow_index, slow_data = cache_file._save_index, cache_file._save_data
def late_index(self, overloads):
    time.sleep(0.3)
    slow_index(self, overloads)
def late_data(self, name, data):
    time.sleep(0.3 if c % 2 else 0.6)  # each process's data written after the other's index
    slow_data(self, name, data)
cache_file._save_index = late_index
cache_file._save_data = late_data
kernel = racekernels.make(c)
open(f"ready{c}", "w").close()  # all four start compiling together, however slow to import
while not all(os.path.exists(f"ready{i}") for i in range(4)):
    time.sleep(0.01)
assert kernel(1.0) == 10.0 + c
"""

RACE_CHECK = """
import racekernels
for c in range(4):
    kernel = racekernels.make(c)
    value = kernel(1.0)
    print(c, value, sum(kernel.stats.cache_hits.values()))
"""


@pytest.mark.parametrize("guarded", [True, False])
def test_processes_compiling_at_once_leave_each_kernel_in_the_cache_as_itself(tmp_path, guarded):
    """Four processes save four variants of one kernel (one numba index, as the combine
    kernels of four rejections) at the same moment: with :func:`ccdcal.compiled.guard_cache`
    each is then loaded from the cache as itself. Without it (numba's own save, the
    control) entries are lost or point at another variant's machine code."""
    (tmp_path / "racekernels.py").write_text(RACE_KERNELS)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": path}
    args = [str(int(guarded))]
    command = [sys.executable, "-c", RACE_CHILD]
    options = {"env": env, "cwd": tmp_path, "stderr": subprocess.PIPE, "text": True}
    children = [subprocess.Popen([*command, str(c), *args], **options) for c in range(4)]
    for proc in children:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    done = subprocess.run([sys.executable, "-c", RACE_CHECK], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()]
    right = all(float(value) == 10.0 + int(c) and hits == "1" for c, value, hits in rows)
    assert right == guarded, rows


NO_LOCKS = """
import errno, fcntl, sys
def refused(*args):
    raise OSError(errno.ENOLCK, "No locks available")  # NFS without lockd
fcntl.flock = refused
import racekernels
kernel = racekernels.make(5)
assert kernel(1.0) == 15.0
"""


def test_a_cache_on_a_file_system_without_locks_is_written_as_numba_writes_it(tmp_path):
    """Where ``flock`` is refused (NFS without a lock daemon, Lustre without flock), the
    kernel compiles and is saved by numba's own save: a second process loads it."""
    (tmp_path / "racekernels.py").write_text(RACE_KERNELS)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": path}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", NO_LOCKS], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
    check = "import racekernels as r; k = r.make(5); k(1.0);print(sum(k.stats.cache_hits.values()))"
    done = subprocess.run([sys.executable, "-c", check], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.stdout.strip() == "1", done.stderr
