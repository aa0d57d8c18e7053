"""The plan of a reduction as data, its states, ``--dry-run`` and ``--only``."""

from __future__ import annotations

import gc
import os
import pickle
import re
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import ccdcal
from ccdcal.cli import main
from ccdcal.config import loads_config
from ccdcal.errors import CcdcalError
from ccdcal.parallel import InProcess, Ref, Task
from ccdcal.pipeline import execute, plan, reduce
from ccdcal.pipeline.execution import graph


@pytest.fixture(scope="module")
def two_filters(tmp_path_factory) -> Path:
    """Two filters, darks of 20 and 60 s, lights of 30 s (each gets the 20 s dark, scaled)."""
    base = tmp_path_factory.mktemp("plan")
    ccdcal.simulate.night(base / "night", seed=4, shape=(40, 48), nbias=3, ndark=3, nflat=3,
                          nlight=2, filters=("B", "V"), dark_exptime=[20.0, 60.0],
                          light_exptime=30.0)  # fmt: skip
    return base / "night" / "raw"


def _mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.suffix in (".fits", ".ecsv")
    }


def test_plan_of_a_simulated_night(two_filters, tmp_path):
    p = plan(two_filters, tmp_path / "out")
    assert list(p.products) == [
        "masters/camera.ecsv", "masters/bias.fits", "masters/dark_20s.fits",
        "masters/dark_60s.fits", "masters/flat_B.fits", "masters/flat_V.fits",
        "calibrated/light_B_001.fits", "calibrated/light_B_002.fits",
        "calibrated/light_V_001.fits", "calibrated/light_V_002.fits",
        "stars/light_B_001.ecsv", "stars/light_B_002.ecsv", "registration/SIMFIELD_B.ecsv",
        "stacks/SIMFIELD_B.fits",
        "stars/light_V_001.ecsv", "stars/light_V_002.ecsv", "registration/SIMFIELD_V.ecsv",
        "stacks/SIMFIELD_V.fits",
    ]  # fmt: skip
    products = p.products
    assert products["masters/bias.fits"].needs == ()
    assert products["masters/dark_60s.fits"].needs == ("masters/bias.fits",)
    # flats of 5 s take the nearest dark (20 s), scaled; lights of 30 s likewise
    assert products["masters/flat_V.fits"].needs == ("masters/bias.fits", "masters/dark_20s.fits")
    light = products["calibrated/light_V_002.fits"]
    assert light.needs == ("masters/bias.fits", "masters/dark_20s.fits", "masters/flat_V.fits")
    assert light.inputs == ((two_filters / "light_V_002.fits").resolve(),)
    flat = light.options["flat"]  # a master as the recipe finds it: its file and its key
    assert flat.path == tmp_path.resolve() / "out" / "masters" / "flat_V.fits"
    assert flat.key == products["masters/flat_V.fits"].key
    stack = products["stacks/SIMFIELD_V.fits"]
    assert stack.needs == ("calibrated/light_V_001.fits", "calibrated/light_V_002.fits",
                           "registration/SIMFIELD_V.ecsv")  # fmt: skip
    assert stack.about == {"object": "SIMFIELD", "filter": "V"}
    registration = products["registration/SIMFIELD_V.ecsv"]
    assert registration.needs == ("stars/light_V_001.ecsv", "stars/light_V_002.ecsv")
    assert products["stars/light_V_001.ecsv"].needs == ("calibrated/light_V_001.fits",)
    parts = [q.part for q in products.values()]
    assert parts == ["masters"] * 6 + ["calibrated"] * 4 + (["registered"] * 3 + ["stacks"]) * 2
    assert len({q.key for q in products.values()}) == len(products)
    # products are data: they pickle (to reach a worker), and a new plan has the same keys
    again = pickle.loads(pickle.dumps(plan(two_filters, tmp_path / "out").products))
    assert again == products
    assert not p.failures and p.notices == []


