"""The optuna engine: one study per search stage, run in this process (:class:`OptunaEngine`; the
Ray engine, :class:`nas.search._ray_engine.RayEngine`, runs the trials on Ray Tune instead).

Single target: constrained TPE (latency ≤ budget); several targets or ``--pareto``: NSGA-II over
(score, latency per target) with the same constraints. Constraints are computed from the trial's
parameters (decode → table lookup) when it is suggested, so they are identical whether the trial
then runs here or on a Ray worker.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search._engine import Stage, StageRun, TrialRecord
from nas.search._evaluate import Evaluation, Evaluator
from nas.search._protocols import Reporter
from nas.search._storage import OpenedStorage, fail_stale
from nas.search._suggest import WORKER, suggest_constrained
from nas.search._trials import completed_trials, study_records, trial_score
from nas.space import SearchSpace, arch_from_params, params_from_arch
from nas.spec import ArchSpec, parse_arch


@dataclass(frozen=True)
class StageSpec:
    """One stage to run: its study name, (phase of the) space and trial count."""

    label: str  # coarse | fine | joint | fine2 …
    study_name: str
    space: SearchSpace
    n_trials: int
    enqueue: tuple[ArchSpec, ...] = ()


def multi_objective(evaluator: Evaluator, pareto: bool) -> bool:
    """NSGA-II (multi-objective) for several targets or on request."""
    return pareto or len(evaluator.budgets) > 1


def make_sampler(evaluator: Evaluator, multi: bool, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """TPE (single objective) or NSGA-II (several); both honour the trials' budget constraints."""
    if multi:
        pop = int(min(50, max(8, n_trials // 5)))
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=int(min(10, max(3, n_trials // 4)))
    )


Direction = Literal["minimize", "maximize"]


def directions(evaluator: Evaluator, multi: bool) -> list[Direction]:
    """maximize score (+ minimize each target's latency when multi-objective)."""
    latencies: list[Direction] = ["minimize"] * len(evaluator.budgets) if multi else []
    return ["maximize", *latencies]


def objective_values(ev: Evaluation, evaluator: Evaluator, multi: bool) -> float | list[float]:
    """What optuna is told: the score (−inf when over budget and not scored) [+ latencies]."""
    score = -math.inf if ev.score is None else ev.score
    if not multi:
        return score
    return [score] + [ev.latency_ms[b.target] for b in evaluator.budgets]


def open_study(
    stage: StageSpec, opened: OpenedStorage, sampler: optuna.samplers.BaseSampler, dirs: list[Direction]
) -> optuna.Study:
    """Create or resume a stage's study; enqueue warm starts only into a fresh one; fail stale trials."""
    study = optuna.create_study(
        study_name=stage.study_name, storage=opened.storage, sampler=sampler, directions=dirs, load_if_exists=True
    )
    fail_stale(study, opened)
    if not study.trials:
        for arch in stage.enqueue:
            study.enqueue_trial(params_from_arch(stage.space, arch), skip_if_exists=True)
    return study


def n_complete(study: optuna.Study) -> int:
    """Completed trials (the count a resumed stage continues from)."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


class _Guard:
    """Stops a stage whose trials keep failing (a broken estimator must not loop forever)."""

    def __init__(self, n_trials: int):
        self.limit = 2 * n_trials + 10
        self.seen = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.seen += 1
        if self.seen >= self.limit:
            study.stop()


#: Trial states that use up one of a stage's trials: finished ones, and running ones (of live workers:
#: the trials of a dead one are failed, by the heartbeat or on reopening, before they are counted).
_TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
SURPLUS = "surplus"  #: user attribute of a trial failed because the stage was full when it started


class _StageFull(Exception):
    """Raised inside a trial that found its stage full (another worker took the last trial)."""


def taken(study: optuna.Study, before: int | None = None) -> int:
    """Trials that count towards the stage's total (all of them, or those numbered below ``before``)."""
    ts = study.get_trials(deepcopy=False, states=_TAKEN)
    return len(ts) if before is None else sum(t.number < before for t in ts)


class _StopWhenFull:
    """Stops this worker when the stage's trials (every worker's, running ones included) reach ``n``."""

    def __init__(self, n_trials: int):
        self.n = n_trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if taken(study) >= self.n:
            study.stop()


class _QuietSurplus(logging.Filter):
    """Drops optuna's "Trial N failed" warning for trials failed as surplus (they did not run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return _StageFull.__name__ not in record.getMessage()


def run_local(
    stage: StageSpec,
    evaluator: Evaluator,
    opened: OpenedStorage,
    *,
    multi: bool,
    seed: int,
    on_trial: Callable[[FrozenTrial], None] | None = None,
) -> optuna.Study:
    """Run a stage in this process until the study holds ``n_trials`` trials, every worker's together.

    Exact with several workers sharing the study: a worker stops when the finished and running
    trials reach ``n_trials``; two workers that start the last trial at once both see it, and the
    one with the higher trial number fails its trial at once as surplus (user attribute
    ``surplus``; it never ran), so the stage ends with exactly ``n_trials`` completed ones — or
    fewer, when a worker dies mid-trial after the others stopped, which a resume completes.
    """
    sampler = make_sampler(evaluator, multi, seed, stage.n_trials)
    study = open_study(stage, opened, sampler, directions(evaluator, multi))

    def objective(trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr("worker", WORKER)  # first: a resume fails a dead local worker's trial at once
        if taken(study, before=trial.number) >= stage.n_trials:
            trial.set_user_attr(SURPLUS, True)
            study.stop()
            raise _StageFull(f"stage {stage.label} already has its {stage.n_trials} trials")
        arch = suggest_constrained(stage.space, trial, evaluator)
        ev = evaluator.evaluate(arch)
        trial.set_user_attr("stage", stage.label)
        trial.set_user_attr("arch", arch.arch)
        trial.set_user_attr("latency_ms", ev.latency_ms)
        trial.set_user_attr("feasible", ev.feasible)
        return objective_values(ev, evaluator, multi)

    if taken(study) >= stage.n_trials:
        return study
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [
        _StopWhenFull(stage.n_trials),
        _Guard(stage.n_trials),
    ]
    if on_trial is not None:
        callbacks.append(lambda _s, t: None if t.user_attrs.get(SURPLUS) else on_trial(t))

    def after_trial(s: optuna.Study, t: FrozenTrial) -> None:
        for callback in callbacks:
            callback(s, t)

    quiet = _QuietSurplus()
    log = logging.getLogger("optuna.study._optimize")
    log.addFilter(quiet)
    try:
        # No n_trials here: the callbacks count every worker's trials in a shared study.
        # One callback: optuna deep-copies the finished trial for each (0.3 s of a default search for three).
        study.optimize(objective, callbacks=[after_trial], gc_after_trial=False, catch=(_StageFull,))
    finally:
        log.removeFilter(quiet)
    return study


def stage_progress(stage: StageSpec, opened: OpenedStorage) -> int:
    """Trials of ``stage`` already completed (what its progress bar starts from)."""
    try:
        study = optuna.load_study(study_name=stage.study_name, storage=opened.storage)
    except KeyError:
        return 0
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def top_feasible(study: optuna.Study, evaluator: Evaluator, k: int, space: SearchSpace) -> list[ArchSpec]:
    """The ``k`` best distinct within-budget architectures of a study (ties: the earlier trial)."""
    seen, rows = set(), []
    for t in completed_trials(study):
        arch = parse_arch(t.user_attrs["arch"]) if "arch" in t.user_attrs else arch_from_params(space, t.params)
        s = trial_score(t)
        if s is None or arch.arch in seen:
            continue
        if all(v <= 0 for v in evaluator.violations(evaluator.latencies(arch))):
            seen.add(arch.arch)
            rows.append((-s, t.number, arch))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows[:k]]


@dataclass
class OptunaStageRun:
    """A stage run by an optuna engine: its study (shared with every worker of the stage)."""

    stage: Stage
    study: optuna.Study

    def records(self, evaluator: Evaluator) -> list[TrialRecord]:
        """The study's completed trials, read now (a shared study holds every worker's)."""
        return study_records(self.stage.label, self.study, self.stage.space, evaluator)

    def n_complete(self) -> int:
        """Completed trials of the stage, every worker's together."""
        return n_complete(self.study)


class OptunaEngine:
    """The local optuna engine: a stage is one study (``<study base>:<label>``) of ``opened``, run in
    this process with constrained TPE (single objective) or NSGA-II (``multi``)."""

    name = "optuna"

    def __init__(self, opened: OpenedStorage, *, study_base: str, multi: bool, reporter: Reporter) -> None:
        self.opened, self.study_base, self.multi, self.reporter = opened, study_base, multi, reporter

    def spec(self, stage: Stage) -> StageSpec:
        """The optuna study of ``stage``."""
        return StageSpec(stage.label, f"{self.study_base}:{stage.label}", stage.space, stage.n_trials, stage.warm)

    def run_stage(self, stage: Stage) -> StageRun:
        """Run the stage's remaining trials; the reporter sees each one."""
        spec = self.spec(stage)
        self.reporter.stage_start(stage.label, stage.n_trials, self._progress(spec))
        study = self._optimize(spec, stage)
        self.reporter.stage_end(stage.label)
        return OptunaStageRun(stage, study)

    def _progress(self, spec: StageSpec) -> int:
        return stage_progress(spec, self.opened)

    def _optimize(self, spec: StageSpec, stage: Stage) -> optuna.Study:
        def on_trial(t: FrozenTrial) -> None:
            self.reporter.trial_done(stage.label, bool(t.user_attrs.get("feasible")), trial_score(t))

        return run_local(spec, stage.evaluator, self.opened, multi=self.multi, seed=stage.seed, on_trial=on_trial)

    def fine_bases(self, coarse: StageRun, k: int) -> list[ArchSpec]:
        """The coarse study's ``k`` best within-budget architectures, recorded in the study the first
        time, so that several workers sharing it all refine the same bases."""
        assert isinstance(coarse, OptunaStageRun)
        study = coarse.study
        bases_text = study.user_attrs.get("fine_bases")
        if bases_text is not None:
            return [parse_arch(b) for b in bases_text]
        bases = top_feasible(study, coarse.stage.evaluator, k, coarse.stage.space)
        if bases:
            study.set_user_attr("fine_bases", [b.arch for b in bases])
        return bases


__all__ = [
    "SURPLUS",
    "WORKER",
    "OptunaEngine",
    "OptunaStageRun",
    "StageSpec",
    "completed_trials",
    "directions",
    "make_sampler",
    "multi_objective",
    "n_complete",
    "objective_values",
    "open_study",
    "run_local",
    "stage_progress",
    "suggest_constrained",
    "taken",
    "top_feasible",
    "trial_score",
]
