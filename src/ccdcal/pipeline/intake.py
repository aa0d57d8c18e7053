"""What of a raw folder a reduction can use, decided from headers alone: frames whose
exposure makes no sense for their kind or that ccdcal made are left out with a notice,
sections are checked before any pixel is read, and a folder with nothing classified gets
the ``[[rules]]`` that would classify it, and lights that name no object are named after
their folder or file names (see :func:`ccdcal.plan`)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..classify import FrameInfo
from ..collection import Collection
from ..config import Config
from ..errors import CcdcalError
from ..wording import plural, verb
from .products import Plan


def left_out(frames: Sequence[FrameInfo | Path], why: str, notices: list[str]) -> None:
    """One notice for frames left out for one reason, naming the first few."""
    if not frames:
        return
    paths = [f.path if isinstance(f, FrameInfo) else f for f in frames]
    names = ", ".join(str(p) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
    notices.append(f"{plural(len(paths), 'file')} left out ({names}): {why}")


def sensible(usable: list[FrameInfo], notices: list[str]) -> list[FrameInfo]:
    """The frames whose exposure time makes sense for their kind; the others left out with
    a notice: ccdcal's own outputs, darks of no exposure, lights of none or of no usable
    one where darks must be scaled to them."""
    products = [f for f in usable if f.kind == "unknown" and "a ccdcal product" in f.reason]
    left_out(products, "ccdcal products of an earlier run, not raw frames", notices)
    darks = [f for f in usable if f.kind == "dark"]
    no_time = [f for f in darks if f.exptime is None]
    left_out(no_time, f"darks without a usable exposure time ({_exposure_note(no_time)})", notices)
    zero = [f for f in darks if f.exptime is not None and f.exptime <= 0]
    left_out(zero, "darks of 0 s (a bias? say so with a [[rules]] entry)", notices)
    lights = [f for f in usable if f.kind == "light"]
    dark_lights = [f for f in lights if f.exptime is not None and f.exptime <= 0]
    left_out(dark_lights, "lights of 0 s hold no light", notices)
    kept_darks = [f for f in darks if f.exptime is not None and f.exptime > 0]
    untimed = [f for f in lights if f.exptime is None] if kept_darks else []
    left_out(untimed, f"lights without a usable exposure time, to which no dark can be "
              f"scaled ({_exposure_note(untimed)})", notices)  # fmt: skip
    out = {id(f) for f in (*products, *no_time, *zero, *dark_lights, *untimed)}
    return [f for f in usable if id(f) not in out]


def _exposure_note(frames: Sequence[FrameInfo]) -> str:
    """The first frame's note about its exposure time, or "none"."""
    for f in frames:
        for part in f.reason.split("; "):
            if "exposure time" in part or "EXPTIME" in part:
                return part
    return "none"


def no_lights(collection: Collection, cfg: Config) -> str:
    """Why no light was found, and where frames are unclassified, the ``[[rules]]`` that
    would classify them, built from their folders or names."""
    text = f"{collection.root}: no light frames found (see `ccdcal info --why`)"
    unknown = [f for f in collection.frames if f.error is None and f.kind == "unknown"]
    if not unknown:
        return text
    kw = "/".join(cfg.keywords.imagetyp)
    rules = []
    for glob, kind in _guess_rules(collection, unknown):
        rules.append(f'[[rules]]\nmatch = {{ path = "{glob}" }}\nset = {{ kind = "{kind}" }}')
    text += (
        f"; {len(unknown)} of {plural(len(collection.frames), 'file')} "
        f"{verb(len(unknown), 'has', 'have')} no {kw} value that names "
        "a type. Classify them with [[rules]] in a file given with --config"
    )
    if rules:
        text += ", for example:\n" + "\n".join(rules)
    return text


def _guess_rules(collection: Collection, unknown: Sequence[FrameInfo]) -> list[tuple[str, str]]:
    """``(path glob, kind)`` for each folder, or each file-name prefix, of unclassified
    frames whose name says what they are (bias, zero, dark, flat, light, object, sci)."""
    words = (("bias", "bias"), ("zero", "bias"), ("dark", "dark"), ("flat", "flat"),
             ("light", "light"), ("object", "light"), ("sci", "light"))  # fmt: skip
    found: dict[str, str] = {}
    rest: dict[str, str] = {}
    for f in unknown:
        rel = collection.relative(f).replace(os.sep, "/")
        folder, _, name = rel.rpartition("/")
        for part, glob in ((folder, f"{folder}/*"), (name, None)):
            low = part.casefold()
            kind = next((k for w, k in words if w in low), None)
            if kind is None:
                continue
            if glob is None:
                prefix = re.match(r"[A-Za-z]+", name)
                glob = f"{prefix.group(0) if prefix else name}*"
            found.setdefault(glob, kind)
            break
        else:  # named after no calibration: the science, most likely
            rest.setdefault(f"{folder}/*" if folder else "*", "light")
    # later rules win: the catch-alls first, so that the rules by name override them
    return list({**rest, **found}.items())[:6]


