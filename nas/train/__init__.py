"""Stand-alone training and distillation of an architecture (``mnv4-nas train``), and the training
loop the supernet shares.

Distillation follows the paper (§8): a :class:`Teacher` gives class probabilities for images, either
offline (written to a distillation store with the augmented images) or online (the teacher sees the
student's augmented batch).
"""

from __future__ import annotations

from nas.train._distill_data import StoreProgress, StoreSummary, build_store, check_teacher
from nas.train._losses import soft_cross_entropy
from nas.train._teacher import IMAGENET_MEAN, IMAGENET_STD, ModuleTeacher, OnnxTeacher, Teacher, TeacherError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ModuleTeacher",
    "OnnxTeacher",
    "StoreProgress",
    "StoreSummary",
    "Teacher",
    "TeacherError",
    "build_store",
    "check_teacher",
    "soft_cross_entropy",
]
