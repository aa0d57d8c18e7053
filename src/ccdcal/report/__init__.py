"""Figures and the HTML report of a reduction.

:func:`write_report` turns a :class:`~ccdcal.pipeline.ReduceResult` (and, for a simulated
night, the truth comparison and the photometry) into ``OUT_DIR/report/index.html`` with its
PNGs beside it (:class:`EarlyFigures` draws the first of them while the run goes on);
:mod:`ccdcal.report.figures` holds the plotting helpers it uses.
"""

from __future__ import annotations

from .html import EarlyFigures, write_report

__all__ = ["EarlyFigures", "write_report"]
