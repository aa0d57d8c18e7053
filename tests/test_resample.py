"""Resampling against the rule its module states, written out in NumPy one tap at a time.

The compiled kernel takes the pixels whose taps lie inside the frame in runs, one tap for a
whole run at a time, and the pixels near the edges one tap after another; the reference
below does neither, so a run that reads the wrong columns, drops a tap or sums in another
order shows here, bit for bit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ccdcal import flags
from ccdcal.frame import Frame
from ccdcal.registration import Transform, resample
from ccdcal.registration.resample import _HALF, CARRY, KERNELS, STEPS, kernel_table


def _weights(table: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The kernel at offsets ``t`` (linear between the table's samples), rounding-size
    weights set to 0."""
    u = np.abs(t) * STEPS
    k = u.astype(np.int64)
    inside = k < table.size - 1
    k = np.where(inside, k, 0)
    w = np.where(inside, table[k] + (u - k) * (table[k + 1] - table[k]), 0.0)
    return np.where(np.abs(w) > 1e-9, w, 0.0)


def reference(frame: Frame, transform: Transform, shape, origin, kernel):
    """Output pixel by output pixel (vectorised over pixels), tap by tap, row-major."""
    ny, nx = frame.data.shape
    oy, ox = shape
    half = _HALF[KERNELS[kernel]]
    table = kernel_table(KERNELS[kernel])
    shift = np.array([[1.0, 0.0, origin[0]], [0.0, 1.0, origin[1]], [0.0, 0.0, 1.0]])
    back = np.linalg.inv(transform.matrix) @ shift
    area = abs(float(np.linalg.det(back[:2, :2])))
    jj, ii = np.mgrid[0:oy, 0:ox].astype(np.float64)
    sx = back[0, 0] * ii + back[0, 1] * jj + back[0, 2]
    sy = back[1, 0] * ii + back[1, 1] * jj + back[1, 2]
    inside = (sx >= -0.5) & (sx < nx - 0.5) & (sy >= -0.5) & (sy < ny - 0.5)
    sx, sy = np.where(inside, sx, 0.0), np.where(inside, sy, 0.0)
    x0 = np.floor(sx).astype(np.int64) - half + 1
    y0 = np.floor(sy).astype(np.int64) - half + 1
    mask = np.zeros((ny, nx), np.uint16) if frame.mask is None else frame.mask
    var = frame.variance
    com = frame.extras.get("VARCOMMON")
    acc, wsum, wall = np.zeros((oy, ox)), np.zeros((oy, ox)), np.zeros((oy, ox))
    acc_v, acc_c = np.zeros((oy, ox)), np.zeros((oy, ox))
    bits = np.zeros((oy, ox), np.int64)
    for r in range(2 * half):
        yy = y0 + r
        wy = _weights(table, sy - yy)
        for k in range(2 * half):
            xx = x0 + k
            w = wy * _weights(table, sx - xx)
            tap = inside & (yy >= 0) & (yy < ny) & (xx >= 0) & (xx < nx) & (w != 0.0)
            ys, xs = np.where(tap, yy, 0), np.where(tap, xx, 0)
            f = np.where(tap, mask[ys, xs], 0).astype(np.int64)
            wall += np.where(tap, w, 0.0)
            bits |= np.where(np.abs(w) >= CARRY, f, 0)
            x = frame.data[ys, xs].astype(np.float64)
            use = tap & ((f & int(flags.EXCLUDE)) == 0) & np.isfinite(x)
            acc += np.where(use, w * np.where(use, x, 0.0), 0.0)
            wsum += np.where(use, w, 0.0)
            for plane, out in ((var, acc_v), (com, acc_c)):
                if plane is not None:
                    out += np.where(use, w * w * plane[ys, xs].astype(np.float64), 0.0)
    good = inside & (wall > 0.0) & (wsum >= 0.5 * wall)
    with np.errstate(invalid="ignore", divide="ignore"):
        data = np.where(good, acc / wsum * area, np.nan).astype(np.float32)
        v = np.where(good, acc_v / (wsum * wsum) * area * area, np.nan).astype(np.float32)
        c = np.where(good, acc_c / (wsum * wsum) * area * area, np.nan).astype(np.float32)
    out_mask = np.where(good, bits, bits | int(flags.NO_DATA)).astype(np.uint16)
    out_mask[~inside] = flags.NO_DATA
    return data, v, c, out_mask


