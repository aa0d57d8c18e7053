"""Plain NumPy references of every rejection algorithm, written from the published definitions.

Slow (a Python loop over pixels) and independent of the compiled kernels: they work on each
pixel's values in frame order with boolean masks, not on sorted windows. The tests compare
:func:`ccdcal.combine` against them.

Each ``*_keep(values, ...)`` takes one pixel's values (1-D float64, NaN = excluded) and returns
a boolean array: True for values kept. :func:`apply` runs one over a stack.

Examples
--------
>>> import numpy as np
>>> minmax_keep(np.array([5.0, 1.0, np.nan, 3.0, 9.0]), nlow=1, nhigh=1).tolist()
[True, False, False, True, False]
>>> minmax_keep(np.array([5.0, 1.0, np.nan, 3.0, 9.0]), nlow=1, nhigh=1, rule="iraf").tolist()
[True, True, False, True, True]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .varclip import TIE


def _restore(values: np.ndarray, keep: np.ndarray, allowed: np.ndarray, center: float, need: int):
    """Add back allowed-but-not-kept values closest to ``center`` until ``need`` are kept."""
    keep = keep.copy()
    candidates = np.flatnonzero(allowed & ~keep)
    order = sorted(candidates, key=lambda i: (abs(values[i] - center), values[i]))
    for i in order:
        if keep.sum() >= need:
            break
        keep[i] = True
    return keep


def sigclip_siril_keep(
    values: np.ndarray,
    *,
    low: float,
    high: float,
    maxiters: int | None,
    nkeep: int = 1,
    winsorize: bool = False,
) -> np.ndarray:
    """Siril's sigma clipping (or winsorized sigma clipping with ``winsorize``).

    Per pass: median m and sample std σ (ddof=1) of the kept values (for winsorized, σ
    re-estimated as 1.134·std of the values clamped to m ± 1.5σ until it settles); values
    with m - x > low·σ or x - m > high·σ leave for good. Never fewer than max(nkeep, 4).
    """
    valid = np.isfinite(values)
    floor = max(nkeep, 4)
    keep = valid.copy()
    if valid.sum() <= floor:
        return keep
    it = 0
    while True:
        x = values[keep]
        m = float(np.median(x))
        sigma = float(np.std(x, ddof=1))
        if winsorize:
            wv = x.copy()
            for _ in range(100):
                wv = np.clip(wv, m - 1.5 * sigma, m + 1.5 * sigma)
                sigma0 = sigma
                sigma = 1.134 * float(np.std(wv, ddof=1))
                if not abs(sigma - sigma0) > sigma0 * 0.0005:
                    break
        new = keep & ~((values < m - low * sigma) | (values > m + high * sigma))
        if new.sum() < floor:
            return _restore(values, new, keep, m, floor)
        changed = new.sum() != keep.sum()
        keep = new
        if not changed:
            break
        it += 1
        if maxiters is not None and it >= maxiters:
            break
    return keep


def ccdclip_keep(
    values: np.ndarray,
    *,
    gain: float,
    read_noise: float,
    snoise: float = 0.0,
    low: float = 3.0,
    high: float = 3.0,
    maxiters: int | None = 5,
    center: str = "median",
    nkeep: int = 1,
    sky: float = 0.0,
) -> np.ndarray:
    """IRAF ccdclip: σ = sqrt((rn/g)² + max(0, c)/g + (s·(c - sky))²) about the median (or
    mean) c."""
    valid = np.isfinite(values)
    keep = valid.copy()
    if valid.sum() <= nkeep:
        return keep
    it = 0
    while keep.any():
        x = values[keep]
        if center == "median":
            c = float(np.median(x))
        else:  # IRAF iccclip: one minimum and one maximum left out, at every pass
            c = float(np.mean(np.sort(x)[1:-1]) if x.size > 2 else np.mean(x))
        above = max(c - sky, 0.0)
        sigma = np.sqrt((read_noise / gain) ** 2 + max(c, 0.0) / gain + (snoise * above) ** 2)
        new = keep & (values >= c - low * sigma) & (values <= c + high * sigma)
        if new.sum() < nkeep:
            return _restore(values, new, keep, c, nkeep)
        changed = new.sum() != keep.sum()
        keep = new
        if not changed:
            break
        it += 1
        if maxiters is not None and it >= maxiters:
            break
    return keep


def varclip_keep(
    values: np.ndarray,
    *,
    variances: np.ndarray,
    slopes: np.ndarray,
    zeros: np.ndarray | None = None,
    low: float = 3.0,
    high: float = 3.0,
    maxiters: int | None = 10,
    snoise: float = 0.0,
    sky: float = 0.0,
    nkeep: int = 1,
) -> np.ndarray:
    """VarianceClip: each value tested by its own variance at the centre (see its docstring).

    ``variances`` are the random parts, ``slopes`` d variance / d value and ``zeros`` the
    values' offsets (the photons are counted from them), all per value.
    """
    zeros = np.zeros_like(values) if zeros is None else zeros
    valid = np.isfinite(values) & np.isfinite(variances) & (variances >= 0)
    idx = np.flatnonzero(valid)
    x, v0, a, z = values[idx], variances[idx], slopes[idx], zeros[idx]
    keep = np.ones(idx.size, bool)
    out = np.zeros(values.shape, bool)
    if idx.size <= nkeep:
        out[idx] = True
        return out
    c = float(np.median(x))
    ascending = np.argsort(x, kind="stable")  # the lower value first, among ties
    it = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        while True:
            dx = np.where(np.abs(x - c) > TIE * abs(c), x - c, 0.0)  # as the kernel's
            v = np.maximum(v0 - a * dx, 0.01 * v0) + (snoise * max(c - sky, 0.0)) ** 2
            pos = v > 0
            k3x = a * a * np.maximum(c - z, 0.0)
            if it == 0:
                h = np.sum(1.0 / np.sqrt(v[pos]))
            else:
                wsum = np.sum(1.0 / v[keep & pos])
                s3 = np.sum(((1.0 / (v * wsum)) ** 3 * k3x)[keep & pos])
            blo = np.zeros(x.size)
            bhi = np.zeros(x.size)
            d = np.zeros(x.size)
            single = np.zeros(x.size, bool)
            for j in range(x.size):
                u, lift, k3o = 0.0, 0.0, 0.0
                if it == 0:
                    so2 = np.pi / 2 * (x.size - 1) / h**2 if h > 0 else 0.0
                    lift = np.sqrt(np.pi / 2) / h if h > 0 else 0.0
                elif keep[j] and pos[j]:
                    u = 1.0 / (v[j] * wsum)
                    wo = wsum - 1.0 / v[j]
                    so2 = 1.0 / wo if wo > 0 else 0.0
                    k3o = (s3 - u**3 * k3x[j]) * (wsum / wo) ** 3 if wo > 0 else 0.0
                else:
                    so2 = 1.0 / wsum if wsum > 0 else 0.0
                    k3o = s3
                single[j] = u >= 1.0
                d[j] = (1.0 - u) * np.sqrt(v[j] + so2)
                grow = a[j] * d[j] / (2.0 * v[j]) if v[j] > 0 else 0.0
                for t, sgn in ((high, 1.0), (low, -1.0)):
                    gt = 1.0 + sgn * t * grow
                    al, be = 1.0 - u * gt, (1.0 - u) * gt
                    spread = np.sqrt(al * al * v[j] + be * be * so2)
                    k3 = sgn * (al**3 * k3x[j] - be**3 * k3o)
                    g = min(max(k3 / spread**3, -1.0), 1.0) if spread > 0 else 0.0
                    bound = max(spread * (t + g * (t * t - 1.0) / 6.0) - lift, 0.0)
                    if sgn > 0:
                        bhi[j] = bound
                    else:
                        blo[j] = bound
            slack = TIE * abs(c)  # rounding's allowance, as the kernel's
            new = ((x >= c - blo - slack) & (x <= c + bhi + slack)) | single
            dist = np.where(d > 0, np.abs(x - c) / d,
                            np.where(np.abs(x - c) <= slack, 0.0, np.inf))  # fmt: skip
            # the nearest rejected value comes back, one at a time; distances within TIE
            # (relative) tie, and of those the lower value comes back first
            while new.sum() < nkeep and not new.all():
                best = -1
                for j in ascending:
                    if not new[j] and (best < 0 or dist[j] < dist[best] * (1.0 - TIE)):
                        best = j
                new[best] = True
            changed = bool(np.any(new != keep))
            keep = new
            it += 1
            if (it > 1 and not changed) or it >= (100 if maxiters is None else maxiters) + 1:
                break
            wk = keep & (v > 0)
            if wk.any():
                c = float(np.sum(x[wk] / v[wk]) / np.sum(1.0 / v[wk]))
    out[idx] = keep
    return out


def linfit_keep(
    values: np.ndarray, *, low: float, high: float, maxiters: int | None = 5, nkeep: int = 1
) -> np.ndarray:
    """Linear fit clipping: a least-squares line through the kept values sorted against
    their rank, σ the mean absolute deviation, never fewer than max(nkeep, 4) kept."""
    valid = np.flatnonzero(np.isfinite(values))
    order = valid[np.argsort(values[valid], kind="stable")]
    keep = np.zeros(values.shape, bool)
    keep[order] = True
    floor = max(nkeep, 4)
    it = 0
    while keep.sum() > floor:
        idx = [i for i in order if keep[i]]
        y = values[idx]
        rank = np.arange(y.size, dtype=np.float64)
        # the normal equations in closed form (np.polyfit's lstsq rounds differently, and a
        # value within rounding of a bound could go either way)
        xm = (y.size - 1) / 2
        ym = float(np.sum(y)) / y.size
        slope = float(np.sum((rank - xm) * (y - ym))) / (y.size * (y.size**2 - 1) / 12)
        icpt = ym - slope * xm
        res = y - (slope * rank + icpt)
        sigma = np.mean(np.abs(res))
        out = (-res > low * sigma) | (res > high * sigma)
        back = max(0, floor - int((~out).sum()))
        for j in sorted(np.flatnonzero(out), key=lambda j: abs(res[j]))[:back]:
            out[j] = False
        for j, i in enumerate(idx):
            keep[i] = not out[j]
        it += 1
        if not out.any() or (maxiters is not None and it >= maxiters):
            break
    return keep


def medsig_values(
    values: np.ndarray, *, low: float = 3.0, high: float = 3.0
) -> tuple[np.ndarray, np.ndarray]:
    """Siril's median sigma clipping: (kept as they were, the values after replacement).

    Per pass: σ = std (ddof 1, about the mean) and the median of all the valid values;
    those beyond low·σ below or high·σ above the median become the median."""
    valid = np.isfinite(values)
    x = values[valid].astype(np.float64)
    kept = np.ones(x.size, bool)
    for _ in range(100):
        if x.size < 2:
            break
        sd = float(np.std(x, ddof=1))
        med = float(np.median(x))
        out = (med - x > sd * low) | (x - med > sd * high)
        if not out.any():
            break
        kept &= ~out
        x[out] = med
    keep = np.zeros(values.shape, bool)
    keep[np.flatnonzero(valid)] = kept
    final = np.full(values.shape, np.nan)
    final[valid] = x
    return keep, final


def minmax_keep(
    values: np.ndarray, *, nlow: float, nhigh: float, nkeep: int = 1, rule: str = "count"
) -> np.ndarray:
    """Minmax: at a pixel with m valid values int(m·fraction + 0.001) go; a count goes as
    it is (``rule="count"``) or, as in IRAF (icombine.x, icmm.gx), becomes the fraction
    count/n of the n inputs."""
    valid = np.flatnonzero(np.isfinite(values))
    m = valid.size
    n = values.size

    def dropped(v: float) -> int:
        if v >= 1 and rule == "count":
            return int(v)
        return int((v if v < 1 else v / n) * m + 0.001)

    nl, nh = dropped(nlow), dropped(nhigh)
    r = max(m - nkeep, 0)
    if nl + nh > r:
        nl0 = min(nl, r // 2)
        nh = min(nh, r - nl0)
        nl = min(nl, r - nh)
    order = valid[np.argsort(values[valid], kind="stable")]
    keep = np.zeros(values.shape, bool)
    keep[order[nl : m - nh]] = True
    return keep


def avsigclip_keep(
    values: np.ndarray,
    *,
    s: float,
    low: float = 3.0,
    high: float = 3.0,
    maxiters: int | None = 5,
    center: str = "mean",
    nkeep: int = 1,
) -> np.ndarray:
    """IRAF avsigclip at one pixel, given its line's factor ``s`` (icaclip.gx)."""
    keep = np.isfinite(values)
    if keep.sum() < 3 or keep.sum() <= nkeep or not s > 0:
        return keep
    it = 0
    while True:
        x = np.sort(values[keep])
        if center == "median":
            c = float(np.median(x))
        else:
            c = float(np.mean(x[1:-1]) if it == 0 else np.mean(x))
        sigma = s * np.sqrt(max(1.0, c))
        new = keep & (values >= c - low * sigma) & (values <= c + high * sigma)
        if new.sum() < nkeep:
            return _restore(values, new, keep, c, nkeep)
        changed = new.sum() != keep.sum()
        keep = new
        it += 1
        if not changed or keep.sum() <= 2 or (maxiters is not None and it >= maxiters):
            break
    return keep


