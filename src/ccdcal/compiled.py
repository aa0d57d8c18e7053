"""ccdcal's compiled kernels: whether numba's cache holds them, and compiling the ones a
run will need in background processes while the run begins.

The kernels are compiled on their first call and cached by numba (``cache=True``), once per
machine and version: the combine's for each rejection algorithm (:mod:`ccdcal.stacking.
kernels`, a few seconds each), the calibration's and the FITS decoders' (under a second).
A first run says once that it compiles. :func:`compile_ahead` starts processes (two where
two cores may be used) that compile, into the same cache, the kernels a reduction's plan
will call, in the order it calls them, each process taking the next as it finishes one;
where the run reaches a kernel still being compiled, it waits for it (:func:`ready`) rather
than compiling it a second time. Measured on the 2-core development machine on issue 16's
night (five kernels, 31 s of compiling): the first run took 44 s with one such process and
39 s with two, against 22 s for a run that finds them all cached.

:func:`compile_now` (``ccdcal compile``, which ``make`` runs when it installs ccdcal)
compiles them before any run: the kernels a default reduction may call, on one process per
core (eight kernels: 24 s on 2 cores), after which a first reduction is as fast as any later
one. ``ccdcal compile`` also writes the bytecode of ccdcal's own modules
(:func:`compile_bytecode`).

Examples
--------
>>> from ccdcal.stacking.rejection import ESD
>>> isinstance(cached(f"combine:{ESD}"), bool)
True
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

_said = False
_lock = threading.Lock()
_ahead: _Ahead | None = None


_guarded = False


def guard_cache() -> None:
    """Have numba write its cache under a lock, so that processes compiling at once leave
    every kernel in it, each under its own name.

    numba saves a compiled function by reading the function's index, adding its entry and
    writing the index back, then its machine code to the first file name the index does
    not use (``numba.core.caching.IndexDataCacheFile.save``), with no lock between
    processes (numba issues 4807, 10128). Two processes saving at once (``ccdcal compile``'s
    two compiling the combine kernels of two rejections, which share one index; two
    workers; a run beside another) can each drop the other's entry, and take the same
    file name: the index then names one kernel's file and the file holds another's
    machine code, which a later run loads for it. Here the save holds an exclusive
    ``flock`` on a file beside the index, and writes the machine code before the index
    entry that names it. Called as the modules that hold kernels are imported, before any
    is compiled; where ``fcntl`` or numba's internals are missing, numba saves as it does.

    Examples
    --------
    >>> guard_cache()
    >>> guard_cache()  # once is enough; again does nothing
    """
    global _guarded
    if _guarded:
        return
    _guarded = True
    try:
        import fcntl

        from numba.core.caching import IndexDataCacheFile

        needed = ("save", "_load_index", "_save_index", "_save_data", "_data_name")
        if not all(hasattr(IndexDataCacheFile, n) for n in needed):
            return
    except ImportError:  # not POSIX, or numba moved its cache: its own save
        return
    unlocked = IndexDataCacheFile.save

    @functools.wraps(unlocked)
    def save(self: Any, key: Any, data: Any) -> None:
        try:  # read-only is enough to lock: a lock file another user made serves all
            fd = os.open(f"{self._index_path}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:  # a cache folder this process may not make a lock file in
            return unlocked(self, key, data)
        with contextlib.closing(os.fdopen(fd, "rb")) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes
            except OSError:  # a file system without locks (NFS without lockd, Lustre)
                return unlocked(self, key, data)
            overloads = self._load_index()
            name = overloads.get(key)
            if name is not None:  # a new build of a kernel already cached: same file
                self._save_data(name, data)
                return None
            used = set(overloads.values())
            name = next(n for n in map(self._data_name, itertools.count(1)) if n not in used)
            self._save_data(name, data)
            overloads[key] = name
            self._save_index(overloads)
        return None

    IndexDataCacheFile.save = save


def _dispatchers(name: str) -> list[Any]:
    """The numba dispatchers behind kernel ``name`` ("decode", "calibrate", "resample" or
    "combine:<algorithm code>")."""
    if name == "decode":
        from .stacking import decode

        return [decode.swap32_into, decode.decode16]
    if name == "calibrate":
        from . import calibration_kernel

        return [calibration_kernel._calibrate_rows]
    if name == "resample":
        from .registration.resample import _resample

        return [_resample]
    if name.startswith("combine:"):
        from .stacking import kernels

        return [kernels.kernel(int(name.split(":", 1)[1]))]
    raise ValueError(f"no kernel named {name!r}")


def _in_cache(dispatcher: Any) -> bool:
    """Whether numba's cache holds machine code of ``dispatcher`` for this machine (any
    signature): its index names the function's code and closure, and this CPU."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None:
        return False
    try:
        index = cache._cache_file._load_index()
        codegen = dispatcher.targetctx.codegen()
        func = dispatcher.py_func
        cells = b""
        if func.__closure__ is not None:
            from numba.core.serialize import dumps

            cells = dumps(tuple(c.cell_contents for c in func.__closure__))
        mine = (hashlib.sha256(func.__code__.co_code).hexdigest(),
                hashlib.sha256(cells).hexdigest())  # fmt: skip
        magic = codegen.magic_tuple()
    except Exception:  # numba's internals moved: say "not cached", which only costs a notice
        return False
    return any(key[1] == magic and key[2] == mine for key in index)


