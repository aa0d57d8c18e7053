"""Figures and the HTML report: every image referenced exists and decodes, text is escaped,
and the page renders with all its images in headless Chromium (skipped without one)."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import shutil
import subprocess
import weakref
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

import ccdcal
from ccdcal.photometry import PhotometryComparison
from ccdcal.quality import TruthCheck, TruthComparison
from ccdcal.report import figures, write_report

OBJECT = "M<&>1 'x'"
SHAPE = (48, 56)


def _write(folder: Path, name: str, data: np.ndarray, **header) -> None:
    hdr = fits.Header()
    for key, value in header.items():
        hdr[key] = value
    counts = np.clip(np.rint(data), 0, 65535).astype(np.uint16)
    fits.PrimaryHDU(counts, header=hdr).writeto(folder / name)


def make_raw_night(folder: Path, *, seed: int = 0) -> Path:
    """A small night written by hand (independent of the simulator)."""
    raw = folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    common = {"GAIN": 1.0, "RDNOISE": 5.0}
    bias = 900 + rng.normal(0, 2, SHAPE)
    flat = rng.normal(1, 0.02, SHAPE)
    for i in range(3):
        _write(
            raw,
            f"bias_{i}.fits",
            bias + rng.normal(0, 5, SHAPE),
            IMAGETYP="BIAS",
            EXPTIME=0.0,
            **common,
        )
        _write(
            raw,
            f"dark_{i}.fits",
            bias + rng.normal(0, 5, SHAPE) + rng.poisson(3, SHAPE),
            IMAGETYP="DARK",
            EXPTIME=30.0,
            **common,
        )
        _write(
            raw,
            f"flat_{i}.fits",
            bias + rng.poisson(15000 * flat),
            IMAGETYP="FLAT",
            EXPTIME=1.0,
            FILTER="V",
            **common,
        )
    for i in range(4):
        img = bias + rng.poisson(3 + 400 * flat) + rng.normal(0, 5, SHAPE)
        img[rng.integers(0, SHAPE[0], 4), rng.integers(0, SHAPE[1], 4)] += 4000
        _write(
            raw,
            f"light_{i}.fits",
            img,
            IMAGETYP="LIGHT",
            EXPTIME=30.0,
            FILTER="V",
            OBJECT=OBJECT,
            **common,
        )
    return raw


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs)["src"])


def image_sources(index: Path) -> list[str]:
    parser = _Images()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser.srcs


def check_images(index: Path) -> list[str]:
    srcs = image_sources(index)
    assert srcs, "the report shows no image"
    for src in srcs:
        assert "/" not in src and not src.startswith(("http", "data:")), src
        path = index.parent / src
        assert path.is_file(), src
        img = plt.imread(path)  # decodes the PNG
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, src
    return srcs


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    raw = make_raw_night(base / "night")
    (raw / "broken.fits").write_bytes(b"SIMPLE  = not really a FITS file")
    result = ccdcal.reduce(raw, base / "out", report=False)
    return result


@pytest.fixture(scope="module")
def truth_and_photometry():
    rng = np.random.default_rng(2)
    truth = TruthComparison(
        checks=[
            TruthCheck("master bias rms <1>", 1.0, 1.02, "adu", 0.15),
            TruthCheck("stack cosmic rays left", 7.0, 1.0, "pixels", 0.0, kind="below"),
        ],
        residuals={
            "master bias - true bias [adu]": rng.normal(0, 1, SHAPE),
            "stack - truth [e-]": np.where(
                rng.random(SHAPE) < 0.01, np.nan, rng.normal(0, 3, SHAPE)
            ),
        },
    )
    n = 12
    table = Table(
        {
            "id": np.arange(n),
            "x": rng.uniform(0, SHAPE[1], n),
            "y": rng.uniform(0, SHAPE[0], n),
            "r_center": rng.uniform(0, 30, n),
            "snr": rng.uniform(10, 300, n),
            "ratio": rng.normal(1, 0.01, n),
            "ratio_err": np.full(n, 0.01),
        }
    )
    table["dmag"] = -2.5 * np.log10(table["ratio"])
    phot = PhotometryComparison(table, 6.0, (10.0, 15.0), 30.0, 15, {"edge": 3}, "test <note>")
    return truth, phot


@pytest.fixture(scope="module")
def full_report(reduced, truth_and_photometry):
    truth, phot = truth_and_photometry
    return write_report(reduced, truth=truth, photometry=phot)


# ---------------------------------------------------------------------------- the page
def test_report_images_exist_and_decode(full_report, reduced):
    index = full_report
    assert index == Path(index.parent.parent / "report" / "index.html")
    srcs = check_images(index)
    names = set(srcs)
    assert {"master_bias.png", "master_dark_30s.png", "master_flat_V.png"} <= names
    assert "raw_light_0.png" in names and "calibrated_light_0.png" in names
    assert any(s.startswith("stack_") for s in srcs)
    assert any(s.startswith("rejected_") for s in srcs)
    assert sum(s.startswith("residual_") for s in srcs) == 2
    assert "photometry.png" in names
    assert ("photon_transfer.png" in names) == (reduced.camera is not None)
    # no image written that the page does not show
    assert {p.name for p in index.parent.glob("*.png")} == names


def test_report_content_escaped(full_report):
    text = full_report.read_text(encoding="utf-8")
    assert "M&lt;&amp;&gt;1 &#x27;x&#x27;" in text
    assert OBJECT not in text
    assert "master bias rms &lt;1&gt;" in text
    assert "test &lt;note&gt;" in text
    assert "<script" not in text  # static page
    for word in (
        "What went in",
        "Camera",
        "Master frames",
        "Raw and calibrated",
        "Stacks",
        "Numbers of the run",
        "Comparison with the truth",
        "Photometry",
    ):
        assert word in text, word
    assert "broken.fits" in text  # the unreadable file is listed among failures
    assert "OFF" in text  # the failing truth check is marked
    assert "light_3.fits" in text  # the frame table


def test_report_rerun_replaces_images(reduced, tmp_path):
    index = write_report(reduced)
    first = {p.name for p in index.parent.glob("*.png")}
    index = write_report(reduced)
    assert {p.name for p in index.parent.glob("*.png")} == first
    assert not any(s.startswith("residual_") for s in first)
    check_images(index)


def test_report_without_collection(reduced, tmp_path):
    from dataclasses import replace

    result = replace(reduced, out_dir=tmp_path / "o", collection=None)
    index = write_report(result)
    text = index.read_text()
    assert "calibrated light" in text and "light_0.fits" in text
    srcs = check_images(index)
    assert "calibrated_light_0.png" in srcs and "raw_light_0.png" not in srcs


def test_reduce_writes_report(tmp_path):
    raw = make_raw_night(tmp_path / "night", seed=3)
    result = ccdcal.reduce(raw, tmp_path / "out")
    assert result.report == tmp_path / "out" / "report" / "index.html"
    check_images(result.report)
    html = result.report.read_text()
    n = len(result.plan.products)
    assert f"{n} products: {n} made by this run, 0 kept" in html  # the plan, walked
    assert "calibrated/" in html and "made by this run" in html
    again = ccdcal.reduce(raw, tmp_path / "out")
    assert f"{n} products: 0 made by this run, {n} kept" in again.report.read_text()


def _times(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.png")}


def test_rerun_redraws_only_the_figures_whose_inputs_changed(tmp_path, caplog):
    raw = make_raw_night(tmp_path / "night", seed=4)
    first = ccdcal.reduce(raw, tmp_path / "out")
    folder = first.report.parent
    past = 1_000_000_000_000_000_000
    for png in folder.glob("*.png"):
        os.utime(png, ns=(past, past))
    with caplog.at_level(logging.INFO, logger="ccdcal.report"):
        ccdcal.reduce(raw, tmp_path / "out")
    assert set(_times(folder).values()) == {past}  # nothing redrawn
    n = len(_times(folder))
    assert f"({n} images, 0 drawn, {n} up to date)" in caplog.text
    # another flat: the master flat, the calibrated lights and the stack change; the
    # master bias and dark, the raw light and the camera's photon transfer do not
    flat = raw / "flat_1.fits"
    with fits.open(flat) as hdul:
        data, header = hdul[0].data.astype(np.float64) * 1.01, hdul[0].header.copy()
    flat.unlink()
    _write(
        raw,
        "flat_1.fits",
        data,
        **{k: header[k] for k in ("IMAGETYP", "EXPTIME", "FILTER", "GAIN", "RDNOISE")},
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ccdcal.report"):
        third = ccdcal.reduce(raw, tmp_path / "out")
    redrawn = {name for name, t in _times(folder).items() if t != past}
    assert {"master_flat_V.png", "calibrated_light_0.png"} <= redrawn
    assert any(name.startswith("stack_") for name in redrawn)
    assert not {"master_bias.png", "master_dark_30s.png", "raw_light_0.png"} & redrawn
    assert f"{len(redrawn)} drawn" in caplog.text
    check_images(third.report)
    # a figure removed by hand, or a torn index, is drawn again
    (folder / "master_bias.png").unlink()
    (folder / "figures.json").write_text("{")
    again = ccdcal.reduce(raw, tmp_path / "out")
    assert check_images(again.report) and (folder / "master_bias.png").is_file()
    assert set(_times(folder).values()).isdisjoint({past})


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.from(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                   .map(function (i) { return i.getAttribute('src'); });
  var out = document.createElement('pre');
  out.id = 'ccdcal-check';
  out.textContent = JSON.stringify({n: imgs.length, broken: broken});
  document.body.appendChild(out);
});
</script>"""


