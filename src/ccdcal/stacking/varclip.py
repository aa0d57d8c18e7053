"""VarianceClip's window for a whole block of pixels at once (numba), called by
:mod:`ccdcal.stacking.kernels`.

Each value is judged by its own frame's noise at the centre, the centre's own noise, pull
and growth counted, photon skewness by Cornish-Fisher (see
:class:`ccdcal.combine.VarianceClip` and its reference,
:func:`ccdcal.stacking.reference.varclip_keep`). That takes several square roots and
divisions per value and pass; done pixel by pixel they did not vectorise, and a stack of
40 lights of 2048x2048 took 15-30 s. Here every step runs over the block's pixels in the
inner loop (each pixel's passes masked once it is done), so the square roots and divisions
of several pixels go through the vector units at once; each pixel's arithmetic is the same
operations in the same order as the reference's, so the kept values are the same
(``tests/test_rejection_noise.py``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

HALF_PI_W = math.pi / 2.0
#: rounding's allowance (relative): distances of rejected values that differ by less tie,
#: and the lower value comes back first (two values that are each other's only partner in
#: the weighted mean lie at exactly one distance from it); a value within it of a bound is
#: inside, and a value within it of the centre is at the centre (a value with no noise of
#: its own is kept where it is the centre, a weighted mean that comes out of it within
#: rounding, and it adds no photon noise there). Rounding, not the data, would otherwise
#: choose, and the order of the sums differs from the reference's.
TIE = 1e-12


@njit(cache=True, nogil=True, error_model="numpy")
def varclip_block(
    w, ix, vblk, cblk, has_com, fscale, fzero, nv_a, need_a, prm, lam, bw,
    ks, sv, dv, vr, aa, zz, pix, tmp,
):  # fmt: skip
    """VarianceClip of the block's ``bw`` pixels: ``w[:, p]`` each pixel's sorted values
    (``nv_a[p]`` valid), ``ix[:, p]`` the frame of each; leaves 1 (kept) or 0 in
    ``ks[j, p]``. ``sv``, ``dv``, ``vr``, ``aa``, ``zz`` (float64) and ``ks`` (int64) are
    (n, BLOCK) scratch, ``pix`` (11, BLOCK) per-pixel and ``tmp`` (12, BLOCK) per-row
    scratch (float64).

    Performance: each loop over the pixels writes one array and reads a few, with selects
    instead of branches, so that LLVM vectorises it (a loop over many arrays stays scalar:
    they may alias, and it checks only a few pairs at run time)."""
    n = w.shape[0]
    sl, su, maxiters = prm[0], prm[1], prm[2]
    snoise2, sky = prm[4], prm[5]
    limit = (maxiters if maxiters >= 0 else 100) + 1
    cen = pix[0]
    hsum = pix[1]
    wsum = pix[2]
    s3 = pix[3]
    lift0 = pix[4]  # the first pass's lift of the median by a value at a bound
    act = pix[5]  # 1.0 while the pixel iterates
    changed = pix[6]
    extra = pix[7]
    kept_now = pix[8]
    so20 = pix[9]  # the first pass's noise of the median
    sx = pix[10]
    k3x_r = tmp[0]
    u_r = tmp[1]
    so2_r = tmp[2]
    k3o_r = tmp[3]
    s0_r = tmp[4]
    grow_r = tmp[5]
    bhi_r = tmp[6]
    blo_r = tmp[7]
    keep_r = tmp[8]
    ok_r = tmp[9]
    sure = tmp[10]
    scr = tmp[11]
    nmax = 0
    for p in range(bw):
        nv = nv_a[p]
        go = nv > need_a[p]
        act[p] = 1.0 if go else 0.0
        nmax = max(nmax, nv) if go else nmax
        m0 = (nv - 1) // 2 if nv > 0 else 0
        cen[p] = 0.5 * (np.float64(w[m0, p]) + np.float64(w[nv // 2, p])) if go else 0.0
        hsum[p] = 0.0
    for j in range(n):  # each value's frame's numbers, in sorted order
        for p in range(bw):
            i = ix[j, p]
            v = np.float64(vblk[i, p])
            if has_com:
                v -= np.float64(cblk[i, p])
            vr[j, p] = v
            aa[j, p] = lam[0, i] * fscale[i]
            zz[j, p] = fzero[i]
            ks[j, p] = 1 if j < nv_a[p] else 0
    it = 0
    while nmax > 0:
        first = it == 0
        for p in range(bw):
            c = cen[p]
            above = c - sky if c > sky else 0.0
            extra[p] = snoise2 * above * above
        for p in range(bw):
            wsum[p] = 0.0
        for j in range(nmax):
            # the variance at the centre, not at the value: a value's own photons would
            # widen its bounds above the centre and narrow them below
            vj, rj, aj, xj, kj = sv[j], vr[j], aa[j], w[j], ks[j]
            for p in range(bw):
                dx = np.float64(xj[p]) - cen[p]
                dx = dx if abs(dx) > TIE * abs(cen[p]) else 0.0  # the centre's own value
                v = rj[p] - aj[p] * dx
                vj[p] = max(v, 0.01 * rj[p]) + extra[p]
            for p in range(bw):
                v = vj[p]
                use = (act[p] > 0.0) & (j < nv_a[p]) & (kj[p] == 1) & (v > 0.0)
                r = 1.0 / v
                wsum[p] += r if use else 0.0
            if first:  # the median's density: Σ 1/σ of the values
                for p in range(bw):
                    v = vj[p]
                    use = (act[p] > 0.0) & (j < nv_a[p]) & (kj[p] == 1) & (v > 0.0)
                    r = 1.0 / np.sqrt(v)
                    hsum[p] += r if use else 0.0
        if first:  # the first centre is the median: its noise, and its lift by a bound value
            for p in range(bw):
                hs = hsum[p]
                q = HALF_PI_W * (nv_a[p] - 1.0) / (hs * hs)
                so20[p] = q if hs > 0.0 else 0.0
            for p in range(bw):
                hs = hsum[p]
                lift = np.sqrt(HALF_PI_W) / hs
                lift0[p] = lift if hs > 0.0 else 0.0
        for p in range(bw):
            s3[p] = 0.0
        if not first:
            # the third cumulant of the photon noise, a² x for a variance a·x, the centre's
            # share of it included: Σ u³ κ3 over the kept (u = weight / W)
            for j in range(nmax):
                vj, aj, zj, kj = sv[j], aa[j], zz[j], ks[j]
                for p in range(bw):
                    v = vj[p]
                    use = (act[p] > 0.0) & (j < nv_a[p]) & (kj[p] == 1) & (v > 0.0)
                    a = aj[p]
                    u = 1.0 / (v * wsum[p])
                    term = u * u * u * a * a * max(cen[p] - zj[p], 0.0)
                    s3[p] += term if use else 0.0
        for p in range(bw):
            kept_now[p] = 0.0
        _screens(first, sv, ks, aa, nv_a, act, wsum, lift0, su, sl, nmax, bw, sure, scr)
        for j in range(nmax):
            vj, aj, zj, xj, kj, dj = sv[j], aa[j], zz[j], w[j], ks[j], dv[j]
            for p in range(bw):
                ok_r[p] = 1.0 if (act[p] > 0.0) & (j < nv_a[p]) else 0.0
            # values surely within both bounds need no bounds: a row where every pixel's
            # value is so (the middle of the sorted values, mostly) is kept as it is
            doubt = 0
            for p in range(bw):
                x = np.float64(xj[p])
                d = abs(x - cen[p]) + (lift0[p] if first else 0.0)
                fine = (d * d <= vj[p] * scr[p]) | (ok_r[p] == 0.0)
                doubt += 0 if fine else 1
            if doubt == 0:
                for p in range(bw):
                    kj[p] += 2 if ok_r[p] > 0.0 else 0
                for p in range(bw):
                    kept_now[p] += ok_r[p]
                continue
            _bounds(first, vj, aj, zj, kj, cen, wsum, s3, so20, lift0, su, sl, bw,
                    k3x_r, u_r, so2_r, k3o_r, s0_r, grow_r, bhi_r, blo_r)  # fmt: skip
            for p in range(bw):
                x = np.float64(xj[p])
                c = cen[p]
                slack = TIE * abs(c)  # a bound within rounding of the value holds it
                inside = (x >= c - max(blo_r[p], 0.0) - slack) & (
                    x <= c + max(bhi_r[p], 0.0) + slack
                )
                # the only value kept (u = 1): nothing to test it by
                keep_r[p] = 1.0 if inside | (u_r[p] >= 1.0) else 0.0
            for p in range(bw):
                x = np.float64(xj[p])
                c = cen[p]
                d = s0_r[p]
                q = abs(x - c) / d
                dist = q if d > 0.0 else (0.0 if abs(x - c) <= TIE * abs(c) else np.inf)
                dj[p] = dist if ok_r[p] > 0.0 else dj[p]
            for p in range(bw):
                kj[p] += 2 * int(keep_r[p]) if ok_r[p] > 0.0 else 0
            for p in range(bw):
                kept_now[p] += keep_r[p] if ok_r[p] > 0.0 else 0.0
        for p in range(bw):  # the rejected values nearest the centre come back
            if act[p] == 0.0:
                continue
            nv = nv_a[p]
            while kept_now[p] < need_a[p]:
                best = -1
                dist = np.inf
                for j in range(nv):  # sorted: of distances that tie, the lower value
                    if ks[j, p] < 2 and (best < 0 or dv[j, p] < dist * (1.0 - TIE)):
                        dist = dv[j, p]
                        best = j
                if best < 0:
                    break
                ks[best, p] += 2
                kept_now[p] += 1
        # bit 0: kept before this pass, bit 1: kept after it (restored ones included), so
        # that a pass whose restored set is the last one's counts as no change
        for p in range(bw):
            changed[p] = 0.0
        for j in range(nmax):
            kj = ks[j]
            for p in range(bw):
                ok = (act[p] > 0.0) & (j < nv_a[p])
                differ = (kj[p] >> 1) != (kj[p] & 1)
                changed[p] = 1.0 if ok & differ else changed[p]
            for p in range(bw):
                ok = (act[p] > 0.0) & (j < nv_a[p])
                kj[p] = kj[p] >> 1 if ok else kj[p]
        it += 1
        more = 0
        for p in range(bw):
            # the median only starts: at least one pass about the mean; a kept set that
            # cycles between two states (each test is against the centre the last set
            # made) stops at the passes' limit
            stop = (it > 1 and changed[p] == 0.0) or it >= limit
            act[p] = 0.0 if stop else act[p]
            more = max(more, nv_a[p]) if act[p] > 0.0 else more
        nmax = more
        if nmax == 0:
            break
        for p in range(bw):
            wsum[p] = 0.0
        for p in range(bw):
            sx[p] = 0.0
        for j in range(nmax):  # the inverse-variance mean of the kept
            vj, xj, kj = sv[j], w[j], ks[j]
            for p in range(bw):
                v = vj[p]
                use = (act[p] > 0.0) & (j < nv_a[p]) & (kj[p] == 1) & (v > 0.0)
                xs = np.float64(xj[p]) / v
                sx[p] += xs if use else 0.0
            for p in range(bw):
                v = vj[p]
                use = (act[p] > 0.0) & (j < nv_a[p]) & (kj[p] == 1) & (v > 0.0)
                r = 1.0 / v
                wsum[p] += r if use else 0.0
        for p in range(bw):
            q = sx[p] / wsum[p]
            cen[p] = q if (act[p] > 0.0) & (wsum[p] > 0.0) else cen[p]


#: relative margin of the screen in :func:`_screens` (far above float64 rounding)
SCREEN_MARGIN = 1e-6


def _factor(t: float) -> float:
    """The least of ``t + g (t² - 1) / 6`` over the skewness ``g`` in [-1, 1]."""
    return t - abs(t * t - 1.0) / 6.0


_factor_jit = njit(cache=True, nogil=True)(_factor)


@njit(cache=True, nogil=True, error_model="numpy")
def _screens(first, sv, ks, aa, nv_a, act, wsum, lift0, su, sl, nmax, bw, vmin, scr):
    """For each pixel, ``scr[p]`` such that a value with ``(|x - c| + lift)² <= v scr`` is
    within both its bounds this pass (-1: no such screen).

    Both bounds are ``spread (t + g (t² - 1)/6) - lift`` with ``g`` in [-1, 1] and
    ``spread >= |1 - u gt| √v`` (``gt = 1 ± t grow``), so they are at least
    ``AL F √v - lift`` with ``F`` the least of ``t + g (t² - 1)/6`` over both sides and
    ``AL`` a lower bound of ``|1 - u gt|``: 1 on the first pass (``u = 0``); after it
    ``1 - U (1 + t Γ)``, ``U`` the largest weight of a kept value (``1 / (v_min W)``) and
    ``Γ`` the largest growth, ``A √(v_min + S) / (2 v_min)`` with ``A`` the largest photon
    slope, ``S`` the largest noise of the others' mean (``1 / (W - 1/v_min)``) and
    ``v_min`` the least variance (the growth falls with the variance). A margin of
    :data:`SCREEN_MARGIN` keeps rounding out of it."""
    f = min(_factor_jit(su), _factor_jit(sl))
    big = max(su, sl)
    n = sv.shape[0]
    slope = 0.0
    for j in range(n):
        for p in range(bw):
            slope = max(slope, abs(aa[j, p]))
    for p in range(bw):
        vmin[p] = np.inf
    for j in range(nmax):
        vj, kj = sv[j], ks[j]
        for p in range(bw):  # the least variance of the kept values (of all on pass 1)
            v = vj[p]
            use = (j < nv_a[p]) & (v > 0.0) & ((kj[p] == 1) | first)
            vmin[p] = min(vmin[p], v) if use else vmin[p]
    for p in range(bw):
        if first:
            al = 1.0
        else:
            vm = vmin[p]
            ws = wsum[p]
            weight = 1.0 / (vm * ws)
            others = 1.0 / (ws - 1.0 / vm)
            growth = slope * np.sqrt(vm + others) / (2.0 * vm)
            al = 1.0 - weight * (1.0 + big * growth)
            al = al if (ws - 1.0 / vm > 0.0) & np.isfinite(al) else -1.0
        ok = (act[p] > 0.0) & (f > 0.0) & (al > 0.0)
        scr[p] = (al * f) * (al * f) * (1.0 - SCREEN_MARGIN) if ok else -1.0


@njit(cache=True, nogil=True, error_model="numpy")
def _bounds(
    first, vj, aj, zj, kj, cen, wsum, s3, so20, lift0, su, sl, bw,
    k3x_r, u_r, so2_r, k3o_r, s0_r, grow_r, bhi_r, blo_r,
):  # fmt: skip
    """The upper and lower bounds of one row of values (``vj``: their variances at the
    centre, ``aj`` photon slopes, ``zj`` zero offsets, ``kj`` keep flags) about the pixels'
    centres, into ``bhi_r`` and ``blo_r``; ``u_r`` and ``s0_r`` keep each value's weight in
    the centre and its spread."""
    for p in range(bw):
        a = aj[p]
        k3x_r[p] = a * a * max(cen[p] - zj[p], 0.0)
    if first:  # the median: it holds no value with a weight, its noise the median's
        for p in range(bw):
            u_r[p] = 0.0
        for p in range(bw):
            so2_r[p] = so20[p]
        for p in range(bw):
            k3o_r[p] = 0.0
    else:  # the inverse-variance mean of the kept: a kept value weighs u in it
        for p in range(bw):
            v = vj[p]
            kept = (kj[p] == 1) & (v > 0.0)
            uk = 1.0 / (v * wsum[p])
            u_r[p] = uk if kept else 0.0
        for p in range(bw):
            v = vj[p]
            ws = wsum[p]
            kept = (kj[p] == 1) & (v > 0.0)
            wo = ws - 1.0 / v
            so2k = 1.0 / wo
            so2n = 1.0 / ws
            so2_r[p] = (so2k if wo > 0.0 else 0.0) if kept else (so2n if ws > 0.0 else 0.0)
        for p in range(bw):
            v = vj[p]
            ws = wsum[p]
            kept = (kj[p] == 1) & (v > 0.0)
            wo = ws - 1.0 / v
            uk = u_r[p]
            ratio = ws / wo
            k3ok = (s3[p] - uk * uk * uk * k3x_r[p]) * ratio**3
            k3o_r[p] = (k3ok if wo > 0.0 else 0.0) if kept else s3[p]
    for p in range(bw):
        s0_r[p] = (1.0 - u_r[p]) * np.sqrt(vj[p] + so2_r[p])
    for p in range(bw):
        v = vj[p]
        grow = aj[p] * s0_r[p] / (2.0 * v)
        grow_r[p] = grow if v > 0.0 else 0.0
    # the bound is t·S(c), and S grows with c (the photons at c): to first order the test
    # is of α(x - μ) - β(c_others - μ), whose spread S and skewness (Cornish-Fisher: photon
    # noise is skewed, κ3 = a² x) make both tails the normal distribution's
    for side in range(2):
        t = su if side == 0 else sl
        sgn = 1.0 if side == 0 else -1.0
        out = bhi_r if side == 0 else blo_r
        for p in range(bw):
            v = vj[p]
            u = u_r[p]
            so2 = so2_r[p]
            gt = 1.0 + sgn * t * grow_r[p]
            al = 1.0 - u * gt
            be = (1.0 - u) * gt
            spread = np.sqrt(al * al * v + be * be * so2)
            k3 = sgn * (al * al * al * k3x_r[p] - be * be * be * k3o_r[p])
            g0 = k3 / (spread * spread * spread)
            g = g0 if spread > 0.0 else 0.0
            g = min(max(g, -1.0), 1.0)
            lift = lift0[p] if first else 0.0
            out[p] = spread * (t + g * (t * t - 1.0) / 6.0) - lift


__all__ = ["TIE", "varclip_block"]
