"""The user's configuration of a night: typed, immutable, loaded from TOML.

``Config()`` works for most cameras; a TOML file changes only what it names. Every section
and key is optional. Unknown sections or keys and values of the wrong type are refused with
one line, ``night.toml: [section] key: problem``. :data:`EXAMPLE_TOML` is a complete,
commented file with every default (``ccdcal info --example-config`` prints it).

Sections
--------
``[keywords]``
    Header keywords tried in order, first present wins; a list replaces the default list.
    ``imagetyp`` (IMAGETYP, OBSTYPE, FRAMETYP, FRAME; the first whose value names a known
    type), ``exptime`` (EXPTIME, EXPOSURE, ITIME, EXP_TIME, DARKTIME), ``filter`` (FILTER,
    FILTNAME, FILTER1, INSFILTE, FILT), ``object`` (OBJECT, OBJNAME, TARGNAME), ``gain``
    (GAIN, EGAIN, CCDGAIN, GAINE, AGAIN_01), ``rdnoise`` (RDNOISE, READNOIS, RON, READNOISE,
    ARDNS_01), ``saturation`` (SATURATE, SATLEVEL, MAXLIN), ``date`` (DATE-OBS, DATE) and
    ``time`` (TIME-OBS, UTC-OBS, UTCSTART, UT: joined to a date that has no time).
``[types]``
    Extra image-type values and their kind, ``"Twilight Sky" = "flat"``; compared without
    regard to case, spaces, ``_`` or ``-``. Kinds: bias, dark, flat, light, unknown (to
    ignore a type). Built in: BIAS, ZERO, Bias Frame -> bias; DARK, Dark Frame -> dark;
    FLAT, SKYFLAT, DOMEFLAT, TWIFLAT, Flat Field, Flat Frame, Sky Flat, Dome Flat,
    Twilight Flat, FLATFIELD -> flat; LIGHT, OBJECT, SCIENCE, Light Frame -> light.
``[[rules]]``
    Per-file corrections, applied in the order written after the header classification;
    every rule that matches applies, a later one overriding an earlier one. ``match`` holds
    globs (``*``, ``?``, ``[..]``; case-insensitive): ``path`` against the path relative to
    the scanned folder or the file name, any other key against that header keyword's value
    (all must match). ``set`` holds ``kind``, ``filter``, ``object``, ``exptime``, ``gain``,
    ``rdnoise``, ``saturation``.
``[detector]``
    ``gain`` (e-/ADU), ``rdnoise`` (e-), ``saturation`` (ADU): override the headers; default
    from the headers. ``biassec``, ``trimsec``: FITS sections overriding the headers'.
    ``overscan`` ("none", "mean", "median", "rows", "poly"; default "median"),
    ``overscan_order`` (1, for "poly"), ``overscan_sigma`` (3.0, clipping),
    ``readout_axis`` ("auto": along the overscan strip's long side; "x"; "y").
``[combine.bias]``, ``[combine.dark]``, ``[combine.flat]``, ``[combine.light]``
    ``method`` ("mean", "median", "sum"), ``scale`` ("none", "median", "mode", "exposure":
    bring each frame to a common level first), ``zero`` ("none", "median": additive offsets
    to a common sky level), ``weights`` ("none", "frame": inverse median variance per
    frame), ``reject`` and its parameters (see :data:`REJECT_PARAMS`):
    "none"; "sigclip" (low, high, maxiters, center "median"/"mean", spread "mad_std"/"std");
    "minmax" (nlow, nhigh); "pclip" (low, high: percentiles of the band kept);
    "winsorized" (low, high, maxiters); "ccdclip" (gain, read_noise, snoise, low, high, maxiters); "esd" (alpha,
    max_outliers). ``sigma`` sets both ``low`` and ``high``. Setting ``reject`` starts its
    parameters afresh; otherwise given parameters update the default ones.
    Defaults: bias and dark: mean with generalized-ESD outlier rejection (alpha 0.05, at
    most 30 % outliers): the noise of a mean with cosmic rays removed, and no collapse on
    integer data whose MAD is 0; flat: median of frames
    scaled to a common median; light: mean with 3-sigma clipping (median, mad_std), zero
    offsets to a common sky (median) and frame weights (the sky of a night changes).
``[dark]``
    ``match``: "nearest" (default: the dark of the same exposure, else the nearest one
    scaled by the ratio of exposure times), "exact" (same exposure, else as nearest),
    "scale" (always the longest dark, scaled).
``[flat]``
    ``min_response`` (0.5): master-flat pixels below it are flagged BAD.
``[cosmic]``
    ``method`` ("none" or "lacosmic") and L.A.Cosmic's ``sigclip``, ``sigfrac``, ``objlim``,
    ``niter``, ``clean`` (defaults those of :func:`ccdcal.cosmic.flag_cosmic_rays`).

Examples
--------
>>> cfg = loads_config('''
... [detector]
... gain = 4.95
... [combine.light]
... reject = "minmax"
... nhigh = 2
... ''')
>>> cfg.detector.gain, cfg.combine_options("light").rejection()
(4.95, MinMaxClip(nlow=1, nhigh=2))
>>> Config().combine_options("flat")  # doctest: +NORMALIZE_WHITESPACE
CombineOptions(method='median', reject='none', params={}, scale='median', zero=None,
               weights=None)
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import CcdcalError

PathLike = str | os.PathLike[str]

#: the kinds of calibration and science frames
KINDS = ("bias", "dark", "flat", "light")
#: what ``[types]`` and rules may assign
TYPE_KINDS = (*KINDS, "unknown")

#: built-in image-type values (normalized by :func:`normalize_type`) and their kinds
BUILTIN_TYPES: Mapping[str, str] = MappingProxyType(
    {
        "bias": "bias", "zero": "bias", "bias frame": "bias",
        "dark": "dark", "dark frame": "dark",
        "flat": "flat", "skyflat": "flat", "domeflat": "flat", "twiflat": "flat",
        "flat field": "flat", "flat frame": "flat", "sky flat": "flat", "dome flat": "flat",
        "twilight flat": "flat", "flatfield": "flat",
        "light": "light", "object": "light", "science": "light", "light frame": "light",
    }
)  # fmt: skip

COMBINE_METHODS = ("mean", "median", "sum")
SCALES = ("none", "median", "mode", "exposure")
ZEROS = ("none", "median")
WEIGHTS = ("none", "frame")
OVERSCAN_METHODS = ("none", "mean", "median", "rows", "poly")
DARK_MATCHES = ("nearest", "exact", "scale")
READOUT_AXES = ("auto", "x", "y")
COSMIC_METHODS = ("none", "lacosmic")


def normalize_type(value: str) -> str:
    """An image-type value as compared: lower case, ``_``/``-``/runs of spaces as one space.

    Examples
    --------
    >>> normalize_type("  Flat_Field ")
    'flat field'
    """
    return re.sub(r"[\s_\-]+", " ", str(value)).strip().casefold()


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


# ---------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class Keywords:
    """Header keywords tried in order for each quantity (the first present wins).

    Examples
    --------
    >>> Keywords().filter
    ('FILTER', 'FILTNAME', 'FILTER1', 'INSFILTE', 'FILT')
    """

    imagetyp: tuple[str, ...] = ("IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME")
    exptime: tuple[str, ...] = ("EXPTIME", "EXPOSURE", "ITIME", "EXP_TIME", "DARKTIME")
    filter: tuple[str, ...] = ("FILTER", "FILTNAME", "FILTER1", "INSFILTE", "FILT")
    object: tuple[str, ...] = ("OBJECT", "OBJNAME", "TARGNAME")
    gain: tuple[str, ...] = ("GAIN", "EGAIN", "CCDGAIN", "GAINE", "AGAIN_01")
    rdnoise: tuple[str, ...] = ("RDNOISE", "READNOIS", "RON", "READNOISE", "ARDNS_01")
    saturation: tuple[str, ...] = ("SATURATE", "SATLEVEL", "MAXLIN")
    date: tuple[str, ...] = ("DATE-OBS", "DATE")
    time: tuple[str, ...] = ("TIME-OBS", "UTC-OBS", "UTCSTART", "UT")


#: what a rule's ``set`` may change, with the check of its value
RULE_FIELDS = ("kind", "filter", "object", "exptime", "gain", "rdnoise", "saturation")


@dataclass(frozen=True)
class Rule:
    """A per-file correction: when every glob of ``match`` matches, apply ``changes``.

    Parameters
    ----------
    match
        ``"path"`` (relative path or file name) or header keywords (upper case) to globs;
        a number or boolean matches a header value equal to it.
    changes
        The TOML ``set`` table: new values for :data:`RULE_FIELDS`.

    Examples
    --------
    >>> r = Rule({"OBJECT": "*twil flat*"}, {"kind": "flat"})
    >>> r.matches("flat/a.fits", {"OBJECT": "VR twil flat"}.get)
    True
    >>> r.matches("flat/a.fits", {}.get)
    False
    """

    match: Mapping[str, Any]
    changes: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "match", _frozen(self.match))
        object.__setattr__(self, "changes", _frozen(self.changes))

    def matches(self, relpath: str, lookup: Callable[[str], Any]) -> bool:
        """Whether the rule applies to the file ``relpath`` whose header answers ``lookup``."""
        for key, pattern in self.match.items():
            if key == "path":
                rel = relpath.replace(os.sep, "/").casefold()
                pat = str(pattern).casefold()
                name = rel.rsplit("/", 1)[-1]
                if not (fnmatch.fnmatchcase(rel, pat) or fnmatch.fnmatchcase(name, pat)):
                    return False
                continue
            value = lookup(key)
            if value is None or type(value).__name__ == "Undefined":
                return False
            if isinstance(pattern, bool) or isinstance(value, bool):
                if value != pattern:
                    return False
            elif isinstance(pattern, int | float):
                try:
                    if not math.isclose(float(value), float(pattern), rel_tol=1e-9, abs_tol=1e-9):
                        return False
                except (TypeError, ValueError):
                    return False
            elif not fnmatch.fnmatchcase(str(value).strip().casefold(), pattern.casefold()):
                return False
        return True

    def describe(self) -> str:
        """The match as text, e.g. ``OBJECT='*twil*'``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.match.items())


