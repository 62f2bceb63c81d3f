"""TuNAS's absolute reward, kept free of torch so that the CLI and the search settings can share its
default without importing the training code."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: TuNAS's default β (``rl_cost_model_exponent``, nas_recipe.md §7): the weight of the latency penalty.
TUNAS_BETA = -0.1


def abs_reward(
    quality: np.ndarray, costs: Sequence[np.ndarray], targets: Sequence[float], betas: Sequence[float]
) -> np.ndarray:
    """TuNAS absolute-value reward ``Q + Σ β_i·|T_i/T0_i − 1|`` (vectorised over architectures)."""
    r = np.asarray(quality, dtype=np.float64).copy()
    for t, t0, b in zip(costs, targets, betas, strict=True):
        r += b * np.abs(np.asarray(t, dtype=np.float64) / t0 - 1.0)
    return r


__all__ = [
    "TUNAS_BETA",
    "abs_reward",
]
