"""What an optuna trial of a search records when it is suggested, shared by the local engine and the
Ray searcher (:class:`nas.search._ray_support.DefineByRun`): the architecture's budget constraints and
the worker that ran it."""

from __future__ import annotations

import os
import socket
from typing import Any

from nas.search._evaluate import Evaluator
from nas.space import SearchSpace, suggest
from nas.spec import ArchSpec

#: Which process ran a trial (several workers may share a study through PostgreSQL).
WORKER = f"{socket.gethostname()}:{os.getpid()}"


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


__all__ = ["WORKER", "suggest_constrained"]
