"""The front of the stacking engine: :func:`combine`, and the same combine in row bands.

A combine has three phases, which :func:`combine` runs one after another on the inputs it
opened once:

1. :meth:`Combination.setup` reads what every row of the output shares: the inputs' shape,
   planes and header, and the scale factors and zero offsets (from a sample of every frame);
2. :meth:`Combination.rows` combines output rows ``y0:y1`` from those rows of every input;
3. :meth:`Combination.assemble` puts the rows together into the output frame.

The pipeline runs the phases as separate tasks when a stack is large: one setup, many row
bands spread over the workers of a cluster, one assembly. Each output pixel depends only on
its own inputs and on the shared setup, so the result is the same, bit for bit, however the
rows are split.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from astropy.io import fits

from .. import flags
from ..errors import CcdcalError, CcdcalTypeError
from ..fitsio import COMMON_EXT, clean_header
from ..frame import Frame
from ..provenance import add_history
from . import stream
from .rejection import AVSIG, NONE, NPARAM, VARCLIP, AvSigClip, Rejection, line_sigmas
from .scaling import factors, needs_sample, sample_bytes

log = logging.getLogger(__name__)

_METHODS = {"mean": 0, "median": 1, "sum": 2}


def _weights_mode(weights: Any, n: int, method: str, all_var: bool) -> tuple[int, np.ndarray]:
    if weights is None:
        return 0, np.ones(n)
    if method == "median":
        raise CcdcalError("weights apply to method='mean' or 'sum', not 'median'")
    if isinstance(weights, str):
        if weights != "variance":
            raise CcdcalError(
                f"weights must be None, 'variance' or one number per input, not {weights!r}"
            )
        if not all_var:
            raise CcdcalError(
                "weights='variance' needs a variance plane in every input; some have none"
            )
        return 2, np.ones(n)
    arr = np.asarray(weights, dtype=np.float64)
    if arr.shape != (n,):
        raise CcdcalError(f"weights: expected one number per input ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise CcdcalError(f"weights must be finite and positive, got {arr.tolist()}")
    return 1, arr


@dataclass(frozen=True, eq=False)
class Setup:
    """What every row band of one combine shares, measured once (plain data: it travels to
    the workers that combine the bands).

    Attributes
    ----------
    shape
        ``(ny, nx)`` of every input and of the output.
    fscale, fzero
        Each frame's value becomes ``x * fscale + fzero`` (float32, one per frame).
    scale_info
        The measured or given levels, for the provenance.
    header
        The first input's header, cleaned of its structural cards.
    labels
        A short name of each input, for the provenance.
    any_mask, all_mask, all_var
        Whether some or every input has a mask plane, and whether every one has variance.
    any_common
        Whether some input carries the masters' part of its variance (VARCOMMON; with a
        variance in every input).
    """

    shape: tuple[int, int]
    fscale: np.ndarray
    fzero: np.ndarray
    scale_info: dict[str, list[float]]
    header: fits.Header
    labels: list[str]
    any_mask: bool
    all_mask: bool
    all_var: bool
    any_common: bool = False

    @property
    def n(self) -> int:
        """Number of inputs."""
        return len(self.labels)


@dataclass(eq=False)
class Rows:
    """Output rows ``y0:y1`` of a combine: the planes of :func:`combine`'s result there."""

    y0: int
    y1: int
    data: np.ndarray
    variance: np.ndarray
    mask: np.ndarray
    ncombine: np.ndarray
    nrejlo: np.ndarray
    nrejhi: np.ndarray
    rejected: np.ndarray | None = None
    common: np.ndarray | None = None

    def __sizeof__(self) -> int:
        """Its planes' bytes: what Dask's memory accounting counts as a band travels between
        workers (``dask.sizeof`` falls back to ``sys.getsizeof``, which asks this)."""
        planes = (self.data, self.variance, self.mask, self.ncombine, self.nrejlo,
                  self.nrejhi, self.rejected, self.common)  # fmt: skip
        return object.__sizeof__(self) + sum(p.nbytes for p in planes if p is not None)


