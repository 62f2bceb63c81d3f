"""The search: two-stage (coarse → fine) or one-stage, budget-constrained, single- or multi-target,
resumable (optuna storage), optionally distributed on Ray; writes a result folder."""

from __future__ import annotations

from nas.search._checks import check_ray_address, check_storage
from nas.search._engine import Engine, Flow, Stage, StageRun, run_stages
from nas.search._evaluate import Evaluation, Evaluator, TargetBudget, min_latency, pareto_mask
from nas.search._plan import REFERENCE_MODELS, estimator_data
from nas.search._protocols import LatencyPredictor, Reporter, SilentReporter
from nas.search._results import Reference, SearchOutcome, best_table_rows, provenance_table
from nas.search._run import outcome_json, run_search
from nas.search._settings import SearchSettings
from nas.search._space_choice import check_space, choose_space, pair_budgets

__all__ = [
    "REFERENCE_MODELS",
    "Engine",
    "Evaluation",
    "Evaluator",
    "Flow",
    "LatencyPredictor",
    "Reference",
    "Reporter",
    "SearchOutcome",
    "SearchSettings",
    "SilentReporter",
    "Stage",
    "StageRun",
    "TargetBudget",
    "best_table_rows",
    "check_ray_address",
    "check_space",
    "check_storage",
    "choose_space",
    "estimator_data",
    "min_latency",
    "outcome_json",
    "pair_budgets",
    "pareto_mask",
    "provenance_table",
    "run_search",
    "run_stages",
]
