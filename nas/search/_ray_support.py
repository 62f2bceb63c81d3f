"""Ray-side helpers, imported only when a search runs on Ray (importing ray costs seconds).

Classes live at module level because Ray pickles the searcher and callbacks with its experiment
state; closures would fail to pickle.

Ray Tune adds a TensorBoard logger unless the callbacks hold one; it printed "NaN or Inf found
in input tensor" for every over-budget trial (whose score is −inf). The trials' record is the
optuna storage, so :class:`NoTensorboard` takes its place and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray import tune
from ray.tune.logger import TBXLoggerCallback

from nas.search._evaluate import Evaluator
from nas.search._suggest import WORKER, suggest_constrained
from nas.space import SearchSpace


class DefineByRun:
    """OptunaSearch's define-by-run space: suggest every decision and record the budget constraints."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator):
        self.space, self.evaluator = space, evaluator

    def __call__(self, trial: Any) -> None:
        trial.set_user_attr("worker", WORKER)
        arch = suggest_constrained(self.space, trial, self.evaluator)
        # as local trials do: a finished run's results can be rewritten without the space
        trial.set_user_attr("arch", arch.arch)


class ProgressCallback(tune.Callback):
    """Forwards each finished trial's last result to the reporter (not pickled with the experiment)."""

    def __init__(self, on_trial: Callable[[dict[str, Any]], None] | None):
        self.on_trial = on_trial

    def __getstate__(self) -> dict[str, Any]:
        return {"on_trial": None}

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Report the trial's last result."""
        if self.on_trial is not None and trial.last_result:
            self.on_trial(trial.last_result)


class NoTensorboard(TBXLoggerCallback):
    """Stands in for Ray Tune's default TensorBoard logger and writes nothing."""

    def __init__(self) -> None:  # the parent's state is never used: every hook below does nothing
        pass

    def log_trial_start(self, trial: Any) -> None:
        """Nothing to log."""

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        """Nothing to log."""

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        """Nothing to log."""


@contextmanager
def quiet_logger(name: str, level: int = logging.WARNING) -> Iterator[None]:
    """Raise a logger's level for the duration (Ray Tune logs every stage's bookkeeping at INFO)."""
    log = logging.getLogger(name)
    old = log.level
    log.setLevel(max(level, old))
    try:
        yield
    finally:
        log.setLevel(old)


__all__ = ["DefineByRun", "NoTensorboard", "ProgressCallback", "quiet_logger"]
