"""The report's figures: each drawn by a module-level function of paths and plain values
(``draw_*``, which returns its caption), so that it can be drawn on a process beside the
one that writes the page (:class:`Drawing`), and known by a key (:func:`digest` of what it
shows and :func:`code_key`), so that a rerun redraws only the figures whose inputs changed.

Examples
--------
>>> digest("a", 1) == digest("a", 1) != digest("a", 2)
True
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..frame import Frame
from ..parallel import then_release


def digest(*parts: Any) -> str:
    """A digest of strings, numbers, arrays and nested sequences of them.

    Examples
    --------
    >>> digest("a", 1) == digest("a", 1) != digest("a", 2)
    True
    >>> digest(np.zeros(3)) == digest(np.zeros(3, np.float32))
    False
    """
    h = hashlib.sha256()

    def feed(part: Any) -> None:
        if isinstance(part, np.ndarray):
            data = np.ascontiguousarray(part)
            h.update(f"<array {data.dtype.str} {data.shape}>".encode())
            h.update(data.tobytes())
        elif isinstance(part, list | tuple):
            h.update(f"<{len(part)}>".encode())
            for item in part:
                feed(item)
        else:
            h.update(f"<{type(part).__name__}:{part!r}>".encode())

    feed(parts)
    return h.hexdigest()


def code_key() -> str:
    """What draws the figures: the sources of the report (its page and its figures) and of
    the photometry's plot, and the versions of ccdcal and matplotlib (matplotlib's from its
    installed metadata: a run asks for this key as it starts, before it has imported
    matplotlib, which would take a tenth of a second or more)."""
    from importlib.metadata import version

    from .. import photometry
    from . import figures, html

    sources = [Path(m.__file__).read_bytes() for m in (figures, photometry, html)]
    sources.append(Path(__file__).read_bytes())
    return digest(__version__, version("matplotlib"), *(hashlib.sha256(b).hexdigest()
                                                        for b in sources))  # fmt: skip


@dataclass
class Figure:
    """A figure to draw: ``make(path)`` returns its caption (None: no figure)."""

    path: Path
    key: str
    make: Callable[[Path], str | None]
    number: int

    @property
    def token(self) -> str:
        """Where its HTML goes in the page until it is drawn (no text of the page holds
        control characters: they are escaped or never written)."""
        return f"\x00figure {self.number}\x00"


class Drawing:
    """Figures drawn on one process beside this one while this one goes on: spawned at
    the first figure to draw (matplotlib imported there while this process reads the
    products and writes the page), or with a run (:meth:`start_early`), and kept two
    figures ahead (the next sent as each is drawn, also while this process draws a figure
    of its own); at the end this process draws the last figures while that one draws the
    first, until they meet (:meth:`captions`). Only where the process may use two cores,
    and for figures drawn by a module-level function of paths and plain values
    (picklable); the others are drawn here. Measured on issue 16's night (10 figures of
    2048x2048 frames, 2 cores): the report took 4.8 s one figure after another, 4.4 s so
    (the process beside takes 1.3 s to start)."""

    #: figures sent ahead to the process beside (one drawn, the next waiting): a pool's
    #: queued tasks cannot be taken back (measured), so the rest wait here
    AHEAD = 2
    #: the fewest figures worth the process's start (1.3 s; a figure takes about 0.35 s)
    FEWEST = 8

    def __init__(self, figures: int = 0) -> None:
        self.pool: Any = None
        # no process beside for a few figures, nor where none could be started
        self.here_only = figures < self.FEWEST
        self.sent: dict[int, Any] = {}
        self.waiting: deque[Figure] = deque()
        #: figures sent before the page (:meth:`start_early`), by their PNG's name and key
        self.ahead: dict[tuple[str, str], Any] = {}
        self.early_only = False
        # the next figure is sent as one is drawn beside, from the pool's own thread, while
        # this one may be taking the last ones to draw here (reentrant: a figure drawn
        # before its callback is added calls it at once, in the thread that sends)
        self._lock = threading.RLock()

    def start_early(self, pool: Any) -> bool:
        """Draw on ``pool`` from now on, a process beside that a run started and lends
        (the stars' process, see :meth:`ccdcal.parallel.InProcess.lend_side`): matplotlib is
        imported there while the masters are combined (a core idles then), and the figures
        sent before the page (:meth:`send`) are drawn there at once. False where there is
        no such process or too few figures."""
        if pool is None or self.here_only:
            return False
        from .. import threads

        if threads.count() < 2:
            return False
        pool.submit(_start_drawing)
        self.pool = pool
        self.early_only = True
        return True

    def adopt(self, job: Figure) -> bool:
        """Whether ``job`` was sent early (the same PNG and key): it is then this page's."""
        future = self.ahead.pop((job.path.name, job.key), None)
        if future is None:
            return False
        with self._lock:
            self.sent[job.number] = future
        future.add_done_callback(self._drawn_beside)
        return True

    def send(self, job: Figure) -> None:
        """Queue ``job`` to be drawn beside, where that can be done; before the page
        (:meth:`start_early`), sent at once and kept for the page to :meth:`adopt`."""
        import pickle

        from .. import threads

        if threads.count() < 2:
            return
        try:
            pickle.dumps(job.make)
        except (pickle.PicklingError, TypeError, AttributeError):
            return
        if self.early_only:
            self.ahead[(job.path.name, job.key)] = self.pool.submit(then_release, job.make,
                                                                    job.path)  # fmt: skip
            return
        if self.pool is None:
            if self.here_only:
                return
            from ..parallel import start_process

            self.pool = start_process(_start_drawing)
            self.here_only = self.pool is None
            if self.here_only:
                return
        with self._lock:
            self.waiting.append(job)
        self._feed()

    def _feed(self) -> None:
        """Send figures beside until :data:`AHEAD` are there."""
        with self._lock:
            while (
                self.pool is not None
                and self.waiting
                and sum(not f.done() for f in self.sent.values()) < self.AHEAD
            ):
                job = self.waiting[0]  # taken once sent: a failure leaves it for the page
                future = self.pool.submit(then_release, job.make, job.path)
                self.waiting.popleft()
                self.sent[job.number] = future
                future.add_done_callback(self._drawn_beside)

    def _drawn_beside(self, _future: Any) -> None:
        """A figure sent beside is drawn: the next goes, so that the process beside is kept
        busy while this one draws a figure (on issue 16's night it had waited 0.8 s for
        this one to draw the aligned stack). A pool that can take no more (broken, or shut
        down by a failure) is left to the page, whose own sending or results meet it: the
        figure not sent is still waiting."""
        from concurrent.futures import BrokenExecutor

        with contextlib.suppress(BrokenExecutor, RuntimeError):
            self._feed()

    def captions(self, jobs: Sequence[Figure]) -> list[str | None]:
        """Each figure's caption; the figures not sent beside are drawn here, the last
        first."""
        captions: list[str | None] = [None] * len(jobs)
        try:
            with self._lock:
                queued = {job.number for job in self.waiting}
            for job in jobs:  # those that cannot go beside
                if job.number not in self.sent and job.number not in queued:
                    captions[job.number] = job.make(job.path)
            while True:
                self._feed()
                with self._lock:
                    job = self.waiting.pop() if self.waiting else None
                if job is None:
                    break
                captions[job.number] = job.make(job.path)
            with self._lock:
                sent = dict(self.sent)
            for number, future in sent.items():
                captions[number] = future.result()
        finally:
            self.close()
        return captions

    def close(self) -> None:
        with self._lock:  # no figure sent from now on
            pool, self.pool = self.pool, None
            self.waiting.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self.sent = {}
        self.ahead = {}
        self.early_only = False


def _start_drawing() -> None:
    """What drawing needs, imported first in the process beside."""
    import matplotlib.figure  # noqa: F401

    from . import figures  # noqa: F401


# ---------------------------------------------------------------------------- figures
# each a module-level function of paths and plain values, so that it can be drawn on the
# process beside (see Drawing); each returns its caption


def draw_master(png: Path, *, name: str, path: Path) -> str:
    from .figures import save_frame_png

    frame = Frame.read(path, variance=False, extras=False)  # the image is all it shows
    unit = frame.header.get("BUNIT") or ("adu" if not name.startswith("flat") else "")
    ncomb = frame.header.get("NCOMBINE")
    caption = f"master {name.replace('_', ' ')}" + (f" ({ncomb} frames)" if ncomb else "")
    save_frame_png(frame, png, title=caption, unit=str(unit) or "relative response")
    return caption


def draw_transfer(png: Path, *, table: Path, gain: float | None) -> str:
    from astropy.table import Table

    from .figures import save_transfer_png

    save_transfer_png(Table.read(table, format="ascii.ecsv"), png, header_gain=gain)
    return "photon transfer: the pairs of flats"


def draw_raw(png: Path, *, path: Path) -> str:
    from .figures import save_frame_png

    raw = Frame.read(path)
    caption = f"raw {path.name}"
    save_frame_png(raw, png, title=caption, unit=str(raw.header.get("BUNIT") or "adu"))
    return caption


def draw_calibrated(png: Path, *, path: Path) -> str:
    from .figures import save_frame_png

    caption = f"calibrated {path.name}"
    save_frame_png(Frame.read(path, variance=False, extras=False), png, title=caption)
    return caption


def draw_stack(png: Path, *, label: str, path: Path) -> str:
    from .figures import save_frame_png

    frame = Frame.read(path, variance=False, extras=False)
    ncomb = frame.header.get("NCOMBINE")
    caption = f"stack {label}" + (f" ({ncomb} frames)" if ncomb else "")
    save_frame_png(frame, png, title=caption)
    return caption


def draw_rejected(png: Path, *, label: str, path: Path) -> str | None:
    from .figures import save_count_png

    frame = Frame.read(path, variance=False)
    lo, hi = frame.extras.get("NREJLO"), frame.extras.get("NREJHI")
    if lo is None and hi is None:
        return None
    counts = np.zeros(frame.shape, np.int32)
    for plane in (lo, hi):
        if plane is not None:
            counts += np.asarray(plane, dtype=np.int32)
    total = int(counts.sum())
    lo_n = 0 if lo is None else int(np.asarray(lo).sum())
    hi_n = 0 if hi is None else int(np.asarray(hi).sum())
    save_count_png(counts, png, title=f"rejected per pixel: {label}")
    return (
        f"rejection map {label}: values rejected per pixel (NREJLO + NREJHI); "
        f"{total} in all, {lo_n} low, {hi_n} high"
    )


def draw_registration(png: Path, *, path: Path, label: str) -> str:
    from ..registration import Registration
    from .figures import save_registration_png

    save_registration_png(Registration.read(path).table(), png, title=f"registration of {label}")
    return f"{label}: shift, rotation and seeing of each light"


def draw_pair(png: Path, *, light: Path, stack: Path, titles: tuple[str, str], caption: str) -> str:
    from .figures import save_pair_png

    save_pair_png(Frame.read(light, variance=False, extras=False),
                  Frame.read(stack, variance=False, extras=False), png,
                  titles=titles)  # fmt: skip
    return caption


__all__ = [
    "Drawing",
    "Figure",
    "code_key",
    "digest",
    "draw_calibrated",
    "draw_master",
    "draw_pair",
    "draw_raw",
    "draw_registration",
    "draw_rejected",
    "draw_stack",
    "draw_transfer",
]
