"""Accuracy estimation: the weight-sharing supernet and training-free proxies, behind one protocol.

Heavy modules (training, data) are imported on first use of their names.
"""

from __future__ import annotations

from typing import Any

from nas.supernet._estimators import (
    DEFAULT_ESTIMATOR,
    ESTIMATORS,
    NASWOT,
    AccuracyEstimator,
    CachedEstimator,
    ParamsEstimator,
    QualityFn,
    SpaceEstimator,
    TrainedOnData,
    TunasEstimator,
    WrappingEstimator,
    ZenScore,
    make_estimator,
)

_LAZY = {
    "Supernet": "nas.supernet._supernet",
    "largest_arch": "nas.supernet._supernet",
    "smallest_arch": "nas.supernet._supernet",
    "Dataset": "nas.data",
    "load_data": "nas.data",
    "TrainConfig": "nas.supernet._train",
    "TrainResult": "nas.supernet._train",
    "train_supernet": "nas.supernet._train",
    "EXTRACT_FORMATS": "nas.supernet._extract",
    "ExtractedSubnet": "nas.supernet._extract",
    "extract_subnet": "nas.supernet._extract",
    "SupernetTrainSettings": "nas.supernet._train_settings",
    "SupernetTrainOutcome": "nas.supernet._train_settings",
    "SupernetReporter": "nas.supernet._train_settings",
    "train_supernet_from_settings": "nas.supernet._train_settings",
    "load_supernet": "nas.supernet._train",
    "cost_function": "nas.supernet._train",
    "stored_config": "nas.supernet._train",
    "SAMPLERS": "nas.supernet._train",
    "SANDWICH_OPS": "nas.supernet._train",
    "load_checkpoint": "nas.supernet._checkpoint",
    "latency_function": "nas.supernet._train",
    "Controller": "nas.supernet._tunas",
    "TunasResult": "nas.supernet._tunas",
    "abs_reward": "nas.supernet._reward",
    "TUNAS_BETA": "nas.supernet._reward",
    "tunas_search": "nas.supernet._tunas",
    "SupernetEstimator": "nas.supernet._supernet_estimator",
    "make_supernet_estimator": "nas.supernet._load_estimator",
    "load_supernet_estimator": "nas.supernet._load_estimator",
    "FewShotEstimator": "nas.supernet._few_shot",
    "train_few_shot": "nas.supernet._few_shot",
    "check_few_shot": "nas.supernet._few_shot",
    "is_few_shot": "nas.supernet._few_shot",
    "read_manifest": "nas.supernet._few_shot",
    "SupernetMacsEstimator": "nas.supernet._rank_mean",
    "Predictor": "nas.supernet._predictor",
    "Features": "nas.supernet._predictor",
    "fit_predictor": "nas.supernet._predictor",
    "check_fit_options": "nas.supernet._predictor",
    "load_predictor": "nas.supernet._predictor",
    "SubnetScorer": "nas.supernet._batched_eval",
    "BatchQuality": "nas.supernet._evaluate",
    "subnet_accuracy": "nas.supernet._evaluate",
    "standalone_accuracy": "nas.supernet._evaluate",
    "Member": "nas.supernet._member",
    "member_model": "nas.supernet._member",
    "NORMS": "nas.supernet._teachers",
    "TEACHER_FORMS": "nas.supernet._teachers",
    "TeacherArg": "nas.supernet._teachers",
    "normalize_onnx": "nas.supernet._teachers",
    "open_teacher": "nas.supernet._teachers",
    "parse_teacher": "nas.supernet._teachers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas.supernet' has no attribute {name!r}")


__all__ = [
    "DEFAULT_ESTIMATOR",
    "ESTIMATORS",
    "NASWOT",
    "AccuracyEstimator",
    "CachedEstimator",
    "ParamsEstimator",
    "QualityFn",
    "SpaceEstimator",
    "TrainedOnData",
    "TunasEstimator",
    "WrappingEstimator",
    "ZenScore",
    "make_estimator",
    *_LAZY,
]