def _chromium_or_skip() -> str:
    """The browser; without one the test skips, but fails under CI=true (where `.ci/run`
    installs Debian's chromium), so that CI never passes without rendering the page."""
    binary = _chromium()
    if binary is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("CI=true but no chromium found: .ci/run installs Debian's chromium "
                        "(apt-get install -y chromium)")  # fmt: skip
        pytest.skip("no chromium binary found (under CI=true this fails)")
    return binary


def render_in_chromium(index: Path, tmp_path: Path) -> dict:
    """Copy the report, add a script listing images that failed to load, dump the DOM."""
    binary = _chromium_or_skip()
    copy = tmp_path / "page"
    shutil.copytree(index.parent, copy)
    check = copy / "_check.html"
    check.write_text(index.read_text().replace("</body>", _CHECK + "</body>"))
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        check.as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="ccdcal-check">([^<]*)</pre>', done.stdout)
    assert found, f"chromium exit {done.returncode}: {done.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


def test_report_renders_in_chromium(full_report, tmp_path):
    status = render_in_chromium(full_report, tmp_path)
    assert status["n"] == len(image_sources(full_report))
    assert status["broken"] == []


@pytest.mark.parametrize(("ci", "outcome"), [("true", "failed"), ("", "skipped")])
def test_no_chromium_fails_under_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "exists", lambda self: False)
    monkeypatch.setenv("CI", ci)
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as caught:
        _chromium_or_skip()
    assert isinstance(caught.value, pytest.fail.Exception) == (outcome == "failed")


