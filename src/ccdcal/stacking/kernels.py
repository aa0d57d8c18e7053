"""Compiled per-pixel kernels of the stacking engine (numba).

One kernel for each rejection algorithm (:func:`kernel`; the other algorithms' branches pruned
when it is compiled) serves every method; :func:`combine_band` runs it. It works on a
row band of the stack, ``(n, rows, nx)`` float32, in blocks of ``BLOCK`` neighbouring pixels
of one row, the blocks shared out over threads (:func:`combine_band`, :mod:`ccdcal.threads`):

1. load the block (scale factor and zero offset applied; masked, NaN and infinite values
   become NaN), and a copy with ``+inf`` in place of NaN;
2. sort every pixel's values in the copy with a fixed compare-and-swap network (Batcher's
   odd–even merge sort for ``n``): the same comparator sequence for every pixel, so the
   inner loop runs over the block's pixels and vectorises. Invalid values (``+inf``) sort
   last, so the first ``nv`` values of a pixel are its valid values in order;
3. each rejection algorithm reduces to a window ``[klo, khi)`` of the sorted values
   (median, mean and spread of a window are O(1) or O(window) from the sorted values; the
   MAD by bisection). The first iteration of astropy-rule sigma clipping, the hot path,
   runs over the whole block at once; the few pixels that clipped something iterate on
   alone;
4. a last pass in frame order keeps exactly the values in the window (ties at its edges
   assigned in frame order) and accumulates the weighted sums, variances and the
   rejection map.

Statistics are computed in float64 from the float32 values.

Measured on the 2-core development machine (Xeon, AVX-512), 20 frames of 2048x2048 in
memory (one numpy.sum over the stack: 0.034 s): mean 0.040 s, median 0.060 s, sigma-clipped
mean 0.073 s (mad_std 0.16 s). Sorting one pixel at a time (``np.sort`` per pixel in numba)
was 1.9 s for the median, against 0.035 s for the network on blocks of 128 pixels. Loops
written with many arrays or with branches stayed scalar and cost twice as much (0.14 s for
the sigma-clipped mean).
"""

from __future__ import annotations

import hashlib
import math
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from .. import threads
from .esd import esd_block
from .rejection import (
    AVSIG,
    CCDCLIP,
    ESD,
    IRAFPCLIP,
    LINFIT,
    MEDSIG,
    MINMAX,
    NONE,
    PCLIP,
    SIGCLIP,
    VARCLIP,
    WINSOR,
)
from .varclip import varclip_block
from .windows import (
    _SIRIL,
    _avsigclip,
    _iraf_pclip,
    _kept_split,
    _linfit,
    _median,
    _medsig,
    _minmax,
    _need,
    _nested_clip,
    _pclip,
    _sigclip_astropy_block,
)

#: pixels per block (one row segment); the sorting network's inner loop runs over them
BLOCK = 128

MEAN, MEDIAN, SUM = 0, 1, 2
_LOCK = threading.Lock()
HALF_PI = math.pi / 2.0


@lru_cache(maxsize=64)
def sorting_network(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Comparator pairs (i, j), i < j, of Batcher's odd–even merge sort for ``n`` inputs.

    Comparators that would touch an index >= n are left out: with the padding values at
    +inf they never move anything.

    Examples
    --------
    >>> ci, cj = sorting_network(4)
    >>> list(zip(ci.tolist(), cj.tolist()))
    [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    ci, cj = np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1])
    ci.setflags(write=False)
    cj.setflags(write=False)
    return ci, cj


# --------------------------------------------------------------------------- the kernel


