"""A whole simulated observing night: raw FITS files as a camera writes them, and the truth.

Examples
--------
>>> import tempfile
>>> night_ = night(tempfile.mkdtemp(), seed=1, shape=(32, 32), nbias=2, ndark=2, nflat=2,
...                nlight=2)
>>> sorted(p.name for p in night_.raw)[:3]
['bias_001.fits', 'bias_002.fits', 'dark_060s_001.fits']
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..frame import Frame
from .detector import Detector
from .scene import Scene

log = logging.getLogger(__name__)

#: the tutorial's cosmic rays: about 20 hits on 200x200 pixels in 60 s
DEFAULT_COSMIC_RATE = 20 / (200 * 200 * 60)

# streams of randomness, one per purpose, so that changing how many frames of one kind are
# taken does not change the others
_DETECTOR, _SCENE, _BIAS, _DARK, _FLAT, _LIGHT = range(6)


@dataclass
class Night:
    """What :func:`night` wrote."""

    folder: Path
    detector: Detector
    scene: Scene
    raw: list[Path] = field(default_factory=list)
    truth: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_dir(self) -> Path:
        """The folder of raw frames."""
        return self.folder / "raw"


def _rng(seed: int, stream: int, index: int = 0, sub: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index, sub]))


def _tlabel(t: float) -> str:
    return f"{int(t):03d}s" if float(t).is_integer() else f"{t:g}s".replace(".", "p")


def night(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    shape: tuple[int, int] = (200, 200),
    nbias: int = 25,
    ndark: int = 15,
    nflat: int = 15,
    nlight: int = 10,
    filters: Sequence[str] = ("V",),
    dark_exptime: float = 60.0,
    light_exptime: float = 60.0,
    flat_exptime: float = 5.0,
    flat_level: float = 30_000.0,
    overscan: int = 0,
    gain: float = 1.0,
    read_noise: float = 8.0,
    bias_level: float = 500.0,
    dark_rate: float = 0.2,
    hot_fraction: float = 0.001,
    vignetting: float = 0.15,
    pixel_response: float = 0.02,
    full_well: float = 100_000.0,
    bias_drift: float = 0.0,
    cosmic_rate: float = DEFAULT_COSMIC_RATE,
    nstars: int = 30,
    fwhm: float = 3.0,
    sky: float = 100.0,
    object: str = "SIMFIELD",
) -> Night:
    """Simulate a night into ``out_dir/raw`` (frames) and ``out_dir/truth`` (what is true).

    The detector and the scene are drawn from ``seed``; every frame has its own stream of
    randomness derived from the seed, its kind and its number. The same seed gives
    byte-identical files.

    Parameters
    ----------
    out_dir
        Folder to write into (created).
    seed
        The seed of everything.
    shape
        (ny, nx) of the science area (raw frames add ``overscan`` columns).
    nbias, ndark, nflat, nlight
        Frames of each kind (flats and lights per filter).
    filters
        Filter names; lights and flats are taken in each.
    dark_exptime, light_exptime, flat_exptime
        Exposure times in seconds.
    flat_level
        Electrons of a flat at response 1.
    overscan, gain, read_noise, bias_level, dark_rate, hot_fraction, vignetting,
    pixel_response, full_well, bias_drift
        The detector (see :meth:`Detector.create`).
    cosmic_rate
        Cosmic-ray hits per pixel per second.
    nstars, fwhm, sky
        The scene: stars, their FWHM, and the sky in electrons per ``light_exptime``.
    object
        OBJECT of the lights.

    Returns
    -------
    Night
        Paths written, the detector and the scene.
    """
    out = Path(out_dir)
    raw_dir, truth_dir = out / "raw", out / "truth"
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    det = Detector.create(
        seed=seed, shape=shape, gain=gain, read_noise=read_noise, bias_level=bias_level,
        dark_rate=dark_rate, hot_fraction=hot_fraction, vignetting=vignetting,
        pixel_response=pixel_response, full_well=full_well, overscan=overscan,
        bias_drift=bias_drift,
    )  # fmt: skip
    scene = Scene.random(shape, _rng(seed, _SCENE), nstars=nstars, fwhm=fwhm, sky=sky,
                         exptime=light_exptime)  # fmt: skip
    params: dict[str, Any] = {
        "seed": seed, "shape": list(shape), "nbias": nbias, "ndark": ndark, "nflat": nflat,
        "nlight": nlight, "filters": list(filters), "dark_exptime": dark_exptime,
        "light_exptime": light_exptime, "exptime": light_exptime, "flat_exptime": flat_exptime,
        "flat_level": flat_level, "overscan": overscan, "gain": gain, "read_noise": read_noise,
        "bias_level": bias_level, "dark_rate": dark_rate, "hot_fraction": hot_fraction,
        "vignetting": vignetting, "pixel_response": pixel_response, "full_well": full_well,
        "bias_drift": bias_drift, "cosmic_rate": cosmic_rate, "nstars": nstars, "fwhm": fwhm,
        "sky": sky, "object": object,
    }  # fmt: skip
    result = Night(out, det, scene, params=params)
    start = dt.datetime(2026, 1, 15, 1, 0, 0) + dt.timedelta(days=seed % 365)
    clock = [start]

    def write(frame: Frame, name: str, **extra: Any) -> None:
        frame.header["DATE-OBS"] = clock[0].strftime("%Y-%m-%dT%H:%M:%S")
        clock[0] += dt.timedelta(seconds=float(frame.header["EXPTIME"]) + 20)
        for key, value in extra.items():
            frame.header[key] = value
        path = raw_dir / name
        frame.write(path, dtype="uint16", step="simulate", deterministic=True,
                    params={"seed": seed})  # fmt: skip
        result.raw.append(path)

    for i in range(nbias):
        write(det.bias(_rng(seed, _BIAS, i)), f"bias_{i + 1:03d}.fits", OBJECT="bias")
    for i in range(ndark):
        write(det.dark(dark_exptime, _rng(seed, _DARK, i)),
              f"dark_{_tlabel(dark_exptime)}_{i + 1:03d}.fits", OBJECT="dark")  # fmt: skip
    for k, filt in enumerate(filters):
        for i in range(nflat):
            frame = det.flat(flat_level, filt, _rng(seed, _FLAT, i, k), exptime=flat_exptime)
            write(frame, f"flat_{filt}_{i + 1:03d}.fits", OBJECT=f"dome flat {filt}")
    for k, filt in enumerate(filters):
        for i in range(nlight):
            frame, crs = det.light(scene.rate, light_exptime, filt, _rng(seed, _LIGHT, i, k),
                                   cosmic_rate=cosmic_rate)  # fmt: skip
            stem = f"light_{filt}_{i + 1:03d}"
            write(frame, f"{stem}.fits", OBJECT=object)
            result.truth[f"cosmic_{stem}"] = _truth(
                truth_dir / f"cosmic_{stem}.fits", crs.astype(np.uint8), "cosmic-ray hits"
            )

    result.truth["scene"] = _truth(truth_dir / "scene.fits", scene.rate, "scene", "electron/s")
    for filt in filters:
        result.truth[f"flat_{filt}"] = _truth(
            truth_dir / f"flat_{filt}.fits", det.flat_response(filt), f"true flat {filt}"
        )
    result.truth["dark_current"] = _truth(
        truth_dir / "dark_current.fits", det.dark_current, "dark current", "electron/s"
    )
    result.truth["bias"] = _truth(truth_dir / "bias.fits", det.bias_pattern, "bias", "adu")
    result.truth["hot_pixels"] = _truth(
        truth_dir / "hot_pixels.fits", det.hot_pixels.astype(np.uint8), "hot pixels"
    )
    stars_path = truth_dir / "stars.ecsv"
    stars = scene.stars.copy()
    stars.meta["comment"] = "x, y: 0-based pixels of the science area; rates in electron/s"
    stars.write(stars_path, overwrite=True)
    result.truth["stars"] = stars_path
    detector_json = truth_dir / "detector.json"
    detector_json.write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")
    result.truth["detector"] = detector_json
    log.debug("simulated night: %d raw frames in %s", len(result.raw), raw_dir)
    return result


def _truth(path: Path, data: np.ndarray, what: str, unit: str | None = None) -> Path:
    frame = Frame(data, header={"OBJECT": (what, "simulation truth")})
    if unit:
        frame.header["BUNIT"] = unit
    # masks stay small integers; images are float32
    frame.write(path, deterministic=True, dtype="uint8" if data.dtype == np.uint8 else None)
    return path


__all__ = ["DEFAULT_COSMIC_RATE", "Night", "night"]