def _frame(rng, with_var=True, with_mask=True) -> Frame:
    ny, nx = 41, 57
    data = rng.normal(100.0, 5.0, (ny, nx)).astype(np.float32)
    data[rng.random((ny, nx)) < 0.02] = np.nan
    data[rng.random((ny, nx)) < 0.005] = np.inf
    mask = np.zeros((ny, nx), np.uint16)
    mask[rng.random((ny, nx)) < 0.03] = flags.COSMIC_RAY  # excluded
    mask[rng.random((ny, nx)) < 0.03] |= flags.HOT  # carried, not excluded
    var = rng.uniform(20.0, 30.0, (ny, nx)).astype(np.float32)
    var[rng.random((ny, nx)) < 0.01] = np.nan  # a usable value with no variance
    com = rng.uniform(1.0, 2.0, (ny, nx)).astype(np.float32)
    return Frame(
        data,
        variance=var if with_var else None,
        mask=mask if with_mask else None,
        extras={"VARCOMMON": com} if with_var else {},
    )


MOVES = [
    {"dx": 3.3, "dy": -2.7, "rotation": 0.3},  # a dither: taps inside the frame in runs
    {"dx": 3.0, "dy": -2.0},  # whole pixels: zero weights, that must carry nothing
    {"dx": 1e-4, "rotation": 1e-4},  # a drift: a run is a whole row
    {"dx": -12.5, "dy": 7.25, "rotation": 25.0, "scale": 1.1},  # half the grid outside
    {"dx": 0.5, "dy": 0.5, "scale": 0.7},
]


@pytest.mark.parametrize("kernel", list(KERNELS))
@pytest.mark.parametrize("move", MOVES)
def test_resample_is_the_stated_rule_bit_for_bit(kernel, move):
    rng = np.random.default_rng(7)
    frame = _frame(rng)
    transform = Transform.from_parameters(**move)
    shape, origin = (45, 50), (3, -2)
    out = resample(frame, transform, shape, origin=origin, kernel=kernel)
    data, var, com, mask = reference(frame, transform, shape, origin, kernel)
    np.testing.assert_array_equal(out.data, data)
    np.testing.assert_array_equal(out.variance, var)
    np.testing.assert_array_equal(out.extras["VARCOMMON"], com)
    np.testing.assert_array_equal(out.mask, mask)
    # the test means something: most pixels have a value, some were left out, some
    # carry a flag
    assert 0.3 < np.isfinite(out.data).mean() < 1.0
    assert (out.mask & flags.COSMIC_RAY).any() and (out.mask & flags.HOT).any()


@pytest.mark.parametrize("planes", ["data", "data+mask"])
def test_resample_without_variance_or_mask(planes):
    rng = np.random.default_rng(8)
    frame = _frame(rng, with_var=False, with_mask=planes == "data+mask")
    transform = Transform.from_parameters(**MOVES[0])
    out = resample(frame, transform, (41, 57))
    data, _, _, mask = reference(frame, transform, (41, 57), (0, 0), "lanczos3")
    np.testing.assert_array_equal(out.data, data)
    np.testing.assert_array_equal(out.mask, mask)
    assert out.variance is None


def test_grid_header_follows_the_target_as_it_is_now():
    """The moved WCS is kept by the target's cards, not by the header object: a target
    changed in place, or another origin, gives its own WCS."""
    from astropy.io import fits

    from ccdcal.registration.resample import grid_header

    target = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 50.0,
                          "CRPIX2": 60.0, "CRVAL1": 10.0, "CRVAL2": 20.0,
                          "CD1_1": -1e-4, "CD2_2": 1e-4})  # fmt: skip
    light = fits.Header({"OBJECT": "M1", "CRVAL1": 99.0})
    first = grid_header(light, target, origin=(-5, 3))
    assert (first["CRPIX1"], first["CRPIX2"], first["CRVAL1"]) == (55.0, 57.0, 10.0)
    assert grid_header(light, target, origin=(0, 0))["CRPIX1"] == 50.0
    target["CRVAL1"] = 11.0
    assert grid_header(light, target, origin=(-5, 3))["CRVAL1"] == 11.0
    assert "CRVAL1" not in grid_header(light, fits.Header({"OBJECT": "no WCS"}))
    assert light["CRVAL1"] == 99.0  # the light's own header is left as it was


def test_grid_header_takes_a_target_with_a_card_astropy_cannot_parse():
    """A camera's header as read from its file (an unquoted DATE-OBS): its WCS is moved as
    before, the card it cannot parse left alone."""
    from astropy.io import fits

    from ccdcal.registration.resample import grid_header

    cards = ["CTYPE1  = 'RA---TAN'", "CTYPE2  = 'DEC--TAN'", "CRPIX1  =                  4.0",
             "CRPIX2  =                  4.0", "CRVAL1  =                 10.0",
             "CRVAL2  =                 20.0", "CD1_1   =              -0.0001",
             "CD2_2   =               0.0001", "DATE-OBS= 2024-01-01T00:00:00"]  # fmt: skip
    target = fits.Header.fromstring("".join(c.ljust(80) for c in cards))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy's word on the card it cannot parse
        out = grid_header(fits.Header({"OBJECT": "M1"}), target, origin=(1, 2))
    assert (out["CRPIX1"], out["CRPIX2"]) == (3.0, 2.0)
