"""Trials as records: the completed trials of an optuna study, and the ``trials.csv`` row of one
architecture (what every engine's stage records are made of)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.cost import count_macs, count_params
from nas.search._evaluate import Evaluator
from nas.space import SearchSpace, arch_from_params
from nas.spec import ArchSpec, parse_arch


def completed_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials in number order."""
    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)


def trial_score(trial: FrozenTrial) -> float | None:
    """The trial's score (None when it was not scored)."""
    v = trial.values[0] if trial.values else None
    return None if v is None or not np.isfinite(v) else float(v)


def study_records(
    label: str, study: optuna.Study, space: SearchSpace | None, evaluator: Evaluator
) -> list[dict[str, Any]]:
    """The ``trials.csv`` rows of a study's completed trials, labelled ``label``.

    The architecture comes from the trial's ``arch`` attribute, or (trials run on Ray workers by older
    versions) is rebuilt from its parameters in ``space``; latencies come from ``evaluator``."""
    rows = []
    for t in completed_trials(study):
        arch_text = t.user_attrs.get("arch")
        arch = parse_arch(arch_text) if arch_text else arch_from_params(space, t.params)  # type: ignore[arg-type]
        rows.append(trial_row(label, t.number, t.state.name, arch, trial_score(t), evaluator))
    return rows


def trials_frame(studies: Sequence[tuple[str, Any, Any]], evaluator: Evaluator) -> pd.DataFrame:
    """One row per completed trial of every stage, from ``(label, study, space)`` triples.

    The architecture comes from the trial's ``arch`` attribute, or (trials run on Ray workers) is
    rebuilt from its parameters; latencies are recomputed with the search's own predictors.
    """
    rows = [r for label, study, space in studies for r in study_records(label, study, space, evaluator)]
    cols = ["stage", "trial", "state", "feasible", "score", "params", "macs"]
    cols += [f"latency_ms[{b.target}]" for b in evaluator.budgets] + ["arch"]
    return pd.DataFrame(rows, columns=cols)


def trial_row(
    label: str, number: int, state: str, arch: ArchSpec, score: float | None, evaluator: Evaluator
) -> dict[str, Any]:
    """One ``trials.csv`` row: stage, trial, state, within budget, score, params, MACs, latency per target, arch."""
    lat = evaluator.latencies(arch)
    row: dict[str, Any] = {
        "stage": label,
        "trial": number,
        "state": state,
        "feasible": bool(all(v <= 0 for v in evaluator.violations(lat))),
        "score": score,
        "params": count_params(arch),
        "macs": count_macs(arch),
    }
    for b in evaluator.budgets:
        row[f"latency_ms[{b.target}]"] = lat[b.target]
    row["arch"] = arch.arch
    return row


__all__ = ["completed_trials", "study_records", "trial_row", "trial_score", "trials_frame"]
