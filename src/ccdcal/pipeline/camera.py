"""The camera as a reduction measures it: gain and read noise from the night's flats and
biases (:func:`ccdcal.characterize`), compared with the header values the lights use.

The product ``masters/camera.ecsv`` holds the photon-transfer points as rows and the
measured values in its meta; the calibrated lights that take a measured (or a confirmed
``gain_unsure``) value need it, the others do not, so that a new measurement never makes
them stale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..classify import FrameInfo
from ..config import Config, Detector
from ..errors import CcdcalError

#: reduce reads at most this many pairs of biases and of flats (characterize: 8)
PAIRS = 4
#: and measures them in the central WINDOW² pixels: 1024² give the gain to ~0.2 %
WINDOW = 1024
#: a gain keyword of varying meaning is believed where it is within this of the measured
AGREEMENT = 0.30
#: e-/ADU that a real CCD or CMOS camera may have
PLAUSIBLE_GAIN = (0.02, 100.0)

History = dict[str, Any]


def camera_recipe(
    inputs: Sequence[Path],
    *,
    memory_limit: int | None,
    workdir: Path,
    frames: list[tuple[str, str | None, float | None, float | None]],
    detector: Detector,
    header: Mapping[str, tuple[str | None, float | None]],
    unsure: list[tuple[str, float]],
) -> tuple[Any, History]:
    """Measure gain and read noise from the biases and flats in ``inputs`` (their kind,
    filter, exposure time and saturation level in ``frames``), as a table.

    The meta holds ``gain``, ``rdnoise`` (e-; None where not measured), their errors and
    sources, the header values compared (``header``), which ``unsure`` gain keywords
    the measurement confirms (``confirmed``), and ``notices``.
    """
    from astropy.table import Table

    from ..camera import Characterization, characterize
    from ..collection import Collection

    infos = tuple(
        FrameInfo(Path(p), kind, filter=filt, exptime=t, saturation=sat)
        for p, (kind, filt, t, sat) in zip(inputs, frames, strict=True)
    )
    root = Path(inputs[0]).parent if inputs else Path(".")
    try:
        found = characterize(
            Collection(root, infos), config=Config(detector=_numbers_only(detector)),
            max_pairs=PAIRS, darks=False, bad_pixels=False, window=WINDOW,
        )  # fmt: skip
    except CcdcalError as err:  # a measurement nothing may need must not stop the night
        found = Characterization(notes=[f"camera not measured: {err}"])
    found.header = {k: (v[0], v[1]) for k, v in header.items()}
    notices = found.disagreements(AGREEMENT)
    confirmed = {}
    for key, value in unsure:
        confirmed[f"{key}={value:g}"] = ok = _confirms(value, found.gain)
        if not ok:
            why = (
                f"the flats measure {found.gain.value:.3g} e-/ADU"
                if found.gain is not None else "no pair of flats to confirm it"
            )  # fmt: skip
            notices.append(
                f"{key} = {value:g} not used as the gain (its meaning varies between cameras; "
                f'{why}): set [detector] gain, or gain = "measured"'
            )
    table = Table(
        rows=[(*p.files, p.level, p.variance, p.gain, p.error) for p in found.transfer],
        names=("first", "second", "level", "variance", "gain", "gain_error"),
        dtype=(str, str, float, float, float, float),
    )
    meta: dict[str, Any] = {"notices": notices, "notes": list(found.notes),
                            "confirmed": confirmed}  # fmt: skip
    for name, value in (("gain", found.gain), ("rdnoise", found.read_noise)):
        ok = value is not None and (name == "gain" or value.unit == "e-")
        meta[name] = float(value.value) if ok else None
        meta[f"{name}_error"] = float(value.error) if ok else None
        meta[f"{name}_source"] = value.source if ok else None
    if found.read_noise_adu is not None:
        meta["rdnoise_adu"] = float(found.read_noise_adu.value)
        meta["amplifier_noise_adu"] = found.amplifier_noise_adu
        meta["rdnoise_adu_source"] = found.read_noise_adu.source
    meta["header"] = {k: list(v) for k, v in header.items()}
    table.meta.update(meta)
    return table, {"pairs": len(found.transfer)}


def _numbers_only(detector: Detector) -> Detector:
    from dataclasses import replace

    return replace(
        detector,
        gain=detector.gain if isinstance(detector.gain, int | float) else None,
        rdnoise=detector.rdnoise if isinstance(detector.rdnoise, int | float) else None,
    )


def _confirms(value: float, measured: Any) -> bool:
    lo, hi = PLAUSIBLE_GAIN
    return (
        measured is not None and lo <= value <= hi
        and abs(value / measured.value - 1.0) <= AGREEMENT
    )  # fmt: skip


def read_camera(path: Path) -> Mapping[str, Any]:
    """The meta of a camera table (see :func:`camera_recipe`)."""
    from astropy.table import Table

    return Table.read(path, format="ascii.ecsv").meta


def resolve(
    calibrate: Mapping[str, Any], unsure: tuple[str, float] | None, camera: Path | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """A light's calibration options with ``"measured"`` gain and read noise replaced by the
    camera table's values, and a confirmed ``unsure`` gain taken; and the header cards that
    say where they came from (GAINSRC, RDNSRC)."""
    out = dict(calibrate)
    cards: dict[str, str] = {}
    meta = read_camera(camera) if camera is not None else {}
    if out.get("gain") == "measured":
        if meta.get("gain") is None:
            raise CcdcalError(f"{camera}: no gain measured from the flats ([detector] gain = "
                              "\"measured\" needs two flats of one level)")  # fmt: skip
        out["gain"] = float(meta["gain"])
        cards["GAINSRC"] = f"measured: {meta['gain_source']}"
    elif out.get("gain") is None and unsure is not None:
        key, value = unsure
        if meta.get("confirmed", {}).get(f"{key}={value:g}"):
            out["gain"] = float(value)
            cards["GAINSRC"] = f"{key} = {value:g}, confirmed by the flats"
    if out.get("read_noise") == "measured":
        if meta.get("amplifier_noise_adu") is None:
            raise CcdcalError(f"{camera}: no read noise measured ([detector] rdnoise = "
                              "\"measured\" needs two biases)")  # fmt: skip
        # in ADU from the biases, in electrons at the gain this light is calibrated with
        gain = out.get("gain")
        out["read_noise"] = float(meta["amplifier_noise_adu"]) * float(gain or 1.0)
        cards["RDNSRC"] = f"measured: {meta['rdnoise_adu_source']}"
    return out, cards


def camera_inputs(
    bias: Sequence[FrameInfo], flats: Mapping[str, Sequence[FrameInfo]]
) -> list[FrameInfo]:
    """The frames reduce measures the camera from: a few biases and the flats of the filter
    with the most (none when neither biases nor flats come in pairs)."""
    group: list[FrameInfo] = []
    if flats:
        # the filter with the most flats (the first by name among equals)
        group = list(max((flats[f] for f in sorted(flats)), key=len))
    if len(group) < 2 and len(bias) < 2:
        return []
    # one bias still gives the flats their level above the bias
    return list(bias[: 2 * PAIRS]) + (group[: 2 * PAIRS + 2] if len(group) >= 2 else [])


__all__ = ["camera_inputs", "camera_recipe", "read_camera", "resolve"]