def test_chromium_check_sees_a_broken_image(full_report, tmp_path):
    """The check itself works: a missing file is reported."""
    page = tmp_path / "src"
    shutil.copytree(full_report.parent, page)
    (page / "master_bias.png").unlink()
    status = render_in_chromium(page / "index.html", tmp_path / "r")
    assert status["broken"] == ["master_bias.png"]


# ---------------------------------------------------------------------------- figures
def test_show_image_axes_and_colorbar():
    fig = figures.new_figure()
    ax = fig.add_subplot()
    data = np.random.default_rng(0).normal(100, 3, (30, 40))
    im = figures.show_image(ax, data, title="t", unit="electron")
    assert ax.get_xlabel() == "x [pix]" and ax.get_ylabel() == "y [pix]"
    assert im.origin == "lower"
    assert im.colorbar.ax.get_ylabel() == "electron"
    lo, hi = im.get_clim()
    assert 85 < lo < 100 < hi < 115  # zscale, not min/max
    for stretch in ("minmax", "percentile"):
        assert figures.image_limits(data, stretch)[0] < lo + 5
    with pytest.raises(ValueError, match="stretch"):
        figures.image_limits(data, "log")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2-D"):
        figures.show_image(ax, np.zeros(3))


def test_residual_limits_symmetric(tmp_path):
    fig = figures.new_figure()
    ax = fig.add_subplot()
    lim = figures.residual_limit(np.array([-5.0, 1.0, 2.0]), 100)
    im = figures.show_image(ax, np.zeros((4, 4)), cmap="RdBu_r", vmin=-lim, vmax=lim)
    assert im.get_clim() == (-5.0, 5.0)
    path = figures.save_residual_png(np.full((8, 8), np.nan), tmp_path / "r.png", title="nan")
    assert plt.imread(path).shape[2] == 4


def test_figures_leave_nothing_behind(tmp_path):
    """No pyplot figures are created and figures are freed after saving."""
    before = plt.get_fignums()
    refs = []
    for i in range(5):
        fig = figures.new_figure()
        figures.show_image(fig.add_subplot(), np.eye(8))
        figures.save_figure(fig, tmp_path / f"{i}.png")
        refs.append(weakref.ref(fig))
        del fig
    figures.save_frame_png(np.eye(8), tmp_path / "f.png")
    figures.save_count_png(np.eye(8, dtype=int), tmp_path / "c.png")
    figures.save_noise_vs_n_png(tmp_path / "n.png", [1, 2, 4], [2.0, 1.4, 1.0], errors=[0.1] * 3)
    gc.collect()
    assert plt.get_fignums() == before
    assert all(r() is None for r in refs)


