"""Ray-side helpers, imported only when a search runs on Ray (importing ray costs seconds).

Classes live at module level because Ray pickles the searcher and callbacks with its experiment
state; closures would fail to pickle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray import tune

from nas.search._evaluate import Evaluator
from nas.space import SearchSpace


class DefineByRun:
    """OptunaSearch's define-by-run space: suggest every decision and record the budget constraints."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator):
        self.space, self.evaluator = space, evaluator

    def __call__(self, trial: Any) -> None:
        from nas.search._optuna_engine import suggest_constrained

        suggest_constrained(self.space, trial, self.evaluator)


class ProgressCallback(tune.Callback):
    """Forwards each finished trial's last result to the reporter (not pickled with the experiment)."""

    def __init__(self, on_trial: Callable[[dict[str, Any]], None] | None):
        self.on_trial = on_trial

    def __getstate__(self) -> dict[str, Any]:
        return {"on_trial": None}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        if self.on_trial is not None and trial.last_result:
            self.on_trial(trial.last_result)
