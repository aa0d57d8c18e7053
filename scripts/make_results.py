"""Write the results README quotes, by running README's own commands, into docs/results/.

Each results file is what one of README's commands writes or prints, run in a fresh folder
exactly as README shows it (``ccdcal demo demo/`` writes ``demo/truth.md``; ``ccdcal
experiment frames`` writes ``experiment-frames/frames.md``). README includes the files
between its ``<!-- BEGIN docs/results/... -->`` markers (``scripts/update_readme.py`` copies
them), and ``tests/test_readme.py`` runs README's commands again and compares what they
write with the files, so that a number in README is what the code gives today. Results of
the real nights need ``../shared/data`` and are left as they are without it.

Usage::

    python scripts/make_results.py            # rewrite docs/results/ and README.md
    python scripts/make_results.py --check    # exit 1 when a file differs from a fresh run
    python scripts/make_results.py demo       # only the results whose file names contain it
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Result:
    """How a results file is made.

    Attributes
    ----------
    command
        The command as README shows it; ``{data}/`` stands for the real nights' folder.
    writes
        The file the command writes, relative to the folder it ran in; None: the results
        are what it prints, as a ``text`` block.
    """

    command: str
    writes: str | None = None

    @property
    def needs_data(self) -> bool:
        return "{data}" in self.command


#: results file (relative to the repository) -> how it is made
RESULTS: dict[str, Result] = {
    "docs/results/demo.md": Result("ccdcal demo demo/", "demo/truth.md"),
    "docs/results/experiment_frames.md": Result(
        "ccdcal experiment frames", "experiment-frames/frames.md"
    ),
    "docs/results/experiment_cosmic_rays.md": Result(
        "ccdcal experiment cosmic-rays", "experiment-cosmic-rays/cosmic_rays.md"
    ),
    "docs/results/experiment_vignetting.md": Result(
        "ccdcal experiment vignetting", "experiment-vignetting/vignetting.md"
    ),
    "docs/results/lowell_characterize.md": Result(
        "ccdcal characterize {data}/lowell-42in-2019-03-26 -o lowell.toml"
    ),
}


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run(command: str, folder: Path, data: Path = DATA) -> str:
    """Run one ``ccdcal ...`` command line in ``folder``, in this process; what it printed."""
    from ccdcal.cli import main

    words = shlex.split(command.replace("{data}", str(data)), comments=True)
    if words[:1] != ["ccdcal"]:
        raise ValueError(f"not a ccdcal command: {command!r}")
    printed = io.StringIO()
    with _inside(folder), contextlib.redirect_stdout(printed):
        code = main(words[1:])
    if code != 0:
        raise RuntimeError(f"{command!r} exited with {code}")
    return printed.getvalue()


def text_of(result: Result, folder: Path, printed: str) -> str:
    """The results file's text, from what ``result``'s command wrote or printed."""
    if result.writes is not None:
        return (folder / result.writes).read_text(encoding="utf-8")
    return f"```text\n{printed.rstrip()}\n```\n"


def make(selected: list[str], folder: Path) -> dict[str, str]:
    """Run the commands of the ``selected`` results in ``folder``; their texts by file."""
    out = {}
    for path in selected:
        result = RESULTS[path]
        out[path] = text_of(result, folder, run(result.command, folder))
    return out


def _old_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="results whose file names contain any of these")
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    selected = [p for p in RESULTS if not args.only or any(w in p for w in args.only)]
    if not DATA.is_dir():
        for p in [p for p in selected if RESULTS[p].needs_data]:
            print(f"{p}: left as it is, {DATA} is absent", file=sys.stderr)
            selected.remove(p)
    with tempfile.TemporaryDirectory(prefix="ccdcal-results-") as tmp:
        texts = make(selected, Path(tmp))
    stale = [p for p, text in texts.items() if _old_text(ROOT / p) != text]
    if args.check:
        for p in stale:
            print(f"{p} differs from what the code writes now", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / p).write_text(texts[p], encoding="utf-8")
        print(f"wrote {p}")
    sys.path.insert(0, str(ROOT / "scripts"))
    import update_readme

    return update_readme.main([])


if __name__ == "__main__":
    sys.exit(main())