@dataclass(frozen=True)
class Detector:
    """Detector properties and overscan handling; ``None`` means "from the header".

    Examples
    --------
    >>> Detector().overscan, Detector().gain
    ('median', None)
    """

    gain: float | None = None
    rdnoise: float | None = None
    saturation: float | None = None
    biassec: str | None = None
    trimsec: str | None = None
    overscan: str = "median"
    overscan_order: int = 1
    overscan_sigma: float = 3.0
    readout_axis: str = "auto"


@dataclass(frozen=True)
class CombineOptions:
    """How one kind of frame is combined, as plain data.

    Parameters
    ----------
    method
        ``"mean"``, ``"median"`` or ``"sum"``.
    reject
        Rejection name (a key of :data:`REJECT_PARAMS`).
    params
        The rejection's parameters, by the names in :data:`REJECT_PARAMS`.
    scale
        ``None``, ``"median"``, ``"mode"`` or ``"exposure"``: bring frames to a common level
        first (see :func:`ccdcal.combine`).
    zero
        ``None`` or ``"median"``: additive offsets that bring every frame's median to the
        common level (IRAF's ``zero=median``), for lights whose sky changed during the night.
    weights
        ``None`` or ``"frame"``: weight each frame by the inverse of its median variance
        (noisier frames count less). Per frame, not per pixel: a variance estimated from a
        pixel's own value would favour pixels that fluctuated low and bias the mean.

    Examples
    --------
    >>> CombineOptions("mean", "sigclip", {"low": 3.0, "high": 3.0}).params["low"]
    3.0
    """

    method: str = "median"
    reject: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)
    scale: str | None = None
    zero: str | None = None
    weights: str | None = None

    def rejection(self) -> Any:
        """The rejection algorithm as the dataclass :func:`ccdcal.combine` takes, or None.

        Examples
        --------
        >>> CombineOptions("mean", "minmax", {"nhigh": 2}).rejection()
        MinMaxClip(nlow=1, nhigh=2)
        """
        return rejection_from_name(self.reject, **self.params)