def iraf_pclip_keep(
    values: np.ndarray,
    *,
    pclip: float = -0.5,
    low: float = 3.0,
    high: float = 3.0,
    nkeep: int = 1,
) -> np.ndarray:
    """IRAF pclip (icombine.x, icpclip.gx), written from the source with 1-based indices."""
    valid = np.flatnonzero(np.isfinite(values))
    keep = np.isfinite(values)
    n1 = valid.size
    half = values.size // 2
    pc = pclip * half if abs(pclip) < 1 else pclip
    pc = min(-1, max(-half, int(pc))) if pc < 0 else max(1, min(half, int(pc)))
    if n1 < max(3, nkeep + 1):
        return keep
    d = np.concatenate([[np.nan], np.sort(values[valid])])  # d[1..n1]
    n2 = 1 + n1 // 2
    even = n1 % 2 == 0
    below = max(1, n2 - 1 + pc) if even else max(1, n2 + pc)  # counted from the lower middle
    n3 = below if pc < 0 else min(n1, n2 + pc)
    med = (d[n2 - 1] + d[n2]) / 2 if even else d[n2]
    sigma = (d[n3] - med) * (1 if pc > 0 else -1)
    if not sigma > 0:
        return keep
    out = keep & ((med - values) / sigma < low) & ((values - med) / sigma < high)
    if out.sum() < nkeep:
        return _restore(values, out, keep, med, nkeep)
    return out


