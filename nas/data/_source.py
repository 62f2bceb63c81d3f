"""What a training loop reads: :class:`TrainSource` yields shuffled :class:`Batch`\\ es per epoch.

Two kinds implement it: the in-memory :class:`~nas.data.Dataset` (hard labels; :class:`DatasetSource`)
and distillation stores (augmented images with a teacher's probabilities, streamed from shards, several
stores mixed by ratio). The loop only knows this protocol, so supernet and stand-alone training read
either. Sources yield *un-augmented images in [0, 1]*: the loop augments them (its recipe; a store's
images were augmented when the store was built, and its student recipe adds a left-right flip only),
then normalises them with the source's ``mean``/``std`` (a teacher normalises with its own).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from nas.data._dataset import Dataset


@dataclass(frozen=True)
class Batch:
    """One training batch.

    ``x``: float32 N×3×R×R in [0, 1], neither augmented nor normalised.
    ``y``: int64 N hard labels (for a store: the label of the image the augmented copy came from).
    ``soft``: float32 N×C target probabilities (a distillation store's teacher), else ``None``.
    """

    x: torch.Tensor
    y: torch.Tensor
    soft: torch.Tensor | None = None


@runtime_checkable
class TrainSource(Protocol):
    """Training examples, read epoch by epoch (never required to fit in memory)."""

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names (their count is the model's ``num_classes``)."""
        ...

    @property
    def resolution(self) -> int:
        """Side of the square images it yields (px)."""
        ...

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel mean used for normalisation (also what deployment must apply)."""
        ...

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel standard deviation used for normalisation."""
        ...

    def train_size(self) -> int:
        """Examples in one epoch (all ranks together)."""
        ...

    def epoch_batches(self, seed: int, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """One epoch's batches of ``batch_size`` (per rank), full batches only, in an order fixed by
        ``seed``; with ``world > 1`` each rank reads a disjoint shard of the same order."""
        ...

    def identity(self) -> dict[str, Any]:
        """JSON-able description a resumed training must match (source, classes, sizes, statistics)."""
        ...

    def describe(self) -> str:
        """One line for the console."""
        ...


class DatasetSource:
    """:class:`TrainSource` over the training split of an in-memory :class:`~nas.data.Dataset`."""

    def __init__(self, data: Dataset):
        self.data = data

    @property
    def classes(self) -> tuple[str, ...]:
        return self.data.classes

    @property
    def resolution(self) -> int:
        return self.data.resolution

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.data.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.data.std

    def train_size(self) -> int:
        return len(self.data.train_y)

    def epoch_batches(self, seed: int, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(seed)
        n = len(self.data.train_y)
        order = torch.randperm(n, generator=gen)
        if world > 1:
            per = n // world
            order = order[rank * per : (rank + 1) * per]
        for s in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[s : s + batch_size]
            yield Batch(self.data.train_x[idx].to(torch.float32) / 255.0, self.data.train_y[idx])

    def identity(self) -> dict[str, Any]:
        return {
            "kind": "dataset",
            "source": self.data.source,
            "classes": list(self.data.classes),
            "resolution": self.data.resolution,
            "train_images": len(self.data.train_y),
            "val_images": len(self.data.val_y),
        }

    def describe(self) -> str:
        return self.data.describe()
