"""Building an offline distillation store (``mnv4-nas distill-data``): the paper's §8 data sets.

For each replica r (a seeded permutation of the training images per replica) and each image, the
augmentation recipe makes a copy, the copy is quantised to uint8 (what the store keeps), and the
teacher labels that quantised copy. Examples are laid out replica after replica and cut into shards
of ``shard_size``; shard k is a function of the settings and k alone (its batches are augmented
with seeds drawn from (seed, k, batch)), so a build killed and resumed writes byte-identical shards
to one that ran through, and a finished shard is skipped, never rewritten.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data import Dataset, StoreError, StoreWriter, data_identity, make_augment, seeded_rng
from nas.inputs import check_int
from nas.train._teacher import Teacher, TeacherError

#: A shard's target size when ``shard_size`` is not given (examples × image and probability bytes).
SHARD_BYTES = 32 * 2**20
#: Bounds of the automatic shard size (examples).
SHARD_MIN, SHARD_MAX = 64, 8192
_ORDER = 0x5E1EC7  # salts of the seeded generators: replica order, augmentation
_AUG = 0xA06


@dataclass(frozen=True)
class StoreProgress:
    """What :func:`build_store` reports after each batch (and once before the first)."""

    examples_done: int
    examples_total: int
    shards_done: int
    shards_total: int
    shards_resumed: int


@dataclass(frozen=True)
class StoreSummary:
    """What :func:`build_store` did and what the store holds."""

    path: Path
    examples: int
    shards: int
    shards_resumed: int
    shards_built: int
    bytes: int
    seconds: float  # this run
    images_per_s: float | None  # this run's teacher-labelled images per second (None if none were built)
    total_wall_s: float  # all runs of the build together
    teacher: dict[str, Any]
    aug: str
    replicas: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = dict(self.__dict__)
        d["path"] = str(self.path)
        return d


def default_shard_size(resolution: int, num_classes: int) -> int:
    """Examples per shard for about :data:`SHARD_BYTES` a shard, within [SHARD_MIN, SHARD_MAX]."""
    per = 3 * resolution * resolution + 2 * num_classes + 24
    return int(min(SHARD_MAX, max(SHARD_MIN, SHARD_BYTES // per)))


def check_teacher(teacher: Teacher, data: Dataset) -> None:
    """One-line :class:`TeacherError` unless the teacher gives the data's classes at its resolution."""
    src = teacher.describe().get("source", "the teacher")
    if teacher.num_classes != data.num_classes:
        raise TeacherError(
            f"teacher {src} gives {teacher.num_classes} classes; the data ({data.source}) has {data.num_classes}"
        )
    if teacher.resolution is not None and teacher.resolution != data.resolution:
        raise TeacherError(
            f"teacher {src} takes {teacher.resolution} px images; the data ({data.source}) is at "
            f"{data.resolution} px (--resolution)"
        )


def _checked_probs(teacher: Teacher, images: torch.Tensor) -> torch.Tensor:
    p = teacher.probs(images).detach().float().cpu()
    if tuple(p.shape) != (len(images), teacher.num_classes) or not bool(torch.isfinite(p).all()):
        raise TeacherError(
            f"teacher {teacher.describe().get('source')} returned {tuple(p.shape)} non-finite or "
            f"misshapen probabilities for {len(images)} images"
        )
    if bool((p < 0).any()) or float((p.sum(1) - 1).abs().max()) > 1e-3:
        raise TeacherError(f"teacher {teacher.describe().get('source')} returned rows that are not probabilities")
    return p