def percentile_keep(values: np.ndarray, *, low: float, high: float, nkeep: int = 1) -> np.ndarray:
    """Keep values between the low and high percentiles (numpy.percentile, linear)."""
    valid = np.isfinite(values)
    if not valid.any():
        return valid
    x = values[valid]
    plo, phi = np.percentile(x, [low, high])
    keep = valid & (values >= plo) & (values <= phi)
    need = min(nkeep, int(valid.sum()))
    if keep.sum() < need:
        keep = _restore(values, keep, valid, float(np.median(x)), need)
    return keep


def esd_keep(
    values: np.ndarray, *, max_outliers: float, alpha: float = 0.05, nkeep: int = 1
) -> np.ndarray:
    """Rosner's generalized ESD test for up to r outliers (t quantiles from scipy)."""
    from scipy import stats

    valid = np.isfinite(values)
    m = int(valid.sum())
    r = int(np.floor(max_outliers * m)) if 0 < max_outliers < 1 else int(max_outliers)
    r = min(r, m - 2, m - min(nkeep, m))
    keep = valid.copy()
    if r <= 0:
        return keep
    removed = []
    nout = 0
    work = keep.copy()
    for i in range(1, r + 1):
        x = values[work]
        mean = x.mean()
        sd = x.std(ddof=1)
        if not sd > 0:
            break
        dev = np.where(work, np.abs(values - mean), -np.inf)
        # the farthest value; on a tie between the lowest and the highest, the highest
        far = np.flatnonzero(dev == dev.max())
        j = far[np.argmax(values[far])]
        big = dev[j] / sd
        work[j] = False
        removed.append(j)
        p = 1 - alpha / (2 * (m - i + 1))
        t = stats.t.ppf(p, m - i - 1)
        lam = (m - i) * t / np.sqrt((m - i - 1 + t * t) * (m - i + 1))
        if big > lam:
            nout = i
    keep[removed[:nout]] = False
    return keep


