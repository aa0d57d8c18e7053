"""Whether ccdcal's compiled kernels are in numba's cache, so that a first run can say that
it compiles them (about a minute, once per machine and version) instead of going quiet.

Examples
--------
>>> isinstance(kernels_cached(), bool)
True
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: the modules whose kernels every reduction and combine runs (``cache=True``)
KERNEL_MODULES = ("calibration_kernel", "stacking/kernels")
_said = False


def _cache_folders(module: str) -> list[Path]:
    here = Path(__file__).resolve().parent
    source = here / f"{module}.py"
    folders = [source.parent / "__pycache__"]
    custom = os.environ.get("NUMBA_CACHE_DIR")
    if custom:  # numba mirrors the source's full path below it
        folders.append(Path(custom) / str(source.parent).lstrip(os.sep))
    return folders


def kernels_cached(modules: tuple[str, ...] = KERNEL_MODULES) -> bool:
    """True when every one of ``modules`` has compiled code in numba's cache (its index
    files)."""
    for module in modules:
        stem = Path(module).name
        if not any(
            any(folder.glob(f"{stem}.*.nbi"))
            for folder in _cache_folders(module)
            if folder.is_dir()
        ):
            return False
    return True


def say_if_compiling(modules: tuple[str, ...] = KERNEL_MODULES) -> None:
    """Log once per process that the kernels of ``modules`` are being compiled, where they
    are not cached."""
    global _said
    if _said or kernels_cached(modules):
        return
    _said = True
    log.warning(
        "first run of this ccdcal on this machine: compiling its kernels (about a minute, "
        "once; later runs load them from numba's cache)"
    )


__all__ = ["KERNEL_MODULES", "kernels_cached", "say_if_compiling"]