@lru_cache(maxsize=1)
def sources_digest() -> str:
    """A digest of the other modules the combine kernels are compiled from (the functions
    they call, the rejection codes they hold as constants).

    numba's cache knows a kernel by its own code and closure, and its file by the file's
    time stamp: a kernel whose file did not change would load the old machine code of a
    function it calls from a file that did (a ``git pull`` into an editable install, as
    ``make`` makes). The kernel holds this digest in its closure, so that such a change is
    a new kernel to numba's cache.

    Examples
    --------
    >>> len(sources_digest())
    64
    """
    from .. import robust
    from . import esd, rejection, varclip, windows

    digest = hashlib.sha256()
    for module in (esd, rejection, robust, varclip, windows):  # robust: MAD_TO_STD
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _make_kernel(algo: int):
    """The combine kernel for rejection algorithm ``algo``, compiled on first use.

    ``algo`` is a constant of the kernel (a closure variable): numba prunes the branches of
    the other algorithms before it types the code, so a first run compiles only what it
    uses (one kernel with every algorithm took 40-60 s to compile here; see
    :func:`kernel`). The kernel combines tasks ``t0:t1`` of a band, a task being one block
    of :data:`BLOCK` pixels of one row; :func:`combine_band` shares the tasks out over
    threads.
    """
    BY_VALUE = algo in (VARCLIP, LINFIT, MEDSIG)  # kept values: not a run of the sorted ones
    SOURCES = sources_digest()  # in the closure: see sources_digest

    def kernel(
        t0, t1, data, y_in0, mask, has_mask, exclude, thr, var, has_var, com, has_com, group,
        fscale, fzero, wframe, wmode, prm, lam, ci, cj, method, nkeep, var_mode, y_out0,
        out_data, out_var, out_com, out_n, out_lo, out_hi, out_rej, want_rej,
    ):  # fmt: skip
        if len(SOURCES) == 0:  # never: the digest is in the closure for numba's cache key
            return
        n = data.shape[0]
        nx = data.shape[2]
        nxb = (nx + BLOCK - 1) // BLOCK
        ngroups = 1
        if has_com:  # a loop, not np.max: that overload took 0.6 s of each compile
            for i in range(group.shape[0]):
                ngroups = max(ngroups, group[i] + 1)
        orig = np.empty((n, BLOCK), np.float32)
        w = np.empty((n, BLOCK), np.float32)
        vblk = np.empty((n, BLOCK), np.float32)
        cblk = np.empty((n if has_com else 1, BLOCK), np.float32)
        gacc = np.empty((ngroups, BLOCK), np.float64)
        kb = np.empty((n, BLOCK), np.bool_)
        ix = np.empty((n if BY_VALUE else 1, BLOCK), np.int32)
        tmp = np.empty(n + 1, np.float64)
        tmp2 = np.empty(n + 1, np.float64)
        rep = np.zeros((3, BLOCK), np.float64)
        slo = np.zeros(n + 1, np.int64)
        iv = np.empty((5, BLOCK), np.int32)
        fv = np.empty((2, BLOCK), np.float32)
        acc = np.empty((8, BLOCK), np.float64)
        fb = np.empty((5, BLOCK), np.float64)
        nvc = n if algo == VARCLIP else 1  # VarianceClip's scratch (see varclip_block)
        need_b = np.zeros(BLOCK, np.int64)
        vk = np.zeros((nvc, BLOCK), np.int64)
        vs = np.zeros((nvc, BLOCK), np.float64)
        vd = np.zeros((nvc, BLOCK), np.float64)
        vv_ = np.zeros((nvc, BLOCK), np.float64)
        va = np.zeros((nvc, BLOCK), np.float64)
        vz = np.zeros((nvc, BLOCK), np.float64)
        vpix = np.zeros((11, BLOCK), np.float64)
        vtmp = np.zeros((12, BLOCK), np.float64)
        nesd = n if algo == ESD else 0  # the generalized ESD's scratch (see esd_block)
        epix = np.zeros((4, BLOCK), np.float64)
        esteps = np.zeros((2 * nesd + 2, BLOCK), np.int64)
        for t in range(t0, t1):
            x0 = (t % nxb) * BLOCK
            bw = min(BLOCK, nx - x0)
            y_in = y_in0 + t // nxb
            y_out = y_out0 + t // nxb
            # Performance: the hot loops run over the block's pixels with one or two outputs each
            # and selects instead of branches, so that LLVM vectorises them (a loop touching many
            # arrays stays scalar: the rows of the scratch arrays may alias, and it gives up
            # checking beyond a few pairs).
            n = data.shape[0]
            need_sort = algo != NONE or method == MEDIAN
            # kept values need not be a contiguous run of the sorted ones
            by_value = BY_VALUE
            need_v = var_mode == 0 or wmode == 2 or algo == VARCLIP
            need_kb = want_rej or wmode != 0 or var_mode == 0 or has_com or by_value
            # without rejection the load sums the values, and astropy-rule sigma clipping leaves
            # the sums of the kept values itself: then no frame-order pass is needed, nor the
            # values in frame order
            sums_done = (algo == NONE or (algo == SIGCLIP and prm[5] == 0.0)) and not need_kb
            sums_in_load = sums_done and algo == NONE
            nv_a = iv[0]
            klo_a = iv[1]
            khi_a = iv[2]
            qlo_a = iv[3]
            qhi_a = iv[4]
            vlo_a = fv[0]
            vhi_a = fv[1]
            cnt = acc[0]
            s1 = acc[1]
            s2 = acc[2]
            sw = acc[3]
            swx = acc[4]
            sww = acc[5]
            swwv = acc[6]
            shift = acc[7]
            nan32 = np.float32(np.nan)
            inf32 = np.float32(np.inf)
            zero32 = np.float32(0.0)
            for p in range(bw):
                nv_a[p] = 0
            # 1. load: scale and offset; masked, NaN and infinite values become NaN in ``orig``
            #    (frame order) and +inf in ``w`` (to be sorted)
            for i in range(n):
                f = fscale[i]
                z = fzero[i]
                row = orig[i]
                wr = w[i]
                src = data[i, y_in, x0 : x0 + bw]
                if need_v:
                    vrow = vblk[i]
                    if has_var:
                        vsrc = var[i, y_in, x0 : x0 + bw]
                        ff = f * f
                        for p in range(bw):
                            vrow[p] = vsrc[p] * ff
                        if has_com:
                            csrc = com[i, y_in, x0 : x0 + bw]
                            crow = cblk[i]
                            for p in range(bw):
                                crow[p] = csrc[p] * ff
                    else:
                        for p in range(bw):
                            vrow[p] = nan32
                # IRAF's lthreshold/hthreshold: raw values outside [lo, hi] are left out like masked
                # ones (NaN fails both tests)
                tlo = thr[0]
                thi = thr[1]
                if has_mask:
                    msrc = mask[i, y_in, x0 : x0 + bw]
                    for p in range(bw):
                        x = src[p]
                        v = x * f + z
                        ok = (
                            ((v - v) == zero32)
                            & ((msrc[p] & exclude) == 0)
                            & (x >= tlo)
                            & (x <= thi)
                        )
                        wr[p] = v if ok else inf32
                else:
                    for p in range(bw):
                        x = src[p]
                        v = x * f + z
                        ok = (
                            ((v - v) == zero32) & (x >= tlo) & (x <= thi)
                        )  # False for NaN and +-inf
                        wr[p] = v if ok else inf32
                if wmode == 2:  # inverse-variance weights: a value needs a usable variance
                    vrow = vblk[i]
                    for p in range(bw):
                        vv = vrow[p]
                        wr[p] = wr[p] if (vv > zero32) & (vv < inf32) else inf32
                elif algo == VARCLIP:  # a value is tested by its variance: it needs one
                    vrow = vblk[i]
                    for p in range(bw):
                        vv = vrow[p]
                        wr[p] = wr[p] if (vv >= zero32) & (vv < inf32) else inf32
                if not sums_done:
                    for p in range(bw):
                        v = wr[p]
                        row[p] = v if v < inf32 else nan32
                for p in range(bw):
                    nv_a[p] += 1 if wr[p] < inf32 else 0
                if sums_in_load:
                    if i == 0:
                        for p in range(bw):
                            v = wr[p]
                            shift[p] = v if v < inf32 else 0.0
                            s1[p] = 0.0
                            s2[p] = 0.0
                    for p in range(bw):
                        v = wr[p]
                        d = np.float64(v) - shift[p] if v < inf32 else 0.0
                        s1[p] += d
                        s2[p] += d * d
            if sums_in_load:
                for p in range(bw):
                    cnt[p] = nv_a[p]
            # 2. sort each pixel's values with the network (vectorised over the block); by value,
            #    each value's frame goes along
            if by_value:
                for i in range(n):
                    xrow = ix[i]
                    for p in range(bw):
                        xrow[p] = i
                for k in range(ci.shape[0]):
                    a = w[ci[k]]
                    b = w[cj[k]]
                    xa = ix[ci[k]]
                    xb = ix[cj[k]]
                    for p in range(bw):
                        u = a[p]
                        t = b[p]
                        swap = t < u
                        ia = xa[p]
                        ib = xb[p]
                        a[p] = t if swap else u
                        b[p] = u if swap else t
                        xa[p] = ib if swap else ia
                        xb[p] = ia if swap else ib
            elif need_sort:
                for k in range(ci.shape[0]):
                    a = w[ci[k]]
                    b = w[cj[k]]
                    for p in range(bw):
                        u = a[p]
                        t = b[p]
                        a[p] = u if u < t else t
                        b[p] = t if u < t else u
            # 3. window [klo, khi) of kept sorted values per pixel
            if algo == SIGCLIP and prm[5] == 0.0:
                _sigclip_astropy_block(
                    w, bw, nv_a, prm[0], prm[1], prm[2], prm[3] != 0.0, prm[4] != 0.0, nkeep,
                    klo_a, khi_a, fb, acc,
                )  # fmt: skip
            elif by_value:
                for i in range(n):
                    krow = kb[i]
                    for p in range(bw):
                        krow[p] = False
                vmed = fv[0]
                if algo == VARCLIP:  # the whole block at once, its steps vectorised
                    for p in range(bw):
                        need_b[p] = _need(nkeep, nv_a[p])
                    varclip_block(
                        w, ix, vblk, cblk, has_com, fscale, fzero, nv_a, need_b, prm, lam,
                        bw, vk, vs, vd, vv_, va, vz, vpix, vtmp,
                    )  # fmt: skip
                for p in range(bw):
                    nv = nv_a[p]
                    if algo == VARCLIP:
                        for j in range(nv):
                            slo[j] = vk[j, p]
                        lo, hi, med = _kept_split(w, p, nv, slo)
                    elif algo == LINFIT:
                        lo, hi, med = _linfit(w, p, nv, prm, _need(nkeep, nv), slo, tmp)
                    else:
                        lo, hi, med = _medsig(w, p, nv, prm, slo, tmp, tmp2)
                        # the replaced values' share of the sums (added to the kept ones' below)
                        rs = 0.0
                        rss = 0.0
                        for j in range(nv):
                            if slo[j] != 1:
                                rs += tmp[j]
                                rss += tmp[j] * tmp[j]
                        rep[0, p] = lo + hi
                        rep[1, p] = rs
                        rep[2, p] = rss
                    for j in range(nv):
                        kb[ix[j, p], p] = slo[j] == 1
                    klo_a[p] = lo
                    khi_a[p] = nv - hi
                    vmed[p] = med
            elif algo == ESD:  # the whole block at once, its sums vectorised
                for p in range(bw):
                    need_b[p] = _need(nkeep, nv_a[p])
                esd_block(w, bw, nv_a, need_b, prm, lam, klo_a, khi_a, epix, esteps)
            else:
                for p in range(bw):
                    nv = nv_a[p]
                    need = _need(nkeep, nv)
                    klo = 0
                    khi = nv
                    if nv > 0 and algo != NONE:
                        if algo == SIGCLIP:
                            klo, khi = _nested_clip(w, p, nv, _SIRIL, prm, need, tmp)
                        elif algo == WINSOR or algo == CCDCLIP:  # noqa: SIM109 (numba)
                            klo, khi = _nested_clip(w, p, nv, algo, prm, need, tmp)
                        elif algo == MINMAX:
                            klo, khi = _minmax(nv, prm, need)
                        elif algo == PCLIP:
                            klo, khi = _pclip(w, p, nv, prm[0], prm[1], need)
                        elif algo == IRAFPCLIP:
                            klo, khi = _iraf_pclip(w, p, nv, prm, need)
                        elif algo == AVSIG:  # the line's σ factor, one per output row
                            klo, khi = _avsigclip(w, p, nv, prm, lam[0, y_out], need)
                    klo_a[p] = klo
                    khi_a[p] = khi
            olo = out_lo[y_out, x0 : x0 + bw]
            ohi = out_hi[y_out, x0 : x0 + bw]
            for p in range(bw):
                olo[p] = klo_a[p]
            for p in range(bw):
                ohi[p] = nv_a[p] - khi_a[p]
            if by_value:
                _kept_sums(orig, kb, acc, bw)
                if algo == MEDSIG:  # the replaced values count at the median they took
                    for p in range(bw):
                        r = rep[0, p]
                        if r > 0.0:
                            sh = shift[p]
                            cnt[p] += r
                            s1[p] += rep[1, p] - r * sh
                            s2[p] += rep[2, p] - 2.0 * sh * rep[1, p] + r * sh * sh
            elif not sums_done:
                _frame_order_sums(
                    orig, w, kb, need_sort, need_kb, nv_a, klo_a, khi_a, qlo_a, qhi_a, vlo_a, vhi_a,
                    acc, bw,
                )  # fmt: skip
            if want_rej:
                for i in range(n):
                    krow = kb[i]
                    orow = out_rej[i, y_out, x0 : x0 + bw]
                    for p in range(bw):
                        orow[p] = 0 if krow[p] else 1
            if wmode != 0:
                for p in range(bw):
                    sw[p] = 0.0
                    swx[p] = 0.0
                    sww[p] = 0.0
                    swwv[p] = 0.0
                for i in range(n):
                    row = orig[i]
                    krow = kb[i]
                    vrow = vblk[i]
                    wfi = wframe[i]
                    for p in range(bw):
                        if wmode == 1:
                            wt = wfi if krow[p] else 0.0
                        else:
                            wt = 1.0 / np.float64(vrow[p]) if krow[p] else 0.0
                        sw[p] += wt
                        swx[p] += wt * row[p] if krow[p] else 0.0
                        sww[p] += wt * wt
                        swwv[p] += wt * wt * vrow[p] if krow[p] else 0.0
                if has_com:
                    _common_sums(kb, vblk, cblk, group, gacc, wframe, wmode, fb, bw, n)
            elif var_mode == 0:
                for p in range(bw):
                    swwv[p] = 0.0
                for i in range(n):
                    krow = kb[i]
                    vrow = vblk[i]
                    for p in range(bw):
                        swwv[p] += np.float64(vrow[p]) if krow[p] else 0.0
                if has_com:
                    _common_sums(kb, vblk, cblk, group, gacc, wframe, wmode, fb, bw, n)
            # 5. results
            on = out_n[y_out, x0 : x0 + bw]
            od = out_data[y_out, x0 : x0 + bw]
            ov = out_var[y_out, x0 : x0 + bw]
            mean_a = fb[0]
            vm_a = fb[1]
            for p in range(bw):
                on[p] = int(cnt[p])
            if algo == MEDSIG:  # NCOMBINE: the values kept as they were
                for p in range(bw):
                    on[p] = int(cnt[p] - rep[0, p])
            if wmode == 0:
                for p in range(bw):
                    c = cnt[p]
                    mean_a[p] = shift[p] + s1[p] / c if c > 0.0 else np.nan
                if var_mode == 0:
                    for p in range(bw):
                        c = cnt[p]
                        vm_a[p] = swwv[p] / (c * c) if c > 0.0 else np.nan
            else:
                for p in range(bw):
                    mean_a[p] = swx[p] / sw[p] if cnt[p] > 0.0 else np.nan
                if var_mode == 0:
                    for p in range(bw):
                        vm_a[p] = swwv[p] / (sw[p] * sw[p]) if cnt[p] > 0.0 else np.nan
            if has_com:
                # the masters' part, counted once per group of frames that share it (fb[2]: Σ_g
                # (Σ_i∈g w √c)²), the rest of fb[3] (Σ w² c) off the propagated variance
                norm_a = fb[4]
                for p in range(bw):
                    c = cnt[p]
                    norm_a[p] = (c * c if wmode == 0 else sw[p] * sw[p]) if c > 0.0 else np.nan
                for p in range(bw):
                    vm_a[p] = vm_a[p] - fb[3][p] / norm_a[p]
                for p in range(bw):
                    fb[2][p] = fb[2][p] / norm_a[p]
            if var_mode != 0:  # from the scatter of the kept values
                for p in range(bw):
                    c = cnt[p]
                    a = s1[p]
                    ratio = 1.0 / c if wmode == 0 else sww[p] / (sw[p] * sw[p])
                    scatter = max((s2[p] - a * a / c) / (c - 1.0), 0.0)
                    vm_a[p] = scatter * ratio if c > 1.0 else np.nan
            if method == MEDIAN and by_value:
                for p in range(bw):
                    od[p] = fv[0][p] if cnt[p] > 0.0 else np.nan
                for p in range(bw):
                    ov[p] = vm_a[p] * HALF_PI
            elif method == MEDIAN:
                for p in range(bw):
                    c = cnt[p]
                    od[p] = _median(w, p, klo_a[p], khi_a[p]) if c > 0.0 else np.nan
                for p in range(bw):
                    ov[p] = vm_a[p] * HALF_PI
            elif method == SUM:
                # every valid input counted, the rejected ones at the mean of the kept: a rejected
                # outlier neither adds itself nor leaves a hole in the total
                for p in range(bw):
                    nvalid = np.float64(nv_a[p])
                    od[p] = mean_a[p] * nvalid
                    ov[p] = vm_a[p] * nvalid * nvalid
            else:
                for p in range(bw):
                    od[p] = mean_a[p]
                for p in range(bw):
                    ov[p] = vm_a[p]
            if has_com:  # the common part is the same for the median as for the mean
                oc = out_com[y_out, x0 : x0 + bw]
                for p in range(bw):
                    cv = fb[2][p] * (np.float64(nv_a[p]) ** 2 if method == SUM else 1.0)
                    ov[p] = ov[p] + cv
                    oc[p] = cv

    return njit(cache=True, nogil=True, error_model="numpy")(kernel)


