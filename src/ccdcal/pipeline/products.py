"""The plan of a reduction as data: products, their dependencies, keys and states.

A :class:`Product` is one output file (a master, a calibrated light, a stack) with everything
needed to make it: the files it reads, the products that must exist first, the recipe (a
module-level function) and its options, and a key. The key is a digest of the ccdcal
version, the raw files it reads (path, size, modification time), the keys of the products
it needs and its options: it changes exactly when the product would come out differently,
so a rerun keeps every output whose file verifies and whose ``PIPEKEY`` equals its key.

A :class:`Plan` holds the products in dependency order, with what the scan had to say.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..collection import Collection
from ..config import Config
from ..errors import CcdcalError
from ..wording import plural

#: the parts of a reduction, in the order they are made; ``--only`` takes one of these
PARTS = ("masters", "calibrated", "registered", "stacks")
_PART = {"camera": "masters", "bias": "masters", "dark": "masters", "flat": "masters",
         "light": "calibrated",
         "stars": "registered", "registration": "registered", "stack": "stacks"}  # fmt: skip


@dataclass(frozen=True)
class Product:
    """One output of a reduction and how it is made.

    Attributes
    ----------
    name
        Its path below the output folder, such as ``masters/flat_V.fits``.
    kind
        ``"bias"``, ``"dark"``, ``"flat"``, ``"light"`` (a calibrated light), ``"stars"``
        (a light's stars and quality), ``"registration"`` (the alignment of a stack's
        lights) or ``"stack"``.
    path
        The output file (absolute).
    recipe
        ``recipe(inputs, memory_limit=..., **options) -> (Frame, history)``: a module-level
        function of plain arguments (see :mod:`ccdcal.pipeline.recipes`).
    inputs
        The files it reads: raw frames, or for a stack the calibrated lights.
    needs
        Names of the products that must exist before it is made.
    options
        The recipe's keyword arguments (plain, picklable data).
    key
        Digest of everything that makes its content (see the module's documentation).
    about
        What it is, for people and reports (object, filter, exposure time); not used to
        make it.
    """

    name: str
    kind: str
    path: Path
    recipe: Callable[..., Any] = field(repr=False)
    inputs: tuple[Path, ...]
    needs: tuple[str, ...]
    options: Mapping[str, Any]
    key: str
    about: Mapping[str, Any] = field(default_factory=dict)

    @property
    def part(self) -> str:
        """``"masters"``, ``"calibrated"``, ``"registered"`` or ``"stacks"``."""
        return _PART[self.kind]

    @property
    def label(self) -> str:
        """Its short name: ``bias``, ``dark_60s``, ``flat_V``, ``light_001``, ``M51_V``."""
        return self.path.stem


#: bytes of a raw file a fingerprint reads: its start (the header) and blocks spread over
#: the rest, so that a file replaced by another of the same size and time is seen
_HEAD, _BLOCK, _BLOCKS = 65_536, 4_096, 32


def fingerprint(path: Path) -> bytes:
    """A digest of a raw file's header and of blocks spread over its data: another frame
    differs in every block, so a file swapped for another of the same size whose time was
    kept changes it; reading 190 KiB a file keeps a plan quick.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.fits"
    >>> _ = p.write_bytes(bytes(300_000))
    >>> a = fingerprint(p)
    >>> _ = p.write_bytes(bytes(299_999) + b"x")
    >>> a == fingerprint(p)
    True
    >>> _ = p.write_bytes(bytes(150_000) + b"x" * 150_000)
    >>> a == fingerprint(p)
    False
    """
    h = hashlib.blake2b(digest_size=16)
    size = path.stat().st_size
    with open(path, "rb") as f:
        h.update(f.read(_HEAD))
        if size > _HEAD:
            step = max(_BLOCK, (size - _HEAD) // _BLOCKS)
            for offset in range(_HEAD, size, step):
                f.seek(offset)
                h.update(f.read(_BLOCK))
    return h.digest()


def product_key(
    kind: str,
    raw: Sequence[Path],
    needs: Iterable[str],
    options: Mapping[str, Any],
    *,
    root: Path | None = None,
) -> str:
    """A short stable digest of a product's raw files (path, size, time), the keys of the
    products it needs and its options (the ccdcal version included: a new version may
    calibrate differently). Paths below ``root`` (the output folder) count relative to
    it, so that a whole output folder can be moved and still be up to date.

    Examples
    --------
    >>> a = product_key("stack", [], ["k1", "k2"], {"method": "mean"})
    >>> a == product_key("stack", [], ["k1", "k2"], {"method": "median"})
    False
    >>> b = product_key("light", [], [], {"flat": Path("/o/masters/flat.fits")}, root=Path("/o"))
    >>> b == product_key("light", [], [], {"flat": Path("/p/masters/flat.fits")}, root=Path("/p"))
    True
    """
    h = hashlib.sha256(f"{__version__}\0{kind}".encode())
    for path in raw:
        st = path.stat()
        h.update(f"\0{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(fingerprint(path))
    for key in needs:
        h.update(f"\0need {key}".encode())
    for name in sorted(options):
        text = repr(options[name])
        if root is not None:
            text = text.replace(f"{root}{os.sep}", f"$OUT{os.sep}")
        h.update(f"\0{name}={text}".encode())
    return h.hexdigest()[:16]


_OWN_CHANGE = "raw files or options changed"


@dataclass(frozen=True)
class State:
    """Whether a product's file can be kept, and if not why."""

    up_to_date: bool
    why: str = ""

    def __str__(self) -> str:
        return "up to date" if self.up_to_date else f"to build: {self.why}"


def file_state(product: Product) -> State:
    """The state of ``product``'s file alone: up to date when it exists, its checksums verify
    and its ``PIPEKEY`` equals the product's key."""
    from astropy.io import fits

    from ..checksums import verify_checksums

    path = product.path
    if not path.exists():
        return State(False, "no output yet")
    if path.suffix == ".ecsv":  # a table: no checksum, but a cut file does not parse
        key = read_table_key(path)
        if key is None:
            return State(False, "output damaged (unreadable table)")
    else:
        if not verify_checksums(path):
            return State(False, "output damaged (checksums fail)")
        key = fits.getheader(path).get("PIPEKEY")
    if key != product.key:
        return State(False, "out of date")
    return State(True)


def read_table_key(path: Path) -> str | None:
    """The ``PIPEKEY`` of an ECSV product, or None when the file does not parse."""
    from astropy.table import Table

    try:
        return Table.read(path, format="ascii.ecsv").meta.get("PIPEKEY")
    except Exception:  # any parse error of a cut or garbled file means: build it again
        return None


class States(Mapping[str, State]):
    """The products' states by name, each read from its file when first asked for (so that
    ``--only masters`` does not read every calibrated light).

    A product whose file is out of date says which product it needs changed first, when
    one did (``flat_V changed`` for the lights of that flat and their stacks), else that its
    raw files or options changed.
    """

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._known: dict[str, State] = {}
        self._stale: set[str] = set()
        self._files: dict[str, State] = {}  # read ahead by read_files

    def read_files(self, names: Iterable[str]) -> None:
        """Read the files of products ``names`` ahead, on threads: verifying a rerun's
        outputs is reading and summing gigabytes, which let go of Python's lock."""
        from .. import threads

        todo = [n for n in names if n not in self._known and n not in self._files]
        if len(todo) < 2:
            return
        products = [self._plan.products[n] for n in todo]
        with ThreadPoolExecutor(threads.count()) as pool:
            self._files.update(zip(todo, pool.map(file_state, products), strict=True))

    def __getitem__(self, name: str) -> State:
        known = self._known.get(name)
        if known is not None:
            return known
        product = self._plan.products[name]
        state = self._files.pop(name, None) or file_state(product)
        if state.why == "out of date":
            self._stale.add(name)
            needs = [(n, self[n]) for n in product.needs]
            changed = [(n, s) for n, s in needs if n in self._stale]
            if not changed:
                why = _OWN_CHANGE
            elif changed[0][1].why == _OWN_CHANGE:
                why = f"{Path(changed[0][0]).stem} changed"
            else:
                why = changed[0][1].why
            state = State(False, why)
        self._known[name] = state
        return state

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan.products)

    def __len__(self) -> int:
        return len(self._plan.products)


