"""The optuna engine: one study per search stage, run locally or through Ray Tune.

Single target: constrained TPE (latency ≤ budget); several targets or ``--pareto``: NSGA-II over
(score, latency per target) with the same constraints. Constraints are computed from the trial's
parameters (decode → table lookup) when it is suggested, so they are identical whether the trial
then runs here or on a Ray worker.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.search._evaluate import Evaluator
from nas.search._storage import OpenedStorage, fail_stale
from nas.space import SearchSpace, arch_from_params, params_from_arch, suggest
from nas.spec import ArchSpec

optuna.logging.set_verbosity(optuna.logging.WARNING)
#: Which process ran a trial (several workers may share a study through PostgreSQL).
WORKER = f"{socket.gethostname()}:{os.getpid()}"
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


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


def suggest_constrained(space: SearchSpace, trial: Any, evaluator: Evaluator) -> ArchSpec:
    """Suggest an architecture and record its budget constraints on the trial.

    optuna 5 deprecates samplers' ``constraints_func`` for ``Trial.set_constraint``; both TPE and
    NSGA-II read ``trial.constraints``. Latency depends on the parameters only, so the constraints
    are set here, in the process that owns the study, for local and Ray trials alike.
    """
    arch = suggest(space, trial)
    for b, v in zip(evaluator.budgets, evaluator.violations(evaluator.latencies(arch)), strict=True):
        trial.set_constraint(f"latency[{b.target}]", v)
    return arch


def make_sampler(evaluator: Evaluator, multi: bool, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """TPE (single objective) or NSGA-II (several); both honour the trials' budget constraints."""
    if multi:
        pop = int(min(50, max(8, n_trials // 5)))
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, multivariate=True, n_startup_trials=int(min(10, max(3, n_trials // 4)))
    )


def directions(evaluator: Evaluator, multi: bool) -> list[str]:
    """maximize score (+ minimize each target's latency when multi-objective)."""
    return ["maximize"] + (["minimize"] * len(evaluator.budgets) if multi else [])


def objective_values(ev: Any, evaluator: Evaluator, multi: bool) -> float | list[float]:
    """What optuna is told: the score (−inf when over budget and not scored) [+ latencies]."""
    score = -math.inf if ev.score is None else ev.score
    if not multi:
        return score
    return [score] + [ev.latency_ms[b.target] for b in evaluator.budgets]


def open_study(
    stage: StageSpec, opened: OpenedStorage, sampler: optuna.samplers.BaseSampler, dirs: list[str]
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
    quiet = _QuietSurplus()
    log = logging.getLogger("optuna.study._optimize")
    log.addFilter(quiet)
    try:
        # No n_trials here: the callbacks count every worker's trials in a shared study.
        study.optimize(objective, callbacks=callbacks, gc_after_trial=False, catch=(_StageFull,))
    finally:
        log.removeFilter(quiet)
    return study


def _ray_trial(config: dict[str, Any], evaluator: Evaluator, space: SearchSpace, multi: bool) -> None:
    """Ray Tune function trainable: evaluate one architecture and report its objectives."""
    import torch
    from ray import tune

    torch.set_num_threads(1)  # one CPU per trial: workers must not oversubscribe the cores
    arch = arch_from_params(space, config)
    ev = evaluator.evaluate(arch)
    vals = objective_values(ev, evaluator, multi)
    vals = vals if isinstance(vals, list) else [vals]
    metrics = {"score": vals[0], "feasible": ev.feasible, "arch": arch.arch}
    for i, b in enumerate(evaluator.budgets):
        metrics[f"latency_{i}"] = ev.latency_ms[b.target]
    tune.report(metrics)


def run_ray(
    stage: StageSpec,
    evaluator: Evaluator,
    opened: OpenedStorage,
    *,
    multi: bool,
    seed: int,
    workers: int,
    address: str | None,
    run_dir: Path,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> optuna.Study:
    """Run a stage's remaining trials as Ray Tune trials (``workers`` at a time), with optuna's sampler
    (through ``OptunaSearch``) writing to the same storage as the local engine.

    Actors are reused across trials: on this machine a fresh actor per trial cost ~1 s and a reused
    one ~0.1 s, several times the cost of scoring an architecture with the default proxy.
    """
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from nas.search._ray_support import DefineByRun, NoTensorboard, ProgressCallback, quiet_logger

    sampler = make_sampler(evaluator, multi, seed, stage.n_trials)
    dirs = directions(evaluator, multi)
    study = open_study(stage, opened, sampler, dirs)  # creates it, fails stale trials, enqueues
    remaining = stage.n_trials - taken(study)
    if remaining <= 0:
        return study
    if not ray.is_initialized():
        where = {"address": address} if address else {"num_cpus": workers}
        ray.init(**where, log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    metric = ["score"] + [f"latency_{i}" for i in range(len(evaluator.budgets))] if multi else "score"
    mode = ["max"] + ["min"] * len(evaluator.budgets) if multi else "max"
    searcher = OptunaSearch(
        space=DefineByRun(stage.space, evaluator),
        metric=metric,
        mode=mode,
        sampler=sampler,
        storage=opened.storage,
        study_name=stage.study_name,
    )
    trainable = tune.with_resources(
        tune.with_parameters(_ray_trial, evaluator=evaluator, space=stage.space, multi=multi), {"cpu": 1}
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=max(1, workers)),
            num_samples=remaining,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=stage.study_name.replace(":", "-").replace("/", "-"),
            storage_path=str((run_dir / "ray").resolve()),
            verbose=0,
            callbacks=[ProgressCallback(on_trial), NoTensorboard()],
        ),
    )
    with quiet_logger("ray.tune"):  # "Wrote the latest version of all result files …" after every stage
        tuner.fit()
    return optuna.load_study(study_name=stage.study_name, storage=opened.storage)


def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials in number order."""
    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)


def trial_score(trial: FrozenTrial) -> float | None:
    """The trial's score (None when it was not scored)."""
    v = trial.values[0] if trial.values else None
    return None if v is None or not np.isfinite(v) else float(v)