def need(nkeep: int, valid: int) -> int:
    """The values a rejection must keep of ``valid``: ``nkeep``, or all but ``-nkeep``.

    >>> need(2, 10), need(-3, 10), need(-3, 2)
    (2, 7, 0)
    """
    return nkeep if nkeep >= 0 else max(0, valid + nkeep)


def apply(keep_fn: Callable[..., np.ndarray], stack: np.ndarray, **kwargs: Any) -> np.ndarray:
    """Run a ``*_keep`` function over every pixel of an (n, ...) stack; returns the keep cube.

    A negative ``nkeep`` (IRAF: at most ``-nkeep`` values rejected) becomes, at each pixel,
    the number of its valid values less ``-nkeep``."""
    stack = np.asarray(stack, dtype=np.float64)
    flat = stack.reshape(stack.shape[0], -1)
    out = np.zeros(flat.shape, bool)
    for k in range(flat.shape[1]):
        args = dict(kwargs)
        args["nkeep"] = need(kwargs.get("nkeep", 1), int(np.isfinite(flat[:, k]).sum()))
        out[:, k] = keep_fn(flat[:, k], **args)
    return out.reshape(stack.shape)


def combine_kept(stack: np.ndarray, keep: np.ndarray, method: str = "mean") -> np.ndarray:
    """Mean, median or sum of the kept values per pixel (NaN where none).

    The sum is the mean of the kept values times the number of valid (finite) inputs: a
    rejected value counts at the mean, an excluded (NaN) one not at all.
    """
    stack = np.asarray(stack, dtype=np.float64)
    x = np.where(keep, stack, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        count = keep.sum(axis=0)
        total = np.where(keep, stack, 0.0).sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        if method == "mean":
            return mean
        if method == "sum":
            return mean * np.isfinite(stack).sum(axis=0)
        out = np.full(stack.shape[1:], np.nan)
        xs = np.moveaxis(x, 0, -1)
        for idx in zip(*np.nonzero(count > 0), strict=True):
            v = xs[idx]
            out[idx] = np.median(v[np.isfinite(v)])
        return out


__all__ = [
    "apply",
    "avsigclip_keep",
    "ccdclip_keep",
    "combine_kept",
    "esd_keep",
    "iraf_pclip_keep",
    "linfit_keep",
    "medsig_values",
    "minmax_keep",
    "need",
    "percentile_keep",
    "sigclip_siril_keep",
    "varclip_keep",
]
