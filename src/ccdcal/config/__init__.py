"""The user's configuration of a night: typed, immutable, loaded from TOML.

``Config()`` works for most cameras; a TOML file changes only what it names. Every section
and key is optional. Unknown sections or keys and values of the wrong type are refused with
one line, ``night.toml: [section] key: problem``. :data:`EXAMPLE_TOML` (:func:`example_toml`) is a
complete, commented file with every default and choice, written from the model
(``ccdcal info --example-config`` prints it).

Sections
--------
``[keywords]``
    Header keywords tried in order, first present wins; a list replaces the default list.
    ``imagetyp`` (IMAGETYP, OBSTYPE, FRAMETYP, FRAME; the first whose value names a known
    type), ``exptime`` (EXPTIME, EXPOSURE, ITIME, EXP_TIME, DARKTIME), ``filter`` (FILTER,
    FILTNAME, FILTNAM, INSFLNAM, FILTERID, FILTER1, FILTER2, INSFILTE, FILT; flats without
    one: the filter named in OBJECT), ``object`` (OBJECT, OBJNAME, TARGNAME, FIELD; lights
    without any: named after their folder or file names), ``gain``
    (GAIN, EGAIN, CCDSENS, GAINE, AGAIN_01: e-/ADU), ``gain_unsure`` (CCDGAIN, DETGAIN:
    e-/ADU on some cameras only, used where the flats' measured gain agrees), ``rdnoise``
    (RDNOISE, READNOIS, RON, READNOISE, ARDNS_01), ``saturation`` (SATURATE, SATLEVEL,
    MAXLIN, DATAMAX; default the ADC's ceiling where the data reach it), ``date``
    (DATE-OBS, DATE) and
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
    from the headers. ``gain = "measured"`` and ``rdnoise = "measured"`` take the values
    measured from the night's flats and biases (see :mod:`ccdcal.camera`).
    ``bias_level`` (ADU): the raw level no photon made, for the photon noise of lights with no
    master bias, no dark that holds the bias and no overscan (default none: their variance then
    holds the read noise alone). ``biassec``,
    ``trimsec``: FITS sections overriding the headers', or ``"none"`` to ignore them.
    ``overscan`` ("none", "mean", "median", "rows", "poly"; default "median"),
    ``overscan_order`` (1, for "poly"), ``overscan_sigma`` (3.0, clipping),
    ``readout_axis`` ("auto": along the overscan strip's long side; "x"; "y").
``[combine.bias]``, ``[combine.dark]``, ``[combine.flat]``, ``[combine.light]``
    ``method`` ("mean", "median", "sum"), ``scale`` ("none", "median", "mode", "exposure":
    bring each frame to a common level first), ``zero`` ("none", "median": additive offsets
    to a common sky level), ``weights`` ("none", "frame": inverse median variance per
    frame), ``reject`` and its parameters (see :data:`REJECT_PARAMS`):
    "none"; "auto" (lights: "varclip" where every light has a variance plane, else
    ccdclip where the noise model is known, else a 4-sigma MAD clip; low, high, maxiters);
    "sigclip" (low, high, maxiters, center "median"/"mean", spread "mad_std"/"std");
    "minmax" (nlow, nhigh, rule "count"/"iraf"); "pclip" (low, high: percentiles of the
    band kept); "winsorized" (low, high, maxiters); "ccdclip" (gain, read_noise, snoise,
    low, high, maxiters); "esd" (alpha, max_outliers); "varclip" (low, high, maxiters,
    snoise: each light's own variance, its photon slope from its header); "iraf-pclip"
    (pclip, low, high: IRAF's pclip); "linfit" (low, high, maxiters: Siril's linear fit
    clipping); "medsig" (low, high: Siril's median sigma clipping, outliers replaced by the
    median); "avsigclip" (low, high, maxiters, center: IRAF's avsigclip). ``sigma`` sets
    both ``low`` and ``high``.
    Setting ``reject`` starts its parameters afresh; otherwise given parameters update the
    default ones.
    Defaults: bias and dark: mean with generalized-ESD outlier rejection (alpha 0.05, at
    most 30 % outliers): the noise of a mean with cosmic rays removed, and no collapse on
    integer data whose MAD is 0; flat: median of frames
    scaled to a common median; light: mean with "auto" rejection (3 sigma), zero
    offsets to a common sky (median) and frame weights (the sky of a night changes).
``[dark]``
    ``match``: "nearest" (default: the dark of the same exposure, else the nearest one
    scaled by the ratio of exposure times), "exact" (same exposure, else as nearest),
    "scale" (always the longest dark, scaled).
``[flat]``
    ``min_response`` (0.5): master-flat pixels below it are flagged BAD.
``[register]``
    How the lights of each stack are aligned (see :class:`RegisterOptions`): ``method``
    ("auto", "stars", "wcs", "none"), ``reference`` ("best" or a light's file name),
    ``transform`` ("shift", "similarity", "affine"), ``interpolation`` ("lanczos3",
    "bicubic", "bilinear"), ``grid`` ("reference", "union", "intersection"), ``threshold``
    (5.0, star detection in sky sigma).
``[select]``
    Lights a stack leaves out, relative to the medians of its lights: ``max_fwhm`` (1.5),
    ``min_stars`` (0.5), ``min_throughput`` (0.5); ``false`` lifts a limit.
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
(4.95, MinMaxClip(nlow=1, nhigh=2, rule='count'))
>>> Config().combine_options("flat")  # doctest: +NORMALIZE_WHITESPACE
CombineOptions(method='median', reject='none', params={}, scale='median', zero=None,
               weights=None, exposures='separate')
"""

from typing import Any

from .example import example_toml
from .model import (
    BUILTIN_TYPES,
    COMBINE_METHODS,
    DARK_MATCHES,
    DEFAULT_COMBINE,
    KINDS,
    OVERSCAN_METHODS,
    RULE_FIELDS,
    TYPE_KINDS,
    CombineOptions,
    Config,
    CosmicOptions,
    DarkOptions,
    Detector,
    FlatOptions,
    Keywords,
    RegisterOptions,
    Rule,
    SelectOptions,
    normalize_type,
)
from .parse import (
    REJECT_PARAMS,
    config_from_dict,
    load_config,
    loads_config,
    rejection_from_name,
)

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
    "RegisterOptions",
    "Rule",
    "SelectOptions",
    "config_from_dict",
    "example_toml",
    "load_config",
    "loads_config",
    "normalize_type",
    "rejection_from_name",
]


def __getattr__(name: str) -> Any:
    if name == "EXAMPLE_TOML":  # written on first use (see ccdcal.config.example)
        return example_toml()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
