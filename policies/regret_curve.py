"""Cumulative pseudo-regret curves, recorded block by block at the checkpoint times."""

from __future__ import annotations

import numpy as np

from policies.stats import FloatArray, IntArray

__all__ = ["record_block"]


def record_block(regret: FloatArray, times: IntArray, start: int, gaps: FloatArray, cum: FloatArray) -> FloatArray:
    """Add one block of decisions to the curves; returns the cumulative regret after the block.

    `gaps` (seeds, b) holds the gap of every seed's decision at times start..start+b-1, `cum`
    (seeds,) the regret before the block; `regret[:, g]` is filled for every checkpoint
    `times[g]` (a count of decisions) that falls inside the block.
    """
    b = gaps.shape[1]
    curve = cum[:, None] + np.cumsum(gaps, axis=1)
    inside = (times > start) & (times <= start + b)
    regret[:, inside] = curve[:, times[inside] - start - 1]
    return curve[:, -1]
