"""The HTML report of a reduction: ``OUT_DIR/report/index.html`` with its PNGs beside it.

The page is self-contained for offline reading: a stylesheet inline, no scripts, and images
referenced by relative file names in the same folder, so the folder can be copied or
zipped as a whole. Every piece of text that comes from files or headers is escaped.

A rerun redraws only the figures whose inputs changed: each figure has a key, a digest of
what it shows (the keys of the products it is drawn from, which hold their inputs' and
options' keys in turn, or the numbers it plots) and of the code that draws it, kept in
``report/figures.json`` beside the PNGs with the figure's caption. The figures themselves,
their keys and their drawing on a process beside are :mod:`ccdcal.report.drawing`'s.

Examples
--------
>>> _esc("<b>&")
'&lt;b&gt;&amp;'
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from .drawing import (
    Drawing,
    Figure,
    code_key,
    digest,
    draw_calibrated,
    draw_master,
    draw_pair,
    draw_raw,
    draw_registration,
    draw_rejected,
    draw_stack,
    draw_transfer,
)

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 1.8em; }
p.meta { color: #666; margin-top: 0; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; border: 1px solid #ddd; padding: 0.4em; background: #fafafa; }
figure img { display: block; width: 100%; max-width: 560px; height: auto; }
figcaption { font-size: 0.85em; color: #444; margin-top: 0.3em; max-width: 560px; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.off td { background: #fde2e2; }
td.ok { color: #1a7f37; font-weight: bold; }
td.off { color: #b42318; font-weight: bold; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
ul.notices li { color: #8a5a00; }
ul.failures li { color: #b42318; }
details { margin: 0.5em 0; }
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.strip()).strip("_.") or "image"


#: the index of the figures' keys and captions, beside them
INDEX = "figures.json"


@dataclass
class _Page:
    """The report being assembled: HTML sections and the images written for them.

    ``keys`` maps an output path of the reduction to its product key (from the plan);
    ``previous`` is the figure index an earlier report left.
    """

    folder: Path
    parts: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    used: set[str] = field(default_factory=set)
    keys: dict[Path, str] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    drawn: int = 0
    jobs: list[Figure] = field(default_factory=list)
    drawing: Drawing = field(default_factory=Drawing)

    def key_of(self, path: PathLike) -> str:
        """The product key of an output of the reduction; for any other file (a raw light)
        its path, size and time."""
        path = Path(path)
        if path in self.keys:
            return self.keys[path]
        st = path.stat()
        return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"

    def draw(
        self, stem: str, inputs: Sequence[Any], make: Callable[[Path], str | None]
    ) -> tuple[Path, str | Figure | None]:
        """The figure ``stem``: kept where an earlier report drew it from the same
        ``inputs`` with the same code, else to be drawn by ``make(path)``, which returns its
        caption (None: no figure). Returns the path and the caption, or the figure to be
        drawn (:meth:`finish` draws them all and puts their captions in)."""
        path = self.name(stem)
        key = digest(self.code, stem, *inputs)
        old = self.previous.get(path.name)
        if (
            isinstance(old, dict)
            and old.get("key") == key
            and (old.get("caption") is None or path.is_file())
        ):
            caption = old.get("caption")
            self.index[path.name] = {"key": key, "caption": caption}
            return path, caption
        job = Figure(path, key, make, len(self.jobs))
        self.jobs.append(job)
        if not self.drawing.adopt(job):
            self.drawing.send(job)
        return path, job

    def finish(self, html_text: str) -> str:
        """Draw the figures :meth:`draw` left to draw (here and on a process beside this
        one, see :class:`Drawing`), and put their captions, or nothing for a figure that
        turned out to have none, where :meth:`figure` left their places."""
        captions = self.drawing.captions(self.jobs)
        for job, caption in zip(self.jobs, captions, strict=True):
            self.index[job.path.name] = {"key": job.key, "caption": caption}
            self.drawn += caption is not None
            html_text = html_text.replace(job.token, "" if caption is None
                                          else self._figure_html(job.path, caption))  # fmt: skip
            if caption is not None:
                self.images.append(job.path)
        return html_text

    def name(self, stem: str) -> Path:
        """A unique PNG path in the report folder for ``stem``."""
        base = _slug(stem)
        candidate = base
        i = 2
        while candidate in self.used:
            candidate = f"{base}_{i}"
            i += 1
        self.used.add(candidate)
        return self.folder / f"{candidate}.png"

    def figure(self, path: Path, caption: str | Figure) -> str:
        """The HTML of a figure; for one still to be drawn, its place (see :meth:`finish`)."""
        if isinstance(caption, Figure):
            return caption.token
        self.images.append(path)
        return self._figure_html(path, caption)

    @staticmethod
    def _figure_html(path: Path, caption: str) -> str:
        alt = _esc(caption)
        return (
            f'<figure><a href="{_esc(path.name)}"><img src="{_esc(path.name)}" alt="{alt}" '
            f'loading="eager"></a><figcaption>{alt}</figcaption></figure>'
        )

    def section(self, title: str, body: str, anchor: str) -> None:
        self.parts.append(f'<section id="{_esc(anchor)}"><h2>{_esc(title)}</h2>\n{body}</section>')


def _grid(items: Iterable[str]) -> str:
    items = list(items)
    return '<div class="grid">' + "\n".join(items) + "</div>" if items else ""


def _table(
    head: Sequence[str], rows: Iterable[Sequence[Any]], *, numeric: frozenset[int] = frozenset()
):
    out = ["<table><thead><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr></thead>"]
    out.append("<tbody>")
    for row in rows:
        cells = "".join(
            f'<td class="num">{_esc(v)}</td>' if i in numeric else f"<td>{_esc(v)}</td>"
            for i, v in enumerate(row)
        )
        out.append(f"<tr>{cells}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# ---------------------------------------------------------------------------- sections
def _inputs(page: _Page, result: Any) -> None:
    collection = getattr(result, "collection", None)
    if collection is not None and getattr(collection, "frames", None) is not None:
        frames = list(collection.frames)
        summary = collection.summary() if hasattr(collection, "summary") else ""
        rows = []
        for f in frames:
            size = "-" if f.shape is None else f"{f.shape[1]}x{f.shape[0]}"
            rel = collection.relative(f) if hasattr(collection, "relative") else f.path.name
            rows.append(
                (
                    rel,
                    f.kind,
                    _fmt(f.exptime),
                    f.filter or "-",
                    f.object or "-",
                    size,
                    f.error if f.error is not None else f.reason,
                )
            )
        body = f"<pre>{_esc(summary)}</pre>" if summary else ""
        table = _table(
            ("file", "type", "exptime [s]", "filter", "object", "size", "how classified"),
            rows,
            numeric=frozenset({2}),
        )
        body += f"<details><summary>all {len(frames)} files</summary>{table}</details>"
    else:
        body = "<p>No scan of the raw folder was recorded; the calibrated lights were:</p>"
        body += _table(("calibrated light",), ((Path(p).name,) for p in result.calibrated))
    page.section("What went in", body, "inputs")


def _products(page: _Page, result: Any) -> None:
    """The plan: every product, what it was made from, and whether this run made it."""
    the_plan = getattr(result, "plan", None)
    if the_plan is None:
        return
    from ..pipeline.products import describe_inputs

    kept = {Path(p) for p in result.reused}
    rows = [
        (name, product.kind, describe_inputs(product),
         "kept (up to date)" if product.path in kept else "made by this run")
        for name, product in the_plan.products.items()
    ]  # fmt: skip
    made = sum(r[3] == "made by this run" for r in rows)
    table = _table(("product", "kind", "inputs", "this run"), rows)
    body = (
        f"<p>{len(rows)} products: {made} made by this run, {len(rows) - made} kept from an "
        "earlier one (file verified, key unchanged).</p>"
        f"<details><summary>the plan</summary>{table}</details>"
    )
    page.section("How it was made", body, "plan")


def _masters(page: _Page, result: Any) -> None:
    figs = []
    for name, path in result.masters.items():
        make = partial(draw_master, name=name, path=path)
        png, caption = page.draw(f"master_{name}", (page.key_of(path),), make)
        figs.append(page.figure(png, caption))
    body = _grid(figs) or "<p>No master frames were made.</p>"
    page.section("Master frames", body, "masters")


def _camera(page: _Page, result: Any) -> None:
    """The camera measured from the night's frames, beside the values the lights used."""
    path = getattr(result, "camera", None)
    if path is None or not Path(path).exists():
        return
    from astropy.table import Table

    table = Table.read(path, format="ascii.ecsv")
    meta = table.meta
    header = {k: tuple(v) for k, v in meta.get("header", {}).items()}
    rows = []
    for name, label, unit in (("gain", "gain", "e-/ADU"), ("rdnoise", "read noise", "e-")):
        key, value = header.get(name, (None, None))
        measured = meta.get(name)
        rows.append((
            label,
            "-" if measured is None else f"{measured:.4g} ± {meta[name + '_error']:.2g} {unit}",
            meta.get(name + "_source") or "-",
            "-" if value is None else f"{key} = {value:g}",
            "" if measured is None or value is None else f"{100 * (value / measured - 1):+.1f} %",
        ))  # fmt: skip
    body = _table(("quantity", "measured", "from", "used by the lights", "used vs measured"), rows)
    if meta.get("notices"):
        items = "".join(f"<li>{_esc(line)}</li>" for line in meta["notices"])
        body += f'<ul class="notices">{items}</ul>'
    if len(table):
        gain = header.get("gain", (None, None))[1]
        make = partial(draw_transfer, table=Path(path), gain=gain)
        png, caption = page.draw("photon_transfer", (page.key_of(path), gain), make)
        body += _grid([page.figure(png, caption)])
    page.section("Camera", body, "camera")


