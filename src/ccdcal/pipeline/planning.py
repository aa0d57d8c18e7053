"""``plan``: a folder of raw frames to the graph of products that reduce it.

The folder is scanned and classified once; every decision of the reduction is taken here,
before any pixel is read: which frames make which master, which master dark and flat each
light gets, which lights make each stack, and what the user should be told.

Examples
--------
>>> import tempfile, ccdcal
>>> tmp = tempfile.mkdtemp()
>>> night = ccdcal.simulate.night(tmp + "/night", seed=3, shape=(48, 48), nbias=3, ndark=3,
...                               nflat=3, nlight=2)
>>> p = plan(tmp + "/night/raw", tmp + "/out")
>>> list(p.products)  # doctest: +NORMALIZE_WHITESPACE
['masters/camera.ecsv', 'masters/bias.fits', 'masters/dark_60s.fits', 'masters/flat_V.fits',
 'calibrated/light_V_001.fits', 'calibrated/light_V_002.fits',
 'stars/light_V_001.ecsv', 'stars/light_V_002.ecsv', 'registration/SIMFIELD_V.ecsv',
 'stacks/SIMFIELD_V.fits']
>>> p.products["calibrated/light_V_001.fits"].needs
('masters/bias.fits', 'masters/dark_60s.fits', 'masters/flat_V.fits')
>>> p.products["stacks/SIMFIELD_V.fits"].needs[-1]
'registration/SIMFIELD_V.ecsv'
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..calibration import MAX_DARK_SCALE
from ..classify import FrameInfo
from ..collection import Collection, scan
from ..config import Config, load_config
from ..errors import CcdcalError
from ..masters import CombineSpec, Noise
from ..overscan import Overscan
from ..wording import plural, verb
from . import recipes
from .camera import camera_inputs, camera_recipe
from .intake import check_sections, left_out, name_fields, no_lights, sensible
from .products import Plan, Product, product_key

PathLike = str | os.PathLike[str]


def choose_dark(
    exptime: float | None, available: Sequence[float], *, match: str = "nearest"
) -> float | None:
    """The exposure time of the master dark to use for a frame of ``exptime`` seconds.

    ``"exact"`` takes only the same exposure (None when there is none);
    ``"nearest"`` takes the same exposure when there is one, else the closest (scaled by the
    ratio of exposure times); ``"scale"`` always takes the longest (the least noisy per
    second) and scales it.

    Examples
    --------
    >>> choose_dark(30, [5, 15, 60])
    15
    >>> choose_dark(30, [5, 15, 60], match="scale")
    60
    """
    if not available:
        return None
    if match == "scale":
        return max(available)
    if exptime is None:
        return max(available)
    if exptime in available:
        return exptime
    if match == "exact":
        return None
    return min(available, key=lambda t: (abs(t - exptime), -t))


def safe_name(text: str) -> str:
    """``text`` as a file name: runs of other characters than letters, digits and ``_.+-``
    become ``_``.

    Examples
    --------
    >>> safe_name("NGC 2420 / B")
    'NGC_2420_B'
    """
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text.strip()).strip("_") or "none"


def _exptime_label(t: float) -> str:
    return f"{t:g}".replace(".", "p")


def output_name(relative: str) -> str:
    """The calibrated file's path below ``calibrated/``: the raw one's, as ``.fits``.

    Sub-folders are kept, so that two nights' ``light_001.fits`` do not overwrite each other.

    Examples
    --------
    >>> output_name("night1/light_001.fit.gz")
    'night1/light_001.fits'
    """
    folder, _, name = relative.replace(os.sep, "/").rpartition("/")
    for suffix in (".gz", ".fz", ".bz2"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    stem, dot, _ = name.rpartition(".")
    out = f"{stem}.fits" if dot else f"{name}.fits"
    return f"{folder}/{out}" if folder else out


@dataclass(frozen=True)
class _Groups:
    """The usable frames of a night, grouped as the reduction uses them."""

    bias: list[FrameInfo]
    darks: dict[float, list[FrameInfo]]
    flats: dict[str, list[FrameInfo]]
    lights: dict[tuple[str, str], list[FrameInfo]]


def _groups(collection: Collection, the_plan: Plan) -> _Groups:
    usable = sensible([f for f in collection.frames if f.error is None], the_plan.notices)
    lights = [f for f in usable if f.kind == "light"]
    if not lights:
        raise CcdcalError(no_lights(collection, the_plan.config))
    shape = lights[0].shape
    the_plan.shape = shape
    for f in usable:
        if f.kind in ("bias", "dark", "flat", "light") and f.shape != shape:
            raise CcdcalError(
                f"{f.path}: {f.kind} frame of shape {f.shape[1]}x{f.shape[0]} differs from the "
                f"lights' {shape[1]}x{shape[0]} ({lights[0].path.name}); move it out of the folder"
            )
    darks: dict[float, list[FrameInfo]] = {}
    for f in usable:
        if f.kind == "dark":
            darks.setdefault(float(f.exptime), []).append(f)
    lights = name_fields(lights, collection, the_plan.config.keywords.object, the_plan.notices)
    groups: dict[tuple[str, str], list[FrameInfo]] = {}
    for f in lights:
        groups.setdefault((f.object or "unknown", f.filter or "none"), []).append(f)
    wanted = {filt for _, filt in groups}
    flats: dict[str, list[FrameInfo]] = {}
    objects = the_plan.config.keywords.object
    for f in usable:
        if f.kind == "flat":
            filt = f.filter or "none"
            # a filter read from a flat's OBJECT ("V twil flat") is a guess: believed only
            # where the lights have that filter ("Flat 5s" names none)
            if f.sources.get("filter", "").split(" = ")[0] in objects and filt not in wanted:
                filt = "none"
            flats.setdefault(filt, []).append(f)
    for filt in sorted(set(flats) - wanted):
        n = len(flats[filt])
        if filt == "none":
            the_plan.notices.append(
                f"{plural(n, 'flat')} {verb(n, 'has', 'have')} no filter while the lights have "
                f"{', '.join(sorted(wanted))}: not used, never mixed with other filters; "
                "set the filter with a [[rules]] entry (see `ccdcal info --why`)"
            )
        else:
            the_plan.notices.append(
                f"{plural(n, 'flat')} in filter {filt!r}: no light in that filter; not used"
            )
        del flats[filt]
    for f in collection.frames:
        if f.error is not None:
            the_plan.failures.append((f.path, f.error))
        elif f.kind not in ("bias", "dark", "flat", "light") and "a ccdcal product" not in f.reason:
            the_plan.notices.append(f"{f.path.name}: type unknown ({f.reason}); not used")
    check_sections([f for f in usable if f.kind in ("bias", "dark", "flat", "light")], the_plan)
    return _Groups([f for f in usable if f.kind == "bias"], darks, flats, groups)


def plan(
    raw_dir: PathLike,
    out_dir: PathLike,
    *,
    config: Config | PathLike | None = None,
) -> Plan:
    """The products that reduce a folder of raw frames, in dependency order.

    Scans and classifies ``raw_dir`` (headers only) and decides every step: the master
    bias, a master dark per exposure time, a master flat per filter that has lights, each
    calibrated light with the masters it gets, and a stack per object and filter. Nothing
    is read beyond the headers and nothing is written.

    Parameters
    ----------
    raw_dir
        Folder of raw FITS files (searched recursively).
    out_dir
        Output folder the products are planned in.
    config
        A :class:`~ccdcal.config.Config`, or the path of a TOML file; default settings
        otherwise.

    Returns
    -------
    Plan
        The products, the notices and the unusable files; :meth:`Plan.table` prints it and
        :func:`ccdcal.pipeline.execute` builds it.

    Raises
    ------
    CcdcalError
        No such raw folder, an output folder inside it, no light frames, or frames of
        another shape than the lights'.
    """
    raw = Path(raw_dir)
    out = Path(out_dir)
    if not raw.is_dir():
        raise CcdcalError(f"{raw}: no such folder")
    if out.resolve() == raw.resolve() or raw.resolve() in out.resolve().parents:
        raise CcdcalError(f"{out}: the output folder must not be inside the raw folder {raw}")
    cfg = load_config(config) if isinstance(config, str | os.PathLike) else (config or Config())
    collection = scan(raw, config=cfg)
    # absolute paths: a cluster's workers do not share this process's working folder
    the_plan = Plan(raw_dir=raw, out_dir=out.resolve(), config=cfg, collection=collection)
    _Planner(the_plan, _groups(collection, the_plan)).run()
    return the_plan


class _Planner:
    """Adds the products of a night to a plan, part after part."""

    def __init__(self, the_plan: Plan, groups: _Groups) -> None:
        self.plan = the_plan
        self.groups = groups
        cfg = the_plan.config
        det = cfg.detector
        self.cfg = cfg
        self.masters = the_plan.out_dir / "masters"
        overscan = Overscan(
            det.overscan, order=det.overscan_order, sigma=det.overscan_sigma,
            axis=det.readout_axis,
        )  # fmt: skip
        self.preprocess: dict[str, Any] = {
            "biassec": det.biassec,
            "trimsec": det.trimsec,
            "overscan": overscan,
        }
        self.bias: Product | None = None
        self.darks: dict[float, Product] = {}
        self.flats: dict[str, Product] = {}
        self.undarked: set[float | None] = set()
        self.camera: Product | None = None
        self.overscaled: set[tuple[float, float]] = set()

    def add(
        self,
        name: str,
        kind: str,
        recipe: Any,
        inputs: Sequence[FrameInfo] | Sequence[Path],
        needs: Sequence[Product | None],
        options: dict[str, Any],
        about: dict[str, Any] | None = None,
    ) -> Product:
        paths = tuple(i.path.resolve() if isinstance(i, FrameInfo) else i for i in inputs)
        raw = [i.path for i in inputs if isinstance(i, FrameInfo)]
        deps = [p for p in needs if p is not None]
        old = self.plan.products.get(name)
        if old is not None:
            raise CcdcalError(
                f"{self.plan.out_dir / name}: both {_sources(old)} and {_sources(paths)} would "
                "make it; rename or move one (or set OBJECT or FILTER with a [[rules]] entry)"
            )
        key = product_key(kind, raw, [d.key for d in deps], options, root=self.plan.out_dir)
        product = Product(
            name=name,
            kind=kind,
            path=self.plan.out_dir / name,
            recipe=recipe,
            inputs=paths,
            needs=tuple(d.name for d in deps),
            options=options,
            key=key,
            about=about or {},
        )
        return self.plan.add(product)

    def master_options(self, kind: str, infos: Sequence[FrameInfo]) -> dict[str, Any]:
        first = infos[0]
        gain = _number(_gain(first, self.cfg))
        rn = _number(_rdnoise(first, self.cfg))
        return {
            "combine": CombineSpec.from_options(self.cfg.combine_options(kind)),
            "preprocess": self.preprocess,
            # for a master of one frame, whose variance no scatter gives
            "noise": Noise(gain, rn),
        }

    def run(self) -> None:
        self.add_masters()
        lights = self.add_lights()
        self.add_stacks(lights)
        for t, dark in sorted(self.overscaled):
            self.plan.notices.append(
                f"the nearest dark to frames of {t:g} s is of {dark:g} s: scaled ×{t / dark:.4g}, "
                f"beyond ×{MAX_DARK_SCALE:g}, it would amplify its own noise and level error; "
                "dark not subtracted from them"
            )
        if self.undarked:
            times = ", ".join(
                "unknown" if t is None else f"{t:g} s" for t in sorted(self.undarked, key=str)
            )
            self.plan.notices.append(
                f"no dark of the same exposure for lights or flats of {times}"
                + (" (without bias frames a dark cannot be scaled)" if self.bias is None else "")
                + ": dark not subtracted from them"
            )

    def add_camera(self) -> None:
        """The camera measured from a few biases and flats, when they come in pairs: compared
        with the header's gain and read noise, and the source of ``"measured"`` values."""
        g, det = self.groups, self.cfg.detector
        inputs = camera_inputs(g.bias, g.flats)
        lights = [i for infos in g.lights.values() for i in infos]
        # what a measurement needs, checked before any pixel is read
        leveled = bool(g.bias) or det.bias_level is not None or any(
            self._overscanned(i) for i in lights[:1])  # fmt: skip
        needs = {
            "gain": ("two flats of one filter and a bias level (biases, an overscan or "
                     "[detector] bias_level)",
                     any(len(v) >= 2 for v in g.flats.values()) and leveled),
            "rdnoise": ("two biases", len(g.bias) >= 2),
        }  # fmt: skip
        for name, value in (("gain", det.gain), ("rdnoise", det.rdnoise)):
            what, ok = needs[name]
            if value == "measured" and not ok:
                raise CcdcalError(
                    f'{self.plan.raw_dir}: [detector] {name} = "measured" needs {what}; '
                    "this folder has not"
                )
        if not inputs:
            return

        def header_value(name: str) -> tuple[str | None, float | None]:
            value = _gain(lights[0], self.cfg) if name == "gain" else _rdnoise(lights[0], self.cfg)
            if value == "measured" or value is None:
                return None, None
            if getattr(det, name) is not None:
                return "[detector]", float(value)
            return lights[0].sources.get(name, name).split(" = ")[0], float(value)

        unsure = sorted(
            {i.gain_unsure for i in lights if i.gain_unsure and _gain(i, self.cfg) is None}
        )
        self.camera = self.add(
            "masters/camera.ecsv", "camera", camera_recipe, inputs, [],
            {"frames": [(i.kind, i.filter, i.exptime, i.saturation) for i in inputs],
             "detector": det, "unsure": unsure,
             "header": {"gain": header_value("gain"), "rdnoise": header_value("rdnoise")}},
        )  # fmt: skip

    def add_masters(self) -> None:
        self.add_camera()
        g, notices = self.groups, self.plan.notices
        if g.bias:
            self.bias = self.add(
                "masters/bias.fits", "bias", recipes.bias_recipe, g.bias, [],
                self.master_options("bias", g.bias),
            )  # fmt: skip
        else:
            notices.append(
                "no bias frames: bias removed only by the overscan and by darks of equal exposure"
            )
        for t, infos in sorted(g.darks.items()):
            self.darks[t] = self.add(
                f"masters/dark_{_exptime_label(t)}s.fits", "dark", recipes.dark_recipe, infos,
                [self.bias],
                {**self.master_options("dark", infos), "bias": _path(self.bias), "exptime": t,
                 "exptimes": [f.exptime for f in infos]},
                {"exptime": t},
            )  # fmt: skip
        if not g.darks:
            notices.append("no dark frames: dark current not subtracted")
        for filt, infos in sorted(g.flats.items()):
            dark = self.dark_for(infos[0])
            self.flats[filt] = self.add(
                f"masters/flat_{safe_name(filt)}.fits", "flat", recipes.flat_recipe, infos,
                [self.bias, dark],
                {**self.master_options("flat", infos), "bias": _path(self.bias),
                 "dark": _path(dark), "exptimes": [f.exptime for f in infos],
                 "min_response": self.cfg.flat.min_response, "filter": filt},
                {"filter": filt},
            )  # fmt: skip

    def dark_for(self, info: FrameInfo) -> Product | None:
        """The master dark for a frame; without a master bias a dark still holds the bias,
        so it may only be subtracted unscaled, from a frame of the same exposure."""
        match = self.cfg.dark.match if self.bias is not None else "exact"
        chosen = choose_dark(info.exptime, list(self.darks), match=match)
        if (
            chosen is not None
            and info.exptime is not None
            and info.exptime / chosen > MAX_DARK_SCALE
        ):
            self.overscaled.add((info.exptime, chosen))
            chosen = None
        elif chosen is None and self.darks:
            self.undarked.add(info.exptime)
        return None if chosen is None else self.darks[chosen]

    def _overscanned(self, info: FrameInfo) -> bool:
        """Whether a frame's bias level comes off with its overscan."""
        det = self.cfg.detector
        biassec = info.biassec if det.biassec is None else det.biassec
        return det.overscan != "none" and bool(biassec) and biassec.casefold() != "none"

    def _leveled(self, info: FrameInfo) -> bool:
        """Whether the level no photon made is known for a light (see
        :func:`ccdcal.calibration.calibrate`): a master bias, a configured bias level, an
        overscan, or a dark of its exposure that holds the bias."""
        det = self.cfg.detector
        if self.bias is not None or det.bias_level is not None or self._overscanned(info):
            return True
        return choose_dark(info.exptime, list(self.darks), match="exact") is not None

    def add_lights(self) -> dict[tuple[str, str], list[Product]]:
        cfg, notices = self.cfg, self.plan.notices
        lights = self.groups.lights
        everyone = [i for infos in lights.values() for i in infos]
        unconfirmed = [i for i in everyone if _gain(i, cfg) is None and i.gain_unsure is not None]
        if unconfirmed and self.camera is None:
            key, value = unconfirmed[0].gain_unsure
            notices.append(
                f"{key} = {value:g} not used as the gain of {plural(len(unconfirmed), 'light')}"
                " (its meaning varies between cameras, "
                "and no pair of flats can confirm it): they stay in ADU; set [detector] gain"
            )
        no_gain = [i for i in everyone if _gain(i, cfg) is None and i.gain_unsure is None]
        if no_gain:
            notices.append(
                f"no gain for {plural(len(no_gain), 'light')} (no "
                f"{'/'.join(cfg.keywords.gain)} keyword, no [detector] gain in the config): "
                "they and their stacks stay in ADU"
                + (' (or set [detector] gain = "measured")' if self.camera is not None else "")
            )
        sources = self.plan.sources
        sources["gain"] = _origin(everyone, "gain", cfg.detector.gain)
        sources["read noise"] = _origin(everyone, "rdnoise", cfg.detector.rdnoise)
        sources["saturation"] = (
            f"config ([detector] saturation = {cfg.detector.saturation:g})"
            if cfg.detector.saturation is not None
            else _origin(everyone, "saturation", None).replace(
                "none", "none in the headers: the ADC's ceiling where the data reach it")
        )  # fmt: skip
        sources["filter"] = _origin(everyone, "filter", None)
        sources["exposure"] = _origin(everyone, "exptime", None)
        unleveled = [i for infos in lights.values() for i in infos if not self._leveled(i)]
        if unleveled:
            notices.append(
                f"no bias level known for {plural(len(unleveled), 'light')} (no bias frames, "
                "no dark of "
                "their exposure, no overscan): their variance counts no photon noise; set "
                "[detector] bias_level"
            )
        by_group: dict[tuple[str, str], list[Product]] = {}
        for (obj, filt), infos in lights.items():
            flat = self.flats.get(filt)
            if flat is None:
                notices.append(
                    f"no flat for filter {filt!r}: {plural(len(infos), 'light')} of {obj} "
                    f"{verb(len(infos), 'stays', 'stay')} unflattened"
                )
            for info in infos:
                dark = self.dark_for(info)
                name = "calibrated/" + output_name(self.plan.collection.relative(info))
                options = self.light_options(info, filt, dark, flat)
                camera = self.camera if options["camera"] is not None else None
                product = self.add(
                    name, "light", recipes.light_recipe, [info], [self.bias, dark, flat, camera],
                    options,
                    {"object": obj, "filter": filt, "exptime": info.exptime},
                )  # fmt: skip
                by_group.setdefault((obj, filt), []).append(product)
        return by_group

    def light_options(
        self, info: FrameInfo, filt: str, dark: Product | None, flat: Product | None
    ) -> dict[str, Any]:
        cfg = self.cfg
        det = cfg.detector
        header = {}
        if info.filter:
            header["FILTER"] = (info.filter, "filter (as classified by ccdcal)")
        if info.object:
            header["OBJECT"] = (info.object, "object (as classified by ccdcal)")
        gain, rn = _gain(info, cfg), _rdnoise(info, cfg)
        unsure = info.gain_unsure if gain is None else None
        # only lights that take a measured value depend on the measurement
        measured = "measured" in (gain, rn) or unsure is not None
        return {
            "bias": _path(self.bias),
            "dark": _path(dark),
            "flat": _path(flat),
            "camera": _path(self.camera) if measured and self.camera is not None else None,
            "unsure": unsure,
            "calibrate": dict(
                gain=gain,
                read_noise=rn,
                saturation=det.saturation if det.saturation is not None else info.saturation,
                exptime=info.exptime,
                flat_min=cfg.flat.min_response,
                bias_level=det.bias_level,
                **self.preprocess,
            ),
            "header": header,
            "cosmic": dict(cfg.cosmic.params) if cfg.cosmic.method == "lacosmic" else None,
            "history": {
                "bias": self.bias is not None,
                "dark": None if dark is None else dark.path.name,
                "flat": None if flat is None else filt,
            },
        }

    def add_stacks(self, lights: dict[tuple[str, str], list[Product]]) -> None:
        combine = self.cfg.combine_options("light")
        for (obj, filt), group in lights.items():
            # lights in ADU (no gain) and in electrons are never stacked together
            adu = [p for p in group if _in_adu(p)]
            if adu and len(adu) < len(group):
                why = (
                    f"lights of {obj} in {filt} without a gain, among lights with one: "
                    "calibrated (in ADU) but not stacked with the others"
                )
                left_out([p.inputs[0] for p in adu], why, self.plan.notices)
                group = [p for p in group if p not in adu]
            times = sorted({p.about["exptime"] for p in group}, key=lambda t: (t is None, t or 0))
            if len(times) > 1 and combine.exposures == "separate":
                self.plan.notices.append(
                    f"lights of {obj} in {filt} have {len(times)} exposure times "
                    f"({', '.join(_seconds(t) for t in times)}): one stack each "
                    '([combine.light] exposures = "scale" stacks them together)'
                )
                parts = [(t, [p for p in group if p.about["exptime"] == t]) for t in times]
            else:
                parts = [(None, group)]
            for t, products in parts:
                label = f"{safe_name(obj)}_{safe_name(filt)}"
                about = {"object": obj, "filter": filt}
                if t is not None or (len(parts) > 1):
                    label += f"_{_exptime_label(t) if t is not None else 'unknown'}s"
                    about["filter"] = f"{filt} {_seconds(t)}"
                options: dict[str, Any] = {"combine": combine, "registration": None}
                if len(times) > 1 and combine.exposures == "scale":
                    options["exposures"] = [p.about["exptime"] for p in products]
                needs: list[Product] = list(products)
                registration = self.add_registration(label, products)
                if registration is not None:
                    options["registration"] = registration.path
                    options["interpolation"] = self.cfg.register.interpolation
                    needs.append(registration)
                self.add(
                    f"stacks/{label}.fits", "stack", recipes.stack_recipe,
                    [p.path for p in products], needs, options, about,
                )  # fmt: skip

    def add_registration(self, label: str, lights: list[Product]) -> Product | None:
        """The products that align the lights of one stack: each light's stars, and the
        registration of them all (None when registration is off, or for a single light)."""
        reg = self.cfg.register
        if reg.method == "none" or len(lights) < 2:
            return None
        stars = []
        for light in lights:
            name = "stars/" + light.name.removeprefix("calibrated/").removesuffix(".fits")
            stars.append(self.add(
                f"{name}.ecsv", "stars", recipes.stars_recipe, [light.path], [light],
                {"threshold": reg.threshold}, dict(light.about),
            ))  # fmt: skip
        select = self.cfg.select
        options = {
            "stars": [s.path for s in stars],
            "method": reg.method,
            "reference": reg.reference,
            "transform": reg.transform,
            "grid": reg.grid,
            "select": (select.max_fwhm, select.min_stars, select.min_throughput),
        }
        return self.add(
            f"registration/{label}.ecsv", "registration", recipes.registration_recipe,
            [light.path for light in lights], stars, options, {"stack": label},
        )  # fmt: skip