@dataclass(frozen=True)
class DarkOptions:
    """Choice of the master dark for a frame (see :data:`DARK_MATCHES`)."""

    match: str = "nearest"


@dataclass(frozen=True)
class FlatOptions:
    """Master-flat options: pixels with a response below ``min_response`` are flagged BAD."""

    min_response: float = 0.5


@dataclass(frozen=True)
class CosmicOptions:
    """Single-frame cosmic-ray detection: ``method`` and L.A.Cosmic parameters.

    Examples
    --------
    >>> CosmicOptions("lacosmic", {"sigclip": 5.0}).params["sigclip"]
    5.0
    """

    method: str = "none"
    params: Mapping[str, Any] = field(default_factory=_frozen)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))


_SIGCLIP_DEFAULTS = {"maxiters": 5, "center": "median", "spread": "mad_std"}
DEFAULT_COMBINE: Mapping[str, CombineOptions] = MappingProxyType(
    {
        # generalized ESD, not MAD-based clipping: on 16-bit data with a read noise of about
        # one adu most of a pixel's values tie, the MAD collapses to 0 and a MAD clip throws
        # good values away (measured on the Lowell biases: 17 % more noise than a mean; ESD 2 %)
        "bias": CombineOptions("mean", "esd", {"alpha": 0.05, "max_outliers": 0.3}),
        "dark": CombineOptions("mean", "esd", {"alpha": 0.05, "max_outliers": 0.3}),
        "flat": CombineOptions("median", "none", {}, scale="median"),
        "light": CombineOptions(
            "mean",
            "sigclip",
            {"low": 3.0, "high": 3.0, **_SIGCLIP_DEFAULTS},
            zero="median",
            weights="frame",
        ),
    }
)


