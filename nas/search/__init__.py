"""The search: two-stage (coarse → fine) or one-stage, budget-constrained, single- or multi-target,
resumable (optuna storage), optionally distributed on Ray; writes a result folder."""

from __future__ import annotations

from nas.search._checks import check_ray_address, check_storage
from nas.search._evaluate import Evaluation, Evaluator, TargetBudget, min_latency, pareto_mask
from nas.search._results import Reference, SearchOutcome, best_table_rows, provenance_table
from nas.search._run import (
    REFERENCE_MODELS,
    Reporter,
    SearchSettings,
    SilentReporter,
    check_space,
    choose_space,
    outcome_json,
    pair_budgets,
    run_search,
)

__all__ = [
    "REFERENCE_MODELS",
    "Evaluation",
    "Evaluator",
    "Reference",
    "Reporter",
    "SearchOutcome",
    "SearchSettings",
    "SilentReporter",
    "TargetBudget",
    "best_table_rows",
    "check_ray_address",
    "check_space",
    "check_storage",
    "choose_space",
    "min_latency",
    "outcome_json",
    "pair_budgets",
    "pareto_mask",
    "provenance_table",
    "run_search",
]
