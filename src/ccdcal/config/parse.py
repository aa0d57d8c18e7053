"""Reading a configuration: TOML to :class:`~ccdcal.config.Config`, with one-line errors.

Examples
--------
>>> loads_config('''
... [dark]
... match = "scale"
... ''').dark.match
'scale'
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import CcdcalError
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
    SCALES,
    TRANSFORMS,
    TYPE_KINDS,
    WEIGHTS,
    ZEROS,
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

PathLike = str | os.PathLike[str]


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


def _pclip(sec: str, key: str, v: Any) -> float:
    value = _number(sec, key, v)
    if value == 0:
        raise _Bad(sec, key, "must not be zero (IRAF's pclip: places from the median)")
    return value


def _minmax_rule(sec: str, key: str, v: Any) -> str:
    return _choice(sec, key, v, ("count", "iraf"))


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
        "auto": {"low": _positive, "high": _positive, "maxiters": _count},
        "sigclip": {
            "low": _positive, "high": _positive, "maxiters": _count,
            "center": _center, "spread": _spread,
        },
        "minmax": {"nlow": _count, "nhigh": _count, "rule": _minmax_rule},
        "pclip": {"low": _percent, "high": _percent},
        "winsorized": {"low": _positive, "high": _positive, "maxiters": _count},
        "ccdclip": {
            "gain": _positive, "read_noise": _nonneg, "snoise": _nonneg,
            "low": _positive, "high": _positive, "maxiters": _count,
        },
        "esd": {"alpha": _alpha, "max_outliers": _outliers},
        "varclip": {
            "low": _positive, "high": _positive, "maxiters": _count, "snoise": _nonneg,
        },
        "iraf-pclip": {"pclip": _pclip, "low": _positive, "high": _positive},
        "linfit": {"low": _positive, "high": _positive, "maxiters": _count},
        "medsig": {"low": _positive, "high": _positive},
        "avsigclip": {
            "low": _positive, "high": _positive, "maxiters": _count, "center": _center,
        },
    }
)  # fmt: skip


def rejection_from_name(name: str, **params: Any) -> Any:
    """Build a rejection dataclass of :mod:`ccdcal.stacking` from its configuration name.

    The one mapping from the names of the configuration and the command line ("sigclip",
    "minmax", "pclip", "winsorized", "ccdclip", "esd", "varclip", "none") to the algorithms;
    ``sigma`` sets both ``low`` and ``high``.

    Examples
    --------
    >>> rejection_from_name("sigclip", sigma=2.5)
    SigmaClip(low=2.5, high=2.5, maxiters=5, center='median', spread='std', rule='astropy')
    >>> rejection_from_name("none") is None
    True
    """
    from ..stacking import rejection as rj

    classes = {
        "sigclip": rj.SigmaClip,
        "minmax": rj.MinMaxClip,
        "pclip": rj.PercentileClip,
        "winsorized": rj.WinsorizedSigmaClip,
        "ccdclip": rj.CCDClip,
        "esd": rj.ESDClip,
        "varclip": rj.VarianceClip,
        "iraf-pclip": rj.PClip,
        "linfit": rj.LinearFitClip,
        "medsig": rj.MedianSigmaClip,
        "avsigclip": rj.AvSigClip,
    }
    if name in ("none", "", None):
        return None
    if name == "auto":
        raise CcdcalError(
            "rejection 'auto' is chosen for each stack by the pipeline (see ccdcal.pipeline)"
        )
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
    from ..sections import SectionError, parse_section

    sec = "detector"
    table = _table(sec, None, data)
    _check_keys(sec, table, tuple(f.name for f in fields(Detector)))
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("gain", "rdnoise") and isinstance(value, str):
            if value.strip().casefold() != "measured":
                raise _Bad(sec, key, f'expected a number or "measured", got {value!r}')
            out[key] = "measured"
        elif key in ("gain", "saturation"):
            out[key] = _positive(sec, key, value)
        elif key in ("rdnoise", "bias_level"):
            out[key] = _nonneg(sec, key, value)
        elif key in ("biassec", "trimsec"):
            text = _string(sec, key, value)
            if text.strip().casefold() == "none":  # the header's section is ignored
                out[key] = "none"
                continue
            try:
                parse_section(text)
            except SectionError as err:
                raise _Bad(sec, key, f'{err} (or "none" to ignore the header\'s)') from err
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
    if weights != "none" and kind != "light":
        raise _Bad(sec, "weights", "frame weights apply to lights only")
    exposures = _choice(sec, "exposures", table.pop("exposures", base.exposures), EXPOSURES)
    if exposures != "separate" and kind != "light":
        raise _Bad(sec, "exposures", "exposure mixing applies to lights only")
    if "reject" in table:
        reject = _choice(sec, "reject", table.pop("reject"), tuple(REJECT_PARAMS))
        params: dict[str, Any] = {}
    else:
        reject, params = base.reject, dict(base.params)
    checks = REJECT_PARAMS[reject]
    known = (*checks, "sigma") if "low" in checks else tuple(checks)
    for key in table:
        if key not in known:
            options = [*known, "method", "reject", "scale", "zero", "weights", "exposures"]
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
        exposures,
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


def _register(data: Any) -> RegisterOptions:
    sec = "register"
    table = _table(sec, None, data)
    _check_keys(sec, table, tuple(f.name for f in fields(RegisterOptions)))
    choices = {"method": REGISTER_METHODS, "transform": TRANSFORMS,
               "interpolation": INTERPOLATIONS, "grid": GRIDS}  # fmt: skip
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key in choices:
            out[key] = _choice(sec, key, value, choices[key])
        elif key == "threshold":
            out[key] = _positive(sec, key, value)
        else:  # reference: "best" or a light's file name
            text = _string(sec, key, value).strip()
            if not text:
                raise _Bad(sec, key, 'give "best" or the file name of a light')
            out[key] = text
    return RegisterOptions(**out)


def _select(data: Any) -> SelectOptions:
    sec = "select"
    table = _table(sec, None, data)
    _check_keys(sec, table, tuple(f.name for f in fields(SelectOptions)))
    out: dict[str, float | None] = {}
    for key, value in table.items():
        out[key] = None if value is False else _positive(sec, key, value)
    return SelectOptions(**out)


_SECTIONS: dict[str, Callable[[Any], Any]] = {
    "keywords": _keywords,
    "types": _types,
    "rules": _rules,
    "detector": _detector,
    "combine": _combine,
    "dark": _dark,
    "flat": _flat,
    "cosmic": _cosmic,
    "register": _register,
    "select": _select,
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
    ccdcal.errors.CcdcalError: n.toml: [detector] gain: expected a number or "measured", got 'high'
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
