"""``run_search``: a search from its settings to its result folder. The settings are checked
(:mod:`~nas.search._settings`), budgets paired and the space chosen (:mod:`~nas.search._space_choice`),
the plan built (:mod:`~nas.search._plan`); a finished run asked for again is answered from its record
(:mod:`~nas.search._finished`); otherwise the engine (optuna, Ray or TuNAS) runs the stages through the
one orchestrator (:func:`nas.search._engine.run_stages`) and the results and ``run.json`` are written."""

from __future__ import annotations

from typing import Any

import pandas as pd

from nas.search._engine import Engine, Flow, StageRun, run_stages
from nas.search._evaluate import Evaluator, TargetBudget
from nas.search._finished import finished_record, rewrite_finished
from nas.search._optuna_engine import OptunaEngine
from nas.search._plan import Plan, coarse_note, make_plan, references
from nas.search._protocols import LatencyPredictor, Reporter, SilentReporter
from nas.search._record import RUN_FILE, RunDir, check_identity, check_run_dir, open_run_dir
from nas.search._results import SearchOutcome, write_results
from nas.search._settings import SearchSettings, check_settings
from nas.search._space_choice import pair_budgets
from nas.search._storage import OpenedStorage, open_storage
from nas.spec import ArchSpec
from nas.units import utc_stamp, utc_timestamp

RUN_FORMAT = "mnv4-nas/search-run-v1"


def _run_name(budgets: list[TargetBudget]) -> str:
    stamp = utc_stamp()
    return "+".join(f"{b.target}-{b.text}" for b in budgets) + f"-{stamp}"


def run_search(settings: SearchSettings, reporter: Reporter | None = None) -> SearchOutcome:
    """Run (or resume) a search and write its result folder.

    The run folder is locked for the whole run. A rerun of a finished search with the same request
    returns its outcome from the record at once (no estimator, no Ray, no trial)."""
    from nas.latency import load_catalog, load_predictor

    rep = reporter or SilentReporter()
    check_settings(settings)
    catalog = load_catalog(settings.tables_dir)
    budgets = pair_budgets(settings.targets, settings.budgets, list(catalog))
    predictors: dict[str, LatencyPredictor] = {
        b.target: load_predictor(b.target, settings.tables_dir, settings.fallback) for b in budgets
    }
    out = settings.out or (settings.output_root / _run_name(budgets))
    check_run_dir(out)
    run = open_run_dir(out) if (out / RUN_FILE).exists() else None
    try:
        if run is not None and (done := rewrite_finished(run, settings, budgets, predictors, catalog, rep)):
            return done
        plan = make_plan(settings, budgets, predictors, catalog, rep)
        run = run or open_run_dir(out)  # created only now: a refused search leaves no folder behind
        check_identity(run, plan.identity)
        if settings.engine == "tunas":
            return _run_tunas(settings, plan, run, rep)
        return _run_optuna(settings, plan, run, rep)
    finally:
        if run is not None:
            run.release()


def _run_record(settings: SearchSettings, plan: Plan, run: RunDir, **extra: Any) -> dict[str, Any]:
    """``run.json`` of a run in progress (no ``finished`` entry)."""
    return {
        "format": RUN_FORMAT,
        "identity": plan.identity,
        **extra,
        "seed": settings.seed,
        "trials": settings.trials,
        "coarse_trials": settings.coarse_trials,
        "fine_trials": settings.fine_trials,
        "created": (run.previous or {}).get("created", utc_timestamp()),
        "min_latency_ms": plan.mins,
        "estimator_data": plan.data,
    }


def _optuna_engine(
    settings: SearchSettings, plan: Plan, run: RunDir, opened: OpenedStorage, study_base: str, rep: Reporter
) -> OptunaEngine:
    """The local optuna engine, or the Ray one when ``--workers``/``--ray-address`` ask for it."""
    if settings.workers or settings.ray_address:
        from nas.search._ray_engine import RayEngine

        return RayEngine(
            opened,
            study_base=study_base,
            multi=plan.multi,
            reporter=rep,
            workers=settings.workers or 1,
            address=settings.ray_address,
            run_dir=run.path,
        )
    return OptunaEngine(opened, study_base=study_base, multi=plan.multi, reporter=rep)