def _raw_for(result: Any, calibrated: Path) -> Path | None:
    collection = getattr(result, "collection", None)
    if collection is None:
        return None
    for f in collection.frames:
        if f.kind == "light" and f.error is None:
            name = f.path.name
            for suffix in (".gz", ".fz", ".bz2"):
                if name.lower().endswith(suffix):
                    name = name[: -len(suffix)]
            if Path(name).stem == calibrated.stem:
                return f.path
    return None


def _raw_vs_calibrated(page: _Page, result: Any) -> None:
    if not result.calibrated:
        page.section("Raw and calibrated", "<p>No light frame was calibrated.</p>", "light")
        return
    cal_path = Path(result.calibrated[0])
    figs = []
    raw_path = _raw_for(result, cal_path)
    if raw_path is not None:
        make = partial(draw_raw, path=raw_path)
        png, caption = page.draw(f"raw_{cal_path.stem}", (page.key_of(raw_path),), make)
        figs.append(page.figure(png, caption))
    make = partial(draw_calibrated, path=cal_path)
    png, caption = page.draw(f"calibrated_{cal_path.stem}", (page.key_of(cal_path),), make)
    figs.append(page.figure(png, caption))
    body = (
        "<p>The first light frame before and after calibration (overscan, trim, bias, dark, "
        "flat, gain). Red pixels are not finite.</p>" + _grid(figs)
    )
    page.section("Raw and calibrated", body, "light")


