"""The TuNAS engine of ``mnv4-nas search --engine tunas``: REINFORCE with the absolute reward
``R = Q + Σ_t β·|T_t/T0_t − 1|`` (T0 = each target's budget) over the space's decisions, scored by a
trained supernet (:func:`nas.supernet.tunas_search`), in the paper's two stages or one
(:func:`nas.search._engine.run_stages`).

Every architecture the controller samples becomes a row of ``trials.csv`` (its score is the
per-step quality: supernet accuracy on one held-out batch); the reported architecture is the
controller's most likely one at the end, scored by the full estimator — within budget or not, as
TuNAS defines it (the console and summary say when it is over). One-batch accuracies are too noisy
for a Pareto front, so the best distinct within-budget samples (by their mean one-batch accuracy)
are scored again by the full estimator as ``rescored`` rows, and ``pareto.csv`` is built from those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from nas.errors import NasError
from nas.search._engine import Stage, StageRun, TrialRecord
from nas.search._evaluate import Evaluator
from nas.search._protocols import Reporter
from nas.search._trials import trial_row
from nas.space import SearchSpace, decisions
from nas.spec import ArchSpec, parse_arch
from nas.supernet import AccuracyEstimator, TunasEstimator

if TYPE_CHECKING:
    from nas.supernet import Controller, TunasResult

RESCORE_TOP = 16  #: distinct within-budget samples scored by the full estimator for the Pareto front
RESCORED = "rescored"  #: stage label of those rows in trials.csv


def _latency_fns(evaluator: Evaluator) -> list[Callable[[list[ArchSpec]], np.ndarray]]:
    def fn(target: str) -> Callable[[list[ArchSpec]], np.ndarray]:
        return lambda archs: np.asarray([evaluator.latencies(a)[target] for a in archs])

    return [fn(b.target) for b in evaluator.budgets]


def _controller_for(estimator: TunasEstimator, space: SearchSpace) -> Controller | None:
    """The controller trained jointly with the supernet's weights (sampler ``tunas``), moved onto
    ``space`` — same decisions, at the resolution the latency tables see — or None."""
    ctl = estimator.controller()
    if ctl is None:
        return None
    from nas.supernet import Controller

    if [(d.name, d.choices) for d in decisions(ctl.space)] != [(d.name, d.choices) for d in decisions(space)]:
        return None
    moved = Controller(space)
    moved.load_state_dict(ctl.state_dict())
    return moved


def _rescore(
    rows: list[TrialRecord], estimator: AccuracyEstimator, evaluator: Evaluator, k: int, reporter: Reporter
) -> list[TrialRecord]:
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


def check_estimator(estimator: AccuracyEstimator | None, option: str = "--estimator") -> TunasEstimator:
    """``estimator``, if it can drive TuNAS (a supernet: per-step batch quality in [0, 1]); else raise."""
    if not isinstance(estimator, TunasEstimator):
        got = "no estimator" if estimator is None else estimator.name
        raise NasError(
            f"--engine tunas needs {option} supernet:CKPT, supernet+macs:CKPT or predictor:PRED (got {got}): TuNAS's reward adds an "
            "accuracy in [0, 1] to a latency penalty, a scale training-free proxies do not have"
        )
    return estimator


@dataclass
class TunasStageRun:
    """A TuNAS stage: the sampled architectures' rows and the search's result."""

    stage: Stage
    rows: list[TrialRecord]
    result: TunasResult

    def records(self, evaluator: Evaluator) -> list[TrialRecord]:
        """One row per sampled architecture (score: its one-batch quality; ``reward``: its reward)."""
        return self.rows

    def n_complete(self) -> int:
        """Controller steps run (all of them: a TuNAS stage is not resumed)."""
        return len(self.rows)


@dataclass
class TunasEngine:
    """TuNAS behind the :class:`~nas.search._engine.Engine` protocol: each stage trains a controller by
    REINFORCE against the stage evaluator's estimator (which must pass :func:`check_estimator`); the
    joint stage of a one-stage search starts from the controller trained with the supernet, if any."""

    evaluator: Evaluator  #: latencies and budgets (T0) of every stage, and the rows' latencies
    beta: float
    reporter: Reporter
    details: dict[str, Any] = field(default_factory=dict)
    name: str = "tunas"

    def __post_init__(self) -> None:
        self.details = {"beta": self.beta, "stages": []}

    def run_stage(self, stage: Stage) -> StageRun:
        """Run ``stage.n_trials`` controller steps over ``stage.space``; every sample becomes a row."""
        from nas.supernet import tunas_search

        est = check_estimator(stage.evaluator.estimator)
        controller = _controller_for(est, stage.space) if stage.label == "joint" else None
        fns = _latency_fns(self.evaluator)
        label, rows, sampled = stage.label, [], []

        def first(archs: list[ArchSpec]) -> np.ndarray:
            sampled.extend(archs)
            return fns[0](archs)

        def progress(step: int, stats: dict[str, float]) -> None:
            row = trial_row(label, step, "COMPLETE", sampled[-1], float(stats["quality"]), self.evaluator)
            row["reward"] = float(stats["reward"])
            rows.append(row)
            self.reporter.trial_done(label, row["feasible"], row["score"])

        self.reporter.stage_start(label, stage.n_trials, 0)
        res = tunas_search(
            stage.space,
            est,
            [first, *fns[1:]],
            [b.budget_ms for b in self.evaluator.budgets],
            steps=stage.n_trials,
            beta=self.beta,
            seed=stage.seed,
            controller=controller,
            progress=progress,
        )
        self.reporter.stage_end(label)
        self.details["stages"].append(
            {
                "stage": label,
                "arch": res.arch.arch,
                "score": res.score,
                "reward": res.reward,
                "latency_ms": res.latency_ms,
                "probabilities": res.probabilities,
            }
        )
        return TunasStageRun(stage, rows, res)

    def fine_bases(self, coarse: StageRun, k: int) -> list[ArchSpec]:
        """The coarse controller's most likely architecture (TuNAS refines one base)."""
        assert isinstance(coarse, TunasStageRun)
        return [coarse.result.arch]

    def finish(
        self, runs: Sequence[StageRun], estimator: AccuracyEstimator, separate_coarse: bool
    ) -> tuple[pd.DataFrame, ArchSpec, float]:
        """The trials table (every stage's samples, then the ``rescored`` rows), the reported
        architecture (the last stage's most likely one) and its score. ``separate_coarse``: the
        coarse stage had its own estimator, whose one-batch scores are on another scale, so only the
        other stages' samples compete for rescoring."""
        rows = [r for run in runs for r in run.records(self.evaluator)]
        pool = rows if not separate_coarse else [r for r in rows if r["stage"] != "coarse"]
        rows += _rescore(pool, estimator, self.evaluator, RESCORE_TOP, self.reporter)
        last = runs[-1]
        assert isinstance(last, TunasStageRun)
        return pd.DataFrame(rows), last.result.arch, float(last.result.score)


__all__ = ["RESCORED", "RESCORE_TOP", "TunasEngine", "TunasStageRun", "check_estimator"]