def _flow(settings: SearchSettings) -> Flow:
    return Flow(
        settings.one_stage,
        settings.trials,
        settings.coarse_trials,
        settings.fine_trials,
        settings.coarse_top,
        settings.seed,
    )


def _run_stages(engine: Engine, plan: Plan, settings: SearchSettings) -> list[StageRun]:
    """The one two-stage (or one-stage) flow every engine goes through."""
    coarse_ev = None if plan.coarse_est is None else plan.coarse_ev
    return run_stages(engine, plan.space, _flow(settings), plan.evaluator, coarse_ev)


def _optuna_info(settings: SearchSettings, plan: Plan, engine: OptunaEngine, storage_url: str) -> dict[str, Any]:
    """The run's settings as the summary states them."""
    ray = bool(settings.workers or settings.ray_address)
    trials_text = (
        f"{settings.trials} one-stage"
        if settings.one_stage
        else f"{settings.coarse_trials} coarse + {settings.fine_trials} fine"
        + (f" (top {settings.coarse_top} coarse bases)" if settings.coarse_top > 1 else "")
    )
    return {
        "space": plan.space.name,
        "space_note": plan.space_note,
        "engine": "optuna"
        + (f" on Ray ({settings.ray_address or f'{settings.workers} local workers'})" if ray else ""),
        "mode": ("NSGA-II" if plan.multi else "TPE") + (", one-stage" if settings.one_stage else ", two-stage"),
        "trials_text": trials_text,
        "seed": settings.seed,
        "estimator": plan.estimator.name,
        "estimator_meaning": plan.estimator.meaning + coarse_note(plan.coarse_est),
        "storage": storage_url,
        "study": engine.study_base,
        "estimator_data": plan.data,
    }


def _run_optuna(settings: SearchSettings, plan: Plan, run: RunDir, rep: Reporter) -> SearchOutcome:
    """The optuna engines' run (local or Ray): resumable from the optuna storage."""
    out, evaluator = run.path, plan.evaluator
    opened = open_storage(settings.storage, out)
    if opened.broken_locks:
        rep.note(f"removed a stale optuna lock left by a killed process ({', '.join(opened.broken_locks)})")
    study_base = settings.study or (run.previous or {}).get("study") or out.name
    if run.previous:
        rep.note(f"resuming {out} (study {study_base})")
    record = _run_record(settings, plan, run, study=study_base, storage=opened.url)
    run.write_record(record)
    engine = _optuna_engine(settings, plan, run, opened, study_base, rep)
    try:
        runs = _run_stages(engine, plan, settings)
        info = _optuna_info(settings, plan, engine, opened.url)
        refs = references(plan.estimator, plan.predictors) if settings.references else []
        # Two estimators score on two scales: the coarse stage only chooses the bases the fine stage refines.
        fine_only = None if plan.coarse_est is None else [r.stage.label for r in runs if r.stage.label != "coarse"]
        outcome = write_results(
            out,
            _records_frame(runs, evaluator),
            evaluator,
            all_targets=list(plan.catalog),
            settings=info,
            references=refs,
            fallback=settings.fallback,
            tables_dir=settings.tables_dir,
            stages=fine_only,
        )
        short = [f"{r.stage.label} {n}/{r.stage.n_trials}" for r in runs if (n := r.n_complete()) < r.stage.n_trials]
    finally:
        opened.close()
    if short:  # a worker sharing the study died mid-trial, or is still running one
        rep.note(f"stages short of their trials: {', '.join(short)}; rerun the same command to complete them")
        return outcome
    stages = [[r.stage.label, engine.spec(r.stage).study_name] for r in runs]
    record["finished"] = finished_record(settings, plan, outcome, info, fine_only, stages=stages)
    run.write_record(record)
    return outcome


def _records_frame(runs: list[StageRun], evaluator: Evaluator) -> pd.DataFrame:
    """``trials.csv`` of optuna stages: every stage's records, read from the (shared) studies now."""
    cols = ["stage", "trial", "state", "feasible", "score", "params", "macs"]
    cols += [f"latency_ms[{b.target}]" for b in evaluator.budgets] + ["arch"]
    return pd.DataFrame([rec for r in runs for rec in r.records(evaluator)], columns=cols)