def _stacks(page: _Page, result: Any) -> None:
    figs = []
    for (obj, filt), path in result.stacks.items():
        label = f"{obj} {filt}"
        key = page.key_of(path)
        make = partial(draw_stack, label=label, path=path)
        png, caption = page.draw(f"stack_{obj}_{filt}", (key,), make)
        figs.append(page.figure(png, caption))
        make = partial(draw_rejected, label=label, path=path)
        png, caption = page.draw(f"rejected_{obj}_{filt}", (key,), make)
        if caption is not None:
            figs.append(page.figure(png, caption))
    body = _grid(figs) or "<p>No stacks were made.</p>"
    page.section("Stacks and rejection maps", body, "stacks")


def _registration(page: _Page, result: Any) -> None:
    """Per registered stack: its frames' table, shifts, rotation and seeing against frame
    number, and the aligned stack beside one calibrated light."""
    registrations = getattr(result, "registrations", {}) or {}
    if not registrations:
        return
    from ..registration import Registration

    parts = []
    stacks = {Path(p).stem: p for p in result.stacks.values()}
    for label, path in registrations.items():
        reg = Registration.read(path)
        table = reg.table()
        make = partial(draw_registration, path=Path(path), label=label)
        png, caption = page.draw(f"registration_{label}", (page.key_of(path),), make)
        figs = [page.figure(png, caption)]
        moved = next((f for f in reg.frames if f.used and f.method == "stars"), None)
        if label in stacks and moved is not None:
            light = next(p for p in result.calibrated if Path(p).name == moved.name)
            titles = (f"calibrated {moved.name}", f"aligned stack {label}")
            caption = f"one light as taken, and the stack of {len(reg.used)} aligned lights"
            make = partial(draw_pair, light=Path(light), stack=Path(stacks[label]),
                           titles=titles, caption=caption)  # fmt: skip
            inputs = (page.key_of(light), page.key_of(stacks[label]), titles, caption)
            pair, caption = page.draw(f"aligned_{label}", inputs, make)
            figs.append(page.figure(pair, caption))
        rows = [
            (r["frame"], r["method"], f"{r['dx']:.3f}", f"{r['dy']:.3f}",
             f"{r['rotation']:.4f}", r["matched"], f"{r['rms']:.3f}", f"{r['fwhm']:.2f}",
             f"{r['ellipticity']:.3f}", r["nstars"], f"{r['throughput']:.3f}",
             "yes" if r["used"] else f"no: {r['why']}")
            for r in table
        ]  # fmt: skip
        head = ("light", "method", "dx [pix]", "dy [pix]", "rotation [deg]", "stars matched",
                "rms [pix]", "FWHM [pix]", "ellipticity", "stars", "throughput",
                "used")  # fmt: skip
        reference = reg.frames[reg.reference].name
        how = "resampled onto the reference grid" if reg.resample else "not resampled (still)"
        parts.append(
            f"<h3>{_esc(label)}</h3><p>reference {_esc(reference)}; "
            f"{len(reg.used)} of {len(reg.frames)} lights used; {how}.</p>"
            f"{_grid(figs)}{_table(head, rows)}"
        )
    page.section("Registration", "".join(parts), "registration")


