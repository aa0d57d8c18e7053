"""A combine product made in parts, as a cluster does when one task per product would not
fit a worker: each input prepared on its own (:func:`prepare`), a shared :func:`setup`, row
bands (:func:`rows`), then :func:`assemble`; the result equals :func:`~ccdcal.pipeline.
recipes.build` of the whole product bit for bit (tested)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..calibration import exposure_time
from ..cosmic import median_model
from ..errors import CcdcalError
from ..frame import Frame
from ..masters import (
    finish_bias,
    finish_dark,
    finish_flat,
    flat_spec,
    prepare_dark,
    prepare_flat,
    preprocess,
    with_exptime,
)
from ..stacking import Combination, Rows, Setup
from .products import Product
from .recipes import (
    History,
    _aligned,
    _checked_and_aligned,
    _flags_against_median,
    _stack,
    _stack_options,
    finish_stack,
    master,
    stack_inputs,
    write,
)


@dataclass(frozen=True)
class Prepared:
    """A combine product's inputs ready to combine (files), and how to combine them."""

    inputs: list[Path]
    combination: Combination
    setup: Setup
    history: History
    exptime: float | None = None
    exptimes: list[float | None] | None = None
    left_out: list[str] = field(default_factory=list)

    def __sizeof__(self) -> int:
        """A few bytes a file: what Dask's memory accounting counts (see :class:`Rows`)."""
        return 4096 + 64 * len(self.inputs)


def scratch(product: Product) -> Path:
    """The folder where a product made in parts keeps its prepared inputs."""
    return product.path.parent / f".ccdcal-prepared-{product.label}"


def _scratch_file(product: Product, index: int, frame: Frame, suffix: str = "") -> Path:
    folder = scratch(product)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{index:05d}{'-' + suffix if suffix else ''}.fits"
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_hdulist().writeto(tmp, overwrite=True)  # a scratch copy: no checksums, no fsync
    tmp.replace(path)
    return path


def prepare(product: Product, index: int, after: Any = None) -> tuple[Path, float | None] | None:
    """Input ``index`` of a product made in parts, prepared as its recipe prepares it: for a
    master, the raw frame's overscan, trim, bias and dark, written to the product's scratch
    folder; for a stack, the light resampled onto the stack's grid (or the light's own
    file when it does not move; None when the registration leaves it out). The file and
    its exposure time."""
    options = product.options
    if product.kind == "stack":
        _, registration, interpolation, exposures = _stack_options(product)
        chosen = stack_inputs(product.inputs, registration, exposures)
        light = product.inputs[index]
        if light not in chosen.paths:
            return None
        if chosen.transforms[chosen.paths.index(light)] is None:
            return light, None
        frame = _aligned(chosen, interpolation, Frame.read(light))
        return _scratch_file(product, index, frame), None
    exptimes = options.get("exptimes")
    frame = with_exptime(
        Frame.read(product.inputs[index]), None if exptimes is None else exptimes[index]
    )
    pre = options["preprocess"]
    if product.kind == "bias":
        out = preprocess(frame, **pre)
    elif product.kind == "dark":
        out = prepare_dark(frame, bias=master(options["bias"]), **pre)
    else:
        out = prepare_flat(frame, bias=master(options["bias"]), dark=master(options["dark"]), **pre)
    return _scratch_file(product, index, out), exposure_time(out)


def model(
    product: Product,
    prepared: list[tuple[Path, float | None] | None],
    memory_limit: int | None = None,
) -> Path | None:
    """For a stack whose lights' seeing differs, the median of its aligned lights (written
    to its scratch folder), against which :func:`check` flags each light's cosmic rays;
    None for any other stack."""
    _, registration, _, exposures = _stack_options(product)
    chosen = stack_inputs(product.inputs, registration, exposures)
    if not _flags_against_median(chosen):
        return None
    inputs = [p for p, _ in (i for i in prepared if i is not None)]
    median = median_model(inputs, throughput=chosen.throughput, memory_limit=memory_limit)
    folder = scratch(product)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "median.fits"
    tmp = path.with_name(f".{path.name}.tmp")
    median.to_hdulist().writeto(tmp, overwrite=True)  # a scratch file: no checksums
    tmp.replace(path)
    return path