def _run_tunas(settings: SearchSettings, plan: Plan, run: RunDir, rep: Reporter) -> SearchOutcome:
    """The TuNAS engine's run: no optuna storage (a TuNAS search restarts from scratch when rerun
    before it finished)."""
    from nas.search._tunas_engine import RESCORE_TOP, RESCORED, TunasEngine

    evaluator = plan.evaluator
    record = _run_record(settings, plan, run)
    run.write_record(record)
    engine = TunasEngine(evaluator, settings.beta, rep)
    runs = _run_stages(engine, plan, settings)
    trials, arch, score = engine.finish(runs, plan.estimator, separate_coarse=plan.coarse_est is not None)
    record["tunas"] = engine.details
    _note_over_budget(evaluator, arch, rep)
    steps = (
        f"{settings.trials} one-stage steps"
        if settings.one_stage
        else f"{settings.coarse_trials} coarse + {settings.fine_trials} fine steps"
    )
    info = {
        "space": plan.space.name,
        "space_note": plan.space_note,
        "engine": f"TuNAS REINFORCE, absolute reward R = Q + β·|T/T0 − 1|, β = {settings.beta}, T0 = the budget",
        "mode": "one-stage" if settings.one_stage else "two-stage",
        "trials_text": steps + " (one sampled architecture per step, scored by one held-out batch; the "
        f"(up to) {RESCORE_TOP} best distinct within-budget samples scored again by the full estimator are the "
        f"`{RESCORED}` rows, and pareto.csv is built from them)",
        "seed": settings.seed,
        "estimator": plan.estimator.name,
        "estimator_meaning": plan.estimator.meaning + coarse_note(plan.coarse_est),
        "storage": "none (TuNAS runs in one process)",
        "study": "-",
        "estimator_data": plan.data,
    }
    refs = references(plan.estimator, plan.predictors) if settings.references else []
    outcome = write_results(
        run.path,
        trials,
        evaluator,
        all_targets=list(plan.catalog),
        settings=info,
        references=refs,
        fallback=settings.fallback,
        tables_dir=settings.tables_dir,
        chosen=(arch, score),
        stages=[RESCORED],
    )
    record["finished"] = finished_record(
        settings, plan, outcome, info, [RESCORED], chosen={"arch": arch.arch, "score": score}
    )
    run.write_record(record)
    return outcome


def _note_over_budget(evaluator: Evaluator, arch: ArchSpec, rep: Reporter) -> None:
    """Say so when TuNAS's pick exceeds a budget (its absolute reward allows that)."""
    over = [b for b in evaluator.budgets if evaluator.latencies(arch)[b.target] > b.budget_ms]
    if over:
        rep.note(
            "TuNAS's most likely architecture is over budget on "
            + ", ".join(f"{b.target} ({evaluator.latencies(arch)[b.target]:.3g} ms > {b.text})" for b in over)
            + ": the absolute reward only penalises the distance to T0; more steps or a more negative --beta tighten it"
        )


def outcome_json(outcome: SearchOutcome) -> dict[str, Any]:
    """The object ``search --json`` prints (latency on every target that can run the architecture).

    ``within_budget`` is false when the engine's pick exceeds a budget (TuNAS may report one);
    ``estimator_data`` names the data a trained estimator learnt (classes, resolution), while
    ``classes``/``resolution`` are the best architecture's own (its deployment head and input)."""
    return {
        "arch": outcome.best.arch,
        "score": outcome.best_score,
        "estimator": outcome.estimator,
        "latency_ms": {t: ms for t, (ms, _) in outcome.all_latency_ms.items() if ms is not None},
        "budget_ms": outcome.budget_ms,
        "within_budget": outcome.within_budget,
        "classes": outcome.best.num_classes,
        "resolution": outcome.best.resolution,
        "estimator_data": outcome.estimator_data,
        "out_dir": str(outcome.out_dir),
    }


__all__ = [
    "RUN_FORMAT",
    "outcome_json",
    "run_search",
]
