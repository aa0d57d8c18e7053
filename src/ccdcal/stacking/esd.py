"""The generalized ESD test (Rosner 1983) for a whole block of pixels at once (numba),
called by :mod:`ccdcal.stacking.kernels`.

Up to ``r`` times, the value farthest from the mean of those left (the lowest or the
highest of the sorted values) is taken out, its distance in standard deviations ``R_i``
noted; the outliers are the ``k`` farthest, ``k`` the last ``i`` whose ``R_i`` passes
Rosner's critical value ``λ_i`` (:func:`ccdcal.stacking.rejection.esd_critical_values`).
Each step's mean and spread are sums over the values left; done pixel by pixel they did not
vectorise, and a master bias of 30 frames of 2048x2048 took 3 s. Here the sums run over the
block's pixels in the inner loop, each pixel's window masked, in the same order and with
the same operations as one pixel's (adding 0.0 outside its window changes no sum), so the
windows are the same (``tests/test_combine_algorithms.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy")
def esd_block(w, bw, nv_a, need_a, prm, lam, klo_a, khi_a, pix, steps):
    """Generalized ESD of the block's ``bw`` pixels (``w[:, p]`` sorted, ``nv_a[p]``
    valid, at least ``need_a[p]`` kept): the window of kept values ``[klo, khi)`` of each
    into ``klo_a``, ``khi_a``. ``pix`` (float64 (4, BLOCK)) and ``steps`` (int64
    (2 (n + 1), BLOCK)) are scratch."""
    n = w.shape[0]
    lo = klo_a
    hi = khi_a
    s = pix[0]
    mean = pix[1]
    sd = pix[2]
    go = pix[3]  # steps left for the pixel (0: done)
    nout = steps[2 * n + 1]
    rmax = 0
    for p in range(bw):
        nv = nv_a[p]
        r = math.floor(prm[0] * nv) if prm[1] != 0.0 else int(prm[0])
        r = min(r, nv - 2, nv - need_a[p])
        lo[p] = 0
        hi[p] = nv
        nout[p] = 0
        go[p] = max(r, 0)
        rmax = max(rmax, r)
    for i in range(1, rmax + 1):
        jlo = n
        jhi = 0
        for p in range(bw):
            on = go[p] >= i
            jlo = min(jlo, lo[p]) if on else jlo
            jhi = max(jhi, hi[p]) if on else jhi
        if jhi <= jlo:
            break
        for p in range(bw):
            s[p] = 0.0
        for j in range(jlo, jhi):
            wj = w[j]
            for p in range(bw):
                inside = (j >= lo[p]) & (j < hi[p])
                s[p] += wj[p] if inside else 0.0
        for p in range(bw):
            mean[p] = s[p] / (hi[p] - lo[p])
        for p in range(bw):
            s[p] = 0.0
        for j in range(jlo, jhi):
            wj = w[j]
            for p in range(bw):
                inside = (j >= lo[p]) & (j < hi[p])
                d = np.float64(wj[p]) - mean[p]
                s[p] += d * d if inside else 0.0
        for p in range(bw):
            sd[p] = np.sqrt(s[p] / (hi[p] - lo[p] - 1))
        for p in range(bw):
            if go[p] < i:
                continue
            if not sd[p] > 0.0:  # no spread left: nothing stands out
                go[p] = 0
                continue
            m = mean[p]
            dlo = m - w[lo[p], p]
            dhi = w[hi[p] - 1, p] - m
            if dhi >= dlo:
                big = dhi / sd[p]
                hi[p] -= 1
            else:
                big = dlo / sd[p]
                lo[p] += 1
            steps[i, p] = lo[p]
            steps[n + 1 + i, p] = hi[p]
            if big > lam[nv_a[p], i]:
                nout[p] = i
    for p in range(bw):
        k = nout[p]
        lo[p] = steps[k, p] if k > 0 else 0
        hi[p] = steps[n + 1 + k, p] if k > 0 else nv_a[p]


__all__ = ["esd_block"]
