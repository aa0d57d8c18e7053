"""What the experiments share: result tables, simulated nights, masters and noise models.

Examples
--------
>>> parse_size("200x100")
(100, 200)
>>> parse_list("1,2,4", int)
(1, 2, 4)
>>> print(markdown_table(("N", "noise"), [(1, "2.0"), (4, "1.0")]))
| N | noise |
| ---: | ---: |
| 1 | 2.0 |
| 4 | 1.0 |
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import CcdcalError
from ..frame import Frame

if TYPE_CHECKING:
    from ..quality import Truth

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------- parsing
def parse_size(text: str) -> tuple[int, int]:
    """``"NXxNY"`` (or one number for a square) as ``(ny, nx)``.

    Examples
    --------
    >>> parse_size("64")
    (64, 64)
    """
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise CcdcalError(f"size must look like 200x200, not {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 16:
        raise CcdcalError(f"size must be NXxNY with both at least 16, not {text!r}")
    nx, ny = values
    return ny, nx


def parse_list(text: str, kind: Callable[[str], Any] = float) -> tuple[Any, ...]:
    """A comma-separated list of values.

    Examples
    --------
    >>> parse_list("0, 0.15")
    (0.0, 0.15)
    """
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise CcdcalError(f"expected a comma-separated list, not {text!r}")
    try:
        return tuple(kind(t) for t in items)
    except ValueError:
        raise CcdcalError(f"cannot read {text!r} as a list of {kind.__name__}") from None


# ---------------------------------------------------------------------------- markdown
def markdown_table(
    head: Sequence[str], rows: Sequence[Sequence[Any]], *, left: Sequence[int] = ()
) -> str:
    """A Markdown table; columns right-aligned (numbers) except those in ``left``."""
    align = ["---" if i in left else "---:" for i in range(len(head))]
    lines = [head, align, *[[str(c) for c in row] for row in rows]]
    return "\n".join("| " + " | ".join(str(c) for c in line) + " |" for line in lines)


def signed(value: float, fmt: str) -> str:
    """``value`` formatted with a true minus sign (−), as README's numbers are.

    Examples
    --------
    >>> signed(-0.5001, ".4f"), signed(0.25, "+.2f"), signed(-0.00001, "+.4f")
    ('−0.5001', '+0.25', '+0.0000')
    """
    text = format(value, fmt)
    if text.startswith("-") and not text.strip("-+0."):  # a negative zero after rounding
        text = format(0.0, fmt)
    return text.replace("-", "\u2212")


def thousands(n: int) -> str:
    """An integer with thousands separated by commas.

    Examples
    --------
    >>> thousands(13772)
    '13,772'
    """
    return f"{int(n):,}"


# ---------------------------------------------------------------------------- results
@dataclass
class ExperimentResult:
    """Rows of numbers an experiment measured, with the parameters it ran with.

    Subclasses set :attr:`name` and :attr:`columns` (key, heading, format) and implement
    :meth:`plot`.
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    name: ClassVar[str] = "experiment"
    columns: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    def table(self) -> str:
        """The rows as an aligned text table, followed by the notes."""
        head = [h for _, h, _ in self.columns]
        body = []
        for row in self.rows:
            cells = []
            for key, _, fmt in self.columns:
                value = row.get(key)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    cells.append("-")
                else:
                    cells.append(format(value, fmt))
            body.append(cells)
        widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
        lines = [
            "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines + [f"{n}" for n in self.notes])

    def to_csv(self, path: PathLike) -> Path:
        """Write every row with every key (full precision) as CSV; returns the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        keys: list[str] = [k for k, _, _ in self.columns]
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in keys})
        out.write_text(buf.getvalue(), encoding="utf-8")
        return out

    def plot(self, path: PathLike) -> Path:  # pragma: no cover - abstract
        """Write the experiment's figure as PNG."""
        raise NotImplementedError

    def markdown(self) -> str:
        """The results as Markdown: what ran, a table, the notes (README includes it)."""
        head = [h for _, h, _ in self.columns]
        rows = [
            ["-" if row.get(k) is None else format(row[k], fmt) for k, _, fmt in self.columns]
            for row in self.rows
        ]
        return "\n\n".join([f"`ccdcal experiment {self.name}`, {self.params}:",
                             markdown_table(head, rows), *self.notes]) + "\n"  # fmt: skip

    def to_markdown(self, path: PathLike) -> Path:
        """Write :meth:`markdown` to ``path``; returns the path."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(self.markdown(), encoding="utf-8")
        return out

    def write(self, out_dir: PathLike) -> list[Path]:
        """Write ``<name>.csv``, ``<name>.png`` and ``<name>.md`` (the results as Markdown)
        into ``out_dir``; returns their paths."""
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        stem = self.name.replace("-", "_")
        return [
            self.to_csv(folder / f"{stem}.csv"),
            self.plot(folder / f"{stem}.png"),
            self.to_markdown(folder / f"{stem}.md"),
        ]


def _csv_value(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------------------- nights
@contextlib.contextmanager
def work_folder(work_dir: PathLike | None, name: str) -> Iterator[Path]:
    """``work_dir/name`` (kept) or a temporary folder removed afterwards."""
    if work_dir is not None:
        folder = Path(work_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
    else:
        with tempfile.TemporaryDirectory(prefix=f"ccdcal-{name}-") as tmp:
            yield Path(tmp)


@dataclass
class SimNight:
    """A simulated night on disk: raw frames by kind and the truth behind them."""

    folder: Path
    truth: Truth
    bias: list[Path]
    darks: list[Path]
    flats: dict[str, list[Path]]
    lights: list[Path]
    stars: Any = None

    @classmethod
    def make(cls, folder: PathLike, **options: Any) -> SimNight:
        """Simulate a night into ``folder`` with :func:`ccdcal.simulate.night`, then read it."""
        from .. import simulate

        simulate.night(folder, **options)
        return cls.read(folder)

    @classmethod
    def read(cls, folder: PathLike) -> SimNight:
        """Read a simulated night's raw file list and truth."""
        from astropy.table import Table

        from ..collection import scan
        from ..quality import Truth

        root = Path(folder)
        coll = scan(root / "raw")
        flats: dict[str, list[Path]] = {}
        for f in coll.of_kind("flat"):
            flats.setdefault(f.filter or "none", []).append(f.path)
        stars_path = root / "truth" / "stars.ecsv"
        return cls(
            root,
            Truth.read(root),
            [f.path for f in coll.of_kind("bias")],
            [f.path for f in coll.of_kind("dark")],
            flats,
            [f.path for f in coll.of_kind("light")],
            Table.read(stars_path) if stars_path.exists() else None,
        )

    def hot_pixels(self) -> np.ndarray:
        """Boolean map of the detector's hot pixels (all False when the truth has none)."""
        path = self.folder / "truth" / "hot_pixels.fits"
        if path.exists():
            return Frame.read(path).data > 0
        return np.zeros(self.truth.scene.shape, bool)

    def cosmic(self, lights: Sequence[Path]) -> np.ndarray:
        """Union of the true cosmic-ray masks of some lights."""
        out = np.zeros(self.truth.scene.shape, bool)
        for p in lights:
            mask = self.truth.cosmic.get(Path(p).stem)
            if mask is not None:
                out |= mask
        return out


@dataclass
class Masters:
    """Master bias, dark and flat of a night (any may be None)."""

    bias: Frame | None
    dark: Frame | None
    flat: Frame | None
    n_bias: int = 0
    n_dark: int = 0
    n_flat: int = 0


def build_masters(
    night: SimNight, *, filt: str | None = None, n_flat: int | None = None, flat: bool = True
) -> Masters:
    """Median masters of a night, as :func:`ccdcal.reduce` makes them (``n_flat`` flats)."""
    from ..masters import master_bias, master_dark, master_flat

    bias = master_bias(night.bias) if night.bias else None
    dark = master_dark(night.darks, bias=bias) if night.darks else None
    mflat = None
    flats: list[Path] = []
    if flat and night.flats:
        key = filt if filt is not None else next(iter(night.flats))
        flats = night.flats[key][: n_flat or None]
        mflat = master_flat(flats, bias=bias, dark=dark)
    return Masters(bias, dark, mflat, len(night.bias), len(night.darks), len(flats))


def calibrate_lights(paths: Sequence[Path], masters: Masters) -> list[Frame]:
    """Calibrate raw lights (to electrons) with the given masters."""
    from ..calibration import calibrate

    return [
        calibrate(Frame.read(p), bias=masters.bias, dark=masters.dark, flat=masters.flat)
        for p in paths
    ]


def expected_raw(night: SimNight, light: Path) -> Frame:
    """The noise-free raw frame (ADU, no cosmic rays) behind a light, with its header.

    bias + (dark current × t + scene × t × flat) / gain, from the truth; calibrating it with
    the masters gives the fixed pattern the masters leave in every calibrated frame.
    """
    raw = Frame.read(light)
    t = float(raw.header["EXPTIME"])
    truth = night.truth
    gain = truth.param("gain")
    filt = str(raw.header.get("FILTER", "")).strip()
    flat = truth.flats.get(filt, next(iter(truth.flats.values()), np.ones_like(truth.scene)))
    electrons = truth.dark_current * t + truth.scene * t * flat
    data = truth.bias + electrons / gain
    if data.shape != raw.shape:
        raise CcdcalError(
            f"{light}: the truth ({data.shape}) and the raw frame ({raw.shape}) differ in "
            "shape; the experiments need nights simulated without overscan"
        )
    return Frame(data, header=raw.header.copy())


def fixed_pattern(night: SimNight, light: Path, masters: Masters) -> np.ndarray:
    """What calibration with ``masters`` leaves in a noise-free light: calibrated − truth (e-)."""
    from ..calibration import calibrate

    ideal = expected_raw(night, light)
    t = float(ideal.header["EXPTIME"])
    cal = calibrate(ideal, bias=masters.bias, dark=masters.dark, flat=masters.flat)
    return cal.data.astype(np.float64) - night.truth.scene * t


def frame_variance(night: SimNight, exptime: float, *, filt: str | None = None) -> np.ndarray:
    """Model variance (e-²) of one calibrated light per pixel: photons, dark, read noise.

    (flat · scene · t + dark · t + rn²) / flat², flat-fielded with a perfect flat.
    """
    truth = night.truth
    rn = truth.param("read_noise", "rdnoise")
    flats = truth.flats
    flat = flats.get(filt or "", next(iter(flats.values()), np.ones_like(truth.scene)))
    return (flat * truth.scene * exptime + truth.dark_current * exptime + rn * rn) / flat**2


def background_pixels(night: SimNight, *, exclude: np.ndarray | None = None) -> np.ndarray:
    """Star-free pixels away from hot pixels: the scene within 0.5 % of the sky level there.

    The sky is the median of the true scene; a pixel counts as star-free when the scene
    exceeds it by less than 0.5 % (a star's wing below a tiny fraction of the sky noise).
    ``exclude`` (for example the cosmic rays of the frames used) is left out too.
    """
    scene = night.truth.scene
    sky = float(np.median(scene))
    good = scene < sky * 1.005
    good &= ~night.hot_pixels()
    if exclude is not None:
        good &= ~exclude
    return good


def noise_and_error(values: np.ndarray) -> tuple[float, float]:
    """Standard deviation of ``values`` and its standard error σ / √(2(M − 1)).

    Examples
    --------
    >>> s, e = noise_and_error(np.array([1.0, -1.0, 1.0, -1.0, 1.0]))
    >>> round(s, 4), round(e, 4)
    (1.0954, 0.3873)
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    m = v.size
    if m < 2:
        return float("nan"), float("nan")
    s = float(np.std(v, ddof=1))
    return s, s / math.sqrt(2.0 * (m - 1))


def fit_loglog(
    x: Sequence[float], y: Sequence[float], yerr: Sequence[float]
) -> tuple[float, float, float, float]:
    """Weighted least squares of log10 y = a + b log10 x; returns (b, σ_b, a, χ²/dof).

    Errors of log10 y are yerr / (y ln 10). With two points χ²/dof is NaN.

    Examples
    --------
    >>> b, eb, a, _ = fit_loglog([1, 4, 16], [8.0, 4.0, 2.0], [0.1, 0.05, 0.025])
    >>> round(b, 3), round(a, 3)
    (-0.5, 0.903)
    """
    lx = np.log10(np.asarray(x, dtype=float))
    yy = np.asarray(y, dtype=float)
    ly = np.log10(yy)
    sy = np.asarray(yerr, dtype=float) / (yy * math.log(10.0))
    w = 1.0 / sy**2
    design = np.column_stack([np.ones_like(lx), lx])
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    a, b = cov @ (design.T @ (w * ly))
    dof = lx.size - 2
    chi2 = float(np.sum(w * (ly - (a + b * lx)) ** 2))
    return float(b), float(math.sqrt(cov[1, 1])), float(a), chi2 / dof if dof > 0 else float("nan")


__all__ = [
    "ExperimentResult",
    "Masters",
    "SimNight",
    "background_pixels",
    "build_masters",
    "calibrate_lights",
    "expected_raw",
    "fit_loglog",
    "fixed_pattern",
    "frame_variance",
    "markdown_table",
    "noise_and_error",
    "parse_list",
    "parse_size",
    "signed",
    "thousands",
    "work_folder",
]