@dataclass(frozen=True)
class Config:
    """Everything a night's reduction can be told; ``Config()`` is the default.

    Examples
    --------
    >>> Config().dark.match, Config().flat.min_response, Config().cosmic.method
    ('nearest', 0.5, 'none')
    >>> Config(types={"Sky": "flat"}).type_kind("SKY")
    'flat'
    """

    keywords: Keywords = field(default_factory=Keywords)
    types: Mapping[str, str] = field(default_factory=_frozen)
    rules: tuple[Rule, ...] = ()
    detector: Detector = field(default_factory=Detector)
    combine: Mapping[str, CombineOptions] = field(default_factory=lambda: DEFAULT_COMBINE)
    dark: DarkOptions = field(default_factory=DarkOptions)
    flat: FlatOptions = field(default_factory=FlatOptions)
    cosmic: CosmicOptions = field(default_factory=CosmicOptions)
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        types = {normalize_type(k): v for k, v in self.types.items()}
        object.__setattr__(self, "types", _frozen(types))
        object.__setattr__(self, "rules", tuple(self.rules))
        combine = dict(DEFAULT_COMBINE)
        combine.update(self.combine)
        for kind, opts in combine.items():
            if kind not in KINDS:
                raise ValueError(f"combine kinds are {', '.join(KINDS)}, not {kind!r}")
            combine[kind] = replace(opts, params=_frozen(opts.params))
        object.__setattr__(self, "combine", _frozen(combine))

    def type_kind(self, value: str) -> str | None:
        """The kind named by an image-type value (``[types]`` first, then the built-ins)."""
        key = normalize_type(value)
        return self.types.get(key, BUILTIN_TYPES.get(key))

    def combine_options(self, kind: str) -> CombineOptions:
        """The combine options for ``kind`` (bias, dark, flat, light); params is a new dict.

        Examples
        --------
        >>> Config().combine_options("light").params["low"]
        3.0
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        return replace(self.combine[kind], params=dict(self.combine[kind].params))


# ---------------------------------------------------------------------------- parsing
class _Bad(Exception):
    """A problem at ``[section] key`` (turned into a CcdcalError with the source)."""

    def __init__(self, section: str, key: str | None, problem: str) -> None:
        self.section, self.key, self.problem = section, key, problem
        super().__init__(problem)


def _type_name(value: Any) -> str:
    return {str: "a string", bool: "a boolean", int: "an integer", float: "a number"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _number(sec: str, key: str, value: Any, *, positive: bool = False, minimum: float = -math.inf):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Bad(sec, key, f"expected a number, got {_type_name(value)} ({value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise _Bad(sec, key, f"expected a finite number, got {value!r}")
    if positive and not v > 0:
        raise _Bad(sec, key, f"must be > 0, not {value!r}")
    if v < minimum:
        raise _Bad(sec, key, f"must be >= {minimum:g}, not {value!r}")
    return v


def _integer(sec: str, key: str, value: Any, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(sec, key, f"expected an integer, got {_type_name(value)} ({value!r})")
    if value < minimum:
        raise _Bad(sec, key, f"must be >= {minimum}, not {value!r}")
    return int(value)


def _string(sec: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(sec, key, f"expected a string, got {_type_name(value)} ({value!r})")
    return value


def _choice(sec: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = _string(sec, key, value).strip().lower()
    if text not in choices:
        raise _Bad(sec, key, f"must be one of {', '.join(choices)}, not {value!r}")
    return text


def _table(sec: str, key: str | None, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(sec, key, f"expected a table, got {_type_name(value)} ({value!r})")
    return value


def _check_keys(sec: str, table: Mapping[str, Any], known: tuple[str, ...] | set[str]) -> None:
    for key in table:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            raise _Bad(sec, key, f"unknown key{hint}")


def _positive(sec: str, key: str, v: Any) -> float:
    return _number(sec, key, v, positive=True)


def _nonneg(sec: str, key: str, v: Any) -> float:
    return _number(sec, key, v, minimum=0.0)


def _count(sec: str, key: str, v: Any) -> int:
    return _integer(sec, key, v)


def _center(sec: str, key: str, v: Any) -> str:
    return _choice(sec, key, v, ("median", "mean"))


def _spread(sec: str, key: str, v: Any) -> str:
    return _choice(sec, key, v, ("mad_std", "std"))


def _percent(sec: str, key: str, v: Any) -> float:
    value = _number(sec, key, v, minimum=0.0)
    if value > 100:
        raise _Bad(sec, key, f"must be a percentile between 0 and 100, not {v!r}")
    return value


def _alpha(sec: str, key: str, v: Any) -> float:
    a = _number(sec, key, v)
    if not 0 < a < 1:
        raise _Bad(sec, key, f"must be between 0 and 1, not {v!r}")
    return a


def _outliers(sec: str, key: str, v: Any) -> float | int:
    if isinstance(v, int) and not isinstance(v, bool):
        return _integer(sec, key, v)
    a = _number(sec, key, v)
    if not 0 < a < 1:
        raise _Bad(sec, key, f"an integer count or a fraction between 0 and 1, not {v!r}")
    return a


_Check = Callable[[str, str, Any], Any]

#: rejection names and their parameters (name -> check); ``sigma`` sets low and high
REJECT_PARAMS: Mapping[str, Mapping[str, _Check]] = MappingProxyType(
    {
        "none": {},
        "sigclip": {
            "low": _positive, "high": _positive, "maxiters": _count,
            "center": _center, "spread": _spread,
        },
        "minmax": {"nlow": _count, "nhigh": _count},
        "pclip": {"low": _percent, "high": _percent},
        "winsorized": {"low": _positive, "high": _positive, "maxiters": _count},
        "ccdclip": {
            "gain": _positive, "read_noise": _nonneg, "snoise": _nonneg,
            "low": _positive, "high": _positive, "maxiters": _count,
        },
        "esd": {"alpha": _alpha, "max_outliers": _outliers},
    }
)  # fmt: skip


def rejection_from_name(name: str, **params: Any) -> Any:
    """Build a rejection dataclass of :mod:`ccdcal.combine` from its configuration name.

    The one mapping from the names of the configuration and the command line ("sigclip",
    "minmax", "pclip", "winsorized", "ccdclip", "esd", "none") to the algorithms; ``sigma``
    sets both ``low`` and ``high``.

    Examples
    --------
    >>> rejection_from_name("sigclip", sigma=2.5)
    SigmaClip(low=2.5, high=2.5, maxiters=5, center='median', spread='std', rule='astropy')
    >>> rejection_from_name("none") is None
    True
    """
    from .combine import rejection as rj

    classes = {
        "sigclip": rj.SigmaClip,
        "minmax": rj.MinMaxClip,
        "pclip": rj.PercentileClip,
        "winsorized": rj.WinsorizedSigmaClip,
        "ccdclip": rj.CCDClip,
        "esd": rj.ESDClip,
    }
    if name in ("none", "", None):
        return None
    if name not in classes:
        raise CcdcalError(f"unknown rejection {name!r}; choose one of none, {', '.join(classes)}")
    params = dict(params)
    if "sigma" in params:
        sigma = params.pop("sigma")
        params.setdefault("low", sigma)
        params.setdefault("high", sigma)
    try:
        return classes[name](**params)
    except (TypeError, ValueError) as err:
        raise CcdcalError(f"rejection {name!r}: {err}") from err


def _keywords(data: Any) -> Keywords:
    sec = "keywords"
    table = _table(sec, None, data)
    names = tuple(f.name for f in fields(Keywords))
    _check_keys(sec, table, names)
    values: dict[str, tuple[str, ...]] = {}
    for key, value in table.items():
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise _Bad(sec, key, f"expected a list of keywords, got {value!r}")
        out = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise _Bad(sec, key, f"expected keyword names (strings), got {item!r}")
            out.append(item.strip().upper())
        values[key] = tuple(out)
    return Keywords(**values)


def _types(data: Any) -> dict[str, str]:
    sec = "types"
    table = _table(sec, None, data)
    out = {}
    for key, value in table.items():
        if not normalize_type(key):
            raise _Bad(sec, repr(key), "empty image-type value")
        out[normalize_type(key)] = _choice(sec, repr(key), value, TYPE_KINDS)
    return out


_RULE_CHECKS: dict[str, _Check] = {
    "kind": lambda s, k, v: _choice(s, k, v, TYPE_KINDS),
    "filter": lambda s, k, v: " ".join(_string(s, k, v).split()) or None,
    "object": lambda s, k, v: " ".join(_string(s, k, v).split()) or None,
    "exptime": _nonneg,
    "gain": _positive,
    "rdnoise": _nonneg,
    "saturation": _positive,
}


def _rules(data: Any) -> tuple[Rule, ...]:
    if not isinstance(data, list):
        raise _Bad("rules", None, "expected an array of tables: write each rule as [[rules]]")
    rules = []
    for number, item in enumerate(data, start=1):
        sec = f"rules #{number}"
        table = _table(sec, None, item)
        _check_keys(sec, table, ("match", "set"))
        if "match" not in table or "set" not in table:
            raise _Bad(sec, "match" if "match" not in table else "set", "missing")
        match: dict[str, Any] = {}
        for key, pattern in _table(sec, "match", table["match"]).items():
            if not isinstance(pattern, str | int | float):
                raise _Bad(sec, f"match.{key}", f"expected a glob, got {pattern!r}")
            match["path" if key.lower() == "path" else key.strip().upper()] = pattern
        if not match:
            raise _Bad(sec, "match", "empty: give path and/or header keywords")
        changes_in = _table(sec, "set", table["set"])
        _check_keys(sec, changes_in, tuple(_RULE_CHECKS))
        if not changes_in:
            raise _Bad(sec, "set", "empty: give kind, filter, object, exptime, ...")
        changes = {k: _RULE_CHECKS[k](sec, f"set.{k}", v) for k, v in changes_in.items()}
        rules.append(Rule(match, changes))
    return tuple(rules)


def _detector(data: Any) -> Detector:
    from .sections import SectionError, parse_section

    sec = "detector"
    table = _table(sec, None, data)
    _check_keys(sec, table, tuple(f.name for f in fields(Detector)))
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("gain", "saturation"):
            out[key] = _positive(sec, key, value)
        elif key == "rdnoise":
            out[key] = _nonneg(sec, key, value)
        elif key in ("biassec", "trimsec"):
            text = _string(sec, key, value)
            try:
                parse_section(text)
            except SectionError as err:
                raise _Bad(sec, key, str(err)) from err
            out[key] = text.strip()
        elif key == "overscan":
            out[key] = _choice(sec, key, value, OVERSCAN_METHODS)
        elif key == "overscan_order":
            out[key] = _integer(sec, key, value)
        elif key == "overscan_sigma":
            out[key] = _positive(sec, key, value)
        else:  # readout_axis
            out[key] = _choice(sec, key, value, READOUT_AXES)
    return Detector(**out)


def _combine_one(kind: str, data: Any) -> CombineOptions:
    sec = f"combine.{kind}"
    table = dict(_table(sec, None, data))
    base = DEFAULT_COMBINE[kind]
    method = _choice(sec, "method", table.pop("method", base.method), COMBINE_METHODS)
    scale_in = table.pop("scale", base.scale or "none")
    scale = _choice(sec, "scale", scale_in, SCALES)
    zero = _choice(sec, "zero", table.pop("zero", base.zero or "none"), ZEROS)
    weights = _choice(sec, "weights", table.pop("weights", base.weights or "none"), WEIGHTS)
    if "reject" in table:
        reject = _choice(sec, "reject", table.pop("reject"), tuple(REJECT_PARAMS))
        params: dict[str, Any] = {}
    else:
        reject, params = base.reject, dict(base.params)
    checks = REJECT_PARAMS[reject]
    known = (*checks, "sigma") if "low" in checks else tuple(checks)
    for key in table:
        if key not in known:
            options = [*known, "method", "reject", "scale", "zero", "weights"]
            close = difflib.get_close_matches(key, options, n=1)
            hint = f"{reject!r} takes {', '.join(known) or 'no parameters'}"
            if close:
                hint += f"; did you mean {close[0]!r}?"
            raise _Bad(sec, key, f"unknown key ({hint})")
    if "sigma" in table:
        sigma = _positive(sec, "sigma", table.pop("sigma"))
        params["low"] = params["high"] = sigma
    for key, value in table.items():
        params[key] = checks[key](sec, key, value)
    return CombineOptions(
        method,
        reject,
        params,
        None if scale == "none" else scale,
        None if zero == "none" else zero,
        None if weights == "none" else weights,
    )


def _combine(data: Any) -> dict[str, CombineOptions]:
    table = _table("combine", None, data)
    _check_keys("combine", table, KINDS)
    return {kind: _combine_one(kind, value) for kind, value in table.items()}


def _dark(data: Any) -> DarkOptions:
    table = _table("dark", None, data)
    _check_keys("dark", table, ("match",))
    return DarkOptions(**{k: _choice("dark", k, v, DARK_MATCHES) for k, v in table.items()})


def _flat(data: Any) -> FlatOptions:
    table = _table("flat", None, data)
    _check_keys("flat", table, ("min_response",))
    return FlatOptions(**{k: _nonneg("flat", k, v) for k, v in table.items()})


_COSMIC_CHECKS: dict[str, _Check] = {
    "sigclip": _positive,
    "sigfrac": _positive,
    "objlim": _positive,
    "niter": lambda s, k, v: _integer(s, k, v, minimum=1),
    "clean": lambda s, k, v: v if isinstance(v, bool) else _bad_bool(s, k, v),
}


def _bad_bool(sec: str, key: str, value: Any) -> bool:
    raise _Bad(sec, key, f"expected true or false, got {value!r}")


def _cosmic(data: Any) -> CosmicOptions:
    sec = "cosmic"
    table = dict(_table(sec, None, data))
    _check_keys(sec, table, ("method", *_COSMIC_CHECKS))
    method = _choice(sec, "method", table.pop("method", "none"), COSMIC_METHODS)
    params = {k: _COSMIC_CHECKS[k](sec, k, v) for k, v in table.items()}
    return CosmicOptions(method, params)


_SECTIONS: dict[str, Callable[[Any], Any]] = {
    "keywords": _keywords,
    "types": _types,
    "rules": _rules,
    "detector": _detector,
    "combine": _combine,
    "dark": _dark,
    "flat": _flat,
    "cosmic": _cosmic,
}


def config_from_dict(data: Mapping[str, Any], *, source: str = "<config>") -> Config:
    """Build a :class:`Config` from parsed TOML (a dict of sections), checking everything.

    Parameters
    ----------
    data
        Sections as :mod:`tomllib` returns them.
    source
        Name used in error messages (the file).

    Raises
    ------
    CcdcalError
        ``source: [section] key: problem`` for an unknown section or key or a bad value.

    Examples
    --------
    >>> config_from_dict({"dark": {"match": "exact"}}).dark.match
    'exact'
    >>> config_from_dict({"flat": {"min_respons": 0.3}}, source="n.toml")
    Traceback (most recent call last):
    ...
    ccdcal.errors.CcdcalError: n.toml: [flat] min_respons: unknown key (did you mean 'min_response'?)
    """  # noqa: E501
    out: dict[str, Any] = {}
    try:
        for name, value in data.items():
            if name not in _SECTIONS:
                close = difflib.get_close_matches(name, list(_SECTIONS), n=1)
                hint = f"did you mean [{close[0]}]?" if close else f"known: {', '.join(_SECTIONS)}"
                raise _Bad(name, None, f"unknown section ({hint})")
            out[name] = _SECTIONS[name](value)
    except _Bad as bad:
        where = f"[{bad.section}]" + (f" {bad.key}" if bad.key else "")
        raise CcdcalError(f"{source}: {where}: {bad.problem}") from None
    return Config(**out, source=source)


def loads_config(text: str, *, source: str = "<string>") -> Config:
    """Parse TOML text into a :class:`Config` (see :func:`config_from_dict`).

    Examples
    --------
    >>> loads_config('[detector]\\ngain = "high"', source="n.toml")
    Traceback (most recent call last):
    ...
    ccdcal.errors.CcdcalError: n.toml: [detector] gain: expected a number, got a string ('high')
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CcdcalError(f"{source}: invalid TOML: {err}") from err
    return config_from_dict(data, source=source)


