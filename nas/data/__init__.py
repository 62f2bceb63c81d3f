"""Image-classification data for training and supernet training: an image-folder directory, an ``.npz`` file, or
the built-in procedurally generated data set.

Everything is decoded once, resized to the training resolution and held in memory as ``uint8``
N×3×R×R tensors (CPU-scale data sets at 32–64 px fit easily). Malformed inputs raise one-line
:class:`~nas.errors.NasError`\\ s naming the file.

``builtin`` (``builtin:N`` for N training images per class, default 1000) — *shapes10*: ten classes
of geometric shapes and textures (disk, ring, square, frame, triangle, plus, cross, horizontal
stripes, vertical stripes, checkerboard) drawn at a random position, size and tilt in a random
colour over a random smoothly varying background, with low-contrast cases, distractor strokes and
pixel noise. It is generated deterministically (fixed seed, numpy only) at the requested resolution
on first use and cached under ``$MNV4NAS_CACHE`` (default ``~/.cache/mnv4-nas``), so nothing is
downloaded; ``min(200, max(20, N // 2))`` held-out images per class form the validation split.

Distillation stores (folders written by ``mnv4-nas distill-data``: augmented images with a teacher's
probabilities, in shards): :func:`open_store` reads one as a streamed :class:`TrainSource`,
:func:`mix_stores` mixes several by ratio, :class:`StoreWriter` writes one resumably.
"""

from __future__ import annotations

from nas.data._augment import AUGMENTATIONS, Augment, KorniaAugment, make_augment
from nas.data._builtin import (
    BUILTIN_CLASSES,
    BUILTIN_SEED,
    BUILTIN_TRAIN_PER_CLASS,
    builtin_val_per_class,
    cache_dir,
    load_builtin,
    render_cached,
    render_shapes,
)
from nas.data._dataset import DataError, Dataset, batches, make_dataset, resize_uint8, stats, stratified_split
from nas.data._files import IMAGE_EXTENSIONS, load_folder, load_npz
from nas.data._load import load_data, load_training_data, open_store
from nas.data._mix import MixedSource, data_record, mix_stores, open_distill_stores, parse_store_arg
from nas.data._source import Batch, DatasetSource, TrainSource
from nas.data._store import DistillStore, StoreError, data_identity, is_store, seeded_rng
from nas.data._store_write import StoreWriter

__all__ = [
    "AUGMENTATIONS",
    "Augment",
    "KorniaAugment",
    "make_augment",
    "load_training_data",
    "BUILTIN_CLASSES",
    "BUILTIN_SEED",
    "BUILTIN_TRAIN_PER_CLASS",
    "Batch",
    "DatasetSource",
    "IMAGE_EXTENSIONS",
    "DataError",
    "Dataset",
    "batches",
    "builtin_val_per_class",
    "cache_dir",
    "load_builtin",
    "load_data",
    "load_folder",
    "load_npz",
    "make_dataset",
    "render_cached",
    "render_shapes",
    "resize_uint8",
    "stats",
    "stratified_split",
    "TrainSource",
    "DistillStore",
    "MixedSource",
    "StoreError",
    "StoreWriter",
    "data_identity",
    "is_store",
    "mix_stores",
    "open_distill_stores",
    "open_store",
    "parse_store_arg",
    "seeded_rng",
    "data_record",
]
