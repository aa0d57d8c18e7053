"""Counts in English, for notices, logs and summaries: "1 flat", "2 flats", "0 flats".

Examples
--------
>>> plural(1, "flat"), plural(3, "flat"), plural(0, "bias", "biases")
('1 flat', '3 flats', '0 biases')
"""

from __future__ import annotations


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and ``noun``, in the plural unless ``n`` is one.

    Parameters
    ----------
    n
        How many.
    noun
        The singular; the plural adds an "s" unless ``nouns`` is given. Several words
        pluralize at their last ("calibrated light").
    nouns
        The plural, where it is not ``noun + "s"``.

    Examples
    --------
    >>> plural(1, "calibrated light"), plural(2, "exposure time")
    ('1 calibrated light', '2 exposure times')
    """
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def verb(n: int, singular: str, plural_form: str) -> str:
    """The verb that agrees with ``n`` things: ``singular`` for one, else ``plural_form``.

    Examples
    --------
    >>> f"{plural(1, 'flat')} {verb(1, 'has', 'have')} no filter"
    '1 flat has no filter'
    """
    return singular if n == 1 else plural_form


__all__ = ["plural", "verb"]