@dataclass
class Plan:
    """A reduction's products in dependency order, and what the scan had to say.

    Attributes
    ----------
    raw_dir, out_dir
        The folders.
    config
        The configuration the plan was made with.
    collection
        The scanned raw folder.
    products
        By name, each after the products it needs.
    notices
        What the user should know (missing calibrations and what is done instead).
    failures
        Files that cannot be used, with the reason.
    shape
        ``(ny, nx)`` of the raw frames.
    sources
        Where the lights' gain, read noise, saturation, filter and exposure come from, one
        line each (keyword and value, the config, or the measurement).
    """

    raw_dir: Path
    out_dir: Path
    config: Config
    collection: Collection
    products: dict[str, Product] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)
    shape: tuple[int, int] | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def add(self, product: Product) -> Product:
        """Add ``product`` (after every product it needs)."""
        missing = [n for n in product.needs if n not in self.products]
        if missing or product.name in self.products:
            raise CcdcalError(f"{product.name}: needs {missing} first, or is already planned")
        self.products[product.name] = product
        return product

    def of_kind(self, *kinds: str) -> list[Product]:
        """The products of these kinds, in plan order."""
        return [p for p in self.products.values() if p.kind in kinds]

    def states(self) -> States:
        """Each product's state, read from its file when first asked for (see
        :class:`States`)."""
        return States(self)

    def to_build(self, states: Mapping[str, State], only: str | None = None) -> list[Product]:
        """The products a run builds: those of part ``only`` (default every part) that are
        not up to date, and whatever of what they need is not up to date either (an up to
        date product needs nothing)."""
        if only is not None and only not in PARTS:
            raise CcdcalError(f"only must be one of {', '.join(PARTS)}, not {only!r}")
        chosen: set[str] = set()
        if isinstance(states, States):  # each selected product's file is read: read them now
            states.read_files(p.name for p in self.products.values()
                              if only is None or p.part == only)  # fmt: skip

        def visit(name: str) -> None:
            if name in chosen or states[name].up_to_date:
                return
            chosen.add(name)
            for need in self.products[name].needs:
                visit(need)

        for product in self.products.values():
            if only is None or product.part == only:
                visit(product.name)
        return [p for p in self.products.values() if p.name in chosen]

    def table(self, states: Mapping[str, State] | None = None, only: str | None = None) -> str:
        """The plan as a text table: product, inputs, state (like ``make -n``)."""
        states = self.states() if states is None else states
        building = {p.name for p in self.to_build(states, only)}
        rows = [("product", "inputs", "state")]
        for p in self.products.values():
            state = states[p.name]
            if state.up_to_date:
                text = "up to date"
            elif p.name in building:
                text = str(state)
            else:
                text = f"not selected ({state.why})"
            rows.append((p.name, describe_inputs(p), text))
        widths = [max(len(r[i]) for r in rows) for i in range(2)]
        lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}".rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in [*widths, 5]))
        todo = len(building)
        lines.append(
            f"{plural(len(self.products), 'product')}: {todo} to build, "
            f"{sum(s.up_to_date for s in states.values())} up to date"
        )
        return "\n".join(lines)


def describe_inputs(product: Product) -> str:
    """What a product is made from, in a few words.

    Examples
    --------
    >>> p = Product("stacks/M51_V.fits", "stack", Path("/o/stacks/M51_V.fits"), print,
    ...             (Path("a.fits"), Path("b.fits")), (), {}, "0")
    >>> describe_inputs(p)
    '2 calibrated lights'
    """
    if product.kind in ("stack", "registration"):
        return plural(len(product.inputs), "calibrated light")
    if product.kind == "stars":
        return product.inputs[0].name
    n = len(product.inputs)
    own = product.inputs[0].name if n == 1 else f"{n} raw {product.kind} frames"
    return ", ".join([own, *(Path(need).stem for need in product.needs)])


__all__ = [
    "PARTS",
    "Plan",
    "Product",
    "State",
    "States",
    "describe_inputs",
    "file_state",
    "product_key",
]
