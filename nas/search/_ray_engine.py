"""The Ray engine: an optuna stage whose trials run as Ray Tune trials (``--workers N`` local
workers, or a cluster at ``--ray-address``), with optuna's sampler writing to the same storage as the
local engine. Ray is imported only when a stage runs (importing it costs seconds)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from nas.search._engine import Stage
from nas.search._evaluate import Evaluator
from nas.search._optuna_engine import (
    OptunaEngine,
    StageSpec,
    directions,
    make_sampler,
    objective_values,
    open_study,
    taken,
)
from nas.search._protocols import Reporter
from nas.search._storage import OpenedStorage
from nas.space import SearchSpace, arch_from_params


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


class RayEngine(OptunaEngine):
    """:class:`~nas.search._optuna_engine.OptunaEngine` with each stage's trials run on Ray
    (``workers`` at a time; ``address``: a running cluster, else a local one)."""

    name = "ray"

    def __init__(
        self,
        opened: OpenedStorage,
        *,
        study_base: str,
        multi: bool,
        reporter: Reporter,
        workers: int,
        address: str | None,
        run_dir: Path,
    ) -> None:
        super().__init__(opened, study_base=study_base, multi=multi, reporter=reporter)
        self.workers, self.address, self.run_dir = workers, address, run_dir

    def _progress(self, spec: StageSpec) -> int:
        return 0

    def _optimize(self, spec: StageSpec, stage: Stage) -> optuna.Study:
        def on_trial(r: dict[str, Any]) -> None:
            self.reporter.trial_done(stage.label, bool(r.get("feasible")), r.get("score"))

        return run_ray(
            spec,
            stage.evaluator,
            self.opened,
            multi=self.multi,
            seed=stage.seed,
            workers=self.workers,
            address=self.address,
            run_dir=self.run_dir,
            on_trial=on_trial,
        )


__all__ = ["RayEngine", "run_ray"]
