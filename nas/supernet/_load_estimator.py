"""Loading a supernet-backed estimator from a path: a one-shot checkpoint or a few-shot manifest.

Lives above both :mod:`nas.supernet._supernet_estimator` and :mod:`nas.supernet._few_shot` (the
few-shot estimator is built from one-shot ones), so neither has to import the other back.
"""

from __future__ import annotations

from pathlib import Path

from nas.data import Dataset
from nas.errors import NasError
from nas.supernet._estimators import AccuracyEstimator
from nas.supernet._few_shot import FewShotEstimator, is_few_shot
from nas.supernet._supernet_estimator import SupernetEstimator


def load_supernet_estimator(path: str | Path, *, data: Dataset | None = None) -> SupernetEstimator | FewShotEstimator:
    """The estimator of a supernet checkpoint, or of a few-shot supernet's ``.json`` manifest."""
    if is_few_shot(path):
        return FewShotEstimator(path, data=data)
    return SupernetEstimator(path, data=data)


def make_supernet_estimator(arg: str | None) -> AccuracyEstimator:
    """Registry factory of ``supernet:PATH`` (a checkpoint, or a few-shot supernet's manifest)."""
    if not arg:
        raise NasError(
            "estimator 'supernet' needs a checkpoint: supernet:PATH (train one with 'mnv4-nas supernet train')"
        )
    return load_supernet_estimator(arg)


__all__ = ["load_supernet_estimator", "make_supernet_estimator"]
