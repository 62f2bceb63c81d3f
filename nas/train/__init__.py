"""Stand-alone training and distillation of an architecture (``mnv4-nas train``, ``mnv4-nas eval``), and the
training loop the supernet shares.

- :class:`Engine` is the one training loop (optimizer, warm-up + cosine schedule, label smoothing,
  gradient clipping, EMA of the weights, mixed precision on CUDA, gradient averaging under
  ``torchrun``); a :class:`StepStrategy` supplies each step's forward and backward passes (one model
  here, sampled subnets in :mod:`nas.supernet`).
- :func:`train` trains an :class:`~nas.spec.ArchSpec` on any :class:`~nas.data.TrainSource` into an
  output folder (checkpoint every epoch, resume, safetensors + ONNX, metrics, curves, summary);
  :func:`load_trained` reads such a folder back, :func:`evaluate` scores it on held-out data.

Distillation follows the paper (§8): a :class:`Teacher` gives class probabilities for images, either
offline (a source whose batches carry ``soft`` probabilities) or online (``train(..., teacher=…)``:
the teacher sees the student's augmented batch); the loss is :func:`soft_cross_entropy`.

Modules that pull in the exporters or plotting are imported on first use of their names.
"""

from __future__ import annotations

from typing import Any

from nas.train._checkpoint import OUT_HINT, read_checkpoint, write_checkpoint
from nas.train._ddp import (
    DistInfo,
    average_buffers,
    average_gradients,
    barrier,
    broadcast_object,
    check_device,
    env_world_size,
    init_distributed,
    mean_over_ranks,
    shutdown,
    sum_over_ranks,
)
from nas.train._distill_data import StoreProgress, StoreSummary, build_store, check_teacher
from nas.train._ema import ModelEma
from nas.train._engine import (
    SEED_AUGMENT,
    SEED_DATA,
    SEED_RL,
    SEED_SUBNETS,
    Engine,
    EpochStats,
    StepBatch,
    StepContext,
    StepOutput,
    StepStrategy,
    epoch_seed,
)
from nas.train._losses import soft_cross_entropy
from nas.train._recipe import AMP_MODES, OPTIMIZERS, Recipe, amp_dtype, lr_at, make_optimizer, param_groups
from nas.train._teacher import IMAGENET_MEAN, IMAGENET_STD, ModuleTeacher, OnnxTeacher, Teacher, TeacherError

_LAZY = {
    "FILES": "nas.train._standalone",
    "ModelSteps": "nas.train._standalone",
    "TrainRun": "nas.train._standalone",
    "default_out_dir": "nas.train._standalone",
    "fit_model": "nas.train._standalone",
    "train": "nas.train._standalone",
    "training_specs": "nas.train._standalone",
    "TrainedModel": "nas.train._trained",
    "load_trained": "nas.train._trained",
    "teacher_from_trained": "nas.train._trained",
    "EvalResult": "nas.train._evaluate",
    "evaluate": "nas.train._evaluate",
    "write_eval": "nas.train._evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nas.train' has no attribute {name!r}")


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OnnxTeacher",
    "StoreProgress",
    "StoreSummary",
    "TeacherError",
    "build_store",
    "check_teacher",
    "AMP_MODES",
    "OPTIMIZERS",
    "OUT_HINT",
    "SEED_AUGMENT",
    "SEED_DATA",
    "SEED_RL",
    "SEED_SUBNETS",
    "DistInfo",
    "Engine",
    "EpochStats",
    "ModelEma",
    "ModuleTeacher",
    "Recipe",
    "StepBatch",
    "StepContext",
    "StepOutput",
    "StepStrategy",
    "Teacher",
    "amp_dtype",
    "average_buffers",
    "average_gradients",
    "barrier",
    "broadcast_object",
    "check_device",
    "env_world_size",
    "epoch_seed",
    "init_distributed",
    "lr_at",
    "make_optimizer",
    "mean_over_ranks",
    "param_groups",
    "read_checkpoint",
    "shutdown",
    "soft_cross_entropy",
    "sum_over_ranks",
    "write_checkpoint",
    *_LAZY,
]