def test_demo_report_with_truth_and_photometry(tmp_path):
    """quality.demo on a small simulated night: the truth and photometry sections render."""
    from ccdcal.quality import demo

    outcome = demo(tmp_path, seed=2, shape=(96, 96), nbias=5, ndark=3, nflat=3, nlight=4)
    index = outcome.result.report
    srcs = check_images(index)
    assert any(s.startswith("residual_") for s in srcs)
    assert "photometry.png" in srcs
    text = index.read_text()
    assert "Comparison with the truth" in text and "Photometry against the truth" in text


def test_figures_drawn_beside_equal_those_drawn_here(reduced, truth_and_photometry, tmp_path,
                                                     monkeypatch):  # fmt: skip
    """Figures go to a process beside this one where two cores may be used: the page and
    every PNG are the same bytes as one process drawing them one after another; the truth's
    and photometry's figures (of objects of this process) are drawn here."""
    from dataclasses import replace as copy

    import ccdcal.report.drawing as report_drawing
    from ccdcal import threads

    truth, phot = truth_and_photometry
    sent: list[str] = []
    send = report_drawing.Drawing.send

    def spy(self, job):
        send(self, job)
        if job in self.waiting or job.number in self.sent:  # to be drawn beside
            sent.append(job.path.name)

    monkeypatch.setattr(report_drawing.Drawing, "FEWEST", 1)  # this small night's few figures
    pages = {}
    for how, cores in (("beside", 2), ("here", 1)):
        out = tmp_path / how
        shutil.copytree(reduced.out_dir, out)
        shutil.rmtree(out / "report", ignore_errors=True)  # other tests' figures: none kept
        monkeypatch.setattr(threads, "count", lambda cores=cores: cores)
        monkeypatch.setattr(report_drawing.Drawing, "send", spy)
        moved = copy(reduced, out_dir=out, masters={k: out / v.relative_to(reduced.out_dir)
                                                  for k, v in reduced.masters.items()})  # fmt: skip
        pages[how] = write_report(moved, truth=truth, photometry=phot).parent
    assert {"master_bias.png", "raw_light_0.png", "calibrated_light_0.png"} <= set(sent)
    assert any(name.startswith("stack_") for name in sent)
    assert not any(name.startswith(("residual_", "photometry")) for name in sent)
    for png in sorted(pages["here"].glob("*.png")):
        assert png.read_bytes() == (pages["beside"] / png.name).read_bytes(), png.name
    here = (pages["here"] / "index.html").read_text().replace(str(tmp_path / "here"), "OUT")
    beside = (pages["beside"] / "index.html").read_text().replace(str(tmp_path / "beside"), "OUT")
    assert here == beside


def test_without_a_process_beside_the_figures_are_drawn_here(reduced, tmp_path, monkeypatch):
    import concurrent.futures
    from dataclasses import replace as copy

    def refuse(*args, **kwargs):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    monkeypatch.setattr(ccdcal.report.drawing.Drawing, "FEWEST", 1)
    out = tmp_path / "out"
    shutil.copytree(reduced.out_dir, out)
    shutil.rmtree(out / "report", ignore_errors=True)
    index = write_report(copy(reduced, out_dir=out))
    assert {"master_bias.png", "raw_light_0.png"} <= set(check_images(index))


def test_figures_drawn_while_the_run_goes_on_equal_those_drawn_after_it(tmp_path, monkeypatch):
    """The masters' figures are drawn on the run's process beside (the stars') as the
    masters are made, and the page takes them: every PNG and the page are the same bytes as
    a run's that drew them all after the run."""
    import ccdcal.report.drawing as report_drawing
    from ccdcal import threads

    raw = make_raw_night(tmp_path / "night", seed=5)
    monkeypatch.setattr(threads, "count", lambda: 2)
    monkeypatch.setattr(report_drawing.Drawing, "FEWEST", 1)  # this small night's few figures
    adopted: list[str] = []
    adopt = report_drawing.Drawing.adopt

    def spy(self, job):
        taken = adopt(self, job)
        if taken:
            adopted.append(job.path.name)
        return taken

    monkeypatch.setattr(report_drawing.Drawing, "adopt", spy)
    early = ccdcal.reduce(raw, tmp_path / "early").report
    assert {"master_bias.png", "master_dark_30s.png", "master_flat_V.png"} <= set(adopted)
    assert not any(name.startswith("stack_") for name in adopted)  # drawn after the stack
    monkeypatch.setattr(report_drawing.Drawing, "start_early", lambda self, pool: False)
    adopted.clear()
    late = ccdcal.reduce(raw, tmp_path / "late").report
    assert not adopted
    pngs = sorted(p.name for p in late.parent.glob("*.png"))
    assert pngs == sorted(p.name for p in early.parent.glob("*.png")) and pngs
    for name in pngs:
        assert (early.parent / name).read_bytes() == (late.parent / name).read_bytes(), name
    assert early.read_text().replace(str(tmp_path / "early"), "OUT") == late.read_text().replace(
        str(tmp_path / "late"), "OUT"
    )


