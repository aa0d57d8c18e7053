"""A whole simulated observing night: raw FITS files as a camera writes them, and the truth.

``night(out_dir)`` writes ``out_dir/raw/`` (one 16-bit file per exposure, in the order they
were taken) and ``out_dir/truth/`` (what the frames were made from, on the science area).

Every random draw has its own stream, derived from the seed, the kind of frame and its
number (``numpy.random.SeedSequence(seed, spawn_key=...)``): taking more lights does not
change the biases, adding a filter does not change the first filter's flats. The same
seed gives byte-identical files.

Examples
--------
>>> import tempfile
>>> n = night(tempfile.mkdtemp(), seed=1, shape=(32, 32), nbias=2, ndark=2, nflat=2, nlight=2)
>>> [p.name for p in n.raw][:3]
['bias_001.fits', 'bias_002.fits', 'dark_060s_001.fits']
>>> n.counts()
{'bias': 2, 'dark': 2, 'flat': 2, 'light': 2}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from .._version import __version__
from ..errors import CcdcalError
from ..fitsio import write_hdul
from ..frame import Frame
from ..process_state import catching_warnings
from ..provenance import add_history
from ..wording import plural
from .cosmics import DEFAULT_COSMIC_RATE
from .detector import Detector, _filter_key
from .pointing import Footprint, Pointing, footprint, frame_rate, moves
from .pointing import pointings as draw_pointings
from .scene import Scene

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# spawn keys of the night's streams; the detector uses 1..3 for its own fixed properties
_SCENE, _BIAS, _DARK, _FLAT, _LIGHT, _POINTING = 100, 101, 102, 103, 104, 105

_KINDS = ("bias", "dark", "flat", "light")
_READOUT_S = 15.0  # seconds between the end of one exposure and the start of the next
_LIGHTS_AFTER_H = 3.0  # lights begin at nightfall, this many hours after the first bias


@dataclass
class Night:
    """What :func:`night` wrote, and the detector and scene it was made from.

    Attributes
    ----------
    folder
        The night's folder (``raw/`` and ``truth/`` inside).
    detector
        The simulated CCD.
    scene
        The sky of the lights.
    raw
        Raw files in the order they were taken.
    truth
        Truth files by name: ``scene``, ``bias``, ``dark_current``, ``hot_pixels``,
        ``flat_<filter>``, ``cosmic_<light stem>``, ``stars``, ``pointing``, ``detector``.
    params
        The night's settings (as in ``detector.json``).
    kinds
        Kind of each raw file (``bias``, ``dark``, ``flat``, ``light``).
    pointings
        Each light's view of the scene, in the order the lights were taken.
    footprint
        The scene grid and where an unmoved frame sits on it.
    """

    folder: Path
    detector: Detector
    scene: Scene
    raw: list[Path] = field(default_factory=list)
    truth: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    kinds: dict[Path, str] = field(default_factory=dict)
    pointings: list[Pointing] = field(default_factory=list)
    footprint: Footprint | None = None

    @property
    def raw_dir(self) -> Path:
        """The folder of raw frames."""
        return self.folder / "raw"

    @property
    def truth_dir(self) -> Path:
        """The folder of truth files."""
        return self.folder / "truth"

    def of_kind(self, kind: str) -> list[Path]:
        """Raw files of one kind (``bias``, ``dark``, ``flat`` or ``light``), in order."""
        if kind not in _KINDS:
            raise CcdcalError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}")
        return [p for p in self.raw if self.kinds.get(p) == kind]

    def counts(self) -> dict[str, int]:
        """Number of raw files of each kind."""
        c = Counter(self.kinds.values())
        return {k: c[k] for k in _KINDS}

    def summary(self) -> str:
        """A few lines for people: frames by kind and where they are."""
        ny, nx = self.detector.shape
        over = f" + {self.detector.overscan} overscan columns" if self.detector.overscan else ""
        counts = ", ".join(plural(n, k, "biases" if k == "bias" else None)
                           for k, n in self.counts().items())  # fmt: skip
        return (
            f"simulated night (seed {self.params.get('seed')}, {nx}x{ny} pixels{over}): "
            f"{counts}\nraw frames: {self.raw_dir}\ntruth:      {self.truth_dir}"
        )


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=key))


def _tlabel(t: float) -> str:
    """Exposure time in a file name: 60 -> '060s', 2.5 -> '2p5s'."""
    return f"{int(t):03d}s" if float(t).is_integer() else f"{t:g}s".replace(".", "p")


def _check_filter(name: str) -> str:
    name = str(name).strip()
    if not name or not all(c.isalnum() or c in "-+." for c in name):
        raise CcdcalError(f"filter names must be letters, digits, '-', '+' or '.', not {name!r}")
    return name


def night(
    out_dir: PathLike,
    *,
    seed: int = 0,
    shape: tuple[int, int] = (200, 200),
    nbias: int = 25,
    ndark: int = 15,
    nflat: int = 15,
    nlight: int = 10,
    filters: Sequence[str] = ("V",),
    dark_exptime: float | Sequence[float] = 60.0,
    light_exptime: float = 60.0,
    flat_exptime: float = 5.0,
    flat_level: float = 30_000.0,
    overscan: int = 0,
    gain: float = 1.0,
    read_noise: float = 8.0,
    bias_level: float = 500.0,
    pattern_amplitude: float = 20.0,
    bias_drift: float = 0.0,
    dark_rate: float = 0.2,
    hot_fraction: float = 0.001,
    vignetting: float = 0.15,
    pixel_response: float = 0.02,
    full_well: float = 100_000.0,
    nonlinearity: float = 0.0,
    adc_bits: int = 16,
    adc_shift: int = 0,
    cosmic_rate: float = DEFAULT_COSMIC_RATE,
    calibration_cosmics: bool = False,
    nstars: int = 30,
    fwhm: float = 3.0,
    sky: float = 100.0,
    sky_gradient: float = 0.0,
    object_name: str = "SIMFIELD",
    dither: float = 0.0,
    drift: float = 0.0,
    rotate: float = 0.0,
    fwhm_range: tuple[float, float] | None = None,
    transparency_range: tuple[float, float] | None = None,
    sky_range: tuple[float, float] | None = None,
    pointings: Sequence[Pointing] | None = None,
) -> Night:
    """Simulate a night into ``out_dir/raw`` (frames) and ``out_dir/truth`` (what is true).

    The night is taken in this order: biases, darks, flats (per filter), lights (per
    filter). Flats and lights are taken in every filter.

    Parameters
    ----------
    out_dir
        Folder to write into (created). Files a previous simulation left there that this
        one does not write (say, more lights) are removed; other files are left alone.
    seed
        The seed of everything: detector, scene and each frame.
    shape
        (ny, nx) of the science area; raw frames add ``overscan`` columns.
    nbias, ndark, nflat, nlight
        Frames of each kind (flats and lights: per filter).
    filters
        Filter names.
    dark_exptime, light_exptime, flat_exptime
        Exposure times, seconds; ``dark_exptime`` may list several, and ``ndark`` darks
        are taken at each.
    flat_level
        Mean electrons of a flat where the response is 1.
    overscan, gain, read_noise, bias_level, pattern_amplitude, bias_drift, dark_rate,
    hot_fraction, vignetting, pixel_response, full_well, nonlinearity, adc_bits, adc_shift
        The detector (see :class:`Detector`).
    cosmic_rate
        Cosmic-ray hits per pixel per second in the lights.
    calibration_cosmics
        Also let cosmic rays hit darks and flats, as they do at a telescope (their hits
        are not recorded in the truth).
    nstars, fwhm, sky, sky_gradient
        The scene (see :meth:`Scene.random`); ``sky`` is electrons per pixel in a light of
        ``light_exptime``, and so are the star peaks (2,000 to 20,000).
    object_name
        OBJECT of the lights.
    dither, drift, rotate
        The telescope moves between lights: random offsets within ±``dither`` pixels, a
        steady drift of ``drift`` pixels per frame in a random direction, a field rotation
        of ``rotate`` degrees from the first light to the last (see
        :func:`~ccdcal.simulate.pointing.pointings`). The scene then covers every frame's
        view, so stars enter and leave at the edges; ``nstars`` is the number per frame
        area.
    fwhm_range, transparency_range, sky_range
        Seeing (FWHM, pixels), relative throughput and relative sky brightness drawn per
        light, uniform within these ranges (default ``fwhm``, 1 and 1 in every light).
    pointings
        Each light's :class:`~ccdcal.simulate.pointing.Pointing`, in the order the lights
        are taken (filter after filter), instead of drawing them: a night to order, such as
        one frame under thick cloud.

    Each light's transform from the scene to the frame, seeing, transparency and sky are
    written to ``truth/pointing.ecsv``. With none of these six options the lights all look at the
    same place, as in earlier versions, and every file keeps its bytes.

    Returns
    -------
    Night
        Paths written, the detector and the scene.

    Examples
    --------
    >>> import tempfile
    >>> n = night(tempfile.mkdtemp(), shape=(24, 24), nbias=1, ndark=0, nflat=1, nlight=1,
    ...           filters=("B", "V"), overscan=4, nstars=0)
    >>> [p.name for p in n.raw]
    ['bias_001.fits', 'flat_B_001.fits', 'flat_V_001.fits', 'light_B_001.fits', 'light_V_001.fits']
    >>> sorted(n.truth)[:4]
    ['bias', 'cosmic_light_B_001', 'cosmic_light_V_001', 'dark_current']
    """
    filters = tuple(_check_filter(f) for f in filters)
    if len(set(filters)) != len(filters):
        raise CcdcalError(f"filters repeat: {filters}")
    for name, n in (("nbias", nbias), ("ndark", ndark), ("nflat", nflat), ("nlight", nlight)):
        if int(n) < 0 or int(n) > 999:
            raise CcdcalError(f"{name} must be within 0..999, not {n}")
    dark_times = (
        [float(t) for t in dark_exptime]
        if isinstance(dark_exptime, Sequence)
        else [float(dark_exptime)]
    )
    if not dark_times or len(set(dark_times)) != len(dark_times):
        raise CcdcalError(f"dark_exptime: one or more different times, not {dark_exptime!r}")
    exposures = [("dark", t) for t in dark_times] + [
        ("light", light_exptime), ("flat", flat_exptime)
    ]  # fmt: skip
    for name, t in exposures:
        if not t > 0:
            raise CcdcalError(f"{name}_exptime must be > 0 seconds, not {t}")
    out = Path(out_dir)
    raw_dir, truth_dir = out / "raw", out / "truth"
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)

    det = Detector.create(
        seed=seed, shape=shape, gain=gain, read_noise=read_noise, bias_level=bias_level,
        pattern_amplitude=pattern_amplitude, bias_drift=bias_drift, dark_rate=dark_rate,
        hot_fraction=hot_fraction, vignetting=vignetting, pixel_response=pixel_response,
        full_well=full_well, overscan=overscan, nonlinearity=nonlinearity,
        adc_bits=adc_bits, adc_shift=adc_shift,
    )  # fmt: skip
    motion = {"dither": float(dither), "drift": float(drift), "rotate": float(rotate),
              "fwhm_range": fwhm_range, "transparency_range": transparency_range,
              "sky_range": sky_range}  # fmt: skip
    if pointings is not None:
        if len(pointings) != nlight * len(filters):
            raise CcdcalError(
                f"pointings: {len(pointings)} given for {nlight * len(filters)} lights"
            )
        views = [p if p.fwhm is not None else replace(p, fwhm=fwhm) for p in pointings]
        moving = any(v != Pointing(fwhm=fwhm) for v in views)
        motion["given"] = True  # type: ignore[assignment]
    else:
        moving = moves(**motion)  # type: ignore[arg-type]
        views = draw_pointings(
            nlight * len(filters), _rng(seed, _POINTING), fwhm=fwhm, **motion,  # type: ignore[arg-type]
        )  # fmt: skip
    # a margin for the stars' wings: a star just off every frame still lights its edge
    wings = 3.0 * max([fwhm, *(v.fwhm or fwhm for v in views)]) if moving else 0.0
    where = footprint(det.shape, views if moving else [], margin=math.ceil(wings))
    if moving:
        area = (where.shape[0] * where.shape[1]) / (det.shape[0] * det.shape[1])
        scene = Scene.random(
            where.shape, _rng(seed, _SCENE), nstars=round(nstars * area), fwhm=fwhm, sky=sky,
            exptime_ref=light_exptime, sky_gradient=sky_gradient, margin=0.0,
        )  # fmt: skip
    else:
        scene = Scene.random(
            det.shape, _rng(seed, _SCENE), nstars=nstars, fwhm=fwhm, sky=sky,
            exptime_ref=light_exptime, sky_gradient=sky_gradient,
        )  # fmt: skip
    params: dict[str, Any] = {
        "seed": int(seed), "nbias": int(nbias), "ndark": int(ndark), "nflat": int(nflat),
        "nlight": int(nlight), "filters": list(filters),
        "dark_exptime": dark_times[0] if len(dark_times) == 1 else dark_times,
        "light_exptime": float(light_exptime), "flat_exptime": float(flat_exptime),
        "flat_level": float(flat_level), "cosmic_rate": float(cosmic_rate),
        "calibration_cosmics": bool(calibration_cosmics), "object": object_name,
    }  # fmt: skip
    if moving:  # only then: an unmoved night's detector.json keeps its bytes
        params["motion"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in motion.items()}
    result = Night(out, det, scene, params=params, pointings=views, footprint=where)
    written: set[Path] = set()
    cal_cr = cosmic_rate if calibration_cosmics else 0.0

    start = dt.datetime(2026, 1, 1, 16, 0, 0) + dt.timedelta(days=int(seed) % 365)
    clock = start

    def write(frame: Frame, name: str, kind: str, obj: str, index: int) -> Path:
        nonlocal clock
        if kind == "light" and clock < start + dt.timedelta(hours=_LIGHTS_AFTER_H):
            clock = start + dt.timedelta(hours=_LIGHTS_AFTER_H)
        frame.header["OBJECT"] = (obj, "target")
        frame.header["DATE-OBS"] = (
            clock.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "[UTC] start of exposure",
        )
        frame.header["SIMSEED"] = (int(seed), "ccdcal simulate: seed of the night")
        clock += dt.timedelta(seconds=float(frame.header["EXPTIME"]) + _READOUT_S)
        path = raw_dir / name
        frame.write(path, dtype="uint16", step="simulate", deterministic=True,
                    params={"seed": seed, "kind": kind, "number": index})  # fmt: skip
        result.raw.append(path)
        result.kinds[path] = kind
        written.add(path)
        return path

    for i in range(1, nbias + 1):
        write(det.bias(_rng(seed, _BIAS, i)), f"bias_{i:03d}.fits", "bias", "BIAS", i)
    for t_dark in dark_times:
        tkey = round(t_dark * 1000)  # ms: darks of another length get other streams
        for i in range(1, ndark + 1):
            frame = det.dark(t_dark, _rng(seed, _DARK, tkey, i), cosmic_rate=cal_cr)
            write(frame, f"dark_{_tlabel(t_dark)}_{i:03d}.fits", "dark", "DARK", i)
    for filt in filters:
        for i in range(1, nflat + 1):
            rng = _rng(seed, _FLAT, _filter_key(filt), i)
            frame = det.flat(flat_level, filt, rng, exptime=flat_exptime, cosmic_rate=cal_cr)
            write(frame, f"flat_{filt}_{i:03d}.fits", "flat", f"FLAT {filt}", i)
    cosmic: dict[str, np.ndarray] = {}
    looks = iter(views)
    stems: list[tuple[str, str]] = []
    for filt in filters:
        for i in range(1, nlight + 1):
            rng = _rng(seed, _LIGHT, _filter_key(filt), i)
            view = next(looks)
            seen = frame_rate(scene, view, where, sky_gradient=sky_gradient) if moving else scene
            frame, crs = det.light(seen, light_exptime, filt, rng, cosmic_rate=cosmic_rate)
            stem = f"light_{filt}_{i:03d}"
            write(frame, f"{stem}.fits", "light", object_name, i)
            cosmic[stem] = crs
            stems.append((stem, filt))

    def truth(name: str, data: np.ndarray, what: str, unit: str | None) -> None:
        path = truth_dir / f"{name}.fits"
        header = fits.Header()
        header["OBJECT"] = (what, "simulation truth")
        if unit is not None:
            header["BUNIT"] = unit
        header["SIMSEED"] = (int(seed), "ccdcal simulate: seed of the night")
        if data.dtype == bool:
            # masks as BITPIX 8: small, and readable by any FITS viewer
            add_history(header, "simulate", params={"seed": seed, "truth": name}, stamp=False)
            hdul = fits.HDUList([fits.PrimaryHDU(data.astype(np.uint8), header=header)])
            write_hdul(hdul, path, when="ccdcal", keep_identical=True)
        else:
            Frame(data, header=header).write(path, step="simulate", deterministic=True,
                                              params={"seed": seed, "truth": name})  # fmt: skip
        result.truth[name] = path
        written.add(path)

    truth("scene", scene.rate, "sky scene before the flat response", "electron/s")
    truth("bias", det.bias_pattern[:, : det.shape[1]], "bias level and pattern", "adu")
    truth("dark_current", det.dark_current, "dark current, hot pixels included", "electron/s")
    truth("hot_pixels", det.hot_pixels, "hot pixels (1)", None)
    for filt in filters:
        truth(f"flat_{filt}", det.flat_response(filt), f"flat response {filt}, median 1", None)
    for stem, crs in cosmic.items():
        truth(f"cosmic_{stem}", crs, f"cosmic-ray hits in {stem}", None)

    pointing_path = truth_dir / "pointing.ecsv"
    _write_text_atomic(pointing_path, _ecsv(_pointing_table(stems, views, where)))
    result.truth["pointing"] = pointing_path
    written.add(pointing_path)

    stars = scene.stars
    stars.meta["comment"] = [
        "x, y: 0-based pixel coordinates of the science (trimmed) area"
        + (" of the scene; truth/pointing.ecsv takes them to each light" if moving else ""),
        "peak_rate: Gaussian amplitude; flux_rate: total flux; both electron/s",
    ]
    stars_path = truth_dir / "stars.ecsv"
    _write_text_atomic(stars_path, _ecsv(stars))
    result.truth["stars"] = stars_path
    written.add(stars_path)

    info = {
        "ccdcal_version": __version__,
        "seed": int(seed),
        "detector": det.to_dict(),
        "night": params,
        "scene": {
            "nstars": int(nstars), "fwhm": float(fwhm), "sky": float(sky),
            "sky_rate": scene.sky_rate, "sky_gradient": float(sky_gradient),
            "exptime_ref": float(light_exptime), "unit": "electron/s",
        },
        "frames": result.counts(),
        "vignetting_by_filter": {f: det.filter_vignetting(f) for f in filters},
    }  # fmt: skip
    json_path = truth_dir / "detector.json"
    _write_text_atomic(json_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    result.truth["detector"] = json_path
    written.add(json_path)

    _remove_stale(raw_dir, written)
    _remove_stale(truth_dir, written)
    log.debug("simulated night: %s", result.summary().splitlines()[0])
    return result


#: pointing.ecsv's names of the scene-to-frame matrix elements
_AFFINE = {"a11": (0, 0), "a12": (0, 1), "a21": (1, 0), "a22": (1, 1), "tx": (0, 2), "ty": (1, 2)}


def _pointing_table(stems: list[tuple[str, str]], views: list[Pointing], where: Footprint) -> Any:
    """One row per light: its transform from the scene to the frame, seeing, transparency."""
    from astropy.table import Table

    affines = [v.affine(where.centre, where.frame_centre) for v in views]
    table = Table(
        {
            "frame": [s for s, _ in stems],
            "filter": [f for _, f in stems],
            "dx": [v.dx for v in views],
            "dy": [v.dy for v in views],
            "rotation": [v.rotation for v in views],
            "scale": [v.scale for v in views],
            "fwhm": [float(v.fwhm) if v.fwhm is not None else float("nan") for v in views],
            "transparency": [v.transparency for v in views],
            "sky": [v.sky for v in views],
            **{name: [float(a[i, j]) for a in affines] for name, (i, j) in _AFFINE.items()},
        },
        units={"dx": "pix", "dy": "pix", "rotation": "deg", "fwhm": "pix"},
    )
    table.meta["scene_shape"] = list(where.shape)
    table.meta["scene_centre"] = list(where.centre)
    table.meta["frame_centre"] = list(where.frame_centre)
    table.meta["comment"] = [
        "scene (x, y) to frame: x_f = a11 x + a12 y + tx, y_f = a21 x + a22 y + ty",
        "= scale R(rotation) (p - scene_centre) + frame_centre + (dx, dy); 0-based pixels",
        "fwhm: seeing of the frame, pixels; transparency: relative throughput; sky: relative "
        "sky brightness",
    ]
    return table


def _ecsv(table: Any) -> str:
    import io

    buffer = io.StringIO()
    table.write(buffer, format="ascii.ecsv")
    return buffer.getvalue()


def _write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; a file that already holds it is left untouched
    (its time too), as the FITS files are, so that a rerun of the same night changes
    nothing a reduction keys on."""
    try:
        if path.is_file() and path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


def _remove_stale(folder: Path, written: set[Path]) -> None:
    """Remove what an earlier simulation wrote into ``folder`` and this one did not.

    Only files that are the simulator's own (FITS with SIMSEED, or its two text files)
    go; anything else is left in place with a log message, since it is not ours to delete.
    """
    for path in sorted(folder.iterdir()):
        if path in written or not path.is_file():
            continue
        ours = path.name in {"stars.ecsv", "detector.json"}
        if path.suffix.lower() == ".fits":
            try:
                with catching_warnings():
                    warnings.simplefilter("ignore")
                    ours = "SIMSEED" in fits.getheader(path)
            except (OSError, ValueError):
                ours = False
        if ours:
            path.unlink()
            log.debug("removed %s, left by an earlier simulation", path)
        else:
            log.warning("%s: not written by this simulation; left in place", path)


__all__ = ["DEFAULT_COSMIC_RATE", "Night", "night"]
