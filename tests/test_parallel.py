"""Per-frame work spread over processes or a Dask cluster: the same results."""

from __future__ import annotations

import os
import pickle
import threading
import time
import warnings
from collections import deque

import numpy as np
import pytest
from astropy.io import fits

import ccdcal
from ccdcal.cli import main
from ccdcal.errors import CcdcalError, FrameError
from ccdcal.parallel import InProcess, Ref, Task, run_tasks
from ccdcal.pipeline import reduce
from ccdcal.process_state import catching_warnings


def _square(x: int) -> int:
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise FrameError(f"frame_{x}.fits", "not a FITS file")
    return x


@pytest.mark.parametrize(("workers", "scheduler"), [(1, None), (2, None), (3, "processes")])
def test_results_in_order_with_progress(workers, scheduler):
    ticks = []
    out = run_tasks(_square, range(7), workers=workers, scheduler=scheduler, progress=ticks.append)
    assert out == [x * x for x in range(7)]
    assert sum(ticks) == 7


def test_worker_errors_arrive_unchanged():
    err = pickle.loads(pickle.dumps(FrameError("a.fits", "truncated")))
    assert (err.path, err.problem, str(err)) == ("a.fits", "truncated", "a.fits: truncated")
    with pytest.raises(FrameError, match=r"frame_3\.fits: not a FITS file"):
        run_tasks(_fail_on_three, range(5), workers=2)


def test_bad_worker_count():
    with pytest.raises(CcdcalError, match="workers must be a whole number of at least 1"):
        run_tasks(_square, [1], workers=0)


def _log_call(log: deque, key: str, seconds: float = 0.0, *after: object) -> str:
    """Logs its start and end (``after``: the results it waited for)."""
    log.append(("start", key, threading.get_ident()))
    time.sleep(seconds)
    log.append(("end", key, threading.get_ident()))
    return key


def _log_held(log: deque, key: str, gate: threading.Event, *after: object) -> str:
    """Logs its start, waits (10 s at most) for ``gate``, logs its end."""
    log.append(("start", key, threading.get_ident()))
    gate.wait(10)
    log.append(("end", key, threading.get_ident()))
    return key


def _log_opening(log: deque, key: str, gate: threading.Event, *after: object) -> str:
    log.append(("start", key, threading.get_ident()))
    gate.set()
    log.append(("end", key, threading.get_ident()))
    return key


def test_threads_run_independent_tasks_at_once_and_depth_first():
    """Two lights at once; while light1 holds one thread, the other runs light0, its stars,
    light2 and its stars, in that order (depth first; in the graph's order every light
    would come before any stars); the results are those of one task after another.

    light1 is held until stars2 starts, so the order does not hang on timing (it did: a
    loaded machine let light1 end first, and the thread it freed took light2 before
    light0 had ended)."""
    log: deque = deque()  # not a list: a task's list argument is read as a list of Refs
    gate = threading.Event()
    tasks = [Task(f"light{i}", _log_call, (log, f"light{i}", 0.01)) for i in range(4)]
    tasks[1] = Task("light1", _log_held, (log, "light1", gate))
    tasks += [Task(f"stars{i}", _log_call, (log, f"stars{i}", 0.0, Ref(f"light{i}")))
              for i in range(4)]  # fmt: skip
    tasks[6] = Task("stars2", _log_opening, (log, "stars2", gate, Ref("light2")))
    tasks.append(Task("stack", len, ([Ref(f"stars{i}") for i in range(4)],)))
    ticks: list[str] = []
    out = InProcess(threads=2).run(tasks, progress=ticks.append)
    held = list(log)
    assert out == InProcess().run(tasks)  # the gate stays open: light1 does not wait
    assert sorted(ticks) == sorted(t.key for t in tasks)
    starts = [key for what, key, _ in held if what == "start"]
    assert set(starts[:2]) == {"light0", "light1"}  # both threads busy from the start
    holder = next(ident for what, key, ident in held if key == "light1")
    other = [key for what, key, ident in held if what == "start" and ident != holder]
    assert other[:4] == ["light0", "stars0", "light2", "stars2"]
    assert len({ident for *_, ident in held}) == 2