def _in_adu(light: Product) -> bool:
    """Whether a calibrated light will stay in ADU: no gain, and no unsure one to confirm."""
    return light.options["calibrate"]["gain"] is None and light.options["unsure"] is None


def _seconds(t: float | None) -> str:
    return "unknown" if t is None else f"{t:g} s"


def _path(product: Product | None) -> recipes.MasterRef | None:
    """How a recipe finds a master it needs: its path and the key its file must carry."""
    return None if product is None else recipes.MasterRef(product.path, product.key)


def _sources(what: Product | Sequence[Path]) -> str:
    paths = what.inputs if isinstance(what, Product) else what
    return paths[0].name if len(paths) == 1 else f"{len(paths)} files ({paths[0].name}, ...)"


def _gain(info: FrameInfo, cfg: Config) -> float | str | None:
    """The gain a light is calibrated with: the config's (a number or ``"measured"``), else
    the header's."""
    return cfg.detector.gain if cfg.detector.gain is not None else info.gain


def _rdnoise(info: FrameInfo, cfg: Config) -> float | str | None:
    return cfg.detector.rdnoise if cfg.detector.rdnoise is not None else info.rdnoise


def _number(value: float | str | None) -> float | None:
    """A configured value where it is a number (not ``"measured"``)."""
    return value if isinstance(value, int | float) else None


def _origin(infos: Sequence[FrameInfo], name: str, configured: Any) -> str:
    """Where a quantity of the lights came from, for the run summary: the config, the
    measurement, or the header keywords with how many lights each."""
    if configured == "measured":
        return "measured from the night's frames (masters/camera.ecsv)"
    if configured is not None:
        return f"config ([detector] {name} = {configured:g})"
    counts: dict[str, int] = {}
    for info in infos:
        text = info.sources.get(name)
        if text is None and name == "gain" and info.gain_unsure is not None:
            text = f"{info.gain_unsure[0]} = {info.gain_unsure[1]:g} where the flats confirm it"
        counts[text or "none"] = counts.get(text or "none", 0) + 1
    if len(counts) == 1:
        return next(iter(counts))
    return "; ".join(f"{text} ({plural(n, 'light')})" for text, n in counts.items())


__all__ = ["choose_dark", "output_name", "plan", "safe_name"]
