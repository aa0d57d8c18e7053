"""What a night's frames say about its camera, beside what its headers say: the table a
user reads and the ``[detector]`` section ``--config`` takes back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..wording import plural
from .measures import DISAGREEMENT, Linearity, TransferPoint, Value


@dataclass
class Characterization:
    """What the night's calibration frames say about the camera (:func:`characterize`).

    Attributes
    ----------
    gain
        e-/ADU by photon transfer, or None (no pair of flats).
    read_noise
        Electrons (in ADU when no gain is known), or None (no pair of biases).
    read_noise_adu
        ADU.
    regions
        Read noise per amplifier region, ``(section, Value in ADU)``.
    transfer
        The photon-transfer points, one per pair of flats.
    bias_level
        Median level of the biases, ADU (above the overscan when one is subtracted).
    dark_current
        e-/s (ADU/s without a gain) of ordinary pixels, or None (no darks).
    hot_pixels
        Pixels whose dark current is more than five sigmas above the rest, or None.
    linearity
        :class:`Linearity`, or None (no flats at three or more exposure times).
    bad_pixels
        Boolean mask from a ratio of flats, or None (no flats of two levels).
    header
        What the headers say: ``{"gain": (keyword, value), "rdnoise": (keyword, value)}``
        (keyword None when absent).
    gain_unsure
        ``(keyword, value)`` of a gain keyword of varying meaning (CCDGAIN) where no other
        gain is known: shown beside the measurement, never used to convert.
    amplifier_noise_adu
        The read noise in ADU without the ADC's rounding, or None.
    notes
        What the user should know, one line each.
    """

    gain: Value | None = None
    read_noise: Value | None = None
    read_noise_adu: Value | None = None
    regions: list[tuple[str, Value]] = field(default_factory=list)
    transfer: list[TransferPoint] = field(default_factory=list)
    bias_level: float | None = None
    dark_current: Value | None = None
    hot_pixels: int | None = None
    hot_mask: np.ndarray | None = None
    linearity: Linearity | None = None
    bad_pixels: np.ndarray | None = None
    header: dict[str, tuple[str | None, float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gain_unsure: tuple[str, float] | None = None
    amplifier_noise_adu: float | None = None

    def disagreements(self, limit: float = DISAGREEMENT) -> list[str]:
        """One line per header value that differs from the measurement by more than
        ``limit`` (a fraction)."""
        out = []
        for name, measured, unit in (("gain", self.gain, "e-/ADU"),
                                     ("read noise", self.read_noise, "e-")):  # fmt: skip
            key, value = self.header.get("gain" if name == "gain" else "rdnoise", (None, None))
            if measured is None or value is None or measured.unit != unit:
                continue
            if abs(value / measured.value - 1.0) > limit:
                out.append(
                    f"header {name} {key} = {value:g} {unit} differs from the {name} measured "
                    f"from {measured.source}, {measured.value:.3g} {unit} "
                    f"({100 * (value / measured.value - 1):+.0f} %)"
                )
        return out

    def table(self) -> str:
        """The measurements beside the header's values, as a text table.

        Examples
        --------
        >>> c = Characterization(gain=Value(2.01, 0.01, "e-/ADU", "3 flat pairs"),
        ...                      header={"gain": ("GAIN", 2.0)})
        >>> print(c.table())  # doctest: +NORMALIZE_WHITESPACE
        quantity  measured              from          header    header vs measured
        --------  --------------------  ------------  --------  ------------------
        gain      2.010 ± 0.010 e-/ADU  3 flat pairs  GAIN = 2  -0.5 %
        """
        rows = [["quantity", "measured", "from", "header", "header vs measured"]]

        def header_cells(name: str, measured: Value | None) -> list[str]:
            key, value = self.header.get(name, (None, None))
            unsure = ""
            if (key is None or value is None) and name == "gain" and self.gain_unsure:
                (key, value), unsure = self.gain_unsure, " (unsure)"
            if key is None or value is None:
                return ["-", ""]
            agree = ""
            if measured is not None and measured.value > 0 and measured.unit != "ADU":
                agree = f"{100 * (value / measured.value - 1):+.1f} %"
            return [f"{key} = {value:g}{unsure}", agree]

        if self.gain is not None or self.header.get("gain", (None,))[0] or self.gain_unsure:
            g = self.gain
            rows.append(["gain", str(g) if g else "-", g.source if g else "no flat pairs",
                         *header_cells("gain", g)])  # fmt: skip
        if self.read_noise is not None:
            r = self.read_noise
            rows.append(["read noise", str(r), r.source, *header_cells("rdnoise", r)])
        if self.read_noise_adu is not None and self.read_noise_adu is not self.read_noise:
            rows.append(["read noise", str(self.read_noise_adu), self.read_noise_adu.source,
                         "", ""])  # fmt: skip
        for section, value in self.regions:
            rows.append([f"  region {section}", str(value), value.source, "", ""])
        if self.bias_level is not None:
            rows.append(["bias level", f"{self.bias_level:.1f} ADU", "biases", "", ""])
        if self.dark_current is not None:
            d = self.dark_current
            rows.append(["dark current", str(d), d.source, "", ""])
        if self.hot_pixels is not None:
            rows.append(["hot pixels", str(self.hot_pixels), "darks (> 5 sigma)", "", ""])
        if self.linearity is not None:
            lin = self.linearity
            what = (
                "not measured"
                if not lin.measured
                else ("within 1 %" if lin.limit is None else f"1 % at {lin.limit:.0f} ADU")
            )
            rows.append(
                ["linearity", what, f"flats at {plural(len(lin.levels), 'exposure')}", "", ""]
            )
        if self.bad_pixels is not None:
            rows.append(["bad pixels", str(int(self.bad_pixels.sum())), "flat ratio", "", ""])
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]  # fmt: skip
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def to_toml(self, source: str = "") -> str:
        """A ``[detector]`` section with the measured gain and read noise, for ``--config``.

        Examples
        --------
        >>> c = Characterization(gain=Value(2.013, 0.011, "e-/ADU", "7 flat pairs"))
        >>> print(c.to_toml())
        # measured by ccdcal characterize
        [detector]
        gain = 2.013  # e-/ADU ± 0.011, from 7 flat pairs
        """
        lines = ["# measured by ccdcal characterize" + (f" from {source}" if source else "")]
        lines.append("[detector]")
        if self.gain is not None:
            g = self.gain
            lines.append(f"gain = {g.value:.4g}  # e-/ADU ± {g.error:.2g}, from {g.source}")
        if self.read_noise is not None and self.read_noise.unit == "e-":
            r = self.read_noise
            lines.append(f"rdnoise = {r.value:.4g}  # e- ± {r.error:.2g}, from {r.source}")
        if len(lines) == 2:
            lines.append("# nothing measured: no pairs of biases or flats")
        return "\n".join(lines)


__all__ = ["Characterization"]
