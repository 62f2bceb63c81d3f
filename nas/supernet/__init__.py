"""Accuracy estimation: the weight-sharing supernet and training-free proxies, behind one protocol."""

from __future__ import annotations

from nas.supernet._estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    NASWOT,
    AccuracyEstimator,
    CachedEstimator,
    ParamsEstimator,
    ZenScore,
    make_estimator,
)

__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "NASWOT",
    "AccuracyEstimator",
    "CachedEstimator",
    "ParamsEstimator",
    "ZenScore",
    "make_estimator",
]