def cached(name: str) -> bool:
    """Whether kernel ``name`` is compiled, in this process or in numba's cache."""
    return all(d.signatures or _in_cache(d) for d in _dispatchers(name))


def say_if_compiling(names: Iterable[str]) -> None:
    """Log once per process that kernels are being compiled, when one of ``names`` is not
    in numba's cache; wait first for those a :func:`compile_ahead` process is compiling."""
    global _said
    for name in names:
        ready(name)
    if _said or all(cached(n) for n in names):
        return
    _said = True
    log.warning(
        "first run of this ccdcal on this machine: compiling its kernels (a few seconds each, "
        "once; later runs load them from numba's cache; `ccdcal compile` compiles them ahead)"
    )


# ---------------------------------------------------------------------------- ahead of time
class _Ahead:
    """Processes compiling kernels into numba's cache: each is sent the next kernel of the
    list, in order, as it finishes one (a thread per process reads what it finished and
    sends it the next), so that two cores compile two kernels at once."""

    def __init__(self, names: list[str], processes: int) -> None:
        self.names = names
        self.pending = list(names)
        self.done: set[str] = set()
        self.changed = threading.Condition()
        self.processes: list[subprocess.Popen] = []
        try:
            for _ in range(max(1, min(processes, len(names)))):
                process = subprocess.Popen(
                    [sys.executable, "-m", "ccdcal.compiled", "-"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                self.processes.append(process)
        except OSError:  # no more processes: none is left behind
            self.stop()
            raise
        for process in self.processes:
            self._send(process)
            threading.Thread(target=self._follow, args=(process,), daemon=True).start()

    def _send(self, process: subprocess.Popen) -> None:
        """The next kernel to the process, or the end of its list (it then exits)."""
        assert process.stdin is not None
        with self.changed:
            name = self.pending.pop(0) if self.pending else None
        try:
            if name is None:
                process.stdin.close()
            else:
                process.stdin.write(name + "\n")
                process.stdin.flush()
        except (OSError, ValueError):  # gone (stopped): nothing to send
            pass

    def _follow(self, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                with self.changed:
                    self.done.add(line.strip())
                    self.changed.notify_all()
                self._send(process)
        except (OSError, ValueError):  # stopped
            pass
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a pipe whose other end is gone
                    stream.close()
        with self.changed:  # all ended: what none finished, the caller compiles
            if all(p.poll() is not None for p in self.processes):
                self.done.update(self.names)
            self.changed.notify_all()

    def wait_for(self, name: str) -> None:
        """Return once ``name`` is compiled, or the processes ended without it."""
        if name not in self.names:
            return
        with self.changed:
            self.changed.wait_for(lambda: name in self.done)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait()
        with self.changed:
            self.done.update(self.names)
            self.changed.notify_all()


def compile_ahead(names: Iterable[str]) -> None:
    """Start compiling, in background processes, the kernels among ``names`` (in their
    order) that numba's cache does not hold; nothing when it holds them all."""
    global _ahead
    missing = [n for n in dict.fromkeys(names) if not cached(n)]
    with _lock:
        if _ahead is not None or not missing:
            return
        from . import threads

        # two cores compile two kernels at once: on 2 cores issue 16's five kernels took
        # 31 s of compiling one after another, and the stack's (14 s) came long after the
        # lights
        _ahead = _Ahead(missing, min(2, threads.count()))
    log.info("compiling %s in the background", ", ".join(missing))


def ready(name: str) -> None:
    """Wait until the background processes (if any) are done with kernel ``name``."""
    ahead = _ahead
    if ahead is not None:
        ahead.wait_for(name)


def stop_ahead() -> None:
    """End the background processes (at the end of a run)."""
    global _ahead
    with _lock:
        if _ahead is not None:
            _ahead.stop()
            _ahead = None


def _compile(name: str) -> None:
    """Compile kernel ``name`` by calling it on a tiny input of the types a run gives it."""
    import numpy as np

    from .frame import Frame

    ones = np.ones((4, 4), np.float32)
    if name == "decode":
        from .stacking import decode

        decode.swap32_into(np.zeros((1, 2), np.uint32), np.zeros((1, 2), np.uint32))
        decode.decode16(np.zeros((1, 2), np.uint16), np.zeros((1, 2), np.float32),
                        np.float32(1), np.float32(0), 0, False)  # fmt: skip
    elif name == "calibrate":
        from .calibration import calibrate

        frame = Frame(ones, variance=ones, mask=np.zeros((4, 4), np.uint16),
                      header={"EXPTIME": 1.0})  # fmt: skip
        calibrate(frame, bias=frame, dark=frame, flat=frame, gain=1.0, read_noise=1.0)
    elif name == "resample":  # a calibrated light's planes, as a stack moves it
        from .registration import Transform, resample

        frame = Frame(ones, variance=ones, mask=np.zeros((4, 4), np.uint16),
                      extras={"VARCOMMON": ones})  # fmt: skip
        shift = Transform(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.25], [0.0, 0.0, 1.0]]))
        resample(frame, shift, (4, 4))
    else:  # through the combine itself: the kernel gets the very types a run gives it
        from .stacking import Combination

        code = int(name.split(":", 1)[1])
        reject = next((c() for c in _rejections() if c.code == code), None)
        frames = [Frame(ones * i, variance=ones, mask=np.zeros((4, 4), np.uint16),
                        header={"VARSLOPE": 1.0}) for i in (1, 2, 3)]  # fmt: skip
        Combination(reject=reject)(frames)