def load_config(path: PathLike) -> Config:
    """Load a night's configuration from a TOML file.

    Raises
    ------
    CcdcalError
        One line naming the file: missing, not TOML, or a bad section, key or value.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "night.toml"
    >>> _ = p.write_text('[combine.light]\\nsigma = 2.5\\n')
    >>> load_config(p).combine_options("light").params["high"]
    2.5
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CcdcalError(f"{p}: no such configuration file") from None
    except IsADirectoryError:
        raise CcdcalError(f"{p}: is a folder, not a TOML configuration file") from None
    except UnicodeDecodeError as err:
        raise CcdcalError(f"{p}: not a UTF-8 text file ({err.reason})") from None
    return loads_config(text, source=str(p))


#: a complete configuration with every default, commented; loading it gives ``Config()``
EXAMPLE_TOML = """\
# ccdcal configuration of a night. Every section and key is optional: leave out what you
# do not change. The values below are the defaults.

[keywords]
# Header keywords tried in order; the first present wins (for imagetyp: the first whose
# value names a known type). A list replaces the default list.
imagetyp = ["IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME"]
exptime = ["EXPTIME", "EXPOSURE", "ITIME", "EXP_TIME", "DARKTIME"]
filter = ["FILTER", "FILTNAME", "FILTER1", "INSFILTE", "FILT"]
object = ["OBJECT", "OBJNAME", "TARGNAME"]
gain = ["GAIN", "EGAIN", "CCDGAIN", "GAINE", "AGAIN_01"]            # e-/ADU
rdnoise = ["RDNOISE", "READNOIS", "RON", "READNOISE", "ARDNS_01"]  # e-
saturation = ["SATURATE", "SATLEVEL", "MAXLIN"]                    # ADU
date = ["DATE-OBS", "DATE"]
time = ["TIME-OBS", "UTC-OBS", "UTCSTART", "UT"]  # joined to a date that has no time

