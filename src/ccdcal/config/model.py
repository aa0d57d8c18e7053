"""The configuration's types: frozen dataclasses with the defaults that suit most cameras.

See :mod:`ccdcal.config` for the TOML keys.

Examples
--------
>>> Config().dark.match
'nearest'
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from ..errors import CcdcalError

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
REGISTER_METHODS = ("auto", "stars", "wcs", "none")
TRANSFORMS = ("shift", "similarity", "affine")
INTERPOLATIONS = ("lanczos3", "bicubic", "bilinear")
GRIDS = ("reference", "union", "intersection")
EXPOSURES = ("separate", "scale")


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
    >>> Keywords().filter[:4]
    ('FILTER', 'FILTNAME', 'FILTNAM', 'INSFLNAM')

    ``gain`` lists keywords that mean e-/ADU on every camera that writes them;
    ``gain_unsure`` those whose meaning varies (``CCDGAIN`` is e-/ADU on some cameras and
    the amplifier's setting on others, such as Calar Alto's CAFOS): their value is used
    only where it is a plausible e-/ADU and agrees with the gain measured from the flats.
    ``FILTER1``/``FILTER2`` are two wheels: the one not "open" or "clear" is the filter,
    and both together name it when neither is.
    """

    imagetyp: tuple[str, ...] = ("IMAGETYP", "OBSTYPE", "FRAMETYP", "FRAME")
    exptime: tuple[str, ...] = ("EXPTIME", "EXPOSURE", "ITIME", "EXP_TIME", "DARKTIME")
    filter: tuple[str, ...] = (
        "FILTER", "FILTNAME", "FILTNAM", "INSFLNAM", "FILTERID", "FILTER1", "FILTER2",
        "INSFILTE", "FILT",
    )  # fmt: skip
    object: tuple[str, ...] = ("OBJECT", "OBJNAME", "TARGNAME", "FIELD")
    gain: tuple[str, ...] = ("GAIN", "EGAIN", "CCDSENS", "GAINE", "AGAIN_01")
    gain_unsure: tuple[str, ...] = ("CCDGAIN", "DETGAIN")
    rdnoise: tuple[str, ...] = ("RDNOISE", "READNOIS", "RON", "READNOISE", "ARDNS_01")
    saturation: tuple[str, ...] = ("SATURATE", "SATLEVEL", "MAXLIN", "DATAMAX")
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

    gain: float | str | None = None  # or "measured"
    rdnoise: float | str | None = None  # or "measured"
    saturation: float | None = None
    bias_level: float | None = None
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
    exposures
        Lights (of one object and filter) of different exposure times: ``"separate"``
        stacks (named ``<object>_<filter>_<t>s``), or ``"scale"``: one stack, each frame
        scaled by its exposure time to the mean one and weighted by t²/variance.

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
    exposures: str = "separate"

    def rejection(self) -> Any:
        """The rejection algorithm as the dataclass :func:`ccdcal.combine` takes, or None.

        Examples
        --------
        >>> CombineOptions("mean", "minmax", {"nhigh": 2}).rejection()
        MinMaxClip(nlow=1, nhigh=2, rule='count')
        """
        from .parse import rejection_from_name

        return rejection_from_name(self.reject, **self.params)


@dataclass(frozen=True)
class RegisterOptions:
    """How the lights of a stack are aligned before they are combined.

    Parameters
    ----------
    method
        ``"auto"`` (match stars; through the WCS for a frame whose stars do not match, when
        it and the reference carry one), ``"stars"``, ``"wcs"``, or ``"none"`` (stack pixel
        on pixel).
    reference
        ``"best"`` (the sharpest frame among those with most stars) or a light's file name.
    transform
        ``"shift"``, ``"similarity"`` (shift, rotation, scale) or ``"affine"``.
    interpolation
        ``"lanczos3"``, ``"bicubic"`` or ``"bilinear"``.
    grid
        The stack's grid: the ``"reference"`` frame's, the ``"union"`` or the
        ``"intersection"`` of the used frames.
    threshold
        Star detection threshold, in sky sigma.
    """

    method: str = "auto"
    reference: str = "best"
    transform: str = "similarity"
    interpolation: str = "lanczos3"
    grid: str = "reference"
    threshold: float = 5.0


@dataclass(frozen=True)
class SelectOptions:
    """Which registered lights a stack takes, relative to the medians of its lights (None:
    no limit): ``max_fwhm`` times the median FWHM, ``min_stars`` times the median star
    count, ``min_throughput`` times the median star flux (clouds)."""

    max_fwhm: float | None = 1.5
    min_stars: float | None = 0.5
    min_throughput: float | None = 0.5


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


DEFAULT_COMBINE: Mapping[str, CombineOptions] = MappingProxyType(
    {
        # generalized ESD, not MAD-based clipping: on 16-bit data with a read noise of about
        # one adu most of a pixel's values tie, the MAD collapses to 0 and a MAD clip throws
        # good values away (measured on the Lowell biases: 17 % more noise than a mean; ESD 2 %)
        "bias": CombineOptions("mean", "esd", {"alpha": 0.05, "max_outliers": 0.3}),
        "dark": CombineOptions("mean", "esd", {"alpha": 0.05, "max_outliers": 0.3}),
        "flat": CombineOptions("median", "none", {}, scale="median"),
        # "auto": IRAF's ccdclip (sigma from the noise model) where the calibrated lights are
        # in electrons with a known read noise, else a 4-sigma MAD clip. Measured on a
        # simulated 10-frame stack: ccdclip costs 2 % in noise, a 3-sigma MAD clip 7 %
        # (the MAD of ten values scatters; 4.6 % of good values were rejected), and both
        # leave no cosmic ray.
        "light": CombineOptions(
            "mean",
            "auto",
            {"low": 3.0, "high": 3.0, "maxiters": 5},
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
    register: RegisterOptions = field(default_factory=RegisterOptions)
    select: SelectOptions = field(default_factory=SelectOptions)
    source: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        types = {normalize_type(k): v for k, v in self.types.items()}
        object.__setattr__(self, "types", _frozen(types))
        object.__setattr__(self, "rules", tuple(self.rules))
        combine = dict(DEFAULT_COMBINE)
        combine.update(self.combine)
        for kind, opts in combine.items():
            if kind not in KINDS:
                raise CcdcalError(f"combine kinds are {', '.join(KINDS)}, not {kind!r}")
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
            raise CcdcalError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        return replace(self.combine[kind], params=dict(self.combine[kind].params))
