"""Copy the tables that scripts write into README.md, between their markers.

README.md holds, for every generated table, a pair of markers naming the file that holds it::

    <!-- BEGIN benchmarks/results/reduce_workers.md -->
    ...the file's text, copied here by this script...
    <!-- END benchmarks/results/reduce_workers.md -->

Usage::

    python scripts/update_readme.py          # rewrite README.md from the files
    python scripts/update_readme.py --check  # exit 1 when README.md differs from them
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKERS = re.compile(
    r"(<!-- BEGIN (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- END (?P=path) -->)", re.DOTALL
)


def generated(text: str, root: Path = ROOT) -> str:
    """``text`` with every marked section replaced by the current text of its file."""

    def fill(m: re.Match[str]) -> str:
        source = root / m.group("path")
        if not source.is_file():
            raise FileNotFoundError(f"README.md names {m.group('path')}, which does not exist")
        body = source.read_text().rstrip("\n") + "\n"
        return f"{m.group(1)}{body}{m.group(4)}"

    return MARKERS.sub(fill, text)


def sections(text: str) -> list[str]:
    """The files README.md's markers name."""
    return [m.group("path") for m in MARKERS.finditer(text)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = generated(text)
    if args.check:
        if new != text:
            print("README.md differs from the tables its markers name; run "
                  "python scripts/update_readme.py", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    if new != text:
        README.write_text(new)
        print(f"README.md: {len(sections(new))} generated sections updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