def check(
    product: Product,
    index: int,
    median: Path | None,
    prepared: tuple[Path, float | None] | None,
) -> tuple[Path, float | None] | None:
    """Light ``index`` of a stack with its cosmic rays flagged against ``median`` (see
    :func:`model`), then aligned, in the scratch folder; ``prepared`` as it is without a
    median."""
    if median is None or prepared is None:
        return prepared
    _, registration, interpolation, exposures = _stack_options(product)
    chosen = stack_inputs(product.inputs, registration, exposures)
    frame = _checked_and_aligned(chosen, interpolation, Frame.read(median),
                                 Frame.read(product.inputs[index]))  # fmt: skip
    return _scratch_file(product, index, frame, suffix="checked"), None


def setup(
    product: Product,
    inputs: list[tuple[Path, float | None] | None] | None = None,
    memory_limit: int | None = None,
    after: Any = None,
) -> Prepared:
    """What every band of a combine product shares: its inputs (the prepared files and
    their exposure times, from :func:`prepare`; default the product's own inputs), its
    combine and their setup. ``after`` is ignored (see :func:`build`)."""
    inputs = None if inputs is None else [i for i in inputs if i is not None]
    files = list(product.inputs) if inputs is None else [path for path, _ in inputs]
    exptime = None
    if inputs is not None and product.kind == "dark":
        times = {t for _, t in inputs}
        if len(times) > 1:  # as master_dark refuses them
            raise CcdcalError(
                f"darks of different exposure times combined together: {sorted(map(str, times))}"
            )
        exptime = times.pop()
    options = product.options
    exptimes = None
    left_out: list[str] = []
    if product.kind == "stack":
        chosen, combination, history = _stack(
            product.inputs, memory_limit, *_stack_options(product)
        )
        if inputs is not None and chosen.kept is not None:  # the prepared lights screening kept
            files = [files[i] for i in chosen.kept]
        files = chosen.paths if inputs is None else files
        exptimes = chosen.exptimes
        left_out = chosen.left_out
    else:
        if inputs is not None and product.kind == "flat":
            exptimes = [t for _, t in inputs]  # the dark was scaled to each
        spec = options["combine"]
        spec = flat_spec(spec) if product.kind == "flat" else spec
        combination = spec.limited(memory_limit).combination()
        history = _master_history(product)
    return Prepared(files, combination, combination.setup(files), history, exptime, exptimes,
                    left_out)  # fmt: skip


def _master_history(product: Product) -> History:
    o = product.options
    if product.kind == "bias":
        return {"method": o["combine"].method}
    if product.kind == "dark":
        return {"exptime": o["exptime"]}
    return {"filter": o["filter"]}


def rows(prepared: Prepared, index: int, count: int) -> Rows | None:
    """Band ``index`` of ``count`` equal bands of output rows (None when the image has
    fewer rows than bands)."""
    ny = prepared.setup.shape[0]
    y0, y1 = index * ny // count, (index + 1) * ny // count
    if y0 == y1:
        return None
    return prepared.combination.rows(prepared.inputs, prepared.setup, y0, y1)


def assemble(product: Product, prepared: Prepared, parts: list[Rows | None]) -> Path:
    """Put the bands together, finish the product as its recipe does, write it, and remove
    the scratch folder."""
    combined = prepared.combination.assemble(prepared.setup, [p for p in parts if p])
    count = len(prepared.inputs)
    o = product.options
    noise = o.get("noise")
    if product.kind == "bias":
        frame = finish_bias(combined, count, noise=noise)
    elif product.kind == "dark":
        frame = finish_dark(combined, count, exptime=prepared.exptime,
                            bias=master(o["bias"]), noise=noise)  # fmt: skip
    elif product.kind == "flat":
        frame = finish_flat(combined, count, min_response=o["min_response"],
                            bias=master(o["bias"]), dark=master(o["dark"]),
                            exptimes=prepared.exptimes or [], noise=noise)  # fmt: skip
    else:
        frame = finish_stack(combined, prepared.exptimes, prepared.left_out)
    path = write(frame, product, prepared.history)
    shutil.rmtree(scratch(product), ignore_errors=True)
    return path


__all__ = ["Prepared", "assemble", "check", "model", "prepare", "rows", "scratch", "setup"]