class _Shards:
    """Which examples shard k holds and how they are made."""

    def __init__(
        self, teacher: Teacher, data: Dataset, aug: str, replicas: int, seed: int, shard_size: int, batch_size: int
    ):
        self.teacher, self.data, self.seed = teacher, data, seed
        self.augment = make_augment(aug, data.resolution)
        self.n = len(data.train_y)
        self.total = self.n * replicas
        self.shard_size, self.batch_size = shard_size, batch_size
        self.count = math.ceil(self.total / shard_size)
        self.order = lru_cache(maxsize=4)(self._order)

    def _order(self, replica: int) -> np.ndarray:
        return seeded_rng(self.seed, _ORDER, replica).permutation(self.n)

    def examples(self, k: int) -> int:
        return min(self.shard_size, self.total - k * self.shard_size)

    def make(self, k: int, on_batch: Callable[[int], None]) -> dict[str, torch.Tensor]:
        pos = np.arange(k * self.shard_size, k * self.shard_size + self.examples(k))
        rep = pos // self.n
        idx = np.empty_like(pos)
        for r in np.unique(rep):
            sel = rep == r
            idx[sel] = self.order(int(r))[pos[sel] % self.n]
        images, probs = [], []
        for j, s in enumerate(range(0, len(pos), self.batch_size)):
            x = self.data.train_x[torch.from_numpy(idx[s : s + self.batch_size])].float().div_(255.0)
            x = self.augment(x, int(seeded_rng(self.seed, _AUG, k, j).integers(2**63)))
            q = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8)  # the teacher labels what is stored
            probs.append(_checked_probs(self.teacher, q.float().div_(255.0)).to(torch.float16))
            images.append(q)
            on_batch(len(q))
        index = torch.from_numpy(idx).to(torch.int64)
        return {
            "images": torch.cat(images),
            "probs": torch.cat(probs),
            "labels": self.data.train_y[index].to(torch.int64),
            "index": index,
            "replica": torch.from_numpy(rep).to(torch.int64),
        }


def build_store(
    teacher: Teacher,
    data: Dataset,
    out: str | Path,
    *,
    aug: str = "inception-randaug",
    replicas: int = 1,
    seed: int = 0,
    shard_size: int | None = None,
    batch_size: int = 128,
    data_spec: str | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    on_progress: Callable[[StoreProgress], None] | None = None,
) -> StoreSummary:
    """Write (or finish) the distillation store ``out``: ``replicas`` augmented copies (recipe ``aug``)
    of ``data``'s training images with ``teacher``'s probabilities for each (see the module docstring).

    ``data_spec``/``val_fraction``/``split_seed``: how ``data`` was loaded (``load_data``), recorded so
    that training on the store can reload its held-out split (default spec: ``data.source``).
    A teacher that does not match the data, bad settings, or an ``out`` holding a store built with other
    settings are one-line errors before anything is written.
    """
    check_int(replicas, "--replicas", lo=1, hi=1_000_000)
    check_int(batch_size, "--batch-size", lo=1, hi=1 << 20)
    check_int(seed, "--seed", lo=0)
    if shard_size is None:
        shard_size = default_shard_size(data.resolution, data.num_classes)
    check_int(shard_size, "--shard-size", lo=1, hi=1 << 24)
    if len(data.train_y) == 0:
        raise StoreError(f"{data.source}: no training images")
    check_teacher(teacher, data)
    plan = _Shards(teacher, data, aug, replicas, seed, shard_size, batch_size)
    settings: dict[str, Any] = {
        "teacher": teacher.describe(),
        "data": data_identity(data, data_spec or data.source, val_fraction, split_seed),
        "aug": aug,
        "replicas": replicas,
        "seed": seed,
        "shard_size": shard_size,
        "batch_size": batch_size,
        "probs_dtype": "float16",
    }
    with StoreWriter(out, settings, examples=plan.total, num_shards=plan.count) as w:
        todo = [k for k in range(plan.count) if not w.is_done(k)]
        done_ex = plan.total - sum(plan.examples(k) for k in todo)
        state = {"ex": done_ex, "shards": plan.count - len(todo)}

        def report(n: int = 0) -> None:
            state["ex"] += n
            if on_progress is not None:
                on_progress(StoreProgress(state["ex"], plan.total, state["shards"], plan.count, w.resumed))

        report()
        for k in todo:
            w.write_shard(k, plan.make(k, report))
            state["shards"] += 1
            report()
        m = w.finish()
        wall, secs = w.wall_s(), w.session_s()
    size = sum(s["bytes"] for s in m["shards"]) + (Path(w.path) / "manifest.json").stat().st_size
    return StoreSummary(
        w.path,
        plan.total,
        plan.count,
        w.resumed,
        len(todo),
        size,
        secs,
        w.built / secs if w.built and secs > 0 else None,
        wall,
        settings["teacher"],
        aug,
        replicas,
    )
