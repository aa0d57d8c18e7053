"""Figures for the report, the experiments and the notebook (matplotlib, no pyplot state).

Every function here builds a :class:`matplotlib.figure.Figure` directly, renders it with the
Agg canvas and lets it go: nothing is registered with pyplot, so a loop that writes a
thousand PNGs keeps no figure alive and never needs ``plt.close``. :func:`show_image` draws
into an ``Axes`` the caller owns (a pyplot one in a notebook is fine).

Examples
--------
>>> import tempfile, os, numpy as np
>>> path = os.path.join(tempfile.mkdtemp(), "noise.png")
>>> img = np.random.default_rng(0).normal(100, 5, (32, 32))
>>> save_frame_png(img, path, title="noise", unit="adu").name
'noise.png'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import CcdcalError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

    from ..frame import Frame

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Stretch = Literal["zscale", "minmax", "percentile"]

#: figure size (inches) and resolution of single-image PNGs
IMAGE_SIZE = (5.6, 4.6)
DPI = 100
#: zlib level of the PNGs
PNG_LEVEL = 3


def new_figure(figsize: tuple[float, float] = IMAGE_SIZE, **kwargs: Any) -> Figure:
    """A figure detached from pyplot (collected when unreferenced), with constrained layout.

    Examples
    --------
    >>> fig = new_figure()
    >>> import matplotlib.pyplot as plt
    >>> plt.get_fignums()
    []
    """
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained", **kwargs)


def save_figure(fig: Figure, path: PathLike, *, dpi: int = DPI) -> Path:
    """Write a figure as PNG (parent folders created) and clear it; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")  # complete or absent, as every output
    # zlib level 3, not 6: a noisy sky's image compresses no worse (200 against 215 kB
    # for a calibrated light) and its encoding took a fifth of the figure's time
    fig.savefig(tmp, dpi=dpi, format="png", pil_kwargs={"compress_level": PNG_LEVEL})
    tmp.replace(out)
    fig.clear()
    log.debug("wrote %s", out)
    return out


def image_limits(data: np.ndarray, stretch: Stretch = "zscale") -> tuple[float, float]:
    """Display limits of an image for a stretch, from its finite pixels.

    ``"zscale"`` is IRAF's (astropy's :class:`~astropy.visualization.ZScaleInterval`),
    ``"minmax"`` the full range, ``"percentile"`` the 0.5 and 99.5 percentiles. When a
    stretch collapses to a single value (quantized data), the next wider one is used.

    Examples
    --------
    >>> import numpy as np
    >>> image_limits(np.arange(10.0), "minmax")
    (0.0, 9.0)
    >>> image_limits(np.full((3, 3), np.nan))
    (0.0, 1.0)
    >>> image_limits(np.r_[np.zeros(1000), 5.0])  # zscale and percentiles give 0..0
    (0.0, 5.0)
    """
    finite = np.asarray(data)
    if not np.issubdtype(finite.dtype, np.floating):  # float32 stays: a float64 copy of a
        finite = finite.astype(np.float64)  # 2048² frame took a third of its figure's time
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0
    if stretch not in ("zscale", "minmax", "percentile"):
        raise CcdcalError(f"stretch must be 'zscale', 'minmax' or 'percentile', not {stretch!r}")
    # quantized data (8-bit cameras, all-zero masters) can collapse a stretch to one value:
    # fall back to a wider one
    order = {"zscale": ("zscale", "percentile", "minmax"), "percentile": ("percentile", "minmax")}
    lo = hi = float(finite[0])
    for name in order.get(stretch, ("minmax",)):
        if name == "zscale":
            from astropy.visualization import ZScaleInterval

            lo, hi = ZScaleInterval().get_limits(finite)
        elif name == "percentile":
            lo, hi = np.percentile(finite, [0.5, 99.5])
        else:
            lo, hi = finite.min(), finite.max()
        lo, hi = float(lo), float(hi)
        if hi > lo:
            break
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def show_image(
    ax: Axes,
    data: np.ndarray,
    *,
    title: str | None = None,
    unit: str | None = None,
    stretch: Stretch = "zscale",
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar: bool = True,
    bad: str = "red",
) -> AxesImage:
    """Draw an image in pixel coordinates (origin lower) with a labelled colour bar.

    Parameters
    ----------
    ax
        Where to draw.
    data
        2-D array; non-finite pixels are shown in red.
    title
        Axes title.
    unit
        Colour-bar label (e.g. ``"electron"``, ``"adu"``).
    stretch
        How to choose the display limits (see :func:`image_limits`) unless ``vmin`` and
        ``vmax`` are given.
    cmap
        Colour map name.
    vmin, vmax
        Explicit display limits.
    colorbar
        Add a colour bar.
    bad
        Colour of non-finite pixels.

    Returns
    -------
    matplotlib.image.AxesImage

    Examples
    --------
    >>> import numpy as np
    >>> fig = new_figure()
    >>> im = show_image(fig.add_subplot(), np.eye(4), title="eye", unit="adu", stretch="minmax")
    >>> im.get_clim()
    (0.0, 1.0)
    """
    import matplotlib

    arr = np.asarray(data)
    if arr.ndim != 2:
        raise CcdcalError(f"show_image needs a 2-D array, got shape {arr.shape}")
    lo, hi = image_limits(arr, stretch) if vmin is None or vmax is None else (vmin, vmax)
    lo = lo if vmin is None else vmin
    hi = hi if vmax is None else vmax
    colours = matplotlib.colormaps[cmap].with_extremes(bad=bad)
    shown, extent = display_copy(arr)
    im = ax.imshow(
        np.ma.masked_invalid(shown),
        origin="lower",
        cmap=colours,
        vmin=lo,
        vmax=hi,
        interpolation="nearest",
        extent=extent,
    )
    ax.set_xlabel("x [pix]")
    ax.set_ylabel("y [pix]")
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        cbar = ax.figure.colorbar(im, ax=ax, shrink=0.9)
        cbar.set_label(unit or "")
    return im