def _numbers(page: _Page, result: Any) -> None:
    parts = []
    try:
        parts.append(f"<pre>{_esc(result.summary())}</pre>")
    except (OSError, ValueError) as err:  # a file gone since the run: say so, keep the page
        parts.append(f"<p>summary unavailable: {_esc(err)}</p>")
    notices = list(getattr(result, "notices", []) or [])
    failures = list(getattr(result, "failures", []) or [])
    if notices:
        parts.append("<h3>Notices</h3><ul class='notices'>")
        parts += [f"<li>{_esc(n)}</li>" for n in notices]
        parts.append("</ul>")
    else:
        parts.append("<p>No notices.</p>")
    if failures:
        parts.append("<h3>Failures</h3><ul class='failures'>")
        parts += [f"<li>{_esc(Path(p).name)}: {_esc(why)}</li>" for p, why in failures]
        parts.append("</ul>")
    else:
        parts.append("<p>No failures.</p>")
    page.section("Numbers of the run", "\n".join(parts), "numbers")


def _truth(page: _Page, truth: Any) -> None:
    from .figures import save_residual_png

    rows = []
    for c in truth.checks:
        ok = bool(c.ok)
        kind = getattr(c, "kind", "equal")
        sign = {"below": "≤ ", "zero": "|x| ≤ "}.get(kind, "")
        rows.append(
            "<tr class='{}'><td>{}</td><td class='num'>{}</td><td class='num'>{}</td>"
            "<td>{}</td><td class='{}'>{}</td><td>{}</td></tr>".format(
                "" if ok else "off",
                _esc(c.name),
                _esc(f"{c.measured:.4g}"),
                _esc(f"{sign}{c.expected:.4g}"),
                _esc(c.unit),
                "ok" if ok else "off",
                "ok" if ok else "OFF",
                _esc(getattr(c, "note", "")),
            )
        )
    table = (
        "<table><thead><tr><th>check</th><th>measured</th><th>expected</th><th>unit</th>"
        "<th></th><th>note</th></tr></thead><tbody>" + "\n".join(rows) + "</tbody></table>"
    )
    n_ok = sum(bool(c.ok) for c in truth.checks)
    body = (
        f"<p>{n_ok} of {len(truth.checks)} checks agree with the detector model "
        "(expectations from the simulator's read noise, gain and photon statistics, not from "
        "the propagated variance).</p>" + table
    )
    figs = []
    for title, residual in getattr(truth, "residuals", {}).items():
        unit = None
        m = re.search(r"\[([^\]]+)\]", title)
        if m:
            unit = m.group(1)
        data = np.asarray(residual)

        def make(png: Path, data: np.ndarray = data, title: str = title,
                 unit: str | None = unit) -> str:  # fmt: skip
            save_residual_png(data, png, title=title, unit=unit)
            return f"residual: {title}"

        png, caption = page.draw(f"residual_{title}", (title, unit, data), make)
        figs.append(page.figure(png, caption))
    body += _grid(figs)
    page.section("Comparison with the truth", body, "truth")