[types]
# Image-type values beyond the built-in ones (case, spaces, _ and - do not matter), and
# their kind: bias, dark, flat, light, or unknown to leave such frames out.
# "Twilight Sky" = "flat"
# "FOCUS" = "unknown"

# Per-file corrections, applied in order after the header classification; every rule
# that matches applies (a later one wins). match: globs on "path" (relative path or file
# name) and/or header keywords; set: kind, filter, object, exptime, gain, rdnoise,
# saturation.
# [[rules]]
# match = { OBJECT = "*twil flat*" }
# set = { kind = "flat" }
# [[rules]]
# match = { path = "flat/*", OBJECT = "VR *" }
# set = { filter = "VR" }

[detector]
# gain = 4.95          # e-/ADU; default from the header (see [keywords] gain)
# rdnoise = 6.5        # e-; default from the header
# saturation = 60000   # ADU; default from the header
# biassec = "[1388:1432,1:1370]"  # FITS section (1-based, inclusive, x first); default BIASSEC
# trimsec = "[18:1382,1:1370]"    # default TRIMSEC
overscan = "median"    # none, mean, median, rows (one value per line), poly
overscan_order = 1     # polynomial order for "poly"
overscan_sigma = 3.0   # clipping of the overscan estimate
readout_axis = "auto"  # auto (along the overscan strip), x, y