@dataclass(frozen=True)
class Combination:
    """A combine's options, checked once; :meth:`__call__` runs it (see :func:`combine`).

    The phases :meth:`setup`, :meth:`rows` and :meth:`assemble` let a large combine run as
    separate tasks: ``assemble(setup, [rows(inputs, setup, y0, y1) for each band])`` equals
    ``combine(inputs)`` bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> stack = [np.full((4, 3), v, np.float32) for v in (1.0, 2.0, 6.0)]
    >>> c = Combination(method="median")
    >>> s = c.setup(stack)
    >>> out = c.assemble(s, [c.rows(stack, s, 0, 2), c.rows(stack, s, 2, 4)])
    >>> bool(np.array_equal(out.data, c(stack).data))
    True
    """

    method: str = "mean"
    reject: Rejection | None = None
    scale: Any = None
    zero: Any = None
    weights: Any = None
    nkeep: int = 1
    exclude: int = flags.EXCLUDE
    memory_limit: int | str | None = None
    keep_rejected: bool = False
    scale_region: tuple[slice, slice] | None = field(default=None)
    groups: Sequence[int] | None = None
    thresholds: tuple[float | None, float | None] | None = None
    grow: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise CcdcalError(f"method must be 'mean', 'median' or 'sum', not {self.method!r}")
        if self.reject is not None and not isinstance(self.reject, Rejection):
            raise CcdcalTypeError(
                f"reject must be None or a rejection object such as SigmaClip(), "
                f"not {type(self.reject).__name__}"
            )
        nkeep = self.nkeep
        if isinstance(nkeep, bool) or int(nkeep) != nkeep:
            raise CcdcalError(f"nkeep must be an integer, not {nkeep!r}")
        object.__setattr__(self, "nkeep", int(nkeep))
        object.__setattr__(self, "exclude", int(self.exclude))
        if not (math.isfinite(self.grow) and self.grow >= 0):
            raise CcdcalError(f"grow must be a radius >= 0 in pixels, not {self.grow!r}")
        if self.thresholds is not None:
            lo, hi = self.thresholds
            lo = None if lo is None else float(lo)
            hi = None if hi is None else float(hi)
            if any(v is not None and math.isnan(v) for v in (lo, hi)) or (
                lo is not None and hi is not None and lo > hi
            ):
                raise CcdcalError(
                    f"thresholds must be (low, high) with low <= high, not {self.thresholds!r}"
                )
            object.__setattr__(self, "thresholds", (lo, hi))
        if self.groups is not None:
            groups = tuple(int(g) for g in self.groups)
            if any(g < 0 for g in groups):
                raise CcdcalError(f"groups must be integers >= 0, not {list(self.groups)}")
            object.__setattr__(self, "groups", groups)
        stream.parse_bytes(self.memory_limit)  # a bad size is refused before any reading

    # ------------------------------------------------------------------ phases
    def __call__(self, inputs: Sequence[Any]) -> Frame:
        """Combine ``inputs`` (files opened once) into one frame."""
        if isinstance(self.reject, AvSigClip) and self.reject.line_sigma is None:
            return replace(self, reject=self._line_factors(inputs))(inputs)
        if self.grow >= 1 and self.reject is not None:
            return self._grown(inputs)
        sources = stream.open_sources(inputs)
        try:
            setup = self._setup(sources)
            rows = self._rows(sources, stream.direct_stack(inputs), setup, 0, setup.shape[0])
        finally:
            for source in sources:
                source.close()
        return self.assemble(setup, [rows])

    def _line_factors(self, inputs: Sequence[Any]) -> AvSigClip:
        """The AvSigClip with its line factors, from the values as the combine sees them
        (scaled; masked, excluded and thresholded ones left out). Reads the stack."""
        from ..frame import as_frame

        assert isinstance(self.reject, AvSigClip)
        setup = replace(self, reject=None).setup(inputs)  # the same scaling
        lo, hi = self.thresholds or (None, None)
        planes = []
        for i, item in enumerate(inputs):
            frame = as_frame(item)
            x = frame.data.astype(np.float64)
            bad = ~np.isfinite(x) | ((frame.mask_or_zeros() & self.exclude) != 0)
            if lo is not None:
                bad |= x < lo
            if hi is not None:
                bad |= x > hi
            scaled = x * np.float64(setup.fscale[i]) + np.float64(setup.fzero[i])
            planes.append(np.where(bad, np.nan, scaled))
        factors = line_sigmas(np.stack(planes), self.reject.center)
        return replace(self.reject, line_sigma=tuple(float(v) for v in factors))

    def _grown(self, inputs: Sequence[Any]) -> Frame:
        """IRAF's grow (icgrow.gx), in its two passes: the rejection marks its values; in
        each input the pixels within ``grow`` of one it rejected (a disk, the pixel's own
        image only) go too; then the inputs are combined again without a rejection. Where
        growing left nothing, the first pass's value stays. Reads the stack into memory."""
        from scipy.ndimage import binary_dilation

        from ..frame import as_frame

        first = replace(self, grow=0.0, keep_rejected=True)(inputs)
        left_out = replace(self, reject=None, grow=0.0, keep_rejected=True)(inputs)
        r = int(self.grow)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        disk = yy**2 + xx**2 <= self.grow**2
        rejected = (first.extras["REJECTED"] != 0) & (left_out.extras["REJECTED"] == 0)
        frames = []
        for i, item in enumerate(inputs):
            frame = as_frame(item)
            grown = binary_dilation(rejected[i], disk) & (left_out.extras["REJECTED"][i] == 0)
            mask = frame.mask_or_zeros() | np.where(grown, flags.REJECTED, 0).astype(np.uint16)
            frames.append(replace(frame, mask=mask))
        # the first pass's scaling, as it measured it, for the second
        info = replace(self, grow=0.0).setup(inputs).scale_info
        second = replace(
            self, reject=None, grow=0.0, exclude=self.exclude | int(flags.REJECTED),
            scale=None if self.scale is None else info["scale_levels"],
            zero=None if self.zero is None else info["zero_levels"],
        )(frames)  # fmt: skip
        # the values grown away count as rejected, low or high of the result
        n_in = left_out.extras["NCOMBINE"].astype(np.int32)
        gone = n_in - second.extras["NCOMBINE"].astype(np.int32)
        values = np.stack([f.data for f in frames]).astype(np.float32)
        out_cube = np.stack([(f.mask & flags.REJECTED) != 0 for f in frames])
        lo = np.sum(out_cube & (values < second.data[None]), axis=0)
        empty = (second.extras["NCOMBINE"] == 0) & (first.extras["NCOMBINE"] > 0)
        data = np.where(empty, first.data, second.data)
        variance = second.variance
        if variance is not None and first.variance is not None:
            variance = np.where(empty, first.variance, variance)
        extras = dict(second.extras)
        extras["NCOMBINE"] = np.where(empty, first.extras["NCOMBINE"], second.extras["NCOMBINE"])
        extras["NREJLO"] = np.where(empty, first.extras["NREJLO"], lo).astype(np.int16)
        extras["NREJHI"] = np.where(empty, first.extras["NREJHI"], gone - lo).astype(np.int16)
        if self.keep_rejected:
            extras["REJECTED"] = np.where(empty[None], first.extras["REJECTED"],
                                          second.extras["REJECTED"])  # fmt: skip
        else:
            extras.pop("REJECTED", None)
        header = first.header.copy()
        _rejected_fractions(header, extras)
        mask = np.where(empty, first.mask_or_zeros(), second.mask_or_zeros())
        return Frame(data, variance=variance, mask=mask, header=header, extras=extras)

    def setup(self, inputs: Sequence[Any]) -> Setup:
        """Open the inputs, check their shapes, measure the scaling levels; close them."""
        if self.grow >= 1 and self.reject is not None:
            raise CcdcalError("grow needs the whole image at once: not in row bands")
        if isinstance(self.reject, AvSigClip) and self.reject.line_sigma is None:
            raise CcdcalError("AvSigClip measures each line on the whole image: not in row bands")
        sources = stream.open_sources(inputs)
        try:
            return self._setup(sources)
        finally:
            for source in sources:
                source.close()

    def rows(self, inputs: Sequence[Any], setup: Setup, y0: int, y1: int) -> Rows:
        """Output rows ``y0:y1``, reading only those rows of every input.

        The memory limit counts this band's output planes and buffers only.
        """
        ny = setup.shape[0]
        if not 0 <= y0 < y1 <= ny:
            raise CcdcalError(f"rows {y0}:{y1} are outside the image's 0:{ny}")
        sources = stream.open_sources(inputs)
        try:
            if len(sources) != setup.n or sources[0].shape != setup.shape:
                raise CcdcalError("these inputs are not the ones the setup was measured from")
            return self._rows(sources, stream.direct_stack(inputs), setup, y0, y1)
        finally:
            for source in sources:
                source.close()

    def assemble(self, setup: Setup, parts: Sequence[Rows]) -> Frame:
        """The output frame from row bands that cover every row once, in any order."""
        ny = setup.shape[0]
        parts = sorted(parts, key=lambda p: p.y0)
        y = 0
        for p in parts:
            if p.y0 != y:
                raise CcdcalError(f"row bands leave rows {y}:{p.y0} uncovered or overlap")
            y = p.y1
        if y != ny:
            raise CcdcalError(f"row bands end at row {y}, the image has {ny}")

        def join(name: str, axis: int = 0) -> np.ndarray:
            arrays = [getattr(p, name) for p in parts]
            return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)

        out_n = join("ncombine")
        out_mask = join("mask")
        if not setup.all_mask:
            out_mask[:] = 0
        out_mask[out_n == 0] |= flags.NO_DATA
        header = setup.header.copy()
        header["NCOMBINE"] = (setup.n, "number of frames combined")
        params: dict[str, Any] = {"method": self.method, "reject": self.reject}
        info = setup.scale_info
        if self.scale is not None:
            params["scale"] = self.scale if isinstance(self.scale, str) else "levels"
            params["scale_levels"] = _fmt(info["scale_levels"])
        if self.zero is not None:
            params["zero"] = self.zero if isinstance(self.zero, str) else "levels"
            params["zero_levels"] = _fmt(info["zero_levels"])
        if self.weights is not None:
            w = self.weights
            params["weights"] = w if isinstance(w, str) else _fmt(list(w))
        if self.reject is not None:
            params["nkeep"] = self.nkeep
        if self.thresholds is not None:
            params["thresholds"] = self.thresholds
        add_history(header, "combine", inputs=setup.labels, params=params)
        extras = {"NCOMBINE": out_n, "NREJLO": join("nrejlo"), "NREJHI": join("nrejhi")}
        if self.reject is not None:
            _rejected_fractions(header, extras)
        if setup.any_common:
            extras[COMMON_EXT] = join("common")
        if self.keep_rejected:
            extras["REJECTED"] = join("rejected", axis=1)
        return Frame(
            join("data"), variance=join("variance"), mask=out_mask, header=header, extras=extras
        )

    # ------------------------------------------------------------------ work
    def _limit(self) -> int:
        limit = stream.parse_bytes(self.memory_limit)
        return stream.default_memory_limit() if limit is None else limit

    def _setup(self, sources: list[stream.Source]) -> Setup:
        n = len(sources)
        ny, nx = sources[0].shape
        all_var = all(s.has_variance for s in sources)
        if self.reject is not None and self.reject.code == VARCLIP and not all_var:
            missing = next(s.name for s in sources if not s.has_variance)
            raise CcdcalError(f"{missing}: VarianceClip needs a variance plane in every input")
        if self.groups is not None and len(self.groups) != n:
            raise CcdcalError(f"groups: expected one per input ({n}), got {len(self.groups)}")
        _weights_mode(self.weights, n, self.method, all_var)  # refused before any reading
        # the scaling sample is read (and freed) before the band buffers exist
        if needs_sample(self.scale, self.zero):
            limit = self._limit()
            need = ny * nx * stream.OUTPUT_BYTES_PER_PIXEL + sample_bytes(
                self.scale_region, (ny, nx)
            )
            if need > limit:
                raise CcdcalError(
                    f"memory_limit={limit} bytes is too small to measure the scaling levels "
                    f"of frames of {ny}x{nx}: at least {need} bytes are needed"
                )
        fscale, fzero, info = factors(
            sources,
            scale=self.scale,
            zero=self.zero,
            scale_region=self.scale_region,
            exclude=self.exclude,
        )
        return Setup(
            shape=(ny, nx),
            fscale=fscale,
            fzero=fzero,
            scale_info=info,
            header=clean_header(sources[0].header),
            labels=[s.label for s in sources],
            any_mask=any(s.has_mask for s in sources),
            all_mask=all(s.has_mask for s in sources),
            all_var=all_var,
            any_common=all_var and any(s.has_common for s in sources),
        )

    def _rows(
        self,
        sources: list[stream.Source],
        direct: np.ndarray | None,
        setup: Setup,
        y0: int,
        y1: int,
    ) -> Rows:
        from . import kernels

        n = setup.n
        nx = setup.shape[1]
        nrows = y1 - y0
        any_mask, all_mask, all_var = setup.any_mask, setup.all_mask, setup.all_var
        limit = self._limit()
        wmode, wframe = _weights_mode(self.weights, n, self.method, all_var)
        var_mode = 0 if all_var else 1
        if self.reject is None:
            algo, prm, lam = NONE, np.zeros(NPARAM), np.zeros((1, 1))
        else:
            algo, prm, lam = self.reject.kernel_args(n)
            if algo == AVSIG:  # one factor per output row: these rows'
                lam = np.ascontiguousarray(lam[:, y0:y1])
        ci, cj = kernels.sorting_network(n)
        keep_rejected = self.keep_rejected

        out_data = np.empty((nrows, nx), np.float32)
        out_var = np.empty((nrows, nx), np.float32)
        out_n = np.empty((nrows, nx), np.int16)
        out_lo = np.empty((nrows, nx), np.int16)
        out_hi = np.empty((nrows, nx), np.int16)
        out_mask = np.full((nrows, nx), 0xFFFF if all_mask else 0, np.uint16)
        out_rej = np.empty((n, nrows, nx) if keep_rejected else (n, 1, 1), np.uint8)
        has_com = setup.any_common
        out_com = np.zeros((nrows, nx) if has_com else (1, 1), np.float32)
        # frames of one group share their masters' noise (default: all of them)
        group = np.zeros(n, np.int64) if self.groups is None else np.asarray(self.groups, np.int64)

        use_var = all_var and (var_mode == 0 or wmode == 2)
        files = [s for s in sources if isinstance(s, stream.FileSource)]
        rows = stream.plan_rows(
            n,
            (nrows, nx),
            memory_limit=limit,
            has_mask=any_mask,
            has_variance=use_var,
            keep_rejected=keep_rejected,
            in_place=direct is not None,
            open_files=len(files),
            has_common=has_com,
        )
        log.debug("combine: %d frames, rows %d:%d in bands of %d rows", n, y0, y1, rows)
        if direct is None:
            bands = stream.iter_bands(
                sources,
                rows,
                any_mask=any_mask,
                all_mask=all_mask,
                use_var=use_var,
                out_mask=out_mask,
                start=y0,
                stop=y1,
                use_common=has_com,
            )
        else:
            none_mask = np.zeros((n, 1, 1), np.uint16)
            none_var = np.empty((n, 1, 1), np.float32)
            bands = (
                (y, min(rows, y1 - y), direct, none_mask, none_var, none_var)
                for y in range(y0, y1, rows)
            )
        lo, hi = self.thresholds or (None, None)
        thr = np.array([-np.inf if lo is None else lo, np.inf if hi is None else hi], np.float32)
        from ..compiled import say_if_compiling

        # where they are first called: the inputs are good (arrays in memory decode nothing)
        say_if_compiling((f"combine:{algo}", "decode") if files else (f"combine:{algo}",))
        with contextlib.closing(bands):
            for y, r, buf, mbuf, vbuf, cbuf in bands:
                y_in0 = 0 if direct is None else y
                kernels.combine_band(
                    buf, y_in0, mbuf, any_mask, self.exclude, thr, vbuf, use_var, cbuf, has_com,
                    group, setup.fscale, setup.fzero, wframe, wmode, algo, prm, lam, ci, cj,
                    _METHODS[self.method], self.nkeep, var_mode, y - y0, r, out_data, out_var,
                    out_com, out_n, out_lo, out_hi, out_rej, keep_rejected,
                )  # fmt: skip
        return Rows(
            y0, y1, out_data, out_var, out_mask, out_n, out_lo, out_hi,
            out_rej if keep_rejected else None, out_com if has_com else None,
        )  # fmt: skip


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
    groups: Sequence[int] | None = None,
    thresholds: tuple[float | None, float | None] | None = None,
    grow: float = 0.0,
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
        large). See :mod:`ccdcal.stacking.scaling`.
    weights
        None, one positive number per frame, or ``"variance"`` (inverse variance per pixel
        from the inputs' variance planes).
    nkeep
        Least number of values kept per pixel by the rejection; a negative one is the most
        it may reject (IRAF's rule: ``-2`` keeps all but 2 of a pixel's valid values at
        least). Where a rejection would keep fewer, the values it rejected nearest its
        centre come back.
    exclude
        Mask bits that exclude an input pixel (NaN and infinite values are always excluded).
    memory_limit
        Bytes (or text such as ``"2GB"``) for the outputs plus the band buffers; default a
        quarter of the available memory.
    thresholds
        ``(low, high)``, either None: raw input values (before scaling) below ``low`` or
        above ``high`` are left out like masked ones, before any rejection (IRAF's
        ``lthreshold``/``hthreshold``; a value on a threshold stays). The sample that sets
        the scaling levels does not apply them.
    grow
        A radius in pixels (IRAF's ``grow``, >= 1 to act): in each input, the pixels within
        it of a value the rejection took go too (a cosmic ray's faint edges), in a second
        pass without rejection; where that leaves nothing the first pass's value stays.
        Reads the stack into memory, and is not for row bands (:meth:`Combination.rows`).
    keep_rejected
        Also return the ``REJECTED`` cube (n, ny, nx) uint8: 1 where a value was excluded
        or rejected.
    groups
        For inputs that carry the masters' part of their variance (``VARCOMMON``, as
        calibrated frames do): one integer per input, equal for inputs whose master noise
        is the same at each pixel (calibrated with the same masters and not moved against
        each other). That part is counted once per group, fully correlated within it,
        independent between groups; the rest averages down. Default: all in one group.

    Returns
    -------
    Frame
        float32 ``data``; ``variance`` (propagated as Σw²v/(Σw)² when every input has one,
        else from the scatter of the kept values s²/n; × π/2 for the median, × n² for the
        sum; the masters' part counted once per group, see ``groups``, and kept as the
        ``VARCOMMON`` extra); ``mask`` with ``NO_DATA`` where no value was left plus the
        flags set in every input; ``extras`` NCOMBINE, NREJLO, NREJHI (int16) per pixel;
        the first input's header with NCOMBINE and HISTORY.

    See Also
    --------
    Combination : the same combine in phases, for row bands run as separate tasks.

    Examples
    --------
    >>> import numpy as np
    >>> stack = [np.full((2, 3), v, np.float32) for v in (1.0, 2.0, 3.0, 100.0)]
    >>> out = combine(stack, method="median")
    >>> out.data[0, 0], int(out.extras["NCOMBINE"][0, 0])
    (np.float32(2.5), 4)
    """
    return Combination(
        method=method,
        reject=reject,
        scale=scale,
        zero=zero,
        weights=weights,
        nkeep=nkeep,
        exclude=exclude,
        memory_limit=memory_limit,
        keep_rejected=keep_rejected,
        scale_region=scale_region,
        groups=groups,
        thresholds=thresholds,
        grow=grow,
    )(inputs)


def _rejected_fractions(header: Any, extras: dict[str, np.ndarray]) -> None:
    """REJFRAC, REJFRLO and REJFRHI: the fractions of the values rejected (of those the
    rejection saw: kept and rejected, not excluded), in all, below and above."""
    lo = float(extras["NREJLO"].sum(dtype=np.int64))
    hi = float(extras["NREJHI"].sum(dtype=np.int64))
    seen = lo + hi + float(extras["NCOMBINE"].sum(dtype=np.int64))
    for key, count, what in (("REJFRAC", lo + hi, ""), ("REJFRLO", lo, " low"),
                             ("REJFRHI", hi, " high")):  # fmt: skip
        fraction = round(count / seen, 6) if seen else 0.0
        header[key] = (fraction, f"fraction of values rejected{what}")


def _fmt(values: Sequence[float]) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


__all__ = ["Combination", "Rows", "Setup", "combine"]
