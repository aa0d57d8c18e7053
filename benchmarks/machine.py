"""The machine a benchmark ran on, in the words its table gives: processor, cores, memory,
Python. A VM may move to another host between runs; the processor's name tells a reader
which runs compare."""

from __future__ import annotations

import os
import platform


def processor() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), or the architecture."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb() -> float:
    """The machine's memory in GiB (0 where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def describe() -> str:
    """E.g. ``AMD EPYC, x86_64, 2 cores, 24 GB, Python 3.11.7``."""
    gb = memory_gb()
    memory = f", {gb:.0f} GB" if gb else ""
    return (f"{processor()}, {platform.machine()}, {os.cpu_count()} cores{memory}, "
            f"Python {platform.python_version()}")  # fmt: skip