def _fail(log: deque) -> None:
    log.append("failed")
    raise FrameError("bad.fits", "not a FITS file")


def test_threads_finish_running_tasks_then_raise_the_failure():
    log: deque = deque()
    tasks = [
        Task("slow", _log_call, (log, "slow", 0.2)),
        Task("bad", _fail, (log,)),
        Task("after", _log_call, (log, Ref("bad"))),
        Task("later", _log_call, (log, "later")),
    ]
    with pytest.raises(FrameError, match=r"bad\.fits: not a FITS file"):
        InProcess(threads=2).run(tasks)
    assert ("end", "slow") in [(what, key) for what, key, *_ in log if what == "end"]
    assert all(entry[1] != "after" for entry in log if isinstance(entry, tuple))


def _pid(*after: object) -> int:
    return os.getpid()


def _fail_aside(*after: object) -> None:
    raise FrameError("side.fits", "truncated FITS file")


def test_side_tasks_run_beside_the_threads_and_threads_help_them():
    """Side tasks (finding stars) run on a process beside this one, two at a time there;
    the others wait for a free thread there and the threads take them: every task runs
    once, and a failure there arrives unchanged."""
    tasks = [Task("light", _pid)]
    tasks += [Task(f"stars{i}", _pid, (Ref("light"),), side=True) for i in range(6)]
    pids = InProcess(threads=2).run(tasks)
    assert pids["light"] == os.getpid()
    elsewhere = {pids[f"stars{i}"] for i in range(6)} - {os.getpid()}
    assert len(elsewhere) == 1  # one side process
    assert set(InProcess().run(tasks).values()) == {os.getpid()}  # one thread: all here
    failing = [Task("light", _pid), Task("stars", _fail_aside, (Ref("light"),), side=True)]
    with pytest.raises(FrameError, match=r"side\.fits: truncated FITS file"):
        InProcess(threads=2).run(failing)


def test_without_a_process_beside_side_tasks_run_here(monkeypatch, caplog):
    """Where no process can be started (no working semaphores, as in some sandboxes),
    the side tasks run on the threads: the run does not fail."""
    import concurrent.futures

    def refuse(*args, **kwargs):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    tasks = [Task("light", _pid)]
    tasks += [Task(f"stars{i}", _pid, (Ref("light"),), side=True) for i in range(4)]
    with caplog.at_level("INFO", logger="ccdcal.parallel"):
        pids = InProcess(threads=2).run(tasks)
    assert set(pids.values()) == {os.getpid()}
    assert "no process beside this one" in caplog.text


def _cores(_item: object = None) -> int:
    from ccdcal import threads

    return threads.count()