# How each kind is combined: method = mean, median or sum; scale = none, median or mean;
# reject = none, sigclip (low, high, maxiters, center, spread), minmax (nlow, nhigh),
# pclip (low, high percentiles), winsorized (low, high, maxiters), ccdclip (gain, read_noise,
# snoise, low, high, maxiters), esd (alpha, max_outliers). sigma = n sets low and high.
[combine.bias]
method = "mean"
scale = "none"
reject = "esd"
alpha = 0.05
max_outliers = 0.3

[combine.dark]
method = "mean"
scale = "none"
reject = "esd"
alpha = 0.05
max_outliers = 0.3

[combine.flat]
method = "median"
scale = "median"
reject = "none"

[combine.light]
method = "mean"
scale = "none"
zero = "median"      # additive offsets to a common sky level
weights = "frame"    # inverse median variance of each frame
reject = "sigclip"
low = 3.0
high = 3.0
maxiters = 5
center = "median"
spread = "mad_std"

[dark]
match = "nearest"  # nearest (same exposure, else nearest scaled), exact, scale (longest)

[flat]
min_response = 0.5  # master-flat pixels below this are flagged BAD

[cosmic]
method = "none"     # none or lacosmic (L.A.Cosmic through astroscrappy)
# sigclip = 4.5
# sigfrac = 0.3
# objlim = 5.0
# niter = 4
# clean = false
"""


__all__ = [
    "BUILTIN_TYPES",
    "COMBINE_METHODS",
    "DARK_MATCHES",
    "DEFAULT_COMBINE",
    "EXAMPLE_TOML",
    "KINDS",
    "OVERSCAN_METHODS",
    "REJECT_PARAMS",
    "RULE_FIELDS",
    "TYPE_KINDS",
    "CombineOptions",
    "Config",
    "CosmicOptions",
    "DarkOptions",
    "Detector",
    "FlatOptions",
    "Keywords",
    "Rule",
    "config_from_dict",
    "load_config",
    "loads_config",
    "normalize_type",
]