@njit(cache=True, nogil=True, error_model="numpy")
def _kept_sums(orig, kb, acc, bw):
    """The count, Σd and Σd² (d = value − the first kept value) of the values ``kb`` keeps,
    in frame order, into ``acc`` rows 0, 1, 2 and 7."""
    n = orig.shape[0]
    cnt = acc[0]
    s1 = acc[1]
    s2 = acc[2]
    shift = acc[7]
    for p in range(bw):
        cnt[p] = 0.0
        s1[p] = 0.0
        s2[p] = 0.0
        shift[p] = 0.0
    for i in range(n):
        row = orig[i]
        krow = kb[i]
        for p in range(bw):
            keep = krow[p]
            first = keep and cnt[p] == 0.0
            shift[p] = np.float64(row[p]) if first else shift[p]
            d = np.float64(row[p]) - shift[p] if keep else 0.0
            cnt[p] += 1.0 if keep else 0.0
            s1[p] += d
            s2[p] += d * d


@njit(cache=True, nogil=True, error_model="numpy")
def _common_sums(kb, vblk, cblk, group, gacc, wframe, wmode, fb, bw, n):
    """The masters' part of the variance of the kept values: ``fb[3]`` = Σ w² c (to come
    off the propagated variance) and ``fb[2]`` = Σ_g (Σ_{i in g} w √c)² (counted once per
    group of frames whose master noise is the same, fully correlated within a group)."""
    ng = gacc.shape[0]
    for g in range(ng):
        row = gacc[g]
        for p in range(bw):
            row[p] = 0.0
    for p in range(bw):
        fb[3][p] = 0.0
    for i in range(n):
        krow = kb[i]
        vrow = vblk[i]
        crow = cblk[i]
        grow = gacc[group[i]]
        wfi = wframe[i]
        for p in range(bw):
            c = np.float64(crow[p])
            c = c if c > 0.0 else 0.0
            if wmode == 0:
                wt = 1.0
            elif wmode == 1:
                wt = wfi
            else:
                wt = 1.0 / np.float64(vrow[p])
            wt = wt if krow[p] else 0.0
            fb[3][p] += wt * wt * c
            grow[p] += wt * np.sqrt(c)
    for p in range(bw):
        fb[2][p] = 0.0
    for g in range(ng):
        row = gacc[g]
        for p in range(bw):
            fb[2][p] += row[p] * row[p]