def _photometry(page: _Page, photometry: Any) -> None:
    def make(png: Path) -> str:
        photometry.plot(png)
        return "measured / true flux and Δmag against distance from centre"

    table = photometry.table
    inputs = [getattr(photometry, k, None) for k in ("radius", "annulus", "exptime", "n_stars")]
    inputs += [(name, np.asarray(table[name])) for name in table.colnames]
    png, caption = page.draw("photometry", inputs, make)
    text = photometry.summary() if hasattr(photometry, "summary") else ""
    note = getattr(photometry, "note", "")
    body = f"<pre>{_esc(text)}</pre>"
    if note:
        body += f"<p>{_esc(note)}</p>"
    body += _grid([page.figure(png, caption)])
    page.section("Photometry against the truth", body, "photometry")


# ---------------------------------------------------------------------------- entry point
def write_report(
    result: Any, *, truth: Any = None, photometry: Any = None, early: EarlyFigures | None = None
) -> Path:
    """Write the figures and ``index.html`` of a reduction into ``result.out_dir/report``.

    Parameters
    ----------
    result
        A :class:`~ccdcal.pipeline.ReduceResult`.
    truth
        For a simulated night, a :class:`~ccdcal.quality.TruthComparison`: its checks become
        a table and its residual maps figures.
    photometry
        For a simulated night, a :class:`~ccdcal.photometry.PhotometryComparison`: its
        summary and flux-ratio plot.
    early
        The figures drawn while the run went on (:class:`EarlyFigures`): those the page
        shows are taken from it, and its process beside draws the rest.

    Returns
    -------
    Path
        ``result.out_dir / "report" / "index.html"``.

    Notes
    -----
    The page shows what went in (the scanned frames), each master, one raw light and its
    calibrated version, each stack with its rejection map, the run's numbers, notices and
    failures, and for simulated nights the truth comparison and the photometry. Images are
    PNG files beside ``index.html`` referenced by relative names, so the page renders
    offline and the folder can be moved as a whole. A figure an earlier report drew from
    the same inputs with the same code is kept (``figures.json`` holds their keys); PNGs
    the page no longer shows are removed.
    """
    folder = Path(result.out_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    the_plan = getattr(result, "plan", None)
    keys = {} if the_plan is None else {p.path: p.key for p in the_plan.products.values()}
    if early is None:
        drawing, previous, code = Drawing(_figures(result)), _read_index(folder / INDEX), code_key()
    else:  # the index and the code's key as the run read them at its start
        drawing, previous, code = early.handover(), early.page.previous, early.page.code
    page = _Page(folder, keys=keys, previous=previous, code=code, drawing=drawing)
    try:  # a failure while the page is put together stops the drawing beside
        _inputs(page, result)
        _products(page, result)
        _camera(page, result)
        _masters(page, result)
        _raw_vs_calibrated(page, result)
        _stacks(page, result)
        _registration(page, result)
        _numbers(page, result)
        if truth is not None:
            _truth(page, truth)
        if photometry is not None:
            _photometry(page, photometry)

        toc = " · ".join(
            f'<a href="#{anchor}">{_esc(title)}</a>'
            for anchor, title in (
                ("inputs", "inputs"),
                ("plan", "plan"),
                ("camera", "camera"),
                ("masters", "masters"),
                ("light", "raw and calibrated"),
                ("stacks", "stacks"),
                ("registration", "registration"),
                ("numbers", "numbers"),
                ("truth", "truth"),
                ("photometry", "photometry"),
            )
            if f'id="{anchor}"' in "".join(page.parts)
        )
        raw_root = getattr(getattr(result, "collection", None), "root", None)
        meta = f"ccdcal {__version__} · output folder {Path(result.out_dir)}"
        if raw_root is not None:
            meta += f" · raw folder {raw_root}"
        doc = "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                '<meta name="viewport" content="width=device-width, initial-scale=1">',
                "<title>ccdcal report</title>",
                f"<style>{_CSS}</style></head><body>",
                "<h1>ccdcal reduction report</h1>",
                f'<p class="meta">{_esc(meta)}</p>',
                f"<nav>{toc}</nav>",
                *page.parts,
                "</body></html>",
                "",
            ]
        )
        doc = page.finish(doc)
    finally:
        page.drawing.close()
    index = folder / "index.html"
    _write_atomic(index, doc)
    _write_atomic(folder / INDEX, json.dumps(page.index, indent=1, sort_keys=True) + "\n")
    shown = {p.name for p in page.images}
    for old in folder.glob("*.png"):
        if old.name not in shown:
            old.unlink()
    log.info(
        "report: %s (%d images, %d drawn, %d up to date)",
        index, len(page.images), page.drawn, len(page.images) - page.drawn,
    )  # fmt: skip
    return index


