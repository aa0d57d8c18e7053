"""``python -m ccdcal``: the ``ccdcal`` command (see :mod:`ccdcal.cli`)."""

import sys

from .cli import entry

if __name__ == "__main__":
    sys.exit(entry())
