"""Per-pixel rejection windows (numba), called by :mod:`ccdcal.stacking.kernels`.

Every algorithm works on one pixel's valid values, sorted, in column ``p`` of a block ``w``
(n, BLOCK), and returns the window ``[klo, khi)`` of the values it keeps.
:func:`_sigclip_astropy_block` does the first sigma-clipping iteration for a whole block.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..robust import MAD_TO_STD
from .rejection import CCDCLIP, WINSOR

#: internal code: SigmaClip with the Siril rule (shares the nested-clipping loop)
_SIRIL = 100


# --------------------------------------------------------------------------- statistics
# ``w`` is a block (n, BLOCK) of sorted values, ``p`` the pixel's column; windows [lo, hi).


@njit(cache=True, error_model="numpy")
def _median(w, p, lo, hi):
    a = np.float64(w[(lo + hi - 1) // 2, p])
    b = np.float64(w[(lo + hi) // 2, p])
    return 0.5 * (a + b)


@njit(cache=True, error_model="numpy")
def _mean(w, p, lo, hi):
    s = 0.0
    for j in range(lo, hi):
        s += w[j, p]
    return s / (hi - lo)


@njit(cache=True, error_model="numpy")
def _sumsq(w, p, lo, hi, c):
    s = 0.0
    for j in range(lo, hi):
        d = np.float64(w[j, p]) - c
        s += d * d
    return s


@njit(cache=True, error_model="numpy")
def _mad(w, p, lo, hi, med):
    """Median of |w - med| over the window: merge the two sorted runs out from the median."""
    m = hi - lo
    r = (lo + hi) // 2
    while r > lo and w[r - 1, p] >= med:
        r -= 1
    left = r - 1
    k1 = (m - 1) // 2
    k2 = m // 2
    a = 0.0
    b = 0.0
    for k in range(k2 + 1):
        if left >= lo and (r >= hi or med - w[left, p] <= w[r, p] - med):
            d = med - w[left, p]
            left -= 1
        else:
            d = w[r, p] - med
            r += 1
        if k == k1:
            a = d
        if k == k2:
            b = d
    return 0.5 * (a + b)


@njit(cache=True, error_model="numpy")
def _restore(w, p, lim_lo, lim_hi, lo, hi, cen, need):
    """Grow [lo, hi) within [lim_lo, lim_hi) by the values closest to cen up to ``need``."""
    if hi <= lo:
        lo = lim_lo
        while lo < lim_hi and w[lo, p] < cen:
            lo += 1
        hi = lo
    while hi - lo < need:
        if lo > lim_lo and (hi >= lim_hi or cen - w[lo - 1, p] <= w[hi, p] - cen):
            lo -= 1
        else:
            hi += 1
    return lo, hi


@njit(cache=True, error_model="numpy")
def _inside(w, p, lo, hi, blo, bhi):
    """The sub-window of [lo, hi) with blo <= value <= bhi."""
    nlo = lo
    while nlo < hi and w[nlo, p] < blo:
        nlo += 1
    nhi = hi
    while nhi > nlo and w[nhi - 1, p] > bhi:
        nhi -= 1
    return nlo, nhi


# --------------------------------------------------------------------------- algorithms


@njit(cache=True, error_model="numpy")
def _nested_clip(w, p, nv, algo, prm, need, tmp):
    """Siril sigma clipping, winsorized sigma clipping and ccdclip: values leave for good."""
    if algo == CCDCLIP:
        rn2, invg, s2, sl, su, maxiters, use_median, sky = (
            prm[0], prm[1], prm[2], prm[3], prm[4], prm[5], prm[6] != 0.0, prm[7]
        )  # fmt: skip
        floor = need
    else:
        sl, su, maxiters = prm[0], prm[1], prm[2]
        rn2 = invg = s2 = sky = 0.0
        use_median = True
        floor = max(need, 4)
    if nv <= floor:
        return 0, nv
    lo = 0
    hi = nv
    it = 0
    while True:
        cnt = hi - lo
        if cnt == 0:
            break
        if algo == CCDCLIP:
            if use_median:
                cen = _median(w, p, lo, hi)
            else:  # IRAF iccclip: one minimum and one maximum left out, at every pass
                cen = _mean(w, p, lo + 1, hi - 1) if cnt > 2 else _mean(w, p, lo, hi)
            above = max(cen - sky, 0.0)
            sigma = np.sqrt(rn2 + max(cen, 0.0) * invg + s2 * above * above)
        else:
            cen = _median(w, p, lo, hi)
            mean = _mean(w, p, lo, hi)
            sigma = np.sqrt(_sumsq(w, p, lo, hi, mean) / (cnt - 1))
            if algo == WINSOR:
                for j in range(cnt):
                    tmp[j] = w[lo + j, p]
                for _ in range(100):
                    m0 = cen - 1.5 * sigma
                    m1 = cen + 1.5 * sigma
                    s = 0.0
                    for j in range(cnt):
                        tmp[j] = min(m1, max(m0, tmp[j]))
                        s += tmp[j]
                    tm = s / cnt
                    s = 0.0
                    for j in range(cnt):
                        d = tmp[j] - tm
                        s += d * d
                    sigma0 = sigma
                    sigma = 1.134 * np.sqrt(s / (cnt - 1))
                    if not abs(sigma - sigma0) > sigma0 * 0.0005:
                        break
        nlo, nhi = _inside(w, p, lo, hi, cen - sl * sigma, cen + su * sigma)
        if nhi - nlo < floor:
            return _restore(w, p, lo, hi, nlo, nhi, cen, floor)
        changed = nhi - nlo != cnt
        lo = nlo
        hi = nhi
        if not changed:
            break
        it += 1
        if maxiters >= 0 and it >= maxiters:
            break
    return lo, hi


@njit(cache=True, error_model="numpy")
def _percentile(w, p, nv, q):
    """numpy.percentile (linear) of the nv sorted values."""
    virtual = (nv - 1) * q
    prev = math.floor(virtual)
    t = virtual - prev
    i = int(prev)
    a = np.float64(w[i, p])
    b = np.float64(w[min(i + 1, nv - 1), p])
    diff = b - a
    if t >= 0.5:
        return b - diff * (1.0 - t)
    return a + diff * t


@njit(cache=True, error_model="numpy")
def _pclip(w, p, nv, qlo, qhi, need):
    plo = _percentile(w, p, nv, qlo)
    phi = _percentile(w, p, nv, qhi)
    lo, hi = _inside(w, p, 0, nv, plo, phi)
    if hi - lo < need:
        return _restore(w, p, 0, nv, lo, hi, _median(w, p, 0, nv), need)
    return lo, hi


@njit(cache=True, error_model="numpy")
def _avsigclip(w, p, nv, prm, s, need):
    """IRAF's avsigclip (icaclip.gx) on the nv sorted values, with the line's σ factor
    ``s``: σ = s·√max(1, c) about the mean leaving out the minimum and maximum (first
    pass; then the plain mean of the kept), or the median; values beyond low·σ below or
    high·σ above leave, pass after pass, until none does or 2 are left."""
    sl, su, maxiters = prm[0], prm[1], prm[2]
    use_median = prm[3] != 0.0
    if nv < 3 or nv <= need or not s > 0.0:
        return 0, nv
    lo = 0
    hi = nv
    it = 0
    while True:
        cnt = hi - lo
        if use_median:
            cen = _median(w, p, lo, hi)
        elif it == 0:
            cen = _mean(w, p, lo + 1, hi - 1)
        else:
            cen = _mean(w, p, lo, hi)
        sigma = s * np.sqrt(max(1.0, cen))
        nlo, nhi = _inside(w, p, lo, hi, cen - sl * sigma, cen + su * sigma)
        if nhi - nlo < need:
            return _restore(w, p, lo, hi, nlo, nhi, cen, need)
        changed = nhi - nlo != cnt
        lo = nlo
        hi = nhi
        it += 1
        if not changed or hi - lo <= 2 or (maxiters >= 0 and it >= maxiters):
            break
    return lo, hi


@njit(cache=True, error_model="numpy")
def _iraf_pclip(w, p, nv, prm, need):
    """IRAF's pclip (icpclip.gx) on the nv sorted values: σ from the distance between the
    median and the value ``prm[0]`` places from it; values at or beyond low·σ below or
    high·σ above the median leave, in one pass."""
    pc, sl, su = prm[0], prm[1], prm[2]
    if nv < max(3, need + 1):
        return 0, nv
    n2 = 1 + nv // 2  # IRAF's 1-based index of the (upper) middle value
    even = nv % 2 == 0
    if pc < 0.0:
        n3 = max(1, int(n2 - 1 + pc)) if even else max(1, int(n2 + pc))
    else:
        n3 = min(nv, int(n2 + pc))
    if even:
        med = 0.5 * (np.float64(w[n2 - 2, p]) + np.float64(w[n2 - 1, p]))
    else:
        med = np.float64(w[n2 - 1, p])
    sigma = (np.float64(w[n3 - 1, p]) - med) * (1.0 if pc > 0.0 else -1.0)
    if not sigma > 0.0:
        return 0, nv
    lo = 0
    while lo < nv and (med - np.float64(w[lo, p])) / sigma >= sl:
        lo += 1
    hi = nv
    while hi > lo and (np.float64(w[hi - 1, p]) - med) / sigma >= su:
        hi -= 1
    if hi - lo < need:
        return _restore(w, p, 0, nv, lo, hi, med, need)
    return lo, hi


@njit(cache=True, error_model="numpy")
def _minmax(nv, prm, need):
    # a fixed count, or (IRAF's icmm) a fraction of the values left at the pixel, truncated
    # after adding 0.001
    nl = int(prm[0]) if prm[2] != 0.0 else int(prm[0] * nv + 0.001)
    nh = int(prm[1]) if prm[3] != 0.0 else int(prm[1] * nv + 0.001)
    r = max(nv - need, 0)
    if nl + nh > r:
        nl0 = min(nl, r // 2)
        nh = min(nh, r - nl0)
        nl = min(nl, r - nh)
    return nl, nv - nh


@njit(cache=True, error_model="numpy")
def _kth_deviation(w, p, lo, hi, med, k):
    """(k+1)-th smallest |w - med| over the sorted window: the k+1 values closest to med
    are a contiguous run [a, a+k]; find a by bisection."""
    a = lo
    b = hi - 1 - k
    while a < b:
        mid = (a + b) // 2
        if med - w[mid, p] > w[mid + k + 1, p] - med:
            a = mid + 1
        else:
            b = mid
    return max(med - w[a, p], w[a + k, p] - med)


@njit(cache=True, error_model="numpy")
def _sigclip_astropy(w, p, nv, sl, su, maxiters, use_median, use_mad, need, lo, hi, klo, khi, it):
    """astropy's sigma_clip for one pixel, continuing from window [lo, hi) after ``it``
    iterations whose last bounds kept [klo, khi)."""
    while True:
        cnt = hi - lo
        med = 0.0
        mean = 0.0
        if use_median or use_mad:
            med = _median(w, p, lo, hi)
        if not use_median or not use_mad:
            mean = _mean(w, p, lo, hi)
        cen = med if use_median else mean
        if use_mad:
            k1 = (cnt - 1) // 2
            k2 = cnt // 2
            d1 = _kth_deviation(w, p, lo, hi, med, k1)
            d2 = d1 if k2 == k1 else _kth_deviation(w, p, lo, hi, med, k2)
            std = 0.5 * (d1 + d2) * MAD_TO_STD
        else:
            std = np.sqrt(_sumsq(w, p, lo, hi, mean) / cnt)
        blo = cen - sl * std
        bhi = cen + su * std
        nlo, nhi = _inside(w, p, lo, hi, blo, bhi)
        # astropy's result: every value (of all) within the last bounds
        flo = nlo
        while flo > 0 and w[flo - 1, p] >= blo:
            flo -= 1
        while flo < nv and w[flo, p] < blo:
            flo += 1
        fhi = max(nhi, flo)
        while fhi > flo and w[fhi - 1, p] > bhi:
            fhi -= 1
        while fhi < nv and w[fhi, p] <= bhi:
            fhi += 1
        if fhi - flo < need:
            return _restore(w, p, 0, nv, flo, fhi, cen, need)
        klo = flo
        khi = fhi
        if nhi - nlo == cnt or nhi == nlo:
            break
        it += 1
        if maxiters >= 0 and it >= maxiters:
            break
        lo = nlo
        hi = nhi
    return klo, khi


@njit(cache=True, error_model="numpy")
def _need(nkeep, nv):
    """How many of ``nv`` values a rejection must keep: ``nkeep`` (at most all), or, for a
    negative one, all but ``-nkeep`` (IRAF: at most that many rejected)."""
    return min(nkeep, nv) if nkeep >= 0 else max(0, nv + nkeep)


@njit(cache=True, error_model="numpy")
def _sigclip_astropy_block(w, bw, nv_a, sl, su, maxiters, use_median, use_mad, nkeep,
                           klo_a, khi_a, fb, acc):  # fmt: skip
    """:func:`_sigclip_astropy` for every pixel of a block (same decisions).

    The first iteration runs over the whole block at once, in short loops with the block's
    pixels innermost so that they vectorise (the window is every valid value, i.e. every
    finite one). A pixel whose smallest and largest values lie within its bounds keeps
    everything and stops there; the few others continue one by one. Leaves in ``acc`` rows
    0, 1, 2, 7 the count, Σd and Σd² of the kept values, d = value − shift (their sums
    without a frame-order pass). Scratch: ``fb`` (5, BLOCK) float64.
    """
    n = w.shape[0]
    cnt = acc[0]
    s1 = acc[1]
    s2 = acc[2]
    sh = acc[7]
    blo_a = fb[0]
    bhi_a = fb[1]
    cen_a = fb[2]
    std_a = fb[3]
    top_a = fb[4]
    inf32 = np.float32(np.inf)
    for p in range(bw):  # gathers: the median (the shift of the sums) and the largest value
        nv = nv_a[p]
        m = max(nv, 1)
        a = np.float64(w[(m - 1) >> 1, p])
        b = np.float64(w[m >> 1, p])
        sh[p] = 0.5 * (a + b) if nv > 0 else 0.0
        top_a[p] = np.float64(w[m - 1, p])
    for p in range(bw):
        s1[p] = 0.0
        s2[p] = 0.0
    # sums about the median over the valid (finite) values
    for j in range(n):
        row = w[j]
        for p in range(bw):
            v = row[p]
            d = np.float64(v) - sh[p] if v < inf32 else 0.0
            s1[p] += d
            s2[p] += d * d
    # spread, centre, bounds: one output per loop, no branches (they vectorise)
    if use_mad:
        for p in range(bw):
            nv = nv_a[p]
            if nv == 0:
                std_a[p] = 0.0
                continue
            k1 = (nv - 1) // 2
            k2 = nv // 2
            d1 = _kth_deviation(w, p, 0, nv, sh[p], k1)
            d2 = d1 if k2 == k1 else _kth_deviation(w, p, 0, nv, sh[p], k2)
            std_a[p] = 0.5 * (d1 + d2) * MAD_TO_STD
    else:
        for p in range(bw):
            nvf = np.float64(max(nv_a[p], 1))
            a = s1[p]
            std_a[p] = np.sqrt(max((s2[p] - a * a / nvf) / nvf, 0.0))
    if use_median:
        for p in range(bw):
            cen_a[p] = sh[p]
    else:
        for p in range(bw):
            cen_a[p] = sh[p] + s1[p] / np.float64(max(nv_a[p], 1))
    for p in range(bw):
        blo_a[p] = cen_a[p] - sl * std_a[p]
    for p in range(bw):
        bhi_a[p] = cen_a[p] + su * std_a[p]
    # values compare as float64, exactly as astropy compares
    for p in range(bw):
        cnt[p] = nv_a[p]
        klo_a[p] = 0
        khi_a[p] = nv_a[p]
    for p in range(bw):
        nv = nv_a[p]
        if nv <= _need(nkeep, nv) or (np.float64(w[0, p]) >= blo_a[p] and top_a[p] <= bhi_a[p]):
            continue  # nothing can be rejected, or nothing is
        blo = blo_a[p]
        bhi = bhi_a[p]
        flo = 0
        while flo < nv and np.float64(w[flo, p]) < blo:
            flo += 1
        fhi = 0
        while fhi < nv and np.float64(w[fhi, p]) <= bhi:
            fhi += 1
        fhi = max(fhi, flo)
        need = _need(nkeep, nv)
        if fhi - flo < need:
            klo, khi = _restore(w, p, 0, nv, flo, fhi, cen_a[p], need)
        elif fhi - flo == nv or fhi == flo or maxiters == 1.0:
            klo, khi = flo, fhi
        else:
            # the few pixels that clipped something go on alone (a block would run every
            # pixel as many iterations as its slowest one)
            klo, khi = _sigclip_astropy(
                w, p, nv, sl, su, maxiters, use_median, use_mad, need, flo, fhi, flo, fhi, 1
            )
        klo_a[p] = klo
        khi_a[p] = khi
        if khi - klo == nv:
            continue
        # sums of the kept values (the others keep the sums above)
        cnt[p] = khi - klo
        a = 0.0
        b = 0.0
        for j in range(klo, khi):
            d = np.float64(w[j, p]) - sh[p]
            a += d
            b += d * d
        s1[p] = a
        s2[p] = b


@njit(cache=True, error_model="numpy")
def _kept_median(w, p, nv, ks):
    """Median of the values flagged 1 in ``ks`` among the nv sorted values (NaN if none)."""
    kept = 0
    for j in range(nv):
        kept += 1 if ks[j] == 1 else 0
    if kept == 0:
        return np.nan
    k1 = (kept - 1) // 2
    k2 = kept // 2
    a = 0.0
    b = 0.0
    rank = 0
    for j in range(nv):
        if ks[j] != 1:
            continue
        if rank == k1:
            a = np.float64(w[j, p])
        if rank == k2:
            b = np.float64(w[j, p])
            break
        rank += 1
    return 0.5 * (a + b)


@njit(cache=True, error_model="numpy")
def _kept_split(w, p, nv, ks):
    """(rejected below, rejected above, median) of the kept (``ks`` 1) among nv sorted; where
    none is kept, below and above the median of all."""
    med = _kept_median(w, p, nv, ks)
    split = med
    if np.isnan(med) and nv > 0:  # nothing kept
        split = 0.5 * (np.float64(w[(nv - 1) // 2, p]) + np.float64(w[nv // 2, p]))
    lo = 0
    hi = 0
    for j in range(nv):
        if ks[j] == 0:
            if np.float64(w[j, p]) < split:
                lo += 1
            else:
                hi += 1
    return lo, hi, med


@njit(cache=True, error_model="numpy")
def _medsig(w, p, nv, prm, ks, vals, work):
    """Siril's median sigma clipping for pixel ``p``: values beyond low·σ below or high·σ
    above the median (σ the sample standard deviation about the mean) are replaced by the
    median, pass after pass, until none is. ``vals`` gets the final values, ``ks`` 1 for a
    value kept as it was, 0 for one replaced from below, 2 from above. Returns (replaced
    below, replaced above, median of the final values)."""
    sl, su = prm[0], prm[1]
    for j in range(nv):
        vals[j] = np.float64(w[j, p])
        ks[j] = 1
    med = 0.0
    for _ in range(100):  # each pass moves values onto the median; 100 is never reached
        if nv < 2:
            break
        mean = 0.0
        for j in range(nv):
            mean += vals[j]
        mean /= nv
        ss = 0.0
        for j in range(nv):
            ss += (vals[j] - mean) ** 2
        sd = np.sqrt(ss / (nv - 1))
        med = _sorted_median(vals, nv, work)
        moved = 0
        for j in range(nv):
            x = vals[j]
            if med - x > sd * sl or x - med > sd * su:
                if ks[j] == 1:
                    ks[j] = 0 if x < med else 2
                vals[j] = med
                moved += 1
        if moved == 0:
            break
    med = _sorted_median(vals, nv, work) if nv > 0 else np.nan
    lo = 0
    hi = 0
    for j in range(nv):
        lo += 1 if ks[j] == 0 else 0
        hi += 1 if ks[j] == 2 else 0
    return lo, hi, med


@njit(cache=True, error_model="numpy")
def _sorted_median(vals, nv, work):
    """Median of ``vals[:nv]`` (mean of the middle two for an even count), by an insertion
    sort of a copy in ``work``."""
    for j in range(nv):
        x = vals[j]
        k = j
        while k > 0 and work[k - 1] > x:
            work[k] = work[k - 1]
            k -= 1
        work[k] = x
    return 0.5 * (work[(nv - 1) // 2] + work[nv // 2])


@njit(cache=True, error_model="numpy")
def _linfit(w, p, nv, prm, need, ks, res):
    """Siril's linear fit clipping for pixel ``p``: a line fitted (least squares) to the
    kept sorted values against their rank; σ their mean absolute deviation from it; values
    beyond low·σ below or high·σ above it leave for good. Flags in ``ks`` (1 kept)."""
    sl, su, maxiters = prm[0], prm[1], prm[2]
    floor = max(need, 4)
    for j in range(nv):
        ks[j] = 1
    kept = nv
    it = 0
    while kept > floor:
        xm = (kept - 1.0) / 2.0
        sxx = kept * (kept * kept - 1.0) / 12.0
        ym = 0.0
        for j in range(nv):
            ym += np.float64(w[j, p]) if ks[j] == 1 else 0.0
        ym /= kept
        sxy = 0.0
        rank = 0
        for j in range(nv):
            if ks[j] == 1:
                sxy += (rank - xm) * (np.float64(w[j, p]) - ym)
                rank += 1
        slope = sxy / sxx
        icpt = ym - slope * xm
        dev = 0.0
        rank = 0
        for j in range(nv):
            if ks[j] == 1:
                res[j] = np.float64(w[j, p]) - (slope * rank + icpt)
                dev += abs(res[j])
                rank += 1
        sigma = dev / kept
        now = 0
        for j in range(nv):
            if ks[j] == 1:
                if -res[j] > sl * sigma or res[j] > su * sigma:
                    ks[j] = 2
                else:
                    now += 1
        while now < floor:  # the rejected values nearest the line come back
            best = -1
            dist = np.inf
            for j in range(nv):
                if ks[j] == 2 and abs(res[j]) < dist:
                    dist = abs(res[j])
                    best = j
            ks[best] = 1
            now += 1
        for j in range(nv):
            if ks[j] == 2:
                ks[j] = 0
        changed = now != kept
        kept = now
        it += 1
        if not changed or (maxiters >= 0 and it >= maxiters):
            break
    return _kept_split(w, p, nv, ks)