def test_early_figures_share_the_stars_process_which_a_failed_run_stops(tmp_path, monkeypatch):
    import multiprocessing

    import ccdcal.parallel as parallel
    import ccdcal.pipeline.reduction as reduction
    import ccdcal.report.drawing as report_drawing
    from ccdcal import threads

    monkeypatch.setattr(threads, "count", lambda: 2)
    monkeypatch.setattr(report_drawing.Drawing, "FEWEST", 1)
    started = []
    start = parallel.start_process

    def counted(*args, **kwargs):
        started.append(args)
        return start(*args, **kwargs)

    monkeypatch.setattr(parallel, "start_process", counted)
    raw = make_raw_night(tmp_path / "night", seed=6)
    result = ccdcal.reduce(raw, tmp_path / "out")
    assert check_images(result.report)
    assert len(started) == 1  # the stars' process drew the figures: no second one
    assert not multiprocessing.active_children()
    again = ccdcal.reduce(raw, tmp_path / "out")  # nothing to make: no process started
    assert check_images(again.report) and len(started) == 1

    def fail(the_plan, *args, made, **kwargs):
        first = next(p for p in the_plan.products.values() if p.part == "masters")
        made(first)  # as a run would, before it broke
        assert made.__self__.started
        raise RuntimeError("the run broke")

    monkeypatch.setattr(reduction, "execute", fail)
    with pytest.raises(RuntimeError, match="the run broke"):
        ccdcal.reduce(raw, tmp_path / "out2")
    assert not multiprocessing.active_children()  # the process beside was stopped


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_display_copy_is_the_block_means_of_a_float64_copy(dtype):
    rng = np.random.default_rng(7)
    data = rng.normal(1000.0, 300.0, (1030, 2051)).astype(dtype)
    if data.dtype.kind == "f":
        data[rng.random(data.shape) < 1e-3] = np.nan
    shown, extent = figures.display_copy(data, limit=512)
    factor = 5  # 2051 / 512, rounded up
    my, mx = 1030 // factor * factor, 2051 // factor * factor
    want = data[:my, :mx].astype(np.float64).reshape(my // factor, factor, mx // factor, factor)
    np.testing.assert_array_equal(shown, want.mean(axis=(1, 3)))
    assert shown.dtype == np.float64 and extent == (-0.5, mx - 0.5, -0.5, my - 0.5)


def test_the_process_beside_is_kept_busy_while_this_one_draws(tmp_path):
    """While this process draws a figure of its own (the last), the one beside draws every
    other figure, not only the two sent ahead before: each is sent as the one before it is
    drawn. A pool of one thread stands in for the process beside; the figures beside wait
    until this one has started its own, which waits until they are all drawn (or gives up
    after a while, and then this process draws the ones never sent)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from ccdcal.report.drawing import Drawing, Figure

    here = threading.get_ident()
    count = 6
    started, beside_done = threading.Event(), threading.Event()
    drawn_beside: list[int] = []
    drawn_here: list[int] = []

    def make(number: int):
        def draw(path: Path) -> str:
            if threading.get_ident() == here:
                drawn_here.append(number)
                started.set()
                beside_done.wait(10.0)
            else:
                started.wait(10.0)
                drawn_beside.append(number)
                if len(drawn_beside) == count - 1:
                    beside_done.set()
            return f"figure {number}"

        return draw

    jobs = [Figure(tmp_path / f"{k}.png", str(k), make(k), k) for k in range(count)]
    drawing = Drawing(count)
    drawing.pool = ThreadPoolExecutor(1)
    drawing.waiting.extend(jobs)
    drawing._feed()
    assert len(drawing.sent) == Drawing.AHEAD  # those beside wait for this one's start
    captions = drawing.captions(jobs)
    assert captions == [f"figure {k}" for k in range(count)]
    assert drawn_here == [count - 1] and drawn_beside == list(range(count - 1))
    assert drawing.pool is None and not drawing.waiting