#: the most pixels a figure shows along an axis: an image's axes are about 400 pixels of
#: its PNG, so that shown nearest-neighbour a larger copy picks single pixels out of each
#: block (a 2048² frame's sky noise looked twice what it is, its stars half their size),
#: and drawing a 2048² frame whole took most of a report's time (at 1024: 0.29 s a figure,
#: at 512: 0.23 s)
DISPLAY_PIXELS = 512


def display_copy(
    data: np.ndarray, limit: int = DISPLAY_PIXELS
) -> tuple[np.ndarray, tuple[float, float, float, float] | None]:
    """``data`` binned by whole blocks to at most ``limit`` pixels a side (block means; a
    block with a non-finite pixel stays non-finite, so it still shows), and the extent that
    keeps the axes in the original pixels; ``data`` itself where it is small enough.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(16.0).reshape(4, 4)
    >>> a[0, 0] = np.nan
    >>> shown, extent = display_copy(a, limit=2)
    >>> shown.tolist(), extent
    ([[nan, 4.5], [10.5, 12.5]], (-0.5, 3.5, -0.5, 3.5))
    """
    ny, nx = data.shape
    factor = -(-max(ny, nx) // limit)
    if factor <= 1:
        return data, None
    my, mx = ny // factor * factor, nx // factor * factor
    blocks = np.asarray(data)[:my, :mx].reshape(my // factor, factor, mx // factor, factor)
    # summed in float64 as they are read (the same means as of a float64 copy, which took a
    # 2048² frame's figure 34 MB more, on a process that runs beside a reduction)
    return blocks.mean(axis=(1, 3), dtype=np.float64), (-0.5, mx - 0.5, -0.5, my - 0.5)


def _frame_parts(item: Frame | np.ndarray) -> tuple[np.ndarray, str | None]:
    from ..frame import Frame

    if isinstance(item, Frame):
        unit = item.header.get("BUNIT")
        return item.data, (str(unit) if unit not in (None, "") else None)
    return np.asarray(item), None


def save_frame_png(
    frame_or_array: Frame | np.ndarray,
    path: PathLike,
    *,
    title: str | None = None,
    unit: str | None = None,
    stretch: Stretch = "zscale",
    cmap: str = "gray",
) -> Path:
    """Write one image as a PNG: zscale, colour bar, pixel axes.

    Parameters
    ----------
    frame_or_array
        A :class:`~ccdcal.frame.Frame` (its BUNIT labels the colour bar) or a 2-D array.
    path
        The PNG to write.
    title, unit, stretch, cmap
        See :func:`show_image`; ``unit`` overrides the frame's BUNIT.

    Returns
    -------
    Path
        ``path``.
    """
    data, frame_unit = _frame_parts(frame_or_array)
    fig = new_figure()
    show_image(
        fig.add_subplot(), data, title=title, unit=unit or frame_unit, stretch=stretch, cmap=cmap
    )
    return save_figure(fig, path)


def residual_limit(residual: np.ndarray, percentile: float = 99.0) -> float:
    """A symmetric display limit: the ``percentile`` of ``|residual|`` (finite pixels).

    Examples
    --------
    >>> import numpy as np
    >>> residual_limit(np.array([-2.0, 1.0, 0.5]), 100)
    2.0
    """
    finite = np.abs(np.asarray(residual, dtype=float))
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 1.0
    lim = float(np.percentile(finite, percentile))
    return lim if lim > 0 else 1.0


def save_residual_png(
    residual: np.ndarray,
    path: PathLike,
    *,
    title: str | None = None,
    unit: str | None = None,
    limit: float | None = None,
) -> Path:
    """Write a residual map: diverging colours, limits symmetric about zero.

    Parameters
    ----------
    residual
        2-D map (for example calibrated − truth).
    path
        The PNG to write.
    title, unit
        Title and colour-bar label.
    limit
        Display limits ``(-limit, +limit)``; default the 99th percentile of ``|residual|``.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "r.png")
    >>> save_residual_png(np.zeros((8, 8)), p, title="zero").exists()
    True
    """
    arr = np.asarray(residual, dtype=float)
    lim = residual_limit(arr) if limit is None else float(limit)
    fig = new_figure()
    ax = fig.add_subplot()
    show_image(ax, arr, title=title, unit=unit, cmap="RdBu_r", vmin=-lim, vmax=lim)
    finite = arr[np.isfinite(arr)]
    if finite.size:
        from ..robust import median_and_std

        level, spread = median_and_std(finite, overwrite=True)
        text = f"median {level:.3g}\nrobust std {spread:.3g}"
        ax.text(
            0.02,
            0.98,
            text,
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
    return save_figure(fig, path)


def save_count_png(counts: np.ndarray, path: PathLike, *, title: str | None = None) -> Path:
    """Write a map of small counts (for example frames rejected per pixel).

    Zero is white; the colour scale runs from 1 to the largest count, with integer ticks.

    Examples
    --------
    >>> import tempfile, os, numpy as np
    >>> p = os.path.join(tempfile.mkdtemp(), "c.png")
    >>> save_count_png(np.array([[0, 1], [2, 0]]), p, title="rejected").exists()
    True
    """
    from matplotlib.ticker import MaxNLocator

    arr = np.asarray(counts, dtype=float)
    top = float(np.nanmax(arr)) if np.isfinite(arr).any() else 1.0
    fig = new_figure()
    ax = fig.add_subplot()
    im = show_image(
        ax,
        np.where(arr > 0, arr, np.nan),
        title=title,
        unit="frames",
        cmap="magma_r",
        vmin=0.5,
        vmax=max(top, 1.0) + 0.5,
        bad="white",
    )
    if im.colorbar is not None:
        im.colorbar.locator = MaxNLocator(integer=True)
        im.colorbar.update_ticks()
    return save_figure(fig, path)


def plot_noise_vs_n(
    ax: Axes,
    n: Sequence[float],
    noise: Sequence[float],
    *,
    errors: Sequence[float] | None = None,
    label: str = "measured",
    reference: bool = True,
    floor: float | None = None,
    fit: tuple[float, float] | None = None,
    unit: str = "electron",
) -> None:
    """Noise against number of frames on log-log axes, with the 1/√N expectation.

    Parameters
    ----------
    ax
        Where to draw.
    n, noise, errors
        Number of frames, measured noise and its standard error.
    label
        Legend label of the measurements.
    reference
        Draw ``noise[0] * sqrt(n[0] / N)``.
    floor
        A noise floor (for example that of the master frames), drawn as a horizontal line
        and added in quadrature to the reference.
    fit
        ``(slope, intercept)`` of a fit ``log10 noise = intercept + slope log10 N``, drawn.
    unit
        Noise unit for the axis label.

    Examples
    --------
    >>> fig = new_figure()
    >>> plot_noise_vs_n(fig.add_subplot(), [1, 4, 16], [8.0, 4.1, 2.0], floor=0.5)
    """
    n_arr = np.asarray(n, dtype=float)
    y = np.asarray(noise, dtype=float)
    ax.errorbar(
        n_arr,
        y,
        yerr=None if errors is None else np.asarray(errors, dtype=float),
        fmt="o",
        color="C0",
        label=label,
        capsize=3,
    )
    grid = np.geomspace(n_arr.min(), n_arr.max(), 100)
    if reference and n_arr.size:
        first = y[0] ** 2 - (floor or 0.0) ** 2
        first = max(first, 0.0)
        ref = np.sqrt(first * n_arr[0] / grid)
        ax.plot(grid, ref, "--", color="0.4", label=r"$\propto 1/\sqrt{N}$")
        if floor:
            ax.plot(grid, np.sqrt(ref**2 + floor**2), ":", color="C3", label="1/√N + floor")
    if floor:
        ax.axhline(floor, color="C3", lw=0.8, alpha=0.6, label=f"master-frame floor {floor:.2g}")
    if fit is not None:
        slope, intercept = fit
        ax.plot(grid, 10**intercept * grid**slope, "-", color="C1", label=f"fit: slope {slope:.3f}")
    log_axes(ax, xticks=n_arr)
    ax.set_xlabel("number of frames N")
    ax.set_ylabel(f"background noise [{unit}]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


def log_axes(ax: Axes, *, xticks: Sequence[float] | np.ndarray | None = None) -> None:
    """Log-log axes labelled with plain numbers (``2``, ``0.5``) instead of powers of ten.

    Examples
    --------
    >>> fig = new_figure()
    >>> ax = fig.add_subplot()
    >>> log_axes(ax, xticks=[1, 2, 4])
    >>> ax.get_xscale(), ax.get_yscale()
    ('log', 'log')
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    if xticks is not None and len(xticks):
        ax.set_xticks(list(xticks))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(plain)


def save_noise_vs_n_png(
    path: PathLike,
    n: Sequence[float],
    noise: Sequence[float],
    *,
    title: str | None = None,
    **kwargs: Any,
) -> Path:
    """Write :func:`plot_noise_vs_n` as a PNG.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "n.png")
    >>> save_noise_vs_n_png(p, [1, 2, 4], [3.0, 2.1, 1.5], title="noise").exists()
    True
    """
    fig = new_figure((5.6, 4.2))
    ax = fig.add_subplot()
    plot_noise_vs_n(ax, n, noise, **kwargs)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def save_registration_png(table: Any, path: PathLike, *, title: str | None = None) -> Path:
    """Write a PNG of a registration against frame number: the shift of the grid's centre
    (dx, dy), the rotation, and each frame's FWHM; frames left out are crossed.

    Parameters
    ----------
    table
        :meth:`ccdcal.registration.Registration.table`.
    path
        The PNG to write.
    title
        Figure title.
    """
    n = np.arange(1, len(table) + 1)
    used = np.asarray(table["used"], bool)
    fig = new_figure((6.4, 6.4))
    axes = fig.subplots(3, 1, sharex=True)
    series = (
        (axes[0], ("dx", "dy"), "shift [pix]"),
        (axes[1], ("rotation",), "rotation [deg]"),
        (axes[2], ("fwhm",), "FWHM [pix]"),
    )
    for ax, names, label in series:
        for name in names:
            values = np.asarray(table[name], float)
            line = ax.plot(n, values, "o-", ms=3, lw=0.8, label=name)[0]
            if (~used).any():
                ax.plot(n[~used], values[~used], "x", color=line.get_color(), ms=8)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    axes[2].set_xlabel("frame (in the order taken; x: left out)")
    axes[0].set_title(title or "registration", fontsize=10)
    return save_figure(fig, path)


def save_transfer_png(
    table: Any, path: PathLike, *, header_gain: float | None = None, title: str | None = None
) -> Path:
    """Write a PNG of the photon-transfer points of a camera table (one frame's photon
    variance against its level above the bias, ADU) with the measured gain's line, and the
    header's where it has one.

    Parameters
    ----------
    table
        ``masters/camera.ecsv`` (see :mod:`ccdcal.pipeline.camera`).
    path
        The PNG to write.
    header_gain
        e-/ADU the header says, drawn dashed.
    title
        Figure title.
    """
    level = np.asarray(table["level"], float)
    variance = np.asarray(table["variance"], float)
    fig = new_figure((6.4, 4.4))
    ax = fig.subplots()
    ax.plot(level, variance, "o", ms=5, label="pairs of flats")
    top = float(level.max()) * 1.1 if level.size else 1.0
    x = np.array([0.0, top])
    gain = table.meta.get("gain")
    if gain:
        ax.plot(x, x / gain, "-", lw=1, label=f"measured: {gain:.3g} e-/ADU")
    if header_gain:
        ax.plot(x, x / header_gain, "--", lw=1, label=f"header: {header_gain:.3g} e-/ADU")
    ax.set_xlim(0, top)
    ax.set_ylim(0, None)
    ax.set_xlabel("level above the bias [ADU]")
    ax.set_ylabel("photon variance of one frame [ADU²]")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or "photon transfer", fontsize=10)
    return save_figure(fig, path)


def save_pair_png(
    left: Frame | np.ndarray,
    right: Frame | np.ndarray,
    path: PathLike,
    *,
    titles: tuple[str, str] = ("", ""),
) -> Path:
    """Write two images side by side, each with its own zscale and colour bar."""
    fig = new_figure((11.0, 4.6))
    for ax, item, title in zip(fig.subplots(1, 2), (left, right), titles, strict=True):
        data, unit = _frame_parts(item)
        show_image(ax, data, title=title, unit=unit)
    return save_figure(fig, path)


__all__ = [
    "image_limits",
    "log_axes",
    "new_figure",
    "plot_noise_vs_n",
    "residual_limit",
    "save_count_png",
    "save_figure",
    "save_frame_png",
    "save_noise_vs_n_png",
    "save_pair_png",
    "save_registration_png",
    "save_residual_png",
    "show_image",
]