def test_keys_follow_what_changes(two_filters, tmp_path):
    p = plan(two_filters, tmp_path / "out")
    cfg = loads_config('[combine.light]\nmethod = "median"\nreject = "none"\n')
    q = plan(two_filters, tmp_path / "out", config=cfg)
    changed = [n for n in p.products if p.products[n].key != q.products[n].key]
    assert changed == ["stacks/SIMFIELD_B.fits", "stacks/SIMFIELD_V.fits"]
    flat = q.config.flat
    r = plan(two_filters, tmp_path / "out", config=replace(q.config, flat=replace(
        flat, min_response=0.4)))  # fmt: skip
    changed = [n for n in q.products if q.products[n].key != r.products[n].key]
    # the camera's measurement takes the flats as they are: no min_response in it
    assert changed == [n for n in q.products if not any(w in n for w in ("bias", "dark", "camera"))]


def test_dry_run_states_and_what_a_touched_flat_rebuilds(two_filters, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["reduce", str(two_filters), str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "18 products: 18 to build, 0 up to date" in text
    assert "to build: no output yet" in text
    assert not out.exists()  # a dry run writes nothing

    reduce(two_filters, out, report=False)
    assert main(["reduce", str(two_filters), str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "18 products: 0 to build, 18 up to date" in text

    flat = two_filters / "flat_V_002.fits"
    st = flat.stat()
    before = _mtimes(out)
    try:
        os.utime(flat, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, as by `touch`
        assert main(["reduce", str(two_filters), str(out), "--dry-run"]) == 0
        lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
        rebuilt = {name for name, line in lines.items() if "to build" in line}
        assert rebuilt == {
            "masters/flat_V.fits", "calibrated/light_V_001.fits", "calibrated/light_V_002.fits",
            "stars/light_V_001.ecsv", "stars/light_V_002.ecsv", "registration/SIMFIELD_V.ecsv",
            "stacks/SIMFIELD_V.fits",
        }  # fmt: skip
        assert "raw files or options changed" in lines["masters/flat_V.fits"]
        assert "flat_V changed" in lines["calibrated/light_V_001.fits"]
        assert "flat_V changed" in lines["stacks/SIMFIELD_V.fits"]
        assert _mtimes(out) == before  # built nothing
        # a real run builds exactly those
        result = reduce(two_filters, out, report=False)
        after = _mtimes(out)
        changed = {str(Path(k).relative_to(out)) for k in after if after[k] != before[k]}
        assert changed == rebuilt
        assert len(result.reused) == 11  # the camera among them
    finally:
        os.utime(flat, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_only_builds_a_part_and_what_it_needs(two_filters, tmp_path):
    out = tmp_path / "out"
    masters = reduce(two_filters, out, only="masters")
    assert sorted(masters.masters) == ["bias", "dark_20s", "dark_60s", "flat_B", "flat_V"]
    assert masters.calibrated == [] and masters.stacks == {} and masters.report is None
    assert not (out / "calibrated").exists() and not (out / "report").exists()
    kept = _mtimes(out / "masters")
    stacks = reduce(two_filters, out, only="stacks", report=False)
    assert len(stacks.stacks) == 2 and len(stacks.calibrated) == 4
    assert len(stacks.registrations) == 2
    assert _mtimes(out / "masters") == kept  # up to date: reused, not rebuilt
    assert sorted(stacks.masters) == ["bias", "dark_20s", "flat_B", "flat_V"]  # what it used
    assert len(stacks.reused) == 4
    # with every light up to date, a missing stack needs no master at all
    (out / "stacks" / "SIMFIELD_B.fits").unlink()
    for path in (out / "masters").glob("*.fits"):
        path.unlink()
    again = execute(plan(two_filters, out), only="stacks")
    assert [p.name for p in again.built] == ["stacks/SIMFIELD_B.fits"]
    with pytest.raises(CcdcalError, match="only must be one of masters, calibrated, registered"):
        reduce(two_filters, out, only="lights")


def _same_files(a, b) -> None:
    """Every HDU's data and header cards equal (but time stamps and checksums)."""
    from astropy.io import fits

    stamp = re.compile(r"ccdcal \S+ .+ \d{4}-\d\d-\d\dT")
    skip = {"CHECKSUM", "DATASUM", "DATE"}
    with fits.open(a) as x, fits.open(b) as y:
        assert len(x) == len(y), a.name
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u.data, v.data, err_msg=f"{a.name} {u.name}")
            cards = [[(k, str(c)) for k, c in h.header.items()
                      if k not in skip and not stamp.match(str(c))] for h in (u, v)]  # fmt: skip
            assert cards[0] == cards[1], f"{a.name} {u.name}"


@pytest.mark.parametrize("band_rows", [1, 7, 39])
def test_masters_and_stacks_in_bands_equal_one_task(two_filters, tmp_path, band_rows):
    whole = reduce(two_filters, tmp_path / "whole", report=False)
    banded = reduce(two_filters, tmp_path / "bands", report=False, band_rows=band_rows)
    pairs = [(whole.masters[k], banded.masters[k]) for k in whole.masters]
    pairs += [(whole.stacks[k], banded.stacks[k]) for k in whole.stacks]
    pairs += list(zip(whole.calibrated, banded.calibrated, strict=True))
    for a, b in pairs:
        _same_files(a, b)  # keys too: a key does not depend on the output folder's place
    assert not banded.reused
    again = reduce(two_filters, tmp_path / "bands", report=False)  # the split is not in keys
    assert len(again.reused) == 18
    scratch = [p for p in (tmp_path / "bands" / "masters").iterdir() if p.is_dir()]
    assert scratch == []


def test_graph_of_a_split_product(two_filters, tmp_path):
    p = plan(two_filters, tmp_path / "out")
    todo = [p.products["masters/bias.fits"], p.products["stacks/SIMFIELD_V.fits"]]
    keys = [t.key for t in graph(p, todo, InProcess(), band_rows=20)]
    assert keys == [
        "masters/bias.fits#prepare-0", "masters/bias.fits#prepare-1", "masters/bias.fits#prepare-2",
        "masters/bias.fits#setup", "masters/bias.fits#rows-0", "masters/bias.fits#rows-1",
        "masters/bias.fits",
        # a registered stack prepares (resamples) its lights first
        "stacks/SIMFIELD_V.fits#prepare-0", "stacks/SIMFIELD_V.fits#prepare-1",
        # and flags cosmic rays against their median (where the seeing differs)
        "stacks/SIMFIELD_V.fits#median", "stacks/SIMFIELD_V.fits#check-0",
        "stacks/SIMFIELD_V.fits#check-1",
        "stacks/SIMFIELD_V.fits#setup", "stacks/SIMFIELD_V.fits#rows-0",
        "stacks/SIMFIELD_V.fits#rows-1", "stacks/SIMFIELD_V.fits",
    ]  # fmt: skip
    assert [t.key for t in graph(p, todo, InProcess())] == [q.name for q in todo]


class _Big:
    """A result whose life a weak reference follows."""


def test_in_process_frees_what_no_later_task_needs():
    made: list[weakref.ref] = []

    def big():
        obj = _Big()
        made.append(weakref.ref(obj))
        return obj

    def use(items):
        return len(items)

    def alive():
        gc.collect()
        return [r() is not None for r in made]

    tasks = [Task("a", big), Task("b", use, ([Ref("a")],)), Task("c", alive),
             Task("d", use, ([Ref("b")],))]  # fmt: skip
    out = InProcess().run(tasks, want=["c", "d"])
    assert out == {"c": [False], "d": 1}  # "a" was let go once "b" had used it
    made.clear()
    kept = InProcess().run(tasks, want=["a", "c"])
    assert kept["c"] == [True]  # a wanted result stays
    with pytest.raises(ValueError, match="needs 'z', which does not come first"):
        InProcess().run([Task("a", use, (Ref("z"),))])


def test_progress_bars_one_per_part(two_filters, tmp_path, capsys):
    reduce(two_filters, tmp_path / "out", report=False, progress=True)
    err = capsys.readouterr().err
    for bar in ("masters:", "calibrate:", "stacks:"):
        assert bar in err, err
    assert "0/6 " in err and "0/4 " in err and "0/2 " in err  # one bar per part, its total


def test_plan_errors_are_one_line(tmp_path):
    with pytest.raises(CcdcalError, match="no such folder"):
        plan(tmp_path / "nothing", tmp_path / "out")
    (tmp_path / "raw").mkdir()
    with pytest.raises(CcdcalError, match="must not be inside the raw folder"):
        plan(tmp_path / "raw", tmp_path / "raw" / "out")
    with pytest.raises(CcdcalError, match="no light frames found"):
        plan(tmp_path / "raw", tmp_path / "out")


@pytest.mark.realdata
def test_plan_of_feder(feder_night, tmp_path):
    p = plan(feder_night, tmp_path)
    kinds = [q.kind for q in p.products.values()]
    assert kinds.count("bias") == 1 and kinds.count("dark") == 5 and kinds.count("flat") == 4
    assert kinds.count("light") == 40 and kinds.count("stack") == 4
    flats = {q.about["filter"]: q for q in p.of_kind("flat")}
    # each flat gets the dark of its own exposure: B 120 s, V 30 s, R 15 s, I 5 s
    assert {f: Path(q.needs[1]).stem for f, q in flats.items()} == {
        "B": "dark_120s", "V": "dark_30s", "R": "dark_15s", "I": "dark_5s"}  # fmt: skip
    for light in p.of_kind("light"):
        t = light.about["exptime"]
        assert light.needs == ("masters/bias.fits", f"masters/dark_{t:g}s.fits",
                               f"masters/flat_{light.about['filter']}.fits")  # fmt: skip
    for stack in p.of_kind("stack"):
        *lights, registration = stack.needs
        assert len(lights) == 10 and registration.startswith("registration/")
        assert all(p.products[n].about["filter"] == stack.about["filter"] for n in lights)
    assert "stay in ADU" in " ".join(p.notices)
    # its lights name no object (OBJECT was deleted from them): named after their files
    assert sorted(q.name for q in p.of_kind("stack")) == [
        f"stacks/SA112-SF1_{f}.fits" for f in "BIRV"
    ]
    assert any(n.startswith("40 lights (SA112-SF1-001B1.fit.gz") and "named 'SA112-SF1' after "
               "their file names" in n for n in p.notices)  # fmt: skip


@pytest.mark.realdata
def test_plan_of_lowell(lowell_night, tmp_path):
    p = plan(lowell_night, tmp_path)
    names = [q.name for q in p.of_kind("bias", "dark", "flat", "stack")]
    assert names == ["masters/bias.fits", "masters/flat_VR.fits",
                     "stacks/5945_Roachapproach_VR.fits"]  # fmt: skip
    lights = p.of_kind("light")
    assert len(lights) == 8
    assert all(q.needs == ("masters/bias.fits", "masters/flat_VR.fits") for q in lights)
    assert all(q.name.startswith("calibrated/5945/") for q in lights)  # sub-folder kept
    assert len(p.products["masters/flat_VR.fits"].inputs) == 7
    notices = " ".join(p.notices)
    assert "no dark frames" in notices and "filter 'V': no light in that filter" in notices


def test_bands_keep_the_darks_own_exposure(tmp_path):
    """A rule sets the darks' exposure (classification) while their headers say another:
    a master dark in bands takes the prepared frames' time, as one made whole does."""
    from ccdcal.config import loads_config

    ccdcal.simulate.night(tmp_path / "n", seed=8, shape=(40, 48), nbias=3, ndark=3, nflat=3,
                          nlight=2)  # fmt: skip
    raw = tmp_path / "n" / "raw"
    cfg = loads_config('[[rules]]\nmatch = { path = "dark_*" }\nset = { exptime = 30.0 }\n')
    whole = reduce(raw, tmp_path / "whole", config=cfg, report=False)
    banded = reduce(raw, tmp_path / "bands", config=cfg, report=False, band_rows=8)
    for a, b in zip([*whole.masters.values(), *whole.calibrated],
                    [*banded.masters.values(), *banded.calibrated], strict=True):  # fmt: skip
        _same_files(a, b)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_run_leaves_no_scratch(tmp_path, workers):
    ccdcal.simulate.night(tmp_path / "n", seed=9, shape=(40, 48), nbias=3, ndark=3, nflat=4,
                          nlight=2)  # fmt: skip
    raw = tmp_path / "n" / "raw"
    from astropy.io import fits

    with fits.open(raw / "flat_V_002.fits") as hdul:  # a flat with no light: refused
        data, header = np.zeros_like(hdul[0].data), hdul[0].header.copy()
    fits.PrimaryHDU(data, header).writeto(raw / "flat_V_002.fits", overwrite=True)
    with pytest.raises(CcdcalError, match="flat has median"):
        reduce(raw, tmp_path / "out", report=False, workers=workers, band_rows=5)
    assert [p.name for p in (tmp_path / "out" / "masters").iterdir() if p.is_dir()] == []
    from ccdcal.pipeline import recipes

    assert recipes._MASTERS == {}  # the masters this process read are let go


def test_bad_band_rows_and_name_clashes_are_one_line(two_filters, tmp_path, capsys):
    for value in (0, -3, 2.5, True):
        with pytest.raises(CcdcalError, match="band_rows must be a whole number"):
            reduce(two_filters, tmp_path / "out", band_rows=value)
    for extra in ([], ["--dry-run"]):
        code = main(["reduce", str(two_filters), str(tmp_path / "o"), "--band-rows", "0", *extra])
        err = capsys.readouterr().err
        assert code == 1 and "band_rows must be a whole number" in err and "Traceback" not in err
    # two raw files that calibrate to one name
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in two_filters.iterdir():
        (raw / p.name).write_bytes(p.read_bytes())
    (raw / "light_V_001.fit").write_bytes((two_filters / "light_V_001.fits").read_bytes())
    with pytest.raises(CcdcalError, match=r"calibrated/light_V_001\.fits: both light_V_001\.fit"):
        plan(raw, tmp_path / "out2")


def _without_object(path: Path, to: Path) -> None:
    from astropy.io import fits

    with fits.open(path) as hdul:
        del hdul[0].header["OBJECT"]
        to.parent.mkdir(parents=True, exist_ok=True)
        hdul.writeto(to)
    path.unlink()


def test_lights_without_object_are_named_after_their_field(tmp_path):
    """Lights whose headers name no object are stacked under their folder's name, or their
    file names' (the series before the frame number), and a notice says so in English."""
    ccdcal.simulate.night(tmp_path / "n", seed=5, shape=(32, 32), nbias=2, ndark=2, nflat=1,
                          nlight=2, filters=("V", "R"))  # fmt: skip
    raw = tmp_path / "n" / "raw"
    for path in sorted(raw.glob("light_V_*.fits")):
        _without_object(path, raw / "m51" / path.name)  # a folder per field
    for i, path in enumerate(sorted(raw.glob("light_R_*.fits")), start=1):
        _without_object(path, raw / f"SA112-SF1-00{i}R1.fits")  # a camera's series
    p = plan(raw, tmp_path / "o")
    assert sorted(q.name for q in p.of_kind("stack")) == [
        "stacks/SA112-SF1_R.fits", "stacks/m51_V.fits"]  # fmt: skip
    assert {q.about["object"] for q in p.of_kind("stack")} == {"SA112-SF1", "m51"}
    light = next(q for q in p.of_kind("light") if "m51" in q.name)
    assert light.options["header"]["OBJECT"][0] == "m51"  # the calibrated light carries it
    notices = " | ".join(p.notices)
    assert (
        "2 lights (light_V_001.fits, light_V_002.fits) name no object "
        "(OBJECT/OBJNAME/TARGNAME/FIELD): named 'm51' after their folder" in notices
    )
    assert "named 'SA112-SF1' after their file names" in notices
    assert "1 flats" not in notices


def test_notices_count_in_english(tmp_path):
    """One flat of a filter no light has: "1 flat", not "1 flats"."""
    ccdcal.simulate.night(tmp_path / "n", seed=5, shape=(32, 32), nbias=2, ndark=2, nflat=1,
                          nlight=1, filters=("V", "R"))  # fmt: skip
    raw = tmp_path / "n" / "raw"
    (raw / "light_R_001.fits").unlink()
    p = plan(raw, tmp_path / "o")
    assert "1 flat in filter 'R': no light in that filter; not used" in p.notices
    assert p.table().splitlines()[-1].startswith("6 products: 6 to build")
    summary = ccdcal.simulate.night(tmp_path / "m", seed=5, shape=(32, 32), nbias=1, ndark=2,
                                    nflat=1, nlight=0).summary()  # fmt: skip
    assert "1 bias, 2 darks, 1 flat, 0 lights" in summary
