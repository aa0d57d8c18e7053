"""Screening a stack's lights: one whose level or noise is far from what it and its group
say is left out with a notice, never stacked.

A light whose BZERO went missing reads 32,768 ADU low; a light of an empty or broken file
reads all zeros; either moved a whole stack (its sky to -10,731 e- instead of 108, or to 64)
before this test. Each calibrated light carries its median level (MEDLEVEL), the robust
scatter of its pixels (LOCNOISE) and its median variance (MEDVAR): a good light's pixels
scatter as its variance says, whatever its sky, so the ratio LOCNOISE² / MEDVAR is alike in
every light of a group (twilight or not), and a light whose ratio is several times off its
group's median, or whose sky lies far below zero where the others' does not, is odd. The
scatter is that of neighbouring pixels' differences (LOCNOISE), in which a gradient, a
nebula or a crowded field cancels: a frame's whole spread would count them as noise.

Examples
--------
>>> good = {"MEDLEVEL": 100.0, "LOCNOISE": 10.0, "MEDVAR": 100.0}
>>> zeros = {"MEDLEVEL": -60.0, "LOCNOISE": 0.5, "MEDVAR": 70.0}
>>> odd_lights([good, good, good, zeros])
{3: 'its pixels scatter by 0.5, 0.06 times what its variance (70) and the other lights say'}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: a light whose scatter² / variance is beyond this factor of its group's median is odd
NOISE_FACTOR = 4.0
#: a light whose sky lies this many of its own sigmas below zero, where its group's
#: median is above, is odd
BELOW_ZERO = 5.0


def odd_lights(headers: Sequence[Mapping[str, Any]]) -> dict[int, str]:
    """The lights of one stack to leave out, by index, with why (see the module).

    Lights without the header cards (calibrated by an earlier version) are not judged.
    """
    stats: dict[int, tuple[float, float, float]] = {}
    odd: dict[int, str] = {}
    for i, h in enumerate(headers):
        if "CALSTEPS" in h and "MEDVAR" not in h:  # calibrate found no good pixel to sample
            odd[i] = "it has no valid pixel"
            continue
        try:
            level, spread, var = (float(h.get(k)) for k in ("MEDLEVEL", "LOCNOISE", "MEDVAR"))
        except (TypeError, ValueError):
            continue
        stats[i] = (level, spread, var)
    for i, (_, spread, var) in stats.items():
        if not (math.isfinite(spread) and math.isfinite(var)) or var <= 0:
            odd[i] = f"its variance ({var:g}) says nothing of its noise"
    ratios = {i: s * s / v for i, (_, s, v) in stats.items() if i not in odd}
    if len(ratios) >= 3:
        typical = sorted(ratios.values())[len(ratios) // 2]
        for i, r in ratios.items():
            if typical > 0 and not (1 / NOISE_FACTOR <= r / typical <= NOISE_FACTOR):
                level, spread, var = stats[i]
                odd[i] = (
                    f"its pixels scatter by {spread:.3g}, {math.sqrt(r / typical):.2g} times what "
                    f"its variance ({var:.3g}) and the other lights say"
                )
    levels = sorted(level for i, (level, _, _) in stats.items() if i not in odd)
    if len(levels) >= 2 and levels[len(levels) // 2] > 0:
        for i, (level, _, var) in stats.items():
            if i not in odd and level < -BELOW_ZERO * math.sqrt(var):
                odd[i] = (
                    f"its sky is at {level:.4g}, {-level / math.sqrt(var):.0f} sigma below zero, "
                    f"where the other lights' is at {levels[len(levels) // 2]:.4g}"
                )
    if len(odd) >= len(headers):  # nothing would be left: judge none
        return {}
    return dict(sorted(odd.items()))


__all__ = ["BELOW_ZERO", "NOISE_FACTOR", "odd_lights"]