def check_sections(frames: Sequence[FrameInfo], the_plan: Plan) -> None:
    """Header sections read before any pixel: a malformed one that the reduction needs stops
    it at once, with how to go on; one it does not need is a notice."""
    det = the_plan.config.detector
    needed = {
        "biassec": det.biassec is None and det.overscan != "none",
        "trimsec": det.trimsec is None,
    }
    why_not = {
        "biassec": 'overscan = "none"' if det.overscan == "none" else "[detector] biassec",
        "trimsec": "[detector] trimsec",
    }
    bad: dict[tuple[str, str], list[FrameInfo]] = {}
    problems: dict[tuple[str, str], str] = {}
    for f in frames:
        for name in ("biassec", "trimsec"):
            try:
                f.section(name)
            except CcdcalError as err:
                key = (name.upper(), str(getattr(f, name)))
                bad.setdefault(key, []).append(f)
                problems[key] = str(err).split(": ", 2)[-1]
    for (key, value), infos in bad.items():
        where = infos[0].path if len(infos) == 1 else f"{infos[0].path} and {len(infos) - 1} more"
        if needed[key.lower()]:
            raise CcdcalError(
                f"{where}: {key} = {value!r}: {problems[(key, value)]}; give the right one "
                f'with [detector] {key.lower()} = "[x1:x2,y1:y2]", or {key.lower()} = "none" '
                "to do without"
            )
        the_plan.notices.append(
            f"{where}: {key} = {value!r} is in a form ccdcal does not read; not needed "
            f"({why_not[key.lower()]}), ignored"
        )


__all__ = ["check_sections", "left_out", "no_lights", "sensible"]


#: a file name's field: what comes before the frame's number (and a filter after it), as
#: cameras' software names a series: "SA112-SF1-001R1" -> "SA112-SF1", "m51_005" -> "m51"
_SERIES = re.compile(r"(?P<field>.+?)[-_. ]+\d+[A-Za-z]*\d*$")
_SUFFIXES = re.compile(r"(\.(fits?|fts))?(\.(gz|fz|bz2))?$", re.IGNORECASE)


def field_name(relpath: str) -> tuple[str, str]:
    """The name of the field a light without an object shows, and where it comes from: its
    folder (below the raw folder), else its file name without the frame's number.

    Examples
    --------
    >>> field_name("SA112-SF1-001R1.fit.gz")
    ('SA112-SF1', 'file name')
    >>> field_name("m51/IMG_0001.fits")
    ('m51', 'folder')
    >>> field_name("target.fits")
    ('target', 'file name')
    """
    folder, _, name = relpath.replace(os.sep, "/").rpartition("/")
    if folder:
        return folder.rsplit("/", 1)[-1], "folder"
    stem = _SUFFIXES.sub("", name)
    match = _SERIES.match(stem)
    return (match["field"] if match else stem), "file name"


def name_fields(
    lights: Sequence[FrameInfo],
    collection: Collection,
    keywords: Sequence[str],
    notices: list[str],
) -> list[FrameInfo]:
    """``lights``, those that name no object named after their field (:func:`field_name`),
    with one notice per name: the stacks and calibrated lights carry it as OBJECT."""
    out: list[FrameInfo] = []
    named: dict[tuple[str, str], list[FrameInfo]] = {}
    for f in lights:
        if f.object:
            out.append(f)
            continue
        name, source = field_name(collection.relative(f))
        named.setdefault((name, source), []).append(f)
        sources = {**f.sources, "object": source}
        out.append(replace(f, object=name, sources=sources))
    keys = "/".join(keywords)
    for (name, source), infos in named.items():
        n = len(infos)
        first = ", ".join(f.path.name for f in infos[:2]) + (", ..." if n > 2 else "")
        where = source if n == 1 or source == "folder" else f"{source}s"
        notices.append(
            f"{plural(n, 'light')} ({first}) {verb(n, 'names', 'name')} no object ({keys}): "
            f"named {name!r} after {verb(n, 'its', 'their')} {where}; set object with a "
            f"[[rules]] entry to name {verb(n, 'it', 'them')} otherwise"
        )
    return out
