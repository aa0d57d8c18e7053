"""Exceptions and warnings of ccdcal.

Every error that concerns a file carries its path, so that a user reads one line and knows
which file is at fault and why.

Examples
--------
>>> err = FrameError("night/raw/x.fits", "not a FITS file")
>>> str(err)
'night/raw/x.fits: not a FITS file'
>>> isinstance(err, ValueError)
True
>>> isinstance(CcdcalTypeError("x"), TypeError)
True
"""

from __future__ import annotations

import os


class CcdcalError(ValueError):
    """A problem with the user's data or options that ccdcal can explain in one line."""


class CcdcalTypeError(CcdcalError, TypeError):
    """An argument of the wrong type (a list where a Frame is expected, ...).

    The rule of the library: every error a user's data or call can cause is a
    :class:`CcdcalError` (a ``ValueError``; this one is also a ``TypeError``), so that the
    command line turns each into one line and exit status 1, and never a traceback.
    """


class FrameError(CcdcalError):
    """A file that cannot be read or used as a frame.

    Parameters
    ----------
    path
        The file at fault.
    problem
        What is wrong with it, in a few words.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # rebuilt from its two parts when it crosses from a worker process (pickle)
        return type(self), (self.path, self.problem)


class CcdcalWarning(UserWarning):
    """Something the user should know that does not stop the work."""
