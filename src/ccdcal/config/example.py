"""The example configuration (``ccdcal info --example-config``), written from the model.

Every key, its default and its choices come from :mod:`ccdcal.config.model` and the
parser's tables (:data:`~ccdcal.config.REJECT_PARAMS`); only the notes that explain them
are written here. A key the model has and the notes lack is an error, so the example
cannot fall behind the model, and loading it gives ``Config()``.

Examples
--------
>>> from ccdcal.config import Config, loads_config
>>> loads_config(example_toml()) == Config()
True
>>> line = next(t for t in example_toml().splitlines() if t.startswith("overscan ="))
>>> line.split("# ")[1]
'none | mean | median | rows | poly; rows: one value per line'
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .model import (
    COMBINE_METHODS,
    COSMIC_METHODS,
    DARK_MATCHES,
    DEFAULT_COMBINE,
    EXPOSURES,
    GRIDS,
    INTERPOLATIONS,
    KINDS,
    OVERSCAN_METHODS,
    READOUT_AXES,
    REGISTER_METHODS,
    RULE_FIELDS,
    SCALES,
    TRANSFORMS,
    TYPE_KINDS,
    WEIGHTS,
    ZEROS,
    CosmicOptions,
    DarkOptions,
    Detector,
    FlatOptions,
    Keywords,
    RegisterOptions,
    SelectOptions,
)

WIDTH = 96  # the lines' width (the example reads in an 100-column terminal)


@dataclass(frozen=True)
class Key:
    """One key of the example: its default, what it means, its choices.

    Parameters
    ----------
    name, value
        The key and its default (``None``: no default; the key is shown commented out with
        ``example`` as its value).
    note
        What it means (the comment after it).
    choices
        The values it takes, where they are a closed set; written first in the comment as
        ``a | b | c``.
    example
        A value to show, commented out, for a key without a default.
    """

    name: str
    value: Any
    note: str = ""
    choices: tuple[str, ...] = ()
    example: Any = None

    def comment(self) -> str:
        parts = [" | ".join(self.choices)] if self.choices else []
        return "; ".join([*parts, self.note] if self.note else parts)


# ------------------------------------------------------------------------- the notes
_KEYWORDS = {
    "imagetyp": "the first whose value names a known type",
    "exptime": "seconds",
    "filter": 'flats without any: the filter in OBJECT ("V twil flat")',
    "object": "lights without any: named after their folder, else their file names",
    "gain": "e-/ADU",
    "gain_unsure": "e-/ADU on some cameras only: used where the flats' gain agrees",
    "rdnoise": "e-",
    "saturation": "ADU; default: the ADC's ceiling where the data reach it",
    "date": "",
    "time": "joined to a date that has no time",
}

_DETECTOR: dict[str, tuple[str, Any]] = {  # note, example value for a key without default
    "gain": ('e-/ADU, or "measured" (from pairs of flats); default: the header\'s', 4.95),
    "rdnoise": ('e-, or "measured" (from pairs of biases); default: the header\'s', 6.5),
    "saturation": ("ADU; default: from the header", 60000),
    "bias_level": (
        "ADU of the raw frames: the level no photon made, for the photon noise where no "
        "master bias, bias-holding dark or overscan says it",
        1000,
    ),
    "biassec": (
        'FITS section (1-based, inclusive, x first); default: BIASSEC; "none": ignore it',
        "[1388:1432,1:1370]",
    ),
    "trimsec": ('default: TRIMSEC; "none": ignore it', "[18:1382,1:1370]"),
    "overscan": ("rows: one value per line", None),
    "overscan_order": ('polynomial order for "poly"', None),
    "overscan_sigma": ("clipping of the overscan estimate", None),
    "readout_axis": ("auto: along the overscan strip", None),
}
_DETECTOR_CHOICES = {"overscan": OVERSCAN_METHODS, "readout_axis": READOUT_AXES}

_COMBINE = {
    "method": ("", COMBINE_METHODS),
    "scale": ("brings each frame to a common level first", SCALES),
    "zero": ("additive offsets to a common sky level", ZEROS),
    "weights": (
        "frame: each frame by 1/its median variance (MEDVAR); one weight per frame, not "
        'per pixel (combine(weights="variance") in Python weights each pixel)',
        WEIGHTS,
    ),
    "exposures": ('lights of other exposure times: separate stacks, or "scale" them', EXPOSURES),
}
_REJECT_NOTES = {
    "auto": "lights: each one's own variance (varclip), else ccdclip, else a MAD clip",
    "sigclip": "center median | mean, spread mad_std | std",
    "minmax": "rule count | iraf",
    "pclip": "percentiles of the band kept",
    "ccdclip": "IRAF's ccdclip, sigma from the noise model",
    "esd": "generalized ESD: a significance level and a count or fraction",
    "varclip": "each frame's own variance plane",
    "iraf-pclip": "IRAF's pclip",
    "linfit": "Siril's linear fit clipping",
    "medsig": "Siril's median sigma clipping",
    "avsigclip": "IRAF's avsigclip; center median | mean",
}

_REGISTER = {
    "method": ("auto: stars, else WCS; none: pixel on pixel", REGISTER_METHODS),
    "reference": ("best (sharpest among those with most stars) or a file name", ()),
    "transform": ("similarity: shift, rotation, scale", TRANSFORMS),
    "interpolation": ("", INTERPOLATIONS),
    "grid": ("", GRIDS),
    "threshold": ("star detection, in sky sigma", ()),
}

_SELECT = {
    "max_fwhm": "leave out lights with a FWHM above this times the median",
    "min_stars": "... with fewer stars than this times the median count",
    "min_throughput": "... whose stars are fainter than this times the median (clouds)",
}

_COSMIC = {
    "sigclip": "L.A.Cosmic's detection limit, in sigma",
    "sigfrac": "its limit for the neighbours of a cosmic ray, as a fraction of sigclip",
    "objlim": "its contrast limit between a cosmic ray and a star",
    "niter": "its iterations",
    "clean": "replace the flagged pixels with a median of their neighbours",
}


# ------------------------------------------------------------------------- writing
def _toml(value: Any) -> str:
    """A value as TOML writes it (strings in double quotes, booleans in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _wrap(text: str, prefix: str = "# ", more: str | None = None) -> list[str]:
    """``text`` as comment lines starting with ``prefix`` (the first) and ``more`` (the
    others; default ``prefix``), no longer than :data:`WIDTH`."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        start = more if lines and more is not None else prefix
        if line and len(start) + len(line) + 1 + len(word) > WIDTH:
            lines.append(start + line)
            line = ""
        line += (" " if line else "") + word
    if line:
        lines.append((more if lines and more is not None else prefix) + line)
    return lines


def _assignment(key: Key) -> str:
    if key.value is None:
        return f"# {key.name} = {_toml(key.example)}"
    text = f"{key.name} = {_toml(key.value)}"
    if len(text) > WIDTH and isinstance(key.value, tuple):  # a long list: wrapped
        indent = " " * len(f"{key.name} = [")
        items = [_toml(v) for v in key.value]
        rows, row = [], ""
        for item in items:
            if row and len(indent) + len(row) + len(item) + 2 > WIDTH:
                rows.append(row.rstrip())
                row = ""
            row += item + ", "
        rows.append(row.rstrip(", "))
        text = f"{key.name} = [" + f"\n{indent}".join(rows) + "]"
    return text


def _keys(keys: Iterable[Key]) -> list[str]:
    """The lines of ``keys``: each key's comment beside it, aligned, or above it where it
    does not fit."""
    keys = list(keys)
    texts = [_assignment(k) for k in keys]
    widths = [
        len(t)
        for k, t in zip(keys, texts, strict=True)
        if k.comment() and "\n" not in t and len(t) + 4 + len(k.comment()) <= WIDTH
    ]
    column = max(widths, default=0) + 2
    lines: list[str] = []
    for key, text in zip(keys, texts, strict=True):
        comment = key.comment()
        if not comment:
            lines.append(text)
        elif "\n" not in text and column + 2 + len(comment) <= WIDTH:
            lines.append(f"{text.ljust(column)}# {comment}")
        else:  # the comment goes above
            lines.extend(_wrap(comment))
            lines.append(text)
    return lines


def _section(name: str, intro: str, keys: Iterable[Key]) -> list[str]:
    return [f"[{name}]", *(_wrap(intro) if intro else []), *_keys(keys), ""]


def _checked(section: str, names: Iterable[str], notes: Mapping[str, Any]) -> None:
    """Refuse a key of the model that the notes do not explain (and a note of no key)."""
    names = list(names)
    missing = [n for n in names if n not in notes]
    extra = [n for n in notes if n not in names]
    if missing or extra:
        raise RuntimeError(f"example [{section}]: notes missing for {missing}, extra {extra}")


def _keywords() -> list[str]:
    names = [f.name for f in fields(Keywords)]
    _checked("keywords", names, _KEYWORDS)
    defaults = Keywords()
    keys = [Key(n, getattr(defaults, n), _KEYWORDS[n]) for n in names]
    intro = (
        "Header keywords tried in order; the first present wins. A list replaces the default list."
    )
    return _section("keywords", intro, keys)


def _types_and_rules() -> list[str]:
    kinds = ", ".join(TYPE_KINDS)
    return [
        "[types]",
        *_wrap(
            "Image-type values beyond the built-in ones (case, spaces, _ and - do not "
            f"matter), and their kind: {kinds} (unknown: leave such frames out).",
        ),
        '# "Twilight Sky" = "flat"',
        '# "FOCUS" = "unknown"',
        "",
        *_wrap(
            "Per-file corrections, applied in order after the header classification; every "
            'rule that matches applies (a later one wins). match: globs on "path" (relative '
            "path or file name) and/or header keywords; set: " + ", ".join(RULE_FIELDS) + ".",
        ),
        "# [[rules]]",
        '# match = { OBJECT = "*twil flat*" }',
        '# set = { kind = "flat" }',
        "# [[rules]]",
        '# match = { path = "flat/*", OBJECT = "VR *" }',
        '# set = { filter = "VR" }',
        "",
    ]


def _detector() -> list[str]:
    names = [f.name for f in fields(Detector)]
    _checked("detector", names, _DETECTOR)
    defaults = Detector()
    keys = [
        Key(n, getattr(defaults, n), _DETECTOR[n][0], _DETECTOR_CHOICES.get(n, ()),
            _DETECTOR[n][1])
        for n in names
    ]  # fmt: skip
    return _section("detector", "", keys)


def _combine(reject_params: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = ["method", "scale", "zero", "weights", "exposures"]
    _checked("combine", names, _COMBINE)
    lines = _wrap(
        "How each kind is combined. reject takes one of the rejections below, with its "
        "parameters (sigma = n sets low and high). Setting reject starts its parameters "
        "afresh; other parameters update the default ones."
    )
    for name, params in reject_params.items():
        text = f"{name} ({', '.join(params)})" if params else name
        note = _REJECT_NOTES.get(name)
        lines.extend(_wrap(f"{text}: {note}" if note else text, "#   ", "#       "))
    for kind in KINDS:
        options = DEFAULT_COMBINE[kind]
        keys = []
        for name in names:
            if name in ("weights", "exposures") and kind != "light":
                continue  # lights only
            value = getattr(options, name)
            note, choices = _COMBINE[name]
            keys.append(Key(name, "none" if value is None else value, note, choices))
        keys.append(Key("reject", options.reject, "see above"))
        keys.extend(Key(k, v) for k, v in options.params.items())
        lines.extend(_section(f"combine.{kind}", "", keys))
    return lines


def _cosmic() -> list[str]:
    from .parse import _COSMIC_CHECKS

    _checked("cosmic", list(_COSMIC_CHECKS), _COSMIC)
    keys = [Key("method", CosmicOptions().method, "L.A.Cosmic through astroscrappy",
                COSMIC_METHODS)]  # fmt: skip
    defaults = _lacosmic_defaults()
    keys.extend(Key(n, None, _COSMIC[n], example=defaults[n]) for n in _COSMIC_CHECKS)
    return _section("cosmic", "", keys)


def _lacosmic_defaults() -> dict[str, Any]:
    """L.A.Cosmic's defaults, as :func:`ccdcal.cosmic.flag_cosmic_rays` has them."""
    from ..cosmic import flag_cosmic_rays

    return {
        name: p.default
        for name, p in inspect.signature(flag_cosmic_rays).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def _options(name: str, cls: type, notes: Mapping[str, Any], intro: str = "") -> list[str]:
    names = [f.name for f in fields(cls)]
    _checked(name, names, notes)
    defaults = cls()
    keys = []
    for n in names:
        note, choices = notes[n] if isinstance(notes[n], tuple) else (notes[n], ())
        keys.append(Key(n, getattr(defaults, n), note, choices))
    return _section(name, intro, keys)


@functools.cache
def example_toml() -> str:
    """The example configuration: every section and key, its default and its choices.

    Returns
    -------
    str
        TOML text; loading it gives ``Config()``.
    """
    from .parse import REJECT_PARAMS

    lines = [
        "# ccdcal configuration of a night. Every section and key is optional: leave out",
        "# what you do not change. The values below are the defaults; a | b | c lists the",
        "# values a key takes.",
        "",
        *_keywords(),
        *_types_and_rules(),
        *_detector(),
        *_combine(REJECT_PARAMS),
        *_options("dark", DarkOptions, {"match": (
            "nearest: same exposure, else the nearest scaled; exact: same exposure, else as "
            "nearest; scale: the longest, scaled", DARK_MATCHES)}),
        *_options("flat", FlatOptions, {"min_response": "master-flat pixels below it are "
                                        "flagged BAD"}),
        *_cosmic(),
        *_options("register", RegisterOptions, _REGISTER,
                  "Align the lights of each stack before combining them (frames that all "
                  "move less than 0.05 px are stacked as they are)."),
        *_options("select", SelectOptions, _SELECT,
                  "Leave out lights far from their stack's medians; false: no limit."),
    ]  # fmt: skip
    return "\n".join(lines).rstrip("\n") + "\n"


__all__ = ["Key", "example_toml"]