def test_each_worker_process_takes_its_share_of_the_cores():
    shares = run_tasks(_cores, [None] * 4, workers=2)
    assert shares == [max(1, (os.cpu_count() or 1) // 2)] * 4


def _catch_many(n: int) -> None:
    for _ in range(n):
        with catching_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn("mine", UserWarning, stacklevel=1)
        assert [str(w.message) for w in caught] == ["mine"]


def test_catching_warnings_on_threads_leaves_the_filters_as_they_were():
    before = list(warnings.filters)
    threads = [threading.Thread(target=_catch_many, args=(300,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert warnings.filters == before


def _leave_a_filter() -> None:
    warnings.simplefilter("ignore", RuntimeWarning)  # as an overlapped block might


def test_a_run_on_threads_puts_the_warning_filters_back():
    before = list(warnings.filters)
    InProcess(threads=2).run([Task("a", _leave_a_filter), Task("b", len, ("ab",))])
    assert warnings.filters == before


def test_reduce_on_threads_equals_one_task_at_a_time(tmp_path, monkeypatch):
    """The default run shares products out on threads: the files are the same bytes' data
    as one product after another's."""
    import ccdcal.pipeline.reduction as reduction

    raw = _night(tmp_path)
    threaded = reduce(raw, tmp_path / "threads", report=False)
    monkeypatch.setattr(reduction, "task_threads", lambda: 1)
    serial = reduce(raw, tmp_path / "serial", report=False)
    a, b = _images(serial), _images(threaded)
    assert a.keys() == b.keys() and len(threaded.calibrated) == 6
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


def _night(tmp_path):
    ccdcal.simulate.night(
        tmp_path / "night", seed=5, shape=(64, 80), nbias=5, ndark=5, nflat=5, nlight=6
    )
    return tmp_path / "night" / "raw"


def _images(result):
    out = {}
    for path in [*result.masters.values(), *result.calibrated, *result.stacks.values()]:
        with fits.open(path, memmap=False) as hdul:
            out[path.name] = [np.array(h.data) for h in hdul if h.data is not None]
    return out


def test_reduce_on_processes_equals_reduce_here(tmp_path):
    raw = _night(tmp_path)
    here = reduce(raw, tmp_path / "here", report=False)
    apart = reduce(raw, tmp_path / "apart", report=False, workers=2)
    assert not apart.failures and len(apart.calibrated) == 6
    a, b = _images(here), _images(apart)
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.xdist_group("cluster")
def test_reduce_on_a_dask_cluster(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    raw = _night(tmp_path)
    here = reduce(raw, tmp_path / "here", report=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)  # relative paths here, another working folder on the workers
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        client.run(os.chdir, str(elsewhere))
        apart = reduce("night/raw", "cluster", report=False, scheduler=client)
        again = reduce("night/raw", "cluster", report=False, scheduler=cluster.scheduler_address)
    assert len(again.reused) > len(apart.reused)  # the rerun keeps what the first one wrote
    a, b = _images(here), _images(apart)
    for name in a:
        for x, y in zip(a[name], b[name], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_dask_counts_a_band_by_its_planes_and_a_local_run_imports_no_dask():
    """A band that travels between workers weighs its planes in Dask's memory accounting,
    which asks the objects themselves (``__sizeof__``): no Dask import in a local run,
    nor in the processes it spawns for stars and figures (0.12 s each)."""
    import subprocess
    import sys

    from dask.sizeof import sizeof

    from ccdcal.stacking import Rows

    plane = np.zeros((8, 100), np.float32)
    counts = np.zeros((8, 100), np.int16)
    rows = Rows(0, 8, plane, plane, counts, counts, counts, counts, common=plane)
    assert sizeof(rows) >= 3 * plane.nbytes + 4 * counts.nbytes
    code = "import sys, ccdcal.parallel, ccdcal.pipeline.recipes; print('dask' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def test_processes_leave_warning_filters_alone(tmp_path):
    """Lights without a gain are reported once, by a notice: no warning filter is left."""
    raw = _night(tmp_path)
    before = list(warnings.filters)
    result = reduce(raw, tmp_path / "out", report=False, workers=2)
    assert not result.failures
    assert warnings.filters == before


@pytest.mark.parametrize(
    ("workers", "scheduler", "message"),
    [
        (0, None, "workers must be"),
        (2.5, None, "workers must be"),
        (2, "threads", "expected 'processes' or a Dask scheduler"),
        (2, 42, "scheduler must be"),
    ],
)
def test_bad_backend_refused_before_any_work(tmp_path, workers, scheduler, message):
    raw = _night(tmp_path)
    with pytest.raises(CcdcalError, match=message):
        reduce(raw, tmp_path / "out", report=False, workers=workers, scheduler=scheduler)
    assert not (tmp_path / "out").exists()


def test_cli_workers(tmp_path, capsys):
    raw = _night(tmp_path)
    code = main(["-q", "reduce", str(raw), str(tmp_path / "out"), "--no-report", "--workers", "2"])
    assert code == 0
    assert len(list((tmp_path / "out" / "calibrated").glob("*.fits"))) == 6
    code = main(["-q", "reduce", str(raw), str(tmp_path / "out2"), "--workers", "0"])
    assert code != 0
    assert "workers must be a whole number of at least 1" in capsys.readouterr().err
    code = main(["-q", "reduce", str(raw), str(tmp_path / "out3"), "--memory-limit", "200KB"])
    err = capsys.readouterr().err
    assert code == 1 and "memory_limit=204800 bytes is too small" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- the whole graph
@pytest.fixture(scope="module")
def four_filters(tmp_path_factory):
    """Four filters and darks of two exposures: many independent products."""
    base = tmp_path_factory.mktemp("four")
    ccdcal.simulate.night(base / "night", seed=3, shape=(96, 112), nbias=5, ndark=3, nflat=3,
                          nlight=3, filters=("B", "V", "R", "I"),
                          dark_exptime=[30.0, 60.0])  # fmt: skip
    return base / "night" / "raw"


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=":0") as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        yield client


def _outputs(result):
    paths = [*result.masters.values(), *result.calibrated, *result.stacks.values()]
    return {p.relative_to(result.out_dir): p for p in paths}


@pytest.mark.xdist_group("cluster")
def test_every_way_to_run_gives_the_same_files(four_filters, tmp_path, cluster):
    here = reduce(four_filters, tmp_path / "here", report=False)
    assert len(here.masters) == 7 and len(here.calibrated) == 12 and len(here.stacks) == 4
    runs = {
        "2 processes": reduce(four_filters, tmp_path / "p", report=False, workers=2),
        "2 processes, bands": reduce(
            four_filters, tmp_path / "pb", report=False, workers=2, band_rows=25
        ),
        "cluster": reduce(four_filters, tmp_path / "c", report=False, scheduler=cluster),
        "cluster, bands": reduce(
            four_filters, tmp_path / "cb", report=False, scheduler=cluster, band_rows=40
        ),
    }
    ours = _images(here)
    for how, result in runs.items():
        assert _outputs(result).keys() == _outputs(here).keys(), how
        theirs = _images(result)
        for name, planes in ours.items():
            for x, y in zip(planes, theirs[name], strict=True):
                np.testing.assert_array_equal(x, y, err_msg=f"{how}: {name}")
        assert not [p for p in (result.out_dir / "masters").iterdir() if p.is_dir()], how


@pytest.mark.xdist_group("cluster")
def test_on_a_cluster_the_work_runs_on_the_workers(four_filters, tmp_path, cluster):
    """The calling process plans and waits: under a quarter of the reduction's CPU time."""
    import psutil

    def cpu() -> float:
        t = psutil.Process().cpu_times()
        return t.user + t.system

    workers = sum(cluster.run(cpu).values())
    here = cpu()
    result = reduce(four_filters, tmp_path / "out", report=False, scheduler=cluster)
    calling = cpu() - here
    working = sum(cluster.run(cpu).values()) - workers
    assert len(result.calibrated) == 12
    share = calling / (calling + working)
    print(f"calling process {calling:.2f} s, workers {working:.2f} s of CPU: {share:.1%}")
    assert share < 0.25


def _tasks_held(dask_scheduler=None) -> int:
    return len(dask_scheduler.tasks)


def _held(client, wait: float = 5.0) -> int:
    """Tasks the scheduler still holds, once the releases (sent in batches) arrived."""
    import time

    deadline = time.monotonic() + wait
    while (n := client.run_on_scheduler(_tasks_held)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return n


@pytest.mark.xdist_group("cluster")
def test_cluster_run_releases_its_results_and_fails_cleanly(four_filters, tmp_path, cluster):
    result = reduce(four_filters, tmp_path / "out", report=False, scheduler=cluster, band_rows=30)
    assert len(result.stacks) == 4
    assert _held(cluster) == 0  # nothing left on the cluster
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in four_filters.iterdir():
        (raw / p.name).write_bytes(p.read_bytes())
    with fits.open(raw / "flat_B_002.fits") as hdul:  # a flat with no light: refused
        data, header = np.zeros_like(hdul[0].data), hdul[0].header.copy()
    fits.PrimaryHDU(data, header).writeto(raw / "flat_B_002.fits", overwrite=True)
    with pytest.raises(CcdcalError, match=r"flat_B_002.*flat has median"):
        reduce(raw, tmp_path / "bad", report=False, scheduler=cluster, band_rows=20)
    assert [p for p in (tmp_path / "bad" / "masters").iterdir() if p.is_dir()] == []
    assert _held(cluster) == 0
