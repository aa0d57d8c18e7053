"""The output folder of a reduction: checked writable before any work, locked against a
second run, and cleared of what a killed run left half-written.

Examples
--------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "out"
>>> with claim(out):
...     (out / ".ccdcal.lock").exists()
True
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

from ..errors import CcdcalError

log = logging.getLogger(__name__)

LOCK = ".ccdcal.lock"
#: the parts whose scratch folders and temporary files a killed run may leave
PARTS = ("masters", "calibrated", "stars", "registration", "stacks", "report")


def check_writable(out: Path) -> None:
    """Create ``out`` and write a file in it, or say in one line why it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".ccdcal-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        why = err.strerror or str(err)
        if err.errno == errno.ENOSPC:
            why = "no space left on the device"
        raise CcdcalError(f"{out}: the output folder cannot be written ({why.lower()})") from None


@contextlib.contextmanager
def claim(out: Path, *, durable: bool = False) -> Iterator[None]:
    """Hold ``out`` for one reduction: a second one into it stops at once, naming the
    process that holds it. The lock is the operating system's (``flock``), released when
    the process ends however it ends, so a killed run's lock is simply taken over. With
    ``durable``, what the run wrote is flushed to the disk before it ends."""
    check_writable(out)
    try:
        import fcntl
    except ImportError:  # not on this system (Windows): no lock, as before
        clear_leftovers(out)
        yield
        if durable:
            _flush()
        return
    path = out / LOCK
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole run
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise CcdcalError(
                f"{out}: another ccdcal run is writing into this folder ({holder}); wait for "
                "it to finish, or choose another output folder"
            ) from None
        except OSError as err:  # a file system without locks (Lustre, NFS without lockd)
            log.warning("%s: cannot be locked (%s): two runs into it at once would collide",
                        out, (err.strerror or str(err)).lower())  # fmt: skip
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        clear_leftovers(out)
        yield
        if durable:  # the outputs, written without a flush each, on the disk when we return
            _flush()
    finally:
        handle.close()  # releases the lock; the file stays, harmless


def _flush() -> None:
    """Flush what this run wrote to the disk, once (``sync``; where there is none, nothing:
    each output's checksum still tells a torn file from a whole one)."""
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def clear_leftovers(out: Path) -> list[Path]:
    """Remove what a killed run left half-written: temporary files (``.*.part``,
    ``.*.tmp``) and scratch folders (``.ccdcal-prepared-*``) of the output folder's parts.
    Finished outputs are complete or absent (written under a temporary name and renamed),
    so nothing else can be half-written."""
    removed = []
    for part in PARTS:
        folder = out / part
        if not folder.is_dir():
            continue
        for root, dirs, files in os.walk(folder):
            base = Path(root)
            for name in list(dirs):
                if name.startswith(".ccdcal-prepared-"):
                    shutil.rmtree(base / name, ignore_errors=True)
                    dirs.remove(name)
                    removed.append(base / name)
            for name in files:
                if name.startswith(".") and name.endswith((".part", ".tmp")):
                    (base / name).unlink(missing_ok=True)
                    removed.append(base / name)
    return removed


__all__ = ["check_writable", "claim", "clear_leftovers"]