def _figures(result: Any) -> int:
    """How many figures the report shows at most (for :class:`Drawing`)."""
    registrations = getattr(result, "registrations", {}) or {}
    camera = getattr(result, "camera", None) is not None
    return _figure_count(len(result.masters), len(result.stacks), len(registrations), camera)


def _figure_count(masters: int, stacks: int, registrations: int, camera: bool) -> int:
    """A master's figure each, a raw and a calibrated light, a stack's and its rejections',
    a registration's and its aligned light's, the photon transfer."""
    return masters + 2 + 2 * stacks + 2 * registrations + camera


class EarlyFigures:
    """The report's figures of what a run makes first, drawn while the run goes on: each
    master's and the photon transfer's, as each is made (:meth:`made`, the run's
    callback), on the process beside that the run started for its stars
    (:meth:`ccdcal.parallel.InProcess.lend_side`), which is idle while the masters are
    combined; the report then draws its other figures there too, matplotlib already
    imported. Drawn by the page's own code, on a page that is thrown away, so that the
    report's page finds them by their names and keys (:meth:`Drawing.adopt`); a figure it
    does not show (a run that changed course) is removed with the PNGs it no longer
    shows. Nothing is lent for a run with few figures, on one core, or where the products
    are built on other processes.

    Measured on issue 16's night (2 cores, logged times): the report after the last stack
    took 1.6 s rather than 3.1 s. A process of its own for the figures, beside the stars'
    (tried first), took the run's peak memory, summed over its processes, from 0.82-0.88
    to 0.97-1.05 GB: its own interpreter and matplotlib, beside the stars' process at its
    largest.
    """

    def __init__(self, the_plan: Any, run: Any) -> None:
        from .. import threads

        folder = Path(the_plan.out_dir) / "report"
        products = list(the_plan.products.values())
        kinds = [p.kind for p in products]
        keys = {p.path: p.key for p in products}
        masters = sum(p.part == "masters" and p.kind != "camera" for p in products)
        count = _figure_count(masters, kinds.count("stack"), kinds.count("registration"),
                              "camera" in kinds)  # fmt: skip
        drawing = Drawing(count)
        self.page = _Page(folder, keys=keys, previous=_read_index(folder / INDEX),
                          code=code_key(), drawing=drawing)  # fmt: skip
        # borrowed at the first master made: a run that makes none starts nothing for it
        wanted = not drawing.here_only and threads.count() >= 2
        self.lend = getattr(run, "lend_side", None) if wanted else None
        self.side: Any = None
        self.started = False

    def made(self, product: Any) -> None:
        """``product`` was made: its figures, if the report shows any, go to be drawn."""
        if product.part != "masters":
            return
        if self.lend is not None:
            self.side, self.lend = self.lend(), None
            self.started = self.page.drawing.start_early(self.side)
        if not self.started:
            return
        result = _Partial()
        if product.kind == "camera":
            result.camera = product.path
            _camera(self.page, result)
        else:
            result.masters = {product.label: product.path}
            _masters(self.page, result)

    def handover(self) -> Drawing:
        """The drawing, with what it has drawn and is drawing, for the report's page."""
        drawing = self.page.drawing
        drawing.early_only = False
        return drawing

    def close(self) -> None:
        """Stop the process beside (the report written, or the run failed): the drawing's
        once it drew there, else here."""
        self.page.drawing.close()
        if self.side is not None and not self.started:
            self.side.shutdown(wait=True, cancel_futures=True)


@dataclass
class _Partial:
    """What :class:`EarlyFigures` knows of a run's result while it goes on."""

    camera: Path | None = None
    masters: dict[str, Path] = field(default_factory=dict)


def _read_index(path: Path) -> dict[str, Any]:
    """The figure index an earlier report wrote; empty where there is none or it is torn."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


__all__ = ["EarlyFigures", "write_report"]
