"""The TuNAS engine of ``mnv4-nas search --engine tunas``: REINFORCE with the absolute reward
``R = Q + Σ_t β·|T_t/T0_t − 1|`` (T0 = each target's budget) over the space's decisions, scored by a
trained supernet (:func:`nas.supernet.tunas_search`), in the paper's two stages or one.

Every architecture the controller samples becomes a row of ``trials.csv`` (its score is the
per-step quality: supernet accuracy on one held-out batch); the reported architecture is the
controller's most likely one at the end, scored by the full estimator — within budget or not, as
TuNAS defines it (the console and summary say when it is over). One-batch accuracies are too noisy
for a Pareto front, so the best distinct within-budget samples (by their mean one-batch accuracy)
are scored again by the full estimator as ``rescored`` rows, and ``pareto.csv`` is built from those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from nas.errors import NasError
from nas.search._evaluate import Evaluator
from nas.search._results import trial_row
from nas.space import SearchSpace, coarse_space, decisions, fix_coarse
from nas.spec import ArchSpec, parse_arch

RESCORE_TOP = 16  #: distinct within-budget samples scored by the full estimator for the Pareto front
RESCORED = "rescored"  #: stage label of those rows in trials.csv


def _latency_fns(evaluator: Evaluator) -> list[Callable[[list[ArchSpec]], np.ndarray]]:
    def fn(target: str) -> Callable[[list[ArchSpec]], np.ndarray]:
        return lambda archs: np.asarray([evaluator.latencies(a)[target] for a in archs])

    return [fn(b.target) for b in evaluator.budgets]


def _controller_for(estimator: Any, space: SearchSpace) -> Any:
    """The controller trained jointly with the supernet's weights (sampler ``tunas``), moved onto
    ``space`` — same decisions, at the resolution the latency tables see — or None."""
    ctl = estimator.controller() if hasattr(estimator, "controller") else None
    if ctl is None:
        return None
    from nas.supernet import Controller

    if [(d.name, d.choices) for d in decisions(ctl.space)] != [(d.name, d.choices) for d in decisions(space)]:
        return None
    moved = Controller(space)
    moved.load_state_dict(ctl.state_dict())
    return moved


def _rescore(rows: list[dict[str, Any]], estimator: Any, evaluator: Evaluator, k: int, reporter: Any) -> list[dict[str, Any]]:  # fmt: skip
    """Full-estimator rows for the ``k`` distinct within-budget samples with the best mean one-batch score."""
    frame = pd.DataFrame(rows)
    ok = frame[frame["feasible"]] if not frame.empty else frame
    if ok.empty:
        return []
    top = ok.groupby("arch", sort=False)["score"].mean().sort_values(ascending=False, kind="stable").index[:k]
    archs = [parse_arch(a) for a in top]
    reporter.stage_start(RESCORED, len(archs), 0)
    out = []
    for i, arch in enumerate(archs):
        row = trial_row(RESCORED, i, "COMPLETE", arch, float(estimator.score([arch])[0]), evaluator)
        out.append(row)
        reporter.trial_done(RESCORED, row["feasible"], row["score"])
    reporter.stage_end(RESCORED)
    return out


def check_estimator(estimator: Any, option: str = "--estimator") -> None:
    """Raise unless ``estimator`` can drive TuNAS (a supernet: per-step batch quality in [0, 1])."""
    if not hasattr(estimator, "tunas_quality"):
        raise NasError(
            f"--engine tunas needs {option} supernet:CKPT, supernet+macs:CKPT or predictor:PRED (got {estimator.name}): TuNAS's reward adds an "
            "accuracy in [0, 1] to a latency penalty, a scale training-free proxies do not have"
        )


def run_tunas(
    space: SearchSpace,
    evaluator: Evaluator,
    estimator: Any,
    *,
    coarse_estimator: Any = None,
    one_stage: bool,
    steps: tuple[int, int, int],  # (one-stage, coarse, fine)
    seed: int,
    beta: float,
    reporter: Any,
) -> tuple[pd.DataFrame, ArchSpec, float, dict[str, Any]]:
    """Run the TuNAS stage(s) and re-score the best samples (see the module docstring); returns
    (trials table, reported arch, its score, details for the summary).

    ``estimator`` (and ``coarse_estimator``, which drives the coarse stage if given) must pass
    :func:`check_estimator` (``run_search`` checks them before any other work).
    """
    from nas.supernet import tunas_search

    fns = _latency_fns(evaluator)
    budgets = [b.budget_ms for b in evaluator.budgets]
    rows: list[dict[str, Any]] = []
    details: dict[str, Any] = {"beta": beta, "stages": []}

    def stage(label: str, sp: SearchSpace, n: int, stage_seed: int, controller: Any = None, est: Any = estimator) -> Any:
        sampled: list[ArchSpec] = []

        def first(archs: list[ArchSpec]) -> np.ndarray:
            sampled.extend(archs)
            return fns[0](archs)

        def progress(step: int, stats: dict[str, float]) -> None:
            row = trial_row(label, step, "COMPLETE", sampled[-1], float(stats["quality"]), evaluator)
            row["reward"] = float(stats["reward"])
            rows.append(row)
            reporter.trial_done(label, row["feasible"], row["score"])

        reporter.stage_start(label, n, 0)
        res = tunas_search(sp, est, [first, *fns[1:]], budgets, steps=n, beta=beta, seed=stage_seed,
                           controller=controller, progress=progress)  # fmt: skip
        reporter.stage_end(label)
        details["stages"].append({"stage": label, "arch": res.arch.arch, "score": res.score, "reward": res.reward,
                                  "latency_ms": res.latency_ms, "probabilities": res.probabilities})  # fmt: skip
        return res

    if one_stage:
        res = stage("joint", space, steps[0], seed, _controller_for(estimator, space))
    else:
        coarse = stage("coarse", coarse_space(space), steps[1], seed, est=coarse_estimator or estimator)
        res = stage("fine", fix_coarse(space, coarse.arch), steps[2], seed + 1)
    # One-batch scores of another supernet are on another scale: then only the fine samples compete.
    pool = rows if coarse_estimator is None else [r for r in rows if r["stage"] != "coarse"]
    rows += _rescore(pool, estimator, evaluator, RESCORE_TOP, reporter)
    return pd.DataFrame(rows), res.arch, float(res.score), details