@njit(cache=True, nogil=True, error_model="numpy")
def _frame_order_sums(
    orig, w, kb, need_sort, need_kb, nv_a, klo_a, khi_a, qlo_a, qhi_a, vlo_a, vhi_a, acc, bw
):  # fmt: skip
    """Keep exactly the window's values in frame order (ties at its edges assigned in
    frame order): the count, Σd and Σd² of the kept values (d = value − shift) into ``acc``
    rows 0, 1, 2 and 7, and with ``need_kb`` the keep map ``kb``."""
    n = orig.shape[0]
    cnt = acc[0]
    s1 = acc[1]
    s2 = acc[2]
    shift = acc[7]
    inf32 = np.float32(np.inf)
    # the window as value bounds with quotas for ties at the edges, and a shift for the sums
    split = False  # does a window end inside a run of equal values?
    for p in range(bw):
        nv = nv_a[p]
        klo = klo_a[p]
        khi = khi_a[p]
        qlo_a[p] = -1  # -1: keep every value within [vlo, vhi]; else quotas of edge ties
        qhi_a[p] = 0
        if khi <= klo:
            vlo_a[p] = inf32
            vhi_a[p] = -inf32
            shift[p] = 0.0
            continue
        if need_sort:
            shift[p] = w[(klo + khi) // 2, p]
        else:
            v0 = orig[0, p]
            shift[p] = v0 if v0 == v0 else 0.0
        if klo == 0 and khi == nv:  # every valid value kept
            vlo_a[p] = -inf32
            vhi_a[p] = inf32
            continue
        vl = w[klo, p]
        vh = w[khi - 1, p]
        vlo_a[p] = vl
        vhi_a[p] = vh
        if not ((klo > 0 and w[klo - 1, p] == vl) or (khi < nv and w[khi, p] == vh)):
            continue  # every value in [vl, vh] is kept
        split = True
        qlo_a[p] = 0
        if vl == vh:
            qlo_a[p] = khi - klo
        else:
            j = klo
            while w[j, p] == vl:
                j += 1
            qlo_a[p] = j - klo
            j = khi - 1
            while w[j, p] == vh:
                j -= 1
            qhi_a[p] = khi - 1 - j
    for p in range(bw):
        cnt[p] = 0.0
        s1[p] = 0.0
        s2[p] = 0.0
    for i in range(n):
        row = orig[i]
        krow = kb[i]
        if not split:  # keep what lies within the bounds (NaN never does)
            for p in range(bw):
                x = row[p]
                keep = (x >= vlo_a[p]) & (x <= vhi_a[p])
                d = np.float64(x) - shift[p] if keep else 0.0
                cnt[p] += 1.0 if keep else 0.0
                s1[p] += d
                s2[p] += d * d
                if need_kb:
                    krow[p] = keep
            continue
        for p in range(bw):
            x = row[p]
            vl = vlo_a[p]
            vh = vhi_a[p]
            el = (x == vl) & (qlo_a[p] > 0)
            eh = (x == vh) & (qhi_a[p] > 0) & (x != vl)
            inside = (x >= vl) & (x <= vh)
            keep = inside if qlo_a[p] < 0 else ((x > vl) & (x < vh)) | el | eh
            qlo_a[p] -= 1 if el else 0
            qhi_a[p] -= 1 if eh else 0
            d = np.float64(x) - shift[p] if keep else 0.0
            cnt[p] += 1.0 if keep else 0.0
            s1[p] += d
            s2[p] += d * d
            if need_kb:
                krow[p] = keep


#: the kernel of each rejection algorithm, compiled when first asked for
_KERNELS: dict[int, Any] = {}


def kernel(algo: int) -> Any:
    """The compiled combine kernel of rejection algorithm ``algo`` (see :func:`_make_kernel`).

    Examples
    --------
    >>> kernel(NONE) is kernel(NONE)
    True
    """
    with _LOCK:
        if algo not in _KERNELS:
            _KERNELS[algo] = _make_kernel(algo)
        return _KERNELS[algo]


def combine_band(
    data, y_in0, mask, has_mask, exclude, thr, var, has_var, com, has_com, group, fscale,
    fzero, wframe, wmode, algo, prm, lam, ci, cj, method, nkeep, var_mode, y_out0, nrows,
    out_data, out_var, out_com, out_n, out_lo, out_hi, out_rej, want_rej,
):  # fmt: skip
    """Combine rows ``y_in0 .. y_in0+nrows`` of ``data`` into output rows from ``y_out0``.

    Parameters
    ----------
    data : float32 (n, rows, nx)
        The band (or the whole stack); ``mask`` uint16 and ``var`` float32 of the same
        shape when ``has_mask`` / ``has_var``, else any small array; ``com`` (the masters'
        part of each variance) likewise when ``has_com`` (which needs ``has_var``), and
        ``group`` (int64, n) numbers the frames whose master noise is one and the same.
    thr : float32 (2,)
        Raw values below ``thr[0]`` or above ``thr[1]`` are left out (-inf, inf: none).
    fscale, fzero : float32 (n,)
        Each frame's value becomes ``x * fscale + fzero`` (variance × fscale²).
    wframe, wmode
        Weights: 0 equal, 1 per frame (``wframe``), 2 inverse variance per pixel.
    algo, prm, lam, ci, cj
        Rejection algorithm, its parameters and table, and the sorting network.
    method, nkeep, var_mode
        MEAN/MEDIAN/SUM; least values kept; 0 propagate input variances, 1 from scatter.
    out_*
        Whole output planes, written at rows ``y_out0 ..``; ``out_rej`` (n, ny, nx) only
        when ``want_rej``; ``out_com`` (the common part of ``out_var``) only with
        ``has_com``.

    The blocks of the band are shared out over :func:`ccdcal.threads.count` threads (the
    kernel releases the GIL), in contiguous runs.
    """
    run = kernel(algo)
    nx = data.shape[2]
    ntask = nrows * ((nx + BLOCK - 1) // BLOCK)
    # every array the kernel is given has one type whatever the call (a table that is
    # read-only in one call and writable in the next would compile the kernel twice)
    lam = np.require(lam, np.float64, ("C", "W"))
    prm = np.require(prm, np.float64, ("C", "W"))

    def part(t0: int, t1: int) -> None:
        run(
            t0, t1, data, y_in0, mask, has_mask, exclude, thr, var, has_var, com, has_com,
            group, fscale, fzero, wframe, wmode, prm, lam, ci, cj, method, nkeep, var_mode,
            y_out0, out_data, out_var, out_com, out_n, out_lo, out_hi, out_rej, want_rej,
        )  # fmt: skip

    threads.split(part, ntask)


__all__ = [
    "BLOCK",
    "MEAN",
    "MEDIAN",
    "SUM",
    "combine_band",
    "kernel",
    "sorting_network",
    "sources_digest",
]
