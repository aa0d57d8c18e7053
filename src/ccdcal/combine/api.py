"""The front of the stacking engine: :func:`combine`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import flags
from ..errors import CcdcalError
from ..fitsio import clean_header
from ..frame import Frame
from ..provenance import add_history
from . import stream
from .rejection import NONE, NPARAM, Rejection
from .scaling import factors, needs_sample, sample_bytes

log = logging.getLogger(__name__)

_METHODS = {"mean": 0, "median": 1, "sum": 2}


def _weights_mode(weights: Any, n: int, method: str, all_var: bool) -> tuple[int, np.ndarray]:
    if weights is None:
        return 0, np.ones(n)
    if method == "median":
        raise ValueError("weights apply to method='mean' or 'sum', not 'median'")
    if isinstance(weights, str):
        if weights != "variance":
            raise ValueError(
                f"weights must be None, 'variance' or one number per input, not {weights!r}"
            )
        if not all_var:
            raise ValueError(
                "weights='variance' needs a variance plane in every input; some have none"
            )
        return 2, np.ones(n)
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"weights: expected one number per input ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"weights must be finite and positive, got {arr.tolist()}")
    return 1, arr


def combine(
    inputs: Sequence[Any],
    *,
    method: str = "mean",
    reject: Rejection | None = None,
    scale: Any = None,
    zero: Any = None,
    weights: Any = None,
    nkeep: int = 1,
    exclude: int = flags.EXCLUDE,
    memory_limit: int | str | None = None,
    keep_rejected: bool = False,
    scale_region: tuple[slice, slice] | None = None,
) -> Frame:
    """Stack frames pixel by pixel, with outlier rejection, streaming from files.

    Parameters
    ----------
    inputs
        FITS paths, 2-D arrays (or one (n, ny, nx) array) or :class:`~ccdcal.frame.Frame`
        objects, all of one shape. Files are opened once and read in row bands, so the stack
        never has to fit in memory.
    method
        ``"mean"`` (weighted when ``weights`` is given), ``"median"`` or ``"sum"``
        (mean of the values kept × number of valid inputs, so that a rejected outlier
        neither adds itself nor leaves a hole in the total; excluded inputs do not count).
    reject
        None or a rejection algorithm: :class:`SigmaClip`, :class:`MinMaxClip`,
        :class:`PercentileClip`, :class:`WinsorizedSigmaClip`, :class:`CCDClip`,
        :class:`ESDClip`.
    scale, zero, scale_region
        Frame *i* is multiplied by mean(s)/s_i and shifted by mean(z) - z_i, with s_i from
        ``scale`` (``"median"``, ``"mode"``, ``"exposure"`` or one level per frame) and z_i
        from ``zero`` (``"median"`` of the scaled frame, or one level per frame); statistics
        from ``scale_region`` = (slice_y, slice_x) (default the whole frame, sampled when
        large). See :mod:`ccdcal.combine.scaling`.
    weights
        None, one positive number per frame, or ``"variance"`` (inverse variance per pixel
        from the inputs' variance planes).
    nkeep
        Least number of values kept per pixel by the rejection.
    exclude
        Mask bits that exclude an input pixel (NaN and infinite values are always excluded).
    memory_limit
        Bytes (or text such as ``"2GB"``) for the outputs plus the band buffers; default a
        quarter of the available memory.
    keep_rejected
        Also return the ``REJECTED`` cube (n, ny, nx) uint8: 1 where a value was excluded
        or rejected.

    Returns
    -------
    Frame
        float32 ``data``; ``variance`` (propagated as Σw²v/(Σw)² when every input has one,
        else from the scatter of the kept values s²/n; × π/2 for the median, × n² for the
        sum); ``mask`` with ``NO_DATA`` where no value was left plus the flags set in every
        input; ``extras`` NCOMBINE, NREJLO, NREJHI (int16) per pixel; the first input's
        header with NCOMBINE and HISTORY.

    Examples
    --------
    >>> import numpy as np
    >>> stack = [np.full((2, 3), v, np.float32) for v in (1.0, 2.0, 3.0, 100.0)]
    >>> out = combine(stack, method="median")
    >>> out.data[0, 0], int(out.extras["NCOMBINE"][0, 0])
    (np.float32(2.5), 4)
    """
    import numba

    from . import kernels

    if method not in _METHODS:
        raise ValueError(f"method must be 'mean', 'median' or 'sum', not {method!r}")
    if reject is not None and not isinstance(reject, Rejection):
        raise TypeError(
            f"reject must be None or a rejection object such as SigmaClip(), "
            f"not {type(reject).__name__}"
        )
    if isinstance(nkeep, bool) or int(nkeep) != nkeep or nkeep < 0:
        raise ValueError(f"nkeep must be an integer >= 0, not {nkeep!r}")
    nkeep = int(nkeep)
    limit = stream.parse_bytes(memory_limit)
    if limit is None:
        limit = stream.default_memory_limit()
    exclude = int(exclude)

    direct = stream.direct_stack(inputs)
    sources = stream.open_sources(inputs)
    try:
        n = len(sources)
        ny, nx = sources[0].shape
        any_mask = any(s.has_mask for s in sources)
        all_mask = all(s.has_mask for s in sources)
        all_var = all(s.has_variance for s in sources)
        wmode, wframe = _weights_mode(weights, n, method, all_var)
        var_mode = 0 if all_var else 1

        if reject is None:
            algo, prm, lam = NONE, np.zeros(NPARAM), np.zeros((1, 1))
        else:
            algo, prm, lam = reject.kernel_args(n)
        ci, cj = kernels.sorting_network(n)

        out_data = np.empty((ny, nx), np.float32)
        out_var = np.empty((ny, nx), np.float32)
        out_n = np.empty((ny, nx), np.int16)
        out_lo = np.empty((ny, nx), np.int16)
        out_hi = np.empty((ny, nx), np.int16)
        out_mask = np.full((ny, nx), 0xFFFF if all_mask else 0, np.uint16)
        out_rej = np.empty((n, ny, nx) if keep_rejected else (n, 1, 1), np.uint8)

        use_var = all_var and (var_mode == 0 or wmode == 2)
        rows = stream.plan_rows(
            n,
            (ny, nx),
            memory_limit=limit,
            has_mask=any_mask,
            has_variance=use_var,
            keep_rejected=keep_rejected,
            in_place=direct is not None,
            open_files=sum(isinstance(s, stream.FileSource) for s in sources),
        )
        # memory-mapped files give their pages back every few MB, within the spare memory
        files = [s for s in sources if isinstance(s, stream.FileSource)]
        if files:
            spare_per_file = (
                limit
                - stream.used_bytes(n, (ny, nx), rows, any_mask, use_var, keep_rejected, len(files))
            ) // len(files)
            for source in files:
                source.release_bytes = int(min(max(spare_per_file, 0), 4 * 2**20))
        # the scaling sample is read (and freed) before the band buffers exist
        if needs_sample(scale, zero):
            need = ny * nx * stream.OUTPUT_BYTES_PER_PIXEL + sample_bytes(scale_region, (ny, nx))
            if need > limit:
                raise CcdcalError(
                    f"memory_limit={limit} bytes is too small to measure the scaling levels "
                    f"of frames of {ny}x{nx}: at least {need} bytes are needed"
                )
        fscale, fzero, scale_info = factors(
            sources,
            scale=scale,
            zero=zero,
            scale_region=scale_region,
            exclude=exclude,
        )
        log.debug("combine: %d frames of %dx%d in bands of %d rows", n, ny, nx, rows)
        if direct is None:
            bands = stream.iter_bands(
                sources,
                rows,
                any_mask=any_mask,
                all_mask=all_mask,
                use_var=use_var,
                out_mask=out_mask,
            )
        else:
            none_mask = np.zeros((n, 1, 1), np.uint16)
            none_var = np.empty((n, 1, 1), np.float32)
            bands = (
                (y0, min(rows, ny - y0), direct, none_mask, none_var) for y0 in range(0, ny, rows)
            )
        with contextlib.closing(bands):
            for y0, r, buf, mbuf, vbuf in bands:
                y_in0 = 0 if direct is None else y0
                kernels.combine_band(
                    buf, y_in0, mbuf, any_mask, exclude, vbuf, use_var, fscale, fzero,
                    wframe, wmode, algo, prm, lam, ci, cj, _METHODS[method], nkeep, var_mode,
                    y0, r, out_data, out_var, out_n, out_lo, out_hi, out_rej, keep_rejected,
                    numba.get_num_threads(),
                )  # fmt: skip
    finally:
        for source in sources:
            source.close()

    if not all_mask:
        out_mask[:] = 0
    out_mask[out_n == 0] |= flags.NO_DATA
    header = clean_header(sources[0].header)
    header["NCOMBINE"] = (n, "number of frames combined")
    params: dict[str, Any] = {"method": method, "reject": reject}
    if scale is not None:
        params["scale"] = scale if isinstance(scale, str) else "levels"
        params["scale_levels"] = _fmt(scale_info["scale_levels"])
    if zero is not None:
        params["zero"] = zero if isinstance(zero, str) else "levels"
        params["zero_levels"] = _fmt(scale_info["zero_levels"])
    if weights is not None:
        params["weights"] = weights if isinstance(weights, str) else _fmt(list(weights))
    if reject is not None:
        params["nkeep"] = nkeep
    add_history(header, "combine", inputs=[s.label for s in sources], params=params)
    extras = {"NCOMBINE": out_n, "NREJLO": out_lo, "NREJHI": out_hi}
    if keep_rejected:
        extras["REJECTED"] = out_rej
    return Frame(out_data, variance=out_var, mask=out_mask, header=header, extras=extras)


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


__all__ = ["combine"]