def _rejections() -> list[type]:
    """The rejection algorithms' classes (each with its kernel's ``code``)."""
    from .stacking import rejection

    return [c for c in vars(rejection).values() if isinstance(c, type)
            and issubclass(c, rejection.Rejection) and c is not rejection.Rejection]  # fmt: skip


def every_kernel() -> list[str]:
    """The names of all of ccdcal's kernels: the decoders, the calibration's, the
    resampling's and the combine's of each rejection algorithm.

    Examples
    --------
    >>> names = every_kernel()
    >>> names[:3], "combine:0" in names
    (['decode', 'calibrate', 'resample'], True)
    """
    from .stacking.rejection import NONE

    codes = {NONE} | {c.code for c in _rejections()}
    return ["decode", "calibrate", "resample", *(f"combine:{c}" for c in sorted(codes))]


def compile_now(names: Iterable[str], processes: int | None = None) -> list[str]:
    """Compile into numba's cache the kernels among ``names`` that it does not hold, on
    ``processes`` processes at once (default: one per core, at most one per kernel), and
    return those compiled. A kernel a process failed to compile, or all of them where no
    process can be started, are compiled here, so that an error is raised.

    Examples
    --------
    >>> compile_now([])  # nothing asked, nothing compiled
    []
    """
    from . import threads

    missing = [n for n in dict.fromkeys(names) if not cached(n)]
    if not missing:
        return []
    try:
        ahead = _Ahead(missing, processes or threads.count())
    except OSError as err:
        log.info("no process to compile in (%s): compiling here", err)
    else:
        try:
            for name in missing:
                ahead.wait_for(name)
        finally:
            ahead.stop()
    for name in missing:
        if not cached(name):
            _compile(name)
    return missing


def compile_bytecode(package: str | os.PathLike[str] | None = None) -> bool:
    """Write the bytecode of the modules under ``package`` (default: ccdcal's own) into
    their ``__pycache__`` where it is missing or stale, as ``pip`` does for a package it
    installs but not for one installed editable (``make``'s ``pip install -e``); True
    where every module compiled, False where one did not or the folder cannot be written.

    Where Python is told not to write bytecode as it imports (``PYTHONDONTWRITEBYTECODE``,
    set in many containers), every command otherwise compiled ccdcal's modules from their
    source as it started, and a reduction's process beside did it again: 0.2 s of a fresh
    ``ccdcal combine`` on the development machine. Bytecode written here is read all the
    same, and a module changed since is compiled from its source again.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as name:
    ...     folder = pathlib.Path(name)
    ...     _ = (folder / "tiny.py").write_text("ANSWER = 42")
    ...     done = compile_bytecode(folder)
    ...     written = [p.suffix for p in (folder / "__pycache__").iterdir()]
    >>> done, written
    (True, ['.pyc'])
    """
    import compileall
    from pathlib import Path

    root = Path(__file__).parent if package is None else Path(package)
    # a folder that cannot be listed or written is compileall's False, not an error
    return bool(compileall.compile_dir(root, quiet=2))


def main(argv: list[str]) -> int:
    """``python -m ccdcal.compiled NAME...``: compile each kernel, print its name when done;
    ``-`` reads the names from standard input, a line each, until it closes."""
    names = (line.strip() for line in sys.stdin) if argv == ["-"] else iter(argv)
    for name in names:
        if name:
            _compile(name)
            print(name, flush=True)
    return 0


__all__ = [
    "cached",
    "compile_ahead",
    "compile_bytecode",
    "compile_now",
    "every_kernel",
    "ready",
    "say_if_compiling",
    "stop_ahead",
]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
