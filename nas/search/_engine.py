"""The seam between a search and the algorithm that proposes architectures.

An :class:`Engine` runs one :class:`Stage` at a time (a space, a trial budget, a seed, the evaluator
that scores it) and returns a :class:`StageRun`, whose trial records are the rows of ``trials.csv``.
Three engines implement it: optuna in this process (:class:`nas.search._optuna_engine.OptunaEngine`),
optuna on Ray Tune (:class:`nas.search._ray_engine.RayEngine`) and TuNAS
(:class:`nas.search._tunas_engine.TunasEngine`).

:func:`run_stages` is the one place the paper's flow is written: one joint stage, or a coarse stage
(every block an IB, scored by the coarse estimator when one is given) whose best architectures become
the bases of fine stages (the space with the coarse decisions fixed to a base), the fine trials split
evenly between them. Which coarse architectures are the bases is the engine's call
(:meth:`Engine.fine_bases`): optuna takes its best within-budget trials, TuNAS its controller's most
likely architecture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nas.errors import NasError
from nas.search._evaluate import Evaluator
from nas.space import SearchSpace, coarse_space, contains, fix_coarse
from nas.spec import ArchSpec

#: One trial of a stage, as a row of ``trials.csv`` (:func:`nas.search._results.trial_row`).
TrialRecord = dict[str, Any]


@dataclass(frozen=True)
class Stage:
    """One stage of a search: what an engine is asked to run."""

    label: str  #: ``joint`` | ``coarse`` | ``fine`` | ``fine2`` …
    space: SearchSpace  #: the (phase of the) space searched
    n_trials: int  #: trials (optuna) or controller steps (TuNAS)
    seed: int
    evaluator: Evaluator  #: latencies, budgets and the estimator that scores this stage
    warm: tuple[ArchSpec, ...] = ()  #: architectures to try first (a fine stage's base, when a member)


class StageRun(Protocol):
    """A stage an engine ran: the stage and its trial records."""

    @property
    def stage(self) -> Stage:
        """The stage that was run."""
        ...

    def records(self, evaluator: Evaluator) -> list[TrialRecord]:
        """Its trials as ``trials.csv`` rows (latencies from ``evaluator``'s predictors)."""
        ...

    def n_complete(self) -> int:
        """Trials completed (fewer than asked for when a worker sharing the stage died mid-trial)."""
        ...


class Engine(Protocol):
    """A search algorithm behind :func:`run_stages`."""

    def run_stage(self, stage: Stage) -> StageRun:
        """Run (or resume) ``stage`` and return what it found."""
        ...

    def fine_bases(self, coarse: StageRun, k: int) -> list[ArchSpec]:
        """Up to ``k`` architectures of the coarse stage for the fine stages to refine (empty: none
        met the budget)."""
        ...


@dataclass(frozen=True)
class Flow:
    """The shape of a search: one stage, or coarse then fine, and the trials of each."""

    one_stage: bool
    trials: int  #: one-stage trials
    coarse_trials: int
    fine_trials: int  #: split evenly between the coarse bases
    coarse_top: int  #: coarse bases refined
    seed: int


def fine_label(k: int, n_bases: int) -> str:
    """The label of the fine stage of base ``k`` (``fine``, or ``fine1`` … with several bases)."""
    return "fine" if n_bases == 1 else f"fine{k + 1}"


def run_stages(
    engine: Engine, space: SearchSpace, flow: Flow, evaluator: Evaluator, coarse_evaluator: Evaluator | None = None
) -> list[StageRun]:
    """Run a search's stages through ``engine``: ``joint``, or ``coarse`` then one fine stage per
    base (module docstring). ``coarse_evaluator`` scores the coarse stage (default: ``evaluator``).
    Returns the stage runs in order."""
    if flow.one_stage:
        return [engine.run_stage(Stage("joint", space, flow.trials, flow.seed, evaluator))]
    cspace = coarse_space(space)
    coarse = engine.run_stage(Stage("coarse", cspace, flow.coarse_trials, flow.seed, coarse_evaluator or evaluator))
    bases = engine.fine_bases(coarse, flow.coarse_top)
    if not bases:
        raise NasError(
            f"no coarse architecture met the budget in {flow.coarse_trials} trials; "
            "run more --coarse-trials or raise the budget"
        )
    runs = [coarse]
    per_base = max(1, flow.fine_trials // len(bases))
    for k, base in enumerate(bases):
        fspace = fix_coarse(space, base)
        warm = (base,) if contains(fspace, base) else ()
        runs.append(
            engine.run_stage(Stage(fine_label(k, len(bases)), fspace, per_base, flow.seed + 1 + k, evaluator, warm))
        )
    return runs


def stage_labels(runs: Sequence[StageRun]) -> list[str]:
    """The labels of ``runs``, in order."""
    return [r.stage.label for r in runs]


__all__ = ["Engine", "Flow", "Stage", "StageRun", "TrialRecord", "fine_label", "run_stages", "stage_labels"]
