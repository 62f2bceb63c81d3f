"""Objectives of a search: latency per target (from the tables), the budget constraints, the score.

An :class:`Evaluator` is picklable (Ray ships it to workers once) and caches per canonical arch
string, so a trial proposed twice costs nothing the second time.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from nas.space import SearchSpace, decisions, decode, slots
from nas.spec import ArchSpec

if TYPE_CHECKING:
    from nas.search._protocols import LatencyPredictor
    from nas.supernet import AccuracyEstimator


@dataclass(frozen=True)
class TargetBudget:
    """A target and its latency budget."""

    target: str
    budget_ms: float
    text: str  # as the user wrote it


@dataclass
class Evaluation:
    """One architecture's objectives."""

    arch: ArchSpec
    latency_ms: dict[str, float]
    feasible: bool
    score: float | None  # None: not scored (over budget in a single-objective search)


@dataclass
class Evaluator:
    """Latency per target, budget check and (cached) estimator score of architectures.

    ``score_infeasible=False`` skips the estimator for architectures over a budget: single-target
    TPE ranks infeasible trials by their constraint violation only, so their score is never used.
    """

    predictors: dict[str, LatencyPredictor]  # target → nas.latency.Predictor
    budgets: list[TargetBudget]
    estimator: AccuracyEstimator | None  # None: latencies only (no score is asked for)
    score_infeasible: bool = False
    _lat: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)
    _score: dict[str, float] = field(default_factory=dict, repr=False)

    def latencies(self, arch: ArchSpec) -> dict[str, float]:
        """Predicted latency (ms) on every searched target."""
        key = arch.arch
        if key not in self._lat:
            self._lat[key] = {
                b.target: float(self.predictors[b.target].predict_archs([arch]).latency_ms[0]) for b in self.budgets
            }
        return self._lat[key]

    def violations(self, latency_ms: dict[str, float]) -> list[float]:
        """Constraint values (≤ 0 means within budget), one per target, in ms."""
        return [latency_ms[b.target] - b.budget_ms for b in self.budgets]

    def score(self, arch: ArchSpec) -> float:
        """Estimator score (cached)."""
        key = arch.arch
        if key not in self._score:
            assert self.estimator is not None, "an Evaluator without an estimator scores nothing"
            self._score[key] = float(self.estimator.score([arch])[0])
        return self._score[key]

    def evaluate(self, arch: ArchSpec) -> Evaluation:
        """Latencies, feasibility and (when needed) the score."""
        lat = self.latencies(arch)
        feasible = all(v <= 0 for v in self.violations(lat))
        score = self.score(arch) if (feasible or self.score_infeasible) else None
        return Evaluation(arch, lat, feasible, score)


def min_latency(space: SearchSpace, predictor: LatencyPredictor) -> tuple[float, ArchSpec]:
    """Smallest latency any member of ``space`` reaches on ``predictor``'s target, and that member.

    Exact for the additive part of the model: every block-variant and MQA decision sits in one slot,
    so it is minimised per slot; the width/depth decisions are enumerated (at most tens of thousands
    of combinations). The returned latency is the full prediction of the minimiser (cache term and
    fixed overhead included).
    """
    ds = decisions(space)
    width_idx = [n for n, d in enumerate(ds) if d.kind in ("channels", "depth")]
    combos = np.array(list(itertools.product(*[range(ds[n].radix) for n in width_idx])), dtype=np.int64)
    if combos.size == 0:
        combos = np.zeros((1, 0), dtype=np.int64)
    total = np.zeros(len(combos))
    # per slot: argmin tables over the free (variant/MQA) decisions, indexed by the width decisions
    choices: list[tuple[tuple[int, ...], tuple[int, ...], np.ndarray]] = []
    for slot in slots(space):
        radices = tuple(int(r) for r in slot.radices)
        ms = np.zeros(radices if radices else (1,))
        for vals, key in slot.keys():
            ms[vals if radices else 0] = 0.0 if key is None else predictor.entry(key)[0]
        free = tuple(a for a, d in enumerate(slot.deps) if ds[d].kind not in ("channels", "depth"))
        fixed = tuple(a for a in range(len(slot.deps)) if a not in free)
        if free:
            moved = np.moveaxis(ms, free, tuple(range(len(fixed), len(radices))))
            flat = moved.reshape(*(radices[a] for a in fixed), -1)
            best = flat.min(axis=-1)
            choices.append(
                (tuple(slot.deps[a] for a in fixed), tuple(slot.deps[a] for a in free), flat.argmin(axis=-1))
            )
        else:
            best = ms if radices else ms[0]
        if fixed:
            cols = [combos[:, width_idx.index(slot.deps[a])] for a in fixed]
            total += best[tuple(cols)]
        else:
            total += float(best)
    i = int(np.argmin(total))
    vec = np.zeros(len(ds), dtype=np.int64)
    vec[width_idx] = combos[i]
    for fixed_deps, free_deps, argmin in choices:
        pick = int(argmin[tuple(int(vec[d]) for d in fixed_deps)]) if fixed_deps else int(argmin)
        sizes = [ds[d].radix for d in free_deps]
        for d, v in zip(free_deps, np.unravel_index(pick, sizes), strict=True):
            vec[d] = int(v)
    arch = decode(space, vec)
    return float(predictor.predict_archs([arch]).latency_ms[0]), arch


def pareto_mask(scores: np.ndarray, latencies: np.ndarray) -> np.ndarray:
    """Non-dominated rows: maximise ``scores`` (n,), minimise every column of ``latencies`` (n, t)."""
    n = len(scores)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        better_or_eq = (scores >= scores[i]) & np.all(latencies <= latencies[i], axis=1)
        strictly = (scores > scores[i]) | np.any(latencies < latencies[i], axis=1)
        if np.any(better_or_eq & strictly):
            keep[i] = False
    return keep


def finite(x: float | None) -> bool:
    """Whether a score is a usable number."""
    return x is not None and math.isfinite(x)


__all__ = ["Evaluation", "Evaluator", "TargetBudget", "finite", "min_latency", "pareto_mask"]
