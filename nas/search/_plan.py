"""A checked search, ready to run: its estimators (typed by the protocols of :mod:`nas.supernet`),
space, evaluators and identity, built before any trial so that every refusal comes first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.errors import NasError
from nas.search._evaluate import Evaluator, TargetBudget
from nas.search._optuna_engine import multi_objective
from nas.search._protocols import LatencyPredictor, Reporter
from nas.search._results import Reference
from nas.search._settings import SearchSettings
from nas.search._space_choice import check_space, choose_space
from nas.space import SearchSpace, decisions, load_space
from nas.supernet import AccuracyEstimator, SpaceEstimator, TrainedOnData, WrappingEstimator

REFERENCE_MODELS = (
    "mnv4-conv-small",
    "mnv4-conv-medium",
    "mnv4-conv-large",
    "mnv4-hybrid-medium",
    "mnv4-hybrid-large",
)


def identity(
    settings: SearchSettings, budgets: list[TargetBudget], space: SearchSpace, estimator: str
) -> dict[str, Any]:
    """What must not change when a run is resumed."""
    return {
        "targets": [b.target for b in budgets],
        "budget_ms": [b.budget_ms for b in budgets],
        "space": space.name,
        "space_source": space.source,
        "estimator": estimator,
        "coarse_estimator": settings.coarse_estimator,  # absent from older run.json files: .get() reads None
        "mode": "one-stage" if settings.one_stage else "two-stage",
        "pareto": settings.pareto,
        "coarse_top": settings.coarse_top,
        "engine": settings.engine,
    }


def references(estimator: AccuracyEstimator, predictors: dict[str, LatencyPredictor]) -> list[Reference]:
    """The zoo's reference models with their latency on every target that can run them and their
    score (None where the estimator cannot score them, e.g. a supernet outside its space)."""
    from nas.zoo import get_spec

    refs = []
    for name in REFERENCE_MODELS:
        arch = get_spec(name)
        lat = {}
        for t, p in predictors.items():
            try:
                lat[t] = float(p.predict_archs([arch]).latency_ms[0])
            except NasError:
                continue
        if not lat:
            continue
        try:
            score: float | None = float(estimator.score([arch])[0])
        except NasError:
            score = None  # e.g. a supernet estimator scores only members of its space
        refs.append(Reference(name, arch, score, lat))
    return refs


def trained_elsewhere(estimator: AccuracyEstimator, space: SearchSpace) -> str | None:
    """Name of the space a trained estimator (a supernet) was trained on when that is not ``space``;
    None when it is, or when the estimator needs no training."""
    on = space_trained_on(estimator)
    return None if on is None or decisions(on.with_phase("joint")) == decisions(space) else on.name


def space_trained_on(estimator: AccuracyEstimator) -> SearchSpace | None:
    """The space an estimator scores members of only (a supernet's), None for one that scores any."""
    return estimator.search_space if isinstance(estimator, SpaceEstimator) else None


def estimator_data(estimator: AccuracyEstimator) -> dict[str, Any] | None:
    """The data a trained estimator learnt (``data``, ``classes``, ``resolution``); None for proxies.

    A supernet+macs estimator wraps a supernet (``base``)."""
    base = estimator.base if isinstance(estimator, WrappingEstimator) else None
    for obj in (estimator, base):
        if isinstance(obj, TrainedOnData):
            meta = obj.meta
            if isinstance(meta, dict) and "classes" in meta and "resolution" in meta:
                return _data_of(meta)
    return None


def _data_of(meta: dict[str, Any]) -> dict[str, Any]:
    data = meta.get("data")
    return {
        "data": str(data.get("spec")) if isinstance(data, dict) else "?",
        "classes": len(meta["classes"]),
        "resolution": int(meta["resolution"]),
    }


@dataclass
class Plan:
    """A checked search, ready to run: what both engines and the result writer need."""

    space: SearchSpace
    space_note: str
    estimator: AccuracyEstimator
    coarse_est: AccuracyEstimator | None
    evaluator: Evaluator
    coarse_ev: Evaluator
    multi: bool
    predictors: dict[str, LatencyPredictor]
    catalog: dict[str, Any]
    mins: dict[str, float]
    identity: dict[str, Any]
    data: dict[str, Any] | None


def make_plan(
    settings: SearchSettings,
    budgets: list[TargetBudget],
    predictors: dict[str, LatencyPredictor],
    catalog: dict[str, Any],
    rep: Reporter,
) -> Plan:
    """Build the estimators, choose and check the space (everything that may refuse before a trial)."""
    from nas.supernet import make_estimator

    tunas = settings.engine == "tunas"
    estimator = make_estimator(settings.estimator)
    coarse_est = None if settings.coarse_estimator is None else make_estimator(settings.coarse_estimator)
    if coarse_est is not None and settings.one_stage:
        raise NasError("--coarse-estimator scores the coarse stage of a two-stage search; drop it or --one-stage")
    if tunas:
        from nas.search._tunas_engine import check_estimator

        check_estimator(estimator)
        if coarse_est is not None:
            check_estimator(coarse_est, "--coarse-estimator")
    trained_on = space_trained_on(estimator)  # a supernet scores members of its own space only
    if trained_on is not None and trained_on.phase == "coarse":
        raise NasError(
            f"{estimator.name} was trained on the coarse stage only (supernet train --phase coarse): give it as "
            "--coarse-estimator and a supernet of the joint space as --estimator"
        )
    if settings.space:
        space = load_space(settings.space)
        space_note = "given with --space"
        if other := trained_elsewhere(estimator, space):
            raise NasError(f"{estimator.name} was trained on space {other}; --space must be that space (or omitted)")
    elif trained_on is not None:
        space = trained_on.with_phase("joint")
        space_note = f"the space {estimator.name} was trained on"
        rep.note(f"space {space.name}: {space_note}")
    else:
        name, space_note = choose_space(budgets, predictors)
        space = load_space(name)
        rep.note(f"space {name}: {space_note}")
    if coarse_est is not None and (other := trained_elsewhere(coarse_est, space)):
        raise NasError(f"--coarse-estimator {coarse_est.name} was trained on space {other}, not on {space.name}")
    mins = check_space(space, budgets, predictors, two_stage=not settings.one_stage)
    multi = multi_objective(Evaluator(predictors, budgets, None), settings.pareto)
    evaluator = Evaluator(predictors, budgets, estimator, score_infeasible=multi)
    coarse_ev = evaluator if coarse_est is None else Evaluator(predictors, budgets, coarse_est, score_infeasible=multi)
    return Plan(
        space,
        space_note,
        estimator,
        coarse_est,
        evaluator,
        coarse_ev,
        multi,
        predictors,
        catalog,
        mins,
        identity(settings, budgets, space, estimator.name),
        estimator_data(estimator),
    )


def coarse_note(coarse_est: AccuracyEstimator | None) -> str:
    """What the summary adds to the estimator's meaning when the coarse stage had its own."""
    if coarse_est is None:
        return ""
    return (
        f"; the coarse stage was scored by `{coarse_est.name}` ({coarse_est.meaning}), so best and Pareto "
        "front come from the fine stage"
    )


__all__ = [
    "REFERENCE_MODELS",
    "Plan",
    "coarse_note",
    "estimator_data",
    "identity",
    "make_plan",
    "references",
    "space_trained_on",
    "trained_elsewhere",
]
